/* slow.c - password jobs (bcrypt and what follows it) on libuv's thread
 * pool, at most limits.password_jobs at a time per worker.
 *
 * A burst of wrong passwords must not take the cores the event loops need:
 * the jobs run at a low priority (kg__slow_work_begin) and, beyond the cap,
 * wait in a bounded FIFO on their worker. A job whose client has gone by the
 * time its turn comes is not run at all. Everything here but the work
 * callback runs on the worker's loop, so the queue needs no lock. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/crypto.h>

#include "keygate/log.h"
#include "conn.h"
#include "kg.h"
#include "slow.h"
#include "throttle.h"

/* process-wide totals, for /_keygate/health */
static atomic_size_t g_running, g_waiting, g_joined;

void kg__slow_counts(size_t *running, size_t *waiting, size_t *joined)
{
	*joined = atomic_load(&g_joined);
	*running = atomic_load(&g_running);
	*waiting = atomic_load(&g_waiting);
}

static void slow_work(uv_work_t *req)
{
	struct kg_slow_job *job = (struct kg_slow_job *)req;
	kg__slow_work_begin();
	job->work(req);
}

static void slow_pump(struct kg_worker *w);

static void slow_after(uv_work_t *req, int status)
{
	struct kg_slow_job *job = (struct kg_slow_job *)req;
	struct kg_worker *w = job->w;
	assert(w->slow_running > 0);
	w->slow_running--;
	atomic_fetch_sub(&g_running, 1);
	job->after(req, status); /* may free job */
	slow_pump(w);
}

static void slow_pump(struct kg_worker *w)
{
	while (w->slow_head && w->slow_running < w->slow_cap) {
		struct kg_slow_job *job = w->slow_head;
		w->slow_head = job->next;
		if (!w->slow_head)
			w->slow_tail = NULL;
		w->slow_queued--;
		atomic_fetch_sub(&g_waiting, 1);
		if (kg__conn_is_closing(job->c)) {
			kg_debug("client %s: password job skipped: the client left", kg__conn_peer(job->c));
			job->after(&job->req, UV_ECANCELED);
			continue;
		}
		w->slow_running++;
		atomic_fetch_add(&g_running, 1);
		if (uv_queue_work(&w->loop, &job->req, slow_work, slow_after) != 0) {
			w->slow_running--;
			atomic_fetch_sub(&g_running, 1);
			job->after(&job->req, UV_ECANCELED);
		}
	}
}

kg_err kg__slow_submit(struct kg_conn *c, struct kg_slow_job *job, uv_work_cb work, uv_after_work_cb after)
{
	struct kg_worker *w = kg__conn_worker(c);
	if (w->slow_queued >= (size_t)kg__conn_rt(c)->cfg->password_queue) {
		static _Thread_local time_t warned; /* once a second at most: this is a flood */
		if (time(NULL) != warned) {
			warned = time(NULL);
			kg_warn("worker %d: %zu password checks waiting (limits.password_queue): refusing %s", w->id,
			        w->slow_queued, kg__conn_client(c));
		}
		return KG_EUNAVAILABLE;
	}
	w->slow_cap = (size_t)kg__conn_rt(c)->cfg->password_jobs;
	job->w = w;
	job->c = c;
	job->work = work;
	job->after = after;
	job->next = NULL;
	kg__conn_hold(c);
	if (w->slow_tail)
		w->slow_tail->next = job;
	else
		w->slow_head = job;
	w->slow_tail = job;
	w->slow_queued++;
	atomic_fetch_add(&g_waiting, 1);
	slow_pump(w);
	return KG_OK;
}

/* ---- a password check: throttle, queue, work, outcome ---- */

static void check_work(uv_work_t *req)
{
	struct kg_password_check *pc = (struct kg_password_check *)req;
	pc->work(pc);
}

static void check_after(uv_work_t *req, int status)
{
	struct kg_password_check *pc = (struct kg_password_check *)req;
	/* Recorded first, whether or not the client is still there. A check
	 * that never ran (UV_ECANCELED: the client left while it waited) still
	 * counts as a failure: the attempt took its place in the queue, and
	 * were leaving free, a client could keep max checks queued forever
	 * (disconnect and resend) without ever counting against its address.
	 * Honest clients rarely abandon a password check. */
	kg__throttle_end(pc->client, status == 0 && pc->is_ok, pc->window_ms);
	struct kg_conn *c = pc->job.c;
	struct kg_runtime *rt = pc->rt;
	pc->done(pc, kg__conn_release(c) ? c : NULL, status); /* frees pc */
	kg__runtime_release(rt);
}

