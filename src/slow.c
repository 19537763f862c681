/* slow.c - password jobs (bcrypt and what follows it) on libuv's thread
 * pool, at most limits.password_jobs at a time per worker.
 *
 * A burst of wrong passwords must not take the cores the event loops need:
 * the jobs run at a low priority (kg__slow_work_begin) and, beyond the cap,
 * wait in a bounded FIFO on their worker. A job whose client has gone by the
 * time its turn comes is not run at all. Everything here but the work
 * callback runs on the worker's loop, so the queue needs no lock. */
#include <assert.h>
#include <time.h>

#include "keygate/log.h"
#include "kg.h"

/* process-wide totals, for /_keygate/health */
static atomic_size_t g_running, g_waiting;

void kg__slow_counts(size_t *running, size_t *waiting)
{
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
		if (job->c->is_closing) {
			kg_debug("client %s: password job skipped: the client left", job->c->peer);
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
	struct kg_worker *w = c->w;
	if (w->slow_queued >= (size_t)c->rt->cfg->password_queue) {
		static _Thread_local time_t warned; /* once a second at most: this is a flood */
		if (time(NULL) != warned) {
			warned = time(NULL);
			kg_warn("worker %d: %zu password checks waiting (limits.password_queue): refusing %s", w->id,
			        w->slow_queued, c->client);
		}
		return KG_EUNAVAILABLE;
	}
	w->slow_cap = (size_t)c->rt->cfg->password_jobs;
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
