/* slow.h - password jobs on the thread pool (slow.c) and the one
 * password-check flow every scheme that checks a password goes through.
 * Everything but a job's work() runs on the connection's worker loop. */
#ifndef KG_SLOW_H
#define KG_SLOW_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "keygate/err.h"
#include "keygate/str.h"

struct kg_conn;
struct kg_runtime;
struct kg_worker;

/* A password job (bcrypt...) for the thread pool. Embed it first in the
 * job's own struct. At most limits.password_jobs run at a time per worker;
 * up to limits.password_queue more wait in order. The job holds c
 * (kg__conn_hold) until after() runs, which must kg__conn_release(c); after()
 * gets status UV_ECANCELED, without work() having run, when the client left
 * before the job's turn. kg__slow_submit fails with KG_EUNAVAILABLE when the
 * queue is full (answer 503). */
struct kg_slow_job {
	uv_work_t req;
	struct kg_worker *w;
	struct kg_conn *c;
	uv_work_cb work;
	uv_after_work_cb after;
	struct kg_slow_job *next;
};
kg_err kg__slow_submit(struct kg_conn *c, struct kg_slow_job *job, uv_work_cb work, uv_after_work_cb after);
/* password jobs running and waiting, and requests that joined a check of
 * their credential in flight, over all workers */
void kg__slow_counts(size_t *running, size_t *waiting, size_t *joined);

/* A password check, the one flow of every scheme that checks a password:
 * throttle (throttle.h) -> queue (kg__slow_submit) -> work() -> the outcome
 * recorded against the client address -> done(). Embed it first in the
 * caller's struct and set work and done. work() runs on the thread pool and
 * sets is_ok when the password was right. done() runs on c's loop after the
 * outcome is recorded, with c NULL when the client has left, and status
 * UV_ECANCELED when work() never ran; it must free its struct. */
struct kg_password_check {
	struct kg_slow_job job; /* first */
	void (*work)(struct kg_password_check *pc);
	void (*done)(struct kg_password_check *pc, struct kg_conn *c, int status);
	bool is_ok;
	struct kg_runtime *rt; /* held until done() has run: work() may read it after c closed */
	char client[64];   /* copied: the outcome is recorded even when c is gone */
	int64_t window_ms;
};
/* KG_OK: queued, done() follows. Otherwise nothing was queued and the caller
 * answers (in its dialect) and frees pc: KG_ETHROTTLED, 429 with
 * Retry-After: *retry_after seconds; KG_EUNAVAILABLE, 503 (queue full). */
kg_err kg__password_check(struct kg_conn *c, struct kg_password_check *pc, int64_t *retry_after);
/* When c's decision says KG_ESLOW: queues the scheme's slow() through
 * kg__password_check and returns true; done(c) runs later with
 * c->req.decision decided again (allowed, or refused 401/503). A request
 * presenting the very credential a check in flight on this worker is
 * verifying joins that check instead: no second bcrypt, no second throttle
 * slot (one guess, however many connections carry it). False: not queued,
 * the decision is already a refusal (429 throttled, 503 queue full). */
bool kg__auth_slow(struct kg_conn *c, kg_str method, kg_str path, void (*done)(struct kg_conn *c));

#endif