kg_err kg__password_check(struct kg_conn *c, struct kg_password_check *pc, int64_t *retry_after)
{
	const kg_config *cfg = kg__conn_rt(c)->cfg;
	*retry_after = 0;
	snprintf(pc->client, sizeof(pc->client), "%s", kg__conn_client(c));
	pc->window_ms = cfg->throttle_window_ms;
	pc->is_ok = false;
	if (!kg__throttle_begin(pc->client, cfg->throttle_max_failures, pc->window_ms, retry_after)) {
		static _Thread_local time_t warned; /* once a second at most: this is a flood */
		if (time(NULL) != warned) {
			warned = time(NULL);
			kg_warn("client %s: password checks refused: too many in flight or failed (throttle.max_failures)",
			        pc->client);
		}
		return KG_ETHROTTLED;
	}
	/* the job may outlive the request's reference to the runtime (the client
	 * leaves, a reload swaps the snapshot): work() reads it, so it holds one */
	pc->rt = kg__conn_rt(c);
	kg__runtime_hold(pc->rt);
	if (kg__slow_submit(c, &pc->job, check_work, check_after) != KG_OK) {
		kg__runtime_release(pc->rt);
		/* never queued: not an attempt, and not a failure either (a full
		 * queue is the server's state, not the client's guess) */
		kg__throttle_release(pc->client);
		*retry_after = 1;
		return KG_EUNAVAILABLE;
	}
	return KG_OK;
}

/* ---- the slow half of an authentication decision (Basic users' bcrypt) ---- */

/* A request waiting on another connection's check of the same credential. */
struct auth_follower {
	struct kg_conn *c; /* held */
	kg_str method, path;
	void (*done)(struct kg_conn *c);
	struct auth_follower *next;
};

struct kg_auth_job {
	struct kg_password_check pc; /* first */
	struct kg_worker *w;
	struct kg_auth_job *next;    /* w->auth_jobs */
	const struct kg_auth_config *ac;
	kg_str authorization, method, path;
	int64_t now;
	kg_err err;
	const char *message;
	void (*done)(struct kg_conn *c);
	struct auth_follower *followers;
};

/* A refusal in the words of the scheme that asked for the check. */
static void refuse(struct kg_decision *d, int status, kg_err err, const char *message, int64_t retry_after)
{
	kg_decision_refuse(d, status, err, d->scheme ? d->scheme->dialect : d->dialect, message);
	d->retry_after = retry_after;
	d->is_authenticated = false;
}

static void auth_job_work(struct kg_password_check *pc)
{
	struct kg_auth_job *j = (struct kg_auth_job *)pc;
	j->err = kg_auth_slow(j->ac, j->authorization, j->now, &j->message);
	pc->is_ok = j->err == KG_OK;
}

/* c's request, decided again now that the check of its credential is over. */
static void settle(const struct kg_auth_job *j, struct kg_conn *c, kg_str method, kg_str path, int status)
{
	struct kg_decision *d = &kg__conn_req(c)->decision;
	if (status != 0) {
		refuse(d, 503, KG_EUNAVAILABLE, "the credential check was cancelled; retry", 1);
	} else if (j->err == KG_OK) {
		kg_auth_decide(&kg__conn_rt(c)->auth, method, path, kg__conn_req(c)->facts.authorization, (int64_t)time(NULL), kg__conn_arena(c), d);
		if (d->err == KG_ESLOW) /* evicted at once: the cache is far too small for the load */
			refuse(d, 503, KG_EUNAVAILABLE, "credential cache overrun; retry", 1);
	} else {
		kg_warn("client %s: %s: %s", kg__conn_client(c), d->scheme ? d->scheme->name : "password",
		        j->message ? j->message : kg_strerror(j->err));
		const char *message = j->message;
		if (d->scheme && d->scheme->slow_refusal) {
			struct kg_auth_request req = {
				.method = method,
				.path = path,
				.cred = kg_cred_parse(kg__conn_req(c)->facts.authorization),
				.policy = kg__conn_rt(c)->auth.policy,
				.now = j->now,
			};
			const char *m = d->scheme->slow_refusal(d->scheme, &req, kg__conn_arena(c));
			if (m)
				message = m;
		}
		refuse(d, 401, j->err, message, 0);
	}
}

