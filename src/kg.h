/* kg.h - what really is shared by the daemon's files: the runtime snapshot
 * (struct kg_runtime, built and swapped by server.c) and the worker (struct
 * kg_worker, one event loop). Everything else has a header beside the file
 * that implements it: conn.h (http.c: the request and the calls that read
 * and answer it), proxy.h (proxy.c, the upstream side behind an interface),
 * routes.h (the route table), slow.h (password jobs and the password-check
 * flow), throttle.h, stream.h (the write path both sides share),
 * access_log.h, and each dialect's bee.h, avax.h. A client connection
 * (struct kg_conn) is private to http.c, an upstream connection (struct
 * kg_upconn) to proxy.c. Everything here runs on one worker's event loop
 * unless it says otherwise. */
#ifndef KG_INTERNAL_H
#define KG_INTERNAL_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "keygate/access_line.h"
#include "keygate/auth.h"
#include "keygate/config.h"
#include "keygate/head.h"
#include "keygate/policy.h"
#include "keygate/str.h"
#include "keygate/wheel.h"

struct kg_cache;
struct kg_store;
struct kg_bee;
struct kg_avax;
struct kg_es;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct ssl_session_st; /* OpenSSL's SSL_SESSION */

#define KG_READ_BUF (64 * 1024)

/* An immutable snapshot of configuration and policy, swapped atomically on
 * SIGHUP. Requests hold a reference for their whole life. */
struct kg_runtime {
	atomic_int refs;
	unsigned gen;
	kg_config *cfg;
	kg_policy *policy;
	struct kg_auth_config auth;
	kg_str prefix;          /* api prefix, borrowed from cfg */
	bool has_upstream;
	char up_host[256];      /* host as written in the URL */
	char up_hostport[300];  /* Host header when not preserving the client's */
	char up_base[1024];     /* path prefix of the upstream URL, "" when none */
	struct sockaddr_storage up_addr;
	socklen_t up_addrlen;
	bool up_is_tls;         /* https://: up_tls speaks to it */
	/* TLS towards the upstream (tls.h, kg__tls_client_new): verification,
	 * the name to check, the client certificate; NULL for http:// */
	struct ssl_ctx_st *up_tls;
	struct kg_cidr *trusted;
	size_t ntrusted;
	kg_head_rules head_rules; /* how request heads are judged and rewritten (lib/head.c) */
	struct kg_bee *bee;     /* Bee restricted mode, NULL when off */
	struct kg_avax *avax;   /* AvalancheGo Auth API, NULL when off */
	struct kg_users *users; /* HTTP Basic users, NULL when off */
	struct kg_es *es;       /* Elasticsearch security APIs, NULL when off */
	char admin_hash[128];   /* the admin password's bcrypt hash (admin.h), "" when no dialect uses one */
	/* TLS towards clients (tls.h): the default server context, the pairs
	 * SNI picks from hang off it; NULL when no address speaks TLS. Every
	 * worker uses it; a connection's session keeps its context alive after
	 * a reload replaces it. */
	struct ssl_ctx_st *tls_ctx;
};

/* server.c */
struct kg_runtime *kg__runtime_acquire(void);
void kg__runtime_release(struct kg_runtime *rt);
/* The newest snapshot, as kg__runtime_acquire gives it, without a reference
 * of the caller's own (no atomic add and sub): the thread's cached reference
 * keeps it alive until this thread's next acquire or peek. For a few config
 * reads in a row, nothing kept. */
const struct kg_runtime *kg__runtime_peek(void);
/* One more reference to rt, which the caller already holds one of (a job
 * that outlives its request: release it when the job is done). */
void kg__runtime_hold(struct kg_runtime *rt);
kg_err kg__runtime_build(kg_config *cfg, struct kg_runtime **out, kg_buf *why);
int64_t kg__started_at(void);
size_t kg__worker_count(void);
/* Call at the start of every thread-pool job: lowers that thread's priority once. */
void kg__slow_work_begin(void);
struct kg_store *kg__store(void);
/* The store's health as last measured by the maintenance timer (copy valid
 * until the calling thread's next call); *backend gets "sqlite", ... */
const char *kg__store_status(const char **backend);
extern const char *const kg__version;

struct kg_conn;
struct kg_upconn;
struct kg_slow_job;
struct kg_auth_job;

/* One event loop and everything its connections share. The groups below
 * are each read and written by one file only; they stay inline (no pointer
 * to chase, no allocation) because they are on the hot path. */
struct kg_worker {
	/* server.c: the loop, its wake-ups and listeners, draining */
	int id;
	uv_loop_t loop;
	uv_thread_t thread;
	uv_async_t wakeup;
	uv_timer_t drain_timer;
	uv_tcp_t *listeners;        /* the plain ones, then the TLS ones */
	size_t nlisteners;
	atomic_bool stop_requested;
	bool draining;
	/* every connection's deadline (header, idle, body, send, linger;
	 * connect, upstream, pool idle): tick_timer walks the wheel at each
	 * KG_TICK_MS boundary while any is linked (kg__deadline_set) */
	kg_wheel wheel;
	uv_timer_t tick_timer;

	/* http.c: client connections */
	size_t nconns;
	struct kg_conn *conns;      /* every open client connection */
	/* idle client connections that still hold their request buffers, least
	 * recently busy first; at most KG_PARKED_MAX */
	struct kg_conn *parked_head, *parked_tail;
	size_t nparked;
	char rbuf[KG_READ_BUF];     /* client reads; consumed before the callback returns */

	/* proxy.c: upstream connections */
	struct kg_upconn *pool;     /* idle upstream connections, most recent first */
	size_t npool;
	char ubuf[KG_READ_BUF];     /* upstream reads */
	/* the newest TLS session an https upstream gave this worker, resumed by
	 * its next new connection; made under runtime generation up_session_gen */
	struct ssl_session_st *up_session;
	unsigned up_session_gen;

	/* slow.c: password jobs, running and waiting their turn */
	struct kg_slow_job *slow_head, *slow_tail;
	struct kg_auth_job *auth_jobs; /* Basic checks in flight, which later identical ones join */
	size_t slow_running, slow_queued, slow_cap;

	/* access_log.c: lines not yet written (server.c inits the timer), and
	 * the wall clock as the lines read it: the date text of the current
	 * second, and realtime - monotonic in ms, re-read once a second */
	char *log_buf;
	size_t log_len, log_cap;
	uv_timer_t log_timer;
	struct kg_access_clock log_clock;
	int64_t log_wall_offset_ms;
	int64_t log_wall_checked_s; /* monotonic second the offset was read in, 0: never */
};

/* The deadlines' granularity: a timeout fires at most this much after its
 * time (and never before it). */
#define KG_TICK_MS 100

/* server.c: starts walking w's wheel (it was empty) */
void kg__worker_tick_start(struct kg_worker *w);

/* Sets d to call fire(d) once, ms from now on w's loop; a later call
 * replaces it, kg_wheel_clear(d) cancels it. Moving a deadline later is a
 * store (keygate/wheel.h). d: borrowed; kg_wheel_remove(&w->wheel, d) before
 * its memory is freed. */
static inline void kg__deadline_set(struct kg_worker *w, kg_deadline *d, int64_t ms, kg_deadline_fn fire)
{
	if (kg_wheel_set(&w->wheel, d, uv_now(&w->loop), (uint64_t)(ms > 0 ? ms : 0), fire))
		kg__worker_tick_start(w);
}

/* server.c: once w has no client connection left, closes its upstream pool
 * and every handle so its loop runs out (draining) */
void kg__worker_drain(struct kg_worker *w);

#endif
