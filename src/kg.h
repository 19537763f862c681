/* kg.h - what the daemon's files share: the runtime snapshot, workers, the
 * request being answered and the few calls every module needs. A client
 * connection (struct kg_conn) is private to http.c, an upstream connection
 * (struct kg_upconn) to proxy.c; the two meet only through proxy.h. The
 * dialects' declarations are in their own headers (bee.h, avax.h), which
 * http.c does not include. Everything here runs on one worker's event loop
 * unless it says otherwise. */
#ifndef KG_INTERNAL_H
#define KG_INTERNAL_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <llhttp.h>
#include <uv.h>

#include "keygate/arena.h"
#include "keygate/auth.h"
#include "keygate/config.h"
#include "keygate/head.h"
#include "keygate/policy.h"
#include "keygate/str.h"

struct kg_cache;
struct kg_store;
struct kg_bee;
struct kg_avax;

/* Above this many bytes queued towards a peer, keygate stops reading from
 * the other side until the queue drains: memory stays flat whatever the
 * body size. */
#define KG_HIGH_WATER (256 * 1024)
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
	struct kg_cidr *trusted;
	size_t ntrusted;
	kg_head_rules head_rules; /* how request heads are judged and rewritten (lib/head.c) */
	struct kg_bee *bee;     /* Bee restricted mode, NULL when off */
	struct kg_avax *avax;   /* AvalancheGo Auth API, NULL when off */
	struct kg_users *users; /* HTTP Basic users, NULL when off */
	char admin_hash[128];   /* the admin password's bcrypt hash (admin.h), "" when no dialect uses one */
};

/* server.c */
struct kg_runtime *kg__runtime_acquire(void);
void kg__runtime_release(struct kg_runtime *rt);
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
struct kg_proxy;
struct kg_auth_job;

struct kg_worker {
	int id;
	uv_loop_t loop;
	uv_thread_t thread;
	uv_async_t wakeup;
	uv_timer_t drain_timer;
	uv_tcp_t *listeners;
	size_t nlisteners;
	size_t nconns;
	struct kg_conn *conns;      /* every open client connection */
	struct kg_upconn *pool;     /* idle upstream connections, most recent first */
	size_t npool;
	/* idle client connections that still hold their request buffers, least
	 * recently busy first; at most KG_PARKED_MAX (http.c) */
	struct kg_conn *parked_head, *parked_tail;
	size_t nparked;
	atomic_bool stop_requested;
	bool draining;
	/* password jobs (slow.c): running, and waiting their turn */
	struct kg_slow_job *slow_head, *slow_tail;
	struct kg_auth_job *auth_jobs; /* Basic checks in flight, which later identical ones join (slow.c) */
	size_t slow_running, slow_queued, slow_cap;
	/* access-log lines not yet written (access_log.c) */
	char *log_buf;
	size_t log_len, log_cap;
	uv_timer_t log_timer;
	char rbuf[KG_READ_BUF];     /* client reads; consumed before the callback returns */
	char ubuf[KG_READ_BUF];     /* upstream reads */
};

/* room for a client address as text (and its NUL) */
#define KG_ADDR_MAX 64

/* A client request: all strings point into the connection's head buffer or
 * the request arena. */
struct kg_header {
	uint32_t name_off, name_len, value_off, value_len;
};

struct kg_request {
	kg_str method;
	kg_str url;             /* as received */
	struct kg_header *headers;
	kg_head_field *fields;  /* the same headers as lib/head.c reads them (arena), once the head is in */
	size_t nheaders;
	int version_major, version_minor;
	kg_head_facts facts;    /* what the head says (kg_head_judge): host, path, target, body, ... */
	uint64_t body_seen;
	const struct kg_route *route; /* the endpoint keygate answers itself; NULL: proxied */
	bool is_head_done;      /* the head is parsed and dispatched */
	bool is_complete;       /* the whole request has been read */
	bool cred_consumed;     /* a scheme verified the Authorization header */
	bool is_head;
	bool is_target_restructured; /* forward-auth: normalising the original URI changed its segments */
	bool is_logged;         /* its access-log line is written (kg__conn_log) */
	kg_buf own_body;        /* body of an own-endpoint request (capped) */
	uint64_t body_limit;    /* cap on own_body */
	kg_buf up_head;         /* the head sent upstream, kept for one retry */
	struct kg_decision decision;
	uint64_t start_ns;
	int status;             /* for the access log */
	uint64_t bytes_out;
};

/* stream.c: a write that copies only what the kernel did not take at once.
 * cb must subtract wr->len from *queued and free the request. */
struct kg_wreq {
	uv_write_t req;
	void *owner;
	size_t len;
	char data[];
};
int kg__stream_write(uv_stream_t *s, uv_buf_t *bufs, unsigned nbufs, void *owner, size_t *queued, uv_write_cb cb);