static void auth_job_done(struct kg_password_check *pc, struct kg_conn *c, int status)
{
	struct kg_auth_job *j = (struct kg_auth_job *)pc;
	struct kg_auth_job **pp = &j->w->auth_jobs;
	while (*pp && *pp != j)
		pp = &(*pp)->next;
	if (*pp)
		*pp = j->next;
	if (c) {
		settle(j, c, j->method, j->path, status);
		j->done(c);
	}
	while (j->followers) {
		struct auth_follower *f = j->followers;
		j->followers = f->next;
		atomic_fetch_sub(&g_joined, 1);
		if (kg__conn_release(f->c)) {
			settle(j, f->c, f->method, f->path, status);
			f->done(f->c);
		}
		free(f);
	}
	free(j);
}

/* The check in flight on c's worker for exactly c's credential, if any. */
static struct kg_auth_job *auth_job_find(const struct kg_conn *c)
{
	kg_str a = kg__conn_req(c)->facts.authorization;
	for (struct kg_auth_job *j = kg__conn_worker(c)->auth_jobs; j; j = j->next)
		if (j->ac == &kg__conn_rt(c)->auth && j->authorization.n == a.n && CRYPTO_memcmp(j->authorization.p, a.p, a.n) == 0)
			return j;
	return NULL;
}

bool kg__auth_slow(struct kg_conn *c, kg_str method, kg_str path, void (*done)(struct kg_conn *c))
{
	struct kg_decision *d = &kg__conn_req(c)->decision;
	struct kg_auth_job *leader = auth_job_find(c);
	if (leader) {
		struct auth_follower *f = malloc(sizeof(*f));
		if (!f) {
			refuse(d, 503, KG_ENOMEM, "out of memory; retry", 1);
			return false;
		}
		*f = (struct auth_follower){ .c = c, .method = method, .path = path, .done = done, .next = leader->followers };
		kg__conn_hold(c);
		leader->followers = f;
		atomic_fetch_add(&g_joined, 1);
		kg_debug("client %s: joins a password check in flight for the same credential", kg__conn_client(c));
		return true;
	}
	struct kg_auth_job *j = calloc(1, sizeof(*j));
	int64_t wait;
	if (!j) {
		refuse(d, 503, KG_ENOMEM, "out of memory; retry", 1);
		return false;
	}
	j->w = kg__conn_worker(c);
	j->ac = &kg__conn_rt(c)->auth;
	j->authorization = kg__conn_req(c)->facts.authorization; /* in c's head, which the job holds */
	j->method = method;
	j->path = path;
	j->now = (int64_t)time(NULL);
	j->done = done;
	j->pc.work = auth_job_work;
	j->pc.done = auth_job_done;
	/* listed before it is queued: auth_job_done, which unlists it, may run
	 * before kg__password_check returns */
	j->next = kg__conn_worker(c)->auth_jobs;
	kg__conn_worker(c)->auth_jobs = j;
	kg_err err = kg__password_check(c, &j->pc, &wait);
	if (err)
		kg__conn_worker(c)->auth_jobs = j->next; /* nothing ran: still at the head */
	if (err == KG_OK) {
		kg_debug("client %s: %s: password check off the loop", kg__conn_client(c), d->scheme ? d->scheme->name : "?");
	} else {
		/* throttled (429) or the queue full (503), worded in the scheme's
		 * dialect; the decision renders it (Retry-After: wait) */
		kg_err why = err == KG_ETHROTTLED ? KG_ETHROTTLED : KG_EUNAVAILABLE;
		int status = why == KG_ETHROTTLED ? 429 : 503;
		char *msg = kg_arena_alloc(kg__conn_arena(c), KG_THROTTLE_MESSAGE_MAX);
		if (msg && kg_throttle_message(d->scheme ? d->scheme->dialect : d->dialect, why, wait, &status, msg,
		                               KG_THROTTLE_MESSAGE_MAX) != KG_OK)
			msg = NULL; /* the dialect's default message */
		refuse(d, status, why, msg, wait);
	}
	if (err)
		free(j);
	return err == KG_OK;
}
