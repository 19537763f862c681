/* conn.h - a client connection (http.c) as the modules that answer a
 * request see it: the request itself (struct kg_request, shared) and the
 * calls to read it, answer it, hold the connection across a thread-pool job
 * and log it. struct kg_conn stays private to http.c. Everything here runs on
 * the connection's worker loop. */
#ifndef KG_CONN_H
#define KG_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "keygate/arena.h"
#include "keygate/auth.h"
#include "keygate/head.h"
#include "keygate/str.h"
#include "stream.h"

struct kg_conn;
struct kg_route;
struct kg_runtime;
struct kg_worker;

/* room for a client address as text (and its NUL) */
#define KG_ADDR_MAX 64

/* A client request: all strings point into the connection's head buffer
 * (struct kg_header: stream.h) or the request arena. */
struct kg_request {
	kg_str method;
	kg_str url;             /* as received */
	struct kg_header *headers;
	kg_head_field *fields;  /* the same headers as lib/head.c reads them (arena), once the head is in */
	size_t nheaders;
	int version_major, version_minor;
	kg_head_facts facts;    /* what the head says (kg_head_judge): host, path, target, body, ... */
	uint64_t body_seen;
	const struct kg_route *route; /* the endpoint keygate answers itself (routes.h); NULL: proxied */
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

/* Takes the connection waiting on server; is_tls: server is a TLS listener
 * (the session uses the runtime's tls_ctx). */
void kg__conn_accept(struct kg_worker *w, uv_stream_t *server, bool is_tls);
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

#endif