/* slow.c: a password job (bcrypt...) for the thread pool. Embed it first in
 * the job's own struct. At most limits.password_jobs run at a time per
 * worker; up to limits.password_queue more wait in order. The job holds c
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
 * throttle (throttle.c) -> queue (kg__slow_submit) -> work() -> the outcome
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

/* http.c: struct kg_conn is private to it; the modules that answer or
 * log a request see it through these (the request itself, struct
 * kg_request above, is shared) */
void kg__conn_accept(struct kg_worker *w, uv_stream_t *server);
struct kg_request *kg__conn_req(const struct kg_conn *c);
struct kg_runtime *kg__conn_rt(const struct kg_conn *c); /* held for the current request */
struct kg_worker *kg__conn_worker(const struct kg_conn *c);
kg_arena *kg__conn_arena(struct kg_conn *c);               /* the request's memory */
const char *kg__conn_client(const struct kg_conn *c);      /* client address (peer or trusted X-Forwarded-For) */
const char *kg__conn_peer(const struct kg_conn *c);        /* socket peer address */
bool kg__conn_is_closing(const struct kg_conn *c);
/* Closes w's idle keep-alive connections (draining: the others finish
 * their request). */
void kg__conn_close_idle(struct kg_worker *w);
/* {"code": status, "message": message}, keygate's and Bee's error body */
void kg__conn_respond_error(struct kg_conn *c, int status, const char *message);
void kg__conn_respond_error_with(struct kg_conn *c, int status, const char *message, const char *extra_headers);
void kg__conn_respond(struct kg_conn *c, int status, const char *content_type, kg_str body,
                      const char *extra_headers);
void kg__conn_respond_decision(struct kg_conn *c);
void kg__conn_close(struct kg_conn *c);
/* Writes the access-log line of c's current request, once whatever the path
 * that ends it (answered, cut, tunnelled, closed). */
void kg__conn_log(struct kg_conn *c);
/* Keeps c's memory alive across work on the thread pool; release returns
 * false when the connection closed meanwhile (c must not be used then). */
void kg__conn_hold(struct kg_conn *c);
bool kg__conn_release(struct kg_conn *c);
kg_str kg__req_header(const struct kg_conn *c, size_t i, bool value);
kg_str kg__req_find(const struct kg_conn *c, kg_str name);
/* c's request head as lib/head.c reads it (once c->req.fields is built). Its
 * llhttp facts (body, upgrade) are the parser's current ones: right while
 * the head is dispatched, stale later (kg_head_write_upstream reads none). */
void kg__req_head(const struct kg_conn *c, kg_head *out);
void kg__worker_drain(struct kg_worker *w);
const char *kg__reason(int status);

/* throttle.c: begin admits a password attempt from addr and counts it in
 * flight, unless addr already has max attempts in flight or failed within
 * the window (false: *retry_after gets the seconds to wait). Every admitted
 * attempt ends once with end(): ok clears addr, a failure counts for the
 * rest of the window. */
bool kg__throttle_begin(const char *addr, int64_t max, int64_t window_ms, int64_t *retry_after);
void kg__throttle_end(const char *addr, bool ok, int64_t window_ms);
/* Takes back an admitted attempt that never reached a password (not
 * counted either way). */
void kg__throttle_release(const char *addr);

/* routes.c: the one table of the endpoints keygate answers itself. Each
 * module that serves endpoints (keygate's own, each dialect) registers a
 * kg_route_set; routes.c lists them in matching order. */
struct kg_route {
	const char *path;         /* exact path, or a prefix when is_prefix */
	bool is_prefix;           /* path and everything below it */
	bool is_under_api_prefix; /* path is relative to api_prefix (keygate's own endpoints) */
	const char *methods;      /* what it answers, e.g. "POST" (the handler refuses others in its dialect's words) */
	enum kg_dialect owner;    /* whose wire format its answers and refusals use */
	uint64_t body_limit;      /* request body cap; 0: limits.max_body_bytes */
	void (*handle)(struct kg_conn *c); /* runs once the whole request (body included) is read */
	bool (*is_enabled)(const struct kg_runtime *rt); /* NULL: always */
};
struct kg_route_set {
	const struct kg_route *routes;
	size_t n;
};
#define KG_ROUTE_SET(name, array) const struct kg_route_set name = { array, sizeof(array) / sizeof(array[0]) }
/* The route that answers path under rt, or NULL: the request is proxied. */
const struct kg_route *kg__route_find(const struct kg_runtime *rt, kg_str path);
/* The enabled routes as a JSON array of {path, methods, owner} (health). */
kg_err kg__routes_json(const struct kg_runtime *rt, kg_buf *out);
extern const struct kg_route_set kg__keygate_routes, kg__fallback_routes; /* each dialect's: its header */

/* access_log.c */
kg_err kg__access_log_open(const char *where);
void kg__access_log_close(void);
void kg__access_log(const struct kg_conn *c);
/* writes w's buffered lines now; _free also releases the buffer (worker exit) */
void kg__access_log_flush(struct kg_worker *w);
void kg__access_log_free(struct kg_worker *w);

#endif
