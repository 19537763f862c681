/* proxy.h - the upstream side as http.c sees it. In the spirit of h2o's
 * generator/proceed: http.c hands proxy.c a request to send and a sink to
 * write the response into; proxy.c never reads or writes the client
 * connection, and http.c never touches an upstream connection. Backpressure
 * is part of the interface: the sink's write says when the client is
 * congested (proxy.c stops reading the upstream) and http.c calls
 * kg__proxy_proceed when the client drained; the other way round, proxy.c
 * asks the sink to pause and resume reading the client while the upstream
 * is slow to take a body. Everything runs on one worker's event loop. */
#ifndef KG_PROXY_H
#define KG_PROXY_H

#include <stdbool.h>

#include <uv.h>

#include "keygate/arena.h"
#include "keygate/head.h"
#include "keygate/str.h"

struct kg_worker;
struct kg_runtime;
struct kg_proxy; /* one exchange with the upstream, private to proxy.c */

/* What to send, filled by the client side. Everything it points at (the
 * strings, head) stays valid and unchanged until the exchange ends (done,
 * error or kg__proxy_cancel). */
struct kg_proxy_request {
	struct kg_worker *w;     /* whose upstream pool serves it */
	struct kg_runtime *rt;   /* held by the client side for the exchange */
	kg_arena *arena;         /* the request's memory: the exchange's state lives in it (no malloc per request) */
	kg_str head;             /* the head sent upstream, already rewritten; sent again on a retry */
	kg_str method;           /* retries are for idempotent methods only; log lines */
	kg_str path;             /* log lines */
	enum kg_body_kind body;  /* how the client frames its body (a chunked one is re-chunked) */
	bool is_complete;        /* the whole request is already read (else kg__proxy_body_end follows) */
	bool is_head;            /* a HEAD: no response body, whatever the headers say */
	bool is_upgrade;         /* asked for a tunnel: a 101 is accepted */
	bool is_http11;          /* the client speaks HTTP/1.1 (interim responses, chunked framing) */
};

/* Where the response goes. Every callback gets ctx. After done or error the
 * exchange is over: the handle is dead and must not be used again. */
struct kg_proxy_sink {
	void *ctx;
	/* The upstream connection is ready for the request body (or, when the
	 * request is complete, waiting for the response). */
	void (*ready)(void *ctx);
	/* The final response (or a 101) begins with status. is_close_delimited:
	 * the client can only tell the body's end by the close. Returns true
	 * when the client connection closes after this response (its head then
	 * says Connection: close). */
	bool (*head)(void *ctx, int status, bool is_close_delimited);
	/* Bytes for the client, framed. Returns true when the client is
	 * congested: the proxy stops reading the upstream until
	 * kg__proxy_proceed. The write may fail and the client side cancel the
	 * exchange from inside it. */
	bool (*write)(void *ctx, uv_buf_t *bufs, unsigned nbufs);
	/* The upstream switched protocols: raw bytes both ways from now on
	 * (kg__proxy_tunnel_data); the 101's head is written next. */
	void (*tunnel)(void *ctx);
	/* The whole response is written (into write). */
	void (*done)(void *ctx);
	/* The exchange failed. is_head_unsent: a head announced through head()
	 * never reached the client (it was held back for the first body bytes),
	 * so a proper error response can still be sent. */
	void (*error)(void *ctx, int status, const char *message, bool is_head_unsent);
	/* The upstream takes the client's bytes slower than they come: stop
	 * reading the client; resume_reading when it caught up. */
	void (*pause_reading)(void *ctx);
	void (*resume_reading)(void *ctx);
};

/* Starts an exchange. *out is set before any callback runs (a failure to
 * start reaches error() at once, with *out set back to NULL first). The sink
 * is copied. */
void kg__proxy_start(const struct kg_proxy_request *req, const struct kg_proxy_sink *sink, struct kg_proxy **out);
/* Request body bytes as the client sent them (de-chunked). */
void kg__proxy_body(struct kg_proxy *p, const char *data, size_t len);
/* The whole request body is in. */
void kg__proxy_body_end(struct kg_proxy *p);
/* Raw client bytes for a tunnel. */
void kg__proxy_tunnel_data(struct kg_proxy *p, const char *data, size_t len);
/* The client drained what write() queued: read the upstream again. */
void kg__proxy_proceed(struct kg_proxy *p);
/* The client side gives up on the exchange (closed, timed out, broke its
 * body off): the upstream connection closes, no callback follows, p is
 * dead. */
void kg__proxy_cancel(struct kg_proxy *p);
/* Closes w's idle upstream connections and forgets its TLS session (worker
 * exit, reload). */
void kg__pool_close_all(struct kg_worker *w);

/* The https upstream handed a session keygate may resume (a TLS 1.3 ticket
 * arrives after the handshake, so this is SSL_CTX_sess_set_new_cb's
 * callback on the runtime's up_tls): the worker of the connection keeps the
 * newest one, taking sess's reference (returns 1), for its next new
 * upstream connection. Runs on that worker's loop. */
struct ssl_st;
struct ssl_session_st;
int kg__proxy_tls_session(struct ssl_st *ssl, struct ssl_session_st *sess);

#endif
