/* http.c - client connections: llhttp parses the request head into a
 * per-request buffer (limits enforced here, once), then the request goes to
 * keygate's own endpoints or, once authorized, to the upstream (proxy.c).
 *
 * Reading is driven by conn_pump(): bytes that arrive while a request cannot
 * take them (waiting for an upstream, or pipelined behind a response) are kept
 * in c->pending and parsed later; the socket is only read while nothing is
 * pending, so at most one read buffer per connection is ever held. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <llhttp.h>
#include <uv.h>

#include "keygate/log.h"
#include "access_log.h"
#include "conn.h"
#include "kg.h"
#include "proxy.h"
#include "routes.h"
#include "slow.h"
#include "stream.h"
#include "tls.h"

enum kg_conn_state {
	KG_CONN_HEAD,      /* reading a request head */
	KG_CONN_AUTH,      /* head read; a password check runs off the loop */
	KG_CONN_WAIT,      /* head read; waiting for an upstream connection */
	KG_CONN_BODY,      /* streaming the request body upstream */
	KG_CONN_RESPONSE,  /* request read; the response is under way */
	KG_CONN_TUNNEL,    /* upgraded: raw bytes both ways */
	KG_CONN_CLOSING,
};

/* What an idle keep-alive connection costs is this struct (plus libuv's
 * pointer per descriptor): its request buffers (head, arena, upstream head,
 * pending) are given back once it has been idle while KG_PARKED_MAX more
 * recently busy connections were parked after it (http.c). Keep it within
 * the budget that http.c asserts. */
struct kg_conn {
	uv_tcp_t tcp;
	kg_deadline deadline;    /* the client's current wait (header, idle, body, send, linger) */
	struct kg_worker *w;
	struct kg_conn *prev, *next;
	struct kg_conn *park_prev, *park_next; /* w->parked_* while is_parked */
	struct kg_runtime *rt;   /* held for the current request */
	llhttp_t parser;
	enum kg_conn_state state;
	int handles_open;
	char peer[KG_ADDR_MAX];           /* socket peer address */
	char client[KG_ADDR_MAX];         /* client address (peer or trusted X-Forwarded-For) */
	/* bytes received but not yet parsed (after a pause) */
	char *pending;
	size_t pending_off, pending_len, pending_cap;
	/* request head being collected */
	char *head;
	size_t head_len, head_cap;
	size_t header_bytes;
	int last_cb;             /* 1: field, 2: value */
	int err_status;          /* set by a parser callback that refused the request */
	const char *err_message;
	struct kg_request req;
	kg_arena arena;
	struct kg_proxy *px;     /* the exchange with the upstream (proxy.h), NULL when none */
	struct kg_tls_conn *tls; /* accepted on a TLS listener (tls.h); NULL: plain */
	size_t write_queued;     /* bytes handed to libuv and not yet written */
	bool is_reading;
	bool is_read_paused;     /* backpressure from the upstream side */
	bool is_response_started;
	bool is_response_done;   /* the response's last byte was queued */
	bool keep_alive;
	bool is_closing;
	bool is_idle;            /* between requests, nothing received yet */
	bool is_parsing;         /* inside llhttp_execute: do not re-enter it */
	bool is_half_closed;     /* the client sent EOF after a complete request */
	bool is_parked;          /* idle, buffers kept, on w->parked_* */
	bool client_closes;      /* this request's client said it closes (Connection: close, HTTP/1.0) */
	bool is_linger_skipped;  /* closing: the FIN is followed by the close at once (finish_exchange) */
	bool is_req_reset;       /* request_reset ran and no request began since */
};

static llhttp_settings_t req_settings;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

kg_str kg__req_header(const struct kg_conn *c, size_t i, bool value)
{
	const struct kg_header *h = &c->req.headers[i];
	if (value)
		return kg_str_trim((kg_str){ c->head + h->value_off, h->value_len });
	return (kg_str){ c->head + h->name_off, h->name_len };
}

void kg__req_head(const struct kg_conn *c, kg_head *out)
{
	const struct kg_request *r = &c->req;
	*out = (kg_head){
		.method = r->method,
		.url = r->url,
		.version_major = r->version_major,
		.version_minor = r->version_minor,
		.fields = r->fields,
		.nfields = r->nheaders,
		.is_chunked = (c->parser.flags & F_CHUNKED) != 0,
		.has_content_length = (c->parser.flags & F_CONTENT_LENGTH) != 0,
		.content_length = c->parser.content_length,
		.is_upgrade_requested = c->parser.upgrade != 0,
		.peer = kg_str_c(c->peer),
		.is_tls = c->tls != NULL,
	};
}

kg_str kg__req_find(const struct kg_conn *c, kg_str name)
{
	for (size_t i = 0; i < c->req.nheaders; i++)
		if (kg_str_eq_ci(kg__req_header(c, i, false), name))
			return kg__req_header(c, i, true);
	return KG_STR_NULL;
}

/* ---- connection lifetime ---- */

static void conn_free(struct kg_conn *c)
{
	kg__tls_conn_free(&c->tls);
	free(c->pending);
	free(c->head);
	kg_buf_free(&c->req.own_body, true); /* /ext/auth bodies hold passwords */
	kg_buf_free(&c->req.up_head, false);
	kg_arena_destroy(&c->arena);
	free(c);
}

/* ---- the buffers of idle connections ----
 *
 * A request uses the head buffer (limits.max_header_bytes + max_url_bytes),
 * the arena, the upstream head and perhaps the pending buffer; between
 * requests they are kept, so a busy keep-alive connection serves request
 * after request without malloc. The first time a connection finishes an
 * exchange and stays open it is parked: put at the end of its worker's list
 * of connections holding buffers. When more than KG_PARKED_MAX are on it,
 * the one parked longest ago leaves the list, and gives its buffers back if
 * it is between requests (its next request allocates them again; a busy
 * one keeps them and parks again, at the end, when its request is over).
 * So at most KG_PARKED_MAX idle connections per worker hold buffers (about
 * 30 KiB of address space, 10-20 KiB resident, each), and any number beyond
 * them cost only their struct kg_conn; nginx, likewise, frees a request's
 * pool and header buffer when the connection goes idle.
 * A busy connection stays on the list between its requests: no list work,
 * no malloc per request. */
#define KG_PARKED_MAX 128

/* An idle connection is the struct alone: keep it within what issue 12
 * allows for an idle connection (2 KiB) with room for libuv's share. */
_Static_assert(sizeof(struct kg_conn) <= 1280, "struct kg_conn grew: an idle connection costs this struct");

static void conn_release_buffers(struct kg_conn *c)
{
	free(c->head);
	c->head = NULL;
	c->head_len = c->head_cap = 0;
	kg_arena_destroy(&c->arena);
	kg_buf_free(&c->req.up_head, false);
	if (c->pending_off == c->pending_len) {
		free(c->pending);
		c->pending = NULL;
		c->pending_off = c->pending_len = c->pending_cap = 0;
	}
	if (c->tls)
		kg__tls_release_buffers(c->tls);
}

static void conn_unpark(struct kg_conn *c)
{
	if (!c->is_parked)
		return;
	struct kg_worker *w = c->w;
	if (c->park_prev)
		c->park_prev->park_next = c->park_next;
	else
		w->parked_head = c->park_next;
	if (c->park_next)
		c->park_next->park_prev = c->park_prev;
	else
		w->parked_tail = c->park_prev;
	c->park_prev = c->park_next = NULL;
	c->is_parked = false;
	w->nparked--;
}

/* c has finished an exchange and waits for its next request. */
static void conn_park(struct kg_conn *c)
{
	struct kg_worker *w = c->w;
	if (c->is_parked)
		return;
	c->park_prev = w->parked_tail;
	c->park_next = NULL;
	if (w->parked_tail)
		w->parked_tail->park_next = c;
	else
		w->parked_head = c;
	w->parked_tail = c;
	c->is_parked = true;
	if (++w->nparked > KG_PARKED_MAX) {
		struct kg_conn *oldest = w->parked_head;
		conn_unpark(oldest);
		/* c->rt is held from a request's first byte to the end of its
		 * exchange: without it nothing points into the buffers */
		if (!oldest->rt)
			conn_release_buffers(oldest);
	}
}

static void on_handle_closed(uv_handle_t *h)
{
	struct kg_conn *c = h->data;
	if (--c->handles_open == 0)
		conn_free(c);
}

void kg__conn_hold(struct kg_conn *c)
{
	c->handles_open++;
}

bool kg__conn_release(struct kg_conn *c)
{
	if (--c->handles_open == 0) {
		conn_free(c);
		return false;
	}
	return !c->is_closing;
}

static void request_release(struct kg_conn *c)
{
	if (c->rt) {
		kg__runtime_release(c->rt);
		c->rt = NULL;
	}
}

void kg__conn_log(struct kg_conn *c)
{
	if (c->req.is_logged)
		return;
	c->req.is_logged = true;
	kg__access_log(c);
}

static void conn_proxy_start(struct kg_conn *c);
static void conn_proxy_cancel(struct kg_conn *c);
static void conn_tunnel_data(struct kg_conn *c, const char *data, size_t len);

void kg__conn_close(struct kg_conn *c)
{
	if (c->is_closing)
		return;
	if (c->is_response_started && c->state != KG_CONN_TUNNEL)
		kg__conn_log(c); /* a response that never finished (a failed write, a cut) still gets its line */
	c->is_closing = true;
	c->state = KG_CONN_CLOSING;
	conn_unpark(c);
	if (c->px)
		conn_proxy_cancel(c);
	request_release(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->w->nconns--;
	kg_wheel_remove(&c->w->wheel, &c->deadline);
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
	if (c->w->draining && c->w->nconns == 0)
		kg__worker_drain(c->w);
}

static void conn_tls_flush(struct kg_conn *c);

/* Lingering close: after our FIN, read and drop what the client still sends
 * (a body we refused) for a bounded time, so the kernel does not answer it
 * with a reset that could destroy the response before the client reads it. */
#define KG_LINGER_MS 2000

static bool on_linger_data(uv_stream_t *s, ssize_t nread, const char *data)
{
	struct kg_conn *c = s->data;
	if (nread < 0)
		kg__conn_close(c);
	return !c->is_closing;
}

static void on_linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct kg_conn *c = s->data;
	kg__stream_on_read(s, nread, buf, c->w->rbuf, sizeof(c->w->rbuf), on_linger_data);
}

static struct kg_conn *conn_of_deadline(kg_deadline *d)
{
	return (struct kg_conn *)((char *)d - offsetof(struct kg_conn, deadline));
}

static void on_linger_timer(kg_deadline *d)
{
	kg__conn_close(conn_of_deadline(d));
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct kg_conn *c = req->data;
	free(req);
	if (c->is_closing)
		return;
	if (status < 0 || c->is_linger_skipped ||
	    uv_read_start((uv_stream_t *)&c->tcp, kg__stream_no_buffer, on_linger_read) != 0) {
		kg__conn_close(c);
		return;
	}
	kg__deadline_set(c->w, &c->deadline, KG_LINGER_MS, on_linger_timer);
}

/* Closes after the queued bytes are out: a FIN, not a reset, so the client
 * reads the whole response. */
static void conn_close_gracefully(struct kg_conn *c)
{
	if (c->is_closing)
		return;
	uv_shutdown_t *req = malloc(sizeof(*req));
	if (!req) {
		kg__conn_close(c);
		return;
	}
	req->data = c;
	if (c->tls) {
		/* close_notify before the FIN: the client knows the response is whole */
		kg__tls_shutdown(c->tls);
		conn_tls_flush(c);
		if (c->is_closing) {
			free(req);
			return;
		}
	}
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->is_reading = false;
	kg_wheel_clear(&c->deadline);
	c->state = KG_CONN_CLOSING;
	if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
		free(req);
		kg__conn_close(c);
	}
}

/* ---- waiting for the client ---- */

static void on_timer(kg_deadline *d);

/* Once a request's head is in, c->deadline watches the client: it must send its
 * body (limits.body_timeout between reads) and take the response
 * (limits.send_timeout while bytes are queued for it). Called whenever one of
 * those waits starts, progresses or ends. Waiting for the upstream or for a
 * password check is not the client's fault and is timed elsewhere. */
static void conn_watch(struct kg_conn *c, bool progress)
{
	const struct kg_request *r = &c->req;
	if (c->is_closing || c->state == KG_CONN_CLOSING || c->state == KG_CONN_TUNNEL || !r->is_head_done || !c->rt)
		return;
	bool body = !r->is_complete && !c->is_read_paused &&
	            (c->state == KG_CONN_BODY || (c->state == KG_CONN_HEAD && r->route));
	bool send = c->write_queued > 0;
	if (!body && !send) {
		kg_wheel_clear(&c->deadline);
		return;
	}
	if (!progress && kg_wheel_is_set(&c->deadline))
		return;
	int64_t ms = body && send ? (c->rt->cfg->body_timeout_ms < c->rt->cfg->send_timeout_ms
	                                 ? c->rt->cfg->body_timeout_ms
	                                 : c->rt->cfg->send_timeout_ms)
	             : body      ? c->rt->cfg->body_timeout_ms
	                         : c->rt->cfg->send_timeout_ms;
	kg__deadline_set(c->w, &c->deadline, ms, on_timer);
}

/* ---- writing ---- */

static void finish_exchange(struct kg_conn *c);

static void on_write(uv_write_t *req, int status)
{
	struct kg_wreq *wr = (struct kg_wreq *)req;
	struct kg_conn *c = wr->owner;
	c->write_queued -= wr->len;
	free(wr);
	if (c->is_closing)
		return;
	if (status < 0) {
		kg_debug("client %s: write failed: %s", c->peer, uv_strerror(status));
		kg__conn_close(c);
		return;
	}
	if (c->px && c->write_queued < KG_HIGH_WATER)
		kg__proxy_proceed(c->px);
	if (c->write_queued == 0 && c->is_response_done)
		finish_exchange(c);
	else
		conn_watch(c, true); /* the client took bytes */
}

/* Sends what c's TLS session has to say (records, handshake messages,
 * tickets, alerts): the queued bytes, and so the backpressure and the send
 * timeout, count ciphertext. */
static void conn_tls_flush(struct kg_conn *c)
{
	const char *p;
	size_t n = kg__tls_pending_out(c->tls, &p);
	if (n == 0 || c->is_closing)
		return;
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	int r = kg__stream_write((uv_stream_t *)&c->tcp, &b, 1, c, &c->write_queued, on_write);
	kg__tls_consumed(c->tls); /* written or copied into the write request */
	if (r < 0) {
		kg_debug("client %s: write failed: %s", c->peer, uv_strerror(r));
		kg__conn_close(c);
	} else if (c->write_queued > 0) {
		conn_watch(c, false);
	}
}

static void conn_tls_write(struct kg_conn *c, uv_buf_t *bufs, unsigned nbufs)
{
	for (unsigned i = 0; i < nbufs; i++) {
		if (kg__tls_write(c->tls, bufs[i].base, bufs[i].len) != KG_OK) {
			/* before the handshake ended (a timeout, max_connections): no
			 * way to say anything the client could read */
			kg_debug("client %s: cannot answer over TLS: %s", c->peer,
			         kg__tls_is_established(c->tls) ? kg__tls_error(c->tls) : "handshake not finished");
			kg__conn_close(c);
			return;
		}
	}
	conn_tls_flush(c);
}

static void conn_write(struct kg_conn *c, uv_buf_t *bufs, unsigned nbufs)
{
	if (c->is_closing || c->state == KG_CONN_CLOSING)
		return;
	for (unsigned i = 0; i < nbufs; i++)
		c->req.bytes_out += bufs[i].len;
	if (c->tls) {
		conn_tls_write(c, bufs, nbufs);
		return;
	}
	int r = kg__stream_write((uv_stream_t *)&c->tcp, bufs, nbufs, c, &c->write_queued, on_write);
	if (r < 0) {
		kg_debug("client %s: write failed: %s", c->peer, uv_strerror(r));
		kg__conn_close(c);
	} else if (c->write_queued > 0) {
		conn_watch(c, false);
	}
}

static void conn_response_done(struct kg_conn *c)
{
	c->is_response_done = true;
	if (c->write_queued == 0)
		finish_exchange(c);
}

void kg__conn_respond(struct kg_conn *c, int status, const char *content_type, kg_str body,
                      const char *extra_headers)
{
	char head[1024];
	if (c->is_closing || c->is_response_started)
		return;
	if (!c->req.is_complete)
		c->keep_alive = false; /* the rest of the request was never read */
	/* the head by copies, not snprintf: the status line made at compile
	 * time, Content-Length by kg_u64_dec (the same bytes as the format
	 * "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n") */
	char line[48], digits[KG_U64_DEC_MAX];
	kg_str status_line = kg__status_line(status);
	if (!status_line.n) { /* a status without a phrase of its own: rare, formatted */
		int ln = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, kg__reason(status));
		if (ln < 0 || (size_t)ln >= sizeof(line)) {
			kg__conn_close(c);
			return;
		}
		status_line = (kg_str){ line, (size_t)ln };
	}
	const kg_str parts[] = {
		status_line,
		KG_STR("Content-Type: "),
		kg_str_c(content_type),
		KG_STR("\r\nContent-Length: "),
		kg_u64_dec(body.n, digits),
		KG_STR("\r\n"),
		kg_str_c(extra_headers),
		c->keep_alive ? KG_STR("") : KG_STR("Connection: close\r\n"),
		KG_STR("\r\n"),
	};
	size_t n = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (parts[i].n >= sizeof(head) - n) { /* as before: a head of 1024 bytes or more is not sent */
			kg__conn_close(c);
			return;
		}
		if (parts[i].n) /* extra_headers may be NULL */
			memcpy(head + n, parts[i].p, parts[i].n);
		n += parts[i].n;
	}
	uv_buf_t bufs[2] = { uv_buf_init(head, (unsigned)n), uv_buf_init((char *)body.p, (unsigned)body.n) };
	c->req.status = status;
	c->is_response_started = true;
	conn_write(c, bufs, c->req.is_head ? 1 : 2);
	if (!c->is_closing)
		conn_response_done(c);
}

void kg__conn_respond_error_with(struct kg_conn *c, int status, const char *message, const char *extra_headers)
{
	kg_buf body = { 0 };
	if (kg_error_json(status, message, &body) == KG_OK)
		kg__conn_respond(c, status, "application/json", kg_buf_str(&body), extra_headers);
	else
		kg__conn_close(c);
	kg_buf_free(&body, false);
}

void kg__conn_respond_error(struct kg_conn *c, int status, const char *message)
{
	kg__conn_respond_error_with(c, status, message, NULL);
}

void kg__conn_respond_decision(struct kg_conn *c)
{
	const struct kg_decision *d = &c->req.decision;
	kg_buf body = { 0 };
	const char *ctype = "application/json";
	const char *extra = NULL;
	int status = d->status;

	char retry[KG_RETRY_AFTER_MAX];
	if (status == 401) {
		bool is_basic = d->scheme ? (d->scheme->kinds & (1u << KG_CRED_BASIC)) != 0
		                          : c->rt && c->rt->auth.by_kind[KG_CRED_BASIC] != NULL;
		bool is_bearer = !d->scheme && c->rt && c->rt->auth.has_bearer;
		extra = kg_dialect_challenge(d->dialect, false, is_basic, is_bearer);
	} else if (d->retry_after > 0 && kg_retry_after_header(d->retry_after, retry, sizeof(retry)) == KG_OK) {
		extra = retry;
	}
	if (kg_dialect_render(d->dialect, status, d->err, d->message, &body, &ctype) == KG_OK)
		kg__conn_respond(c, status, ctype, kg_buf_str(&body), extra);
	else
		kg__conn_close(c);
	kg_buf_free(&body, false);
}

/* ---- reading ---- */

static void conn_update_reading(struct kg_conn *c);
static void conn_pump(struct kg_conn *c);

static void start_timer(struct kg_conn *c, int64_t ms);

static void request_reset(struct kg_conn *c)
{
	kg_buf_free(&c->req.own_body, true); /* /ext/auth bodies hold passwords */
	/* the upstream head's buffer serves the next request too: no malloc and
	 * reallocs per request; an unusually large one is given back */
	kg_buf up_head = c->req.up_head;
	if (up_head.cap > 16 * 1024)
		kg_buf_free(&up_head, false);
	kg_buf_clear(&up_head);
	memset(&c->req, 0, sizeof(c->req));
	c->req.up_head = up_head;
	kg_arena_reset(&c->arena);
	c->head_len = 0;
	c->header_bytes = 0;
	c->last_cb = 0;
	c->err_status = 0;
	c->err_message = NULL;
	c->is_response_started = c->is_response_done = false;
	c->is_read_paused = false;
	c->is_req_reset = true;
}

static void finish_exchange(struct kg_conn *c)
{
	if (c->state == KG_CONN_CLOSING || c->state == KG_CONN_TUNNEL)
		return;
	kg__conn_log(c);
	bool keep = c->keep_alive && c->req.is_complete && !c->w->draining && !c->px;
	/* The client said it sends nothing more, and everything it sent was read
	 * and parsed: nothing is left for a reset to answer, so the FIN is
	 * followed by the close at once, as nginx does, instead of the lingering
	 * read (five syscalls and a loop turn per connection). A refusal with a
	 * body left unread, pipelined bytes, or TLS (the client's close_notify
	 * follows ours) still linger. */
	c->is_linger_skipped = c->client_closes && c->req.is_complete && !c->tls && c->pending_off == c->pending_len;
	request_release(c);
	if (!keep) {
		conn_close_gracefully(c);
		return;
	}
	request_reset(c);
	c->state = KG_CONN_HEAD;
	c->is_idle = true;
	conn_park(c);
	start_timer(c, kg__runtime_peek()->cfg->idle_timeout_ms);
	/* inside llhttp's callback the caller's loop goes on parsing; pumping
	 * here would re-enter the parser on bytes it has not consumed yet */
	if (!c->is_parsing)
		conn_pump(c);
}

static void on_timer(kg_deadline *d)
{
	struct kg_conn *c = conn_of_deadline(d);
	if (c->req.is_head_done) {
		if (c->write_queued > 0) {
			kg_debug("client %s: took no response bytes within limits.send_timeout; closing", c->peer);
			kg__conn_close(c);
		} else if (!c->req.is_complete) {
			kg_debug("client %s: sent no body bytes within limits.body_timeout", c->peer);
			c->keep_alive = false;
			if (c->is_response_started) {
				kg__conn_close(c);
				return;
			}
			if (c->px)
				conn_proxy_cancel(c);
			c->state = KG_CONN_RESPONSE;
			kg__conn_respond_error(c, 408, "timed out reading the request body");
		}
		return;
	}
	if (c->state == KG_CONN_HEAD) {
		if (c->is_idle) {
			kg_debug("client %s: idle timeout", c->peer);
			kg__conn_close(c);
		} else {
			c->keep_alive = false;
			kg__conn_respond_error(c, 408, "timed out reading the request headers");
		}
	}
}

static void start_timer(struct kg_conn *c, int64_t ms)
{
	/* a closed connection's deadline is off the wheel for good: its memory
	 * goes when the socket's close completes */
	if (!c->is_closing)
		kg__deadline_set(c->w, &c->deadline, ms, on_timer);
}

static void conn_set_error(struct kg_conn *c, int status, const char *message);

static int head_append(struct kg_conn *c, const char *at, size_t len)
{
	if (c->head_len + len > c->head_cap) {
		/* the limits are checked before this; the buffer is sized for them */
		conn_set_error(c, 431, "request header fields too large");
		return -1;
	}
	memcpy(c->head + c->head_len, at, len);
	c->head_len += len;
	return 0;
}

/* Records why an llhttp callback refused the request; conn_execute answers. */
static void conn_set_error(struct kg_conn *c, int status, const char *message)
{
	c->err_status = status;
	c->err_message = message;
}

static int on_message_begin(llhttp_t *p)
{
	struct kg_conn *c = p->data;
	struct kg_runtime *rt = kg__runtime_acquire();

	/* a kept-alive connection's next request: finish_exchange reset it
	 * already, and nothing between requests writes to it (giving the
	 * buffers back leaves it as reset) */
	if (!c->is_req_reset)
		request_reset(c);
	c->is_req_reset = false;
	c->rt = rt;
	c->is_idle = false;
	c->req.start_ns = now_ns();
	c->state = KG_CONN_HEAD;
	size_t need = (size_t)rt->cfg->max_header_bytes + (size_t)rt->cfg->max_url_bytes + 64;
	if (c->head_cap < need) {
		char *h = realloc(c->head, need);
		if (!h)
			return -1;
		c->head = h;
		c->head_cap = need;
	}
	c->req.headers = kg_arena_alloc(&c->arena, sizeof(struct kg_header) * (size_t)rt->cfg->max_headers);
	if (!c->req.headers)
		return -1;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct kg_conn *c = p->data;
	if (c->req.url.n + len > (size_t)c->rt->cfg->max_url_bytes) {
		conn_set_error(c, 414, "request URI too long");
		return -1;
	}
	if (!c->req.url.p)
		c->req.url.p = c->head + c->head_len;
	c->req.url.n += len;
	return head_append(c, at, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct kg_conn *c = p->data;
	if (c->last_cb != 1) {
		if (c->req.nheaders == (size_t)c->rt->cfg->max_headers) {
			conn_set_error(c, 431, "too many request header fields");
			return -1;
		}
		struct kg_header *h = &c->req.headers[c->req.nheaders++];
		h->name_off = (uint32_t)c->head_len;
		h->name_len = h->value_off = h->value_len = 0;
		c->last_cb = 1;
		c->header_bytes += 4; /* ": " and CRLF */
	}
	c->header_bytes += len;
	if (c->header_bytes > (size_t)c->rt->cfg->max_header_bytes) {
		conn_set_error(c, 431, "request header fields too large");
		return -1;
	}
	c->req.headers[c->req.nheaders - 1].name_len += (uint32_t)len;
	return head_append(c, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct kg_conn *c = p->data;
	struct kg_header *h = &c->req.headers[c->req.nheaders - 1];
	if (c->last_cb != 2) {
		h->value_off = (uint32_t)c->head_len;
		c->last_cb = 2;
	}
	c->header_bytes += len;
	if (c->header_bytes > (size_t)c->rt->cfg->max_header_bytes) {
		conn_set_error(c, 431, "request header fields too large");
		return -1;
	}
	h->value_len += (uint32_t)len;
	return head_append(c, at, len);
}

static void auth_done(struct kg_conn *c);

static int dispatch_head(struct kg_conn *c)
{
	struct kg_request *r = &c->req;
	struct kg_runtime *rt = c->rt;

	r->method = kg_str_c(llhttp_method_name(llhttp_get_method(&c->parser)));
	r->version_major = llhttp_get_http_major(&c->parser);
	r->version_minor = llhttp_get_http_minor(&c->parser);
	r->is_head = kg_str_eq(r->method, KG_STR("HEAD"));
	c->keep_alive = llhttp_should_keep_alive(&c->parser);
	c->client_closes = !c->keep_alive;

	r->fields = kg_arena_alloc(&c->arena, sizeof(*r->fields) * (r->nheaders ? r->nheaders : 1));
	if (!r->fields) {
		conn_set_error(c, 500, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < r->nheaders; i++)
		r->fields[i] = (kg_head_field){ kg__req_header(c, i, false), kg__req_header(c, i, true) };
	kg_head h;
	kg__req_head(c, &h);
	if (kg_head_judge(&h, &rt->head_rules, &c->arena, &r->facts) != KG_OK) {
		conn_set_error(c, r->facts.status, r->facts.message);
		return -1;
	}
	size_t cn = r->facts.client.n < sizeof(c->client) ? r->facts.client.n : sizeof(c->client) - 1;
	memcpy(c->client, r->facts.client.p, cn); /* an IP address (a peer's fits too) */
	c->client[cn] = '\0';
	kg_wheel_clear(&c->deadline);
	r->is_head_done = true;

	if (kg_str_eq(r->method, KG_STR("CONNECT"))) {
		conn_set_error(c, 405, "the CONNECT method is not supported");
		return -1;
	}
	r->route = kg__route_find(rt, r->facts.path);
	if (r->route) {
		r->body_limit = r->route->body_limit ? r->route->body_limit : (uint64_t)rt->cfg->max_body_bytes;
		if (r->facts.body == KG_BODY_LENGTH && r->facts.content_length > r->body_limit) {
			conn_set_error(c, 413, "request body too large");
			return -1;
		}
		if (r->facts.body != KG_BODY_NONE)
			conn_watch(c, true); /* the body must keep coming */
		return 0;
	}

	kg_auth_decide(&rt->auth, r->method, r->facts.path, r->facts.authorization, (int64_t)time(NULL), &c->arena,
	               &r->decision);
	if (r->decision.err == KG_ESLOW && kg__auth_slow(c, r->method, r->facts.path, auth_done)) {
		/* a password check runs off the loop; a bodiless request still
		 * completes its parse (on_message_complete waits in this state) */
		c->state = KG_CONN_AUTH;
		return r->facts.body == KG_BODY_NONE ? 0 : HPE_PAUSED;
	}
	if (r->decision.status != 200) {
		if (r->facts.body != KG_BODY_NONE) {
			/* answer now and close rather than read a body nobody wants */
			c->keep_alive = false;
			kg__conn_respond_decision(c);
			return HPE_PAUSED;
		}
		return 0; /* answered at message completion, connection kept */
	}
	r->cred_consumed = r->decision.is_authenticated;
	c->state = KG_CONN_WAIT;
	/* A request with a body pauses here until the upstream is ready for it;
	 * one without (upgrades included) runs on to its message completion,
	 * which pauses instead. */
	return r->facts.body == KG_BODY_NONE ? 0 : HPE_PAUSED;
}

/* The password check of a proxied request is done: refuse, or go upstream
 * as dispatch_head would have. */
static void auth_done(struct kg_conn *c)
{
	struct kg_request *r = &c->req;
	if (r->decision.status != 200) {
		c->state = KG_CONN_RESPONSE;
		kg__conn_respond_decision(c); /* closes after it when the body was not read */
		return;
	}
	r->cred_consumed = r->decision.is_authenticated;
	c->state = KG_CONN_WAIT;
	conn_proxy_start(c);
}

static int on_headers_complete(llhttp_t *p)
{
	struct kg_conn *c = p->data;
	return dispatch_head(c);
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct kg_conn *c = p->data;
	struct kg_request *r = &c->req;
	r->body_seen += len;
	conn_watch(c, true);
	if (r->route) {
		if (r->body_seen > r->body_limit) {
			conn_set_error(c, 413, "request body too large");
			return -1;
		}
		if (kg_buf_append(&r->own_body, at, len) != KG_OK)
			return -1;
		return 0;
	}
	if (c->state == KG_CONN_BODY && c->px)
		kg__proxy_body(c->px, at, len);
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct kg_conn *c = p->data;
	struct kg_request *r = &c->req;
	r->is_complete = true;
	if (c->is_closing || c->is_response_started) {
		/* already answered (a refusal sent before the body) */
	} else if (r->route) {
		c->state = KG_CONN_RESPONSE;
		r->route->handle(c);
	} else if (r->decision.status != 200) {
		c->state = KG_CONN_RESPONSE;
		kg__conn_respond_decision(c);
	} else if (c->state == KG_CONN_BODY) {
		if (c->px)
			kg__proxy_body_end(c->px);
		if (c->state == KG_CONN_BODY)
			c->state = KG_CONN_RESPONSE;
	}
	/* KG_CONN_WAIT: a bodiless request; conn_execute starts the exchange */
	conn_watch(c, false); /* the body is in: only a pending send keeps the clock */
	return HPE_PAUSED;
}

/* Parses data; keeps what could not be parsed yet in c->pending. */
static void conn_execute(struct kg_conn *c, const char *data, size_t len, bool from_pending)
{
	if (llhttp_get_errno(&c->parser) == HPE_PAUSED)
		llhttp_resume(&c->parser);
	else if (llhttp_get_errno(&c->parser) == HPE_PAUSED_UPGRADE && c->state == KG_CONN_HEAD)
		llhttp_resume_after_upgrade(&c->parser); /* see below */
	size_t used = len;
	const char *at = data;
	llhttp_errno_t e;
	for (;;) {
		c->is_parsing = true;
		e = llhttp_execute(&c->parser, at, len - (size_t)(at - data));
		c->is_parsing = false;
		if (e != HPE_PAUSED_UPGRADE || c->state != KG_CONN_HEAD || c->is_closing)
			break;
		/* an Upgrade request keygate did not tunnel (not in proxy.upgrades,
		 * or the upstream did not switch): its exchange is over and what
		 * follows is the next request, not another protocol */
		at = llhttp_get_error_pos(&c->parser);
		llhttp_resume_after_upgrade(&c->parser);
	}

	if (c->is_closing)
		return;
	if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
		used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
	} else if (e != HPE_OK) {
		char buf[256];
		int status = c->err_status ? c->err_status : 400;
		const char *msg = c->err_message;
		const char *reason = llhttp_get_error_reason(&c->parser);
		if (!msg && e == HPE_INVALID_VERSION && reason && strcmp(reason, "Invalid HTTP version") == 0) {
			/* llhttp parses a well-formed HTTP/d.d, then refuses the versions
			 * it does not know with this reason; a malformed one gets
			 * "Invalid major/minor version" and stays a 400 */
			status = 505;
			msg = "HTTP version not supported: keygate speaks HTTP/1.0 and HTTP/1.1";
		} else if (!msg) {
			snprintf(buf, sizeof(buf), "malformed request: %s", reason ? reason : llhttp_errno_name(e));
			msg = buf;
		}
		c->keep_alive = false;
		if (c->is_response_started) {
			kg__conn_close(c); /* mid-response: nothing sensible can be answered */
			return;
		}
		if (c->px)
			conn_proxy_cancel(c); /* a body broke off mid-stream (a bad chunk size): the upstream gets nothing more */
		c->state = KG_CONN_RESPONSE;
		kg__conn_respond_error(c, status, msg);
		return;
	}
	if (from_pending) {
		c->pending_off += used;
	} else if (used < len) {
		size_t rest = len - used;
		if (rest > c->pending_cap) {
			char *np = realloc(c->pending, rest);
			if (!np) {
				kg__conn_close(c);
				return;
			}
			c->pending = np;
			c->pending_cap = rest;
		}
		memcpy(c->pending, data + used, rest);
		c->pending_off = 0;
		c->pending_len = rest;
	}
	if (c->pending_off == c->pending_len)
		c->pending_off = c->pending_len = 0;
	if (c->state == KG_CONN_WAIT && !c->px && !c->is_response_started)
		conn_proxy_start(c);
}

static bool can_parse(const struct kg_conn *c)
{
	if (c->is_closing)
		return false;
	if (c->state == KG_CONN_HEAD)
		return true;
	return c->state == KG_CONN_BODY && !c->req.is_complete;
}

static void conn_pump(struct kg_conn *c)
{
	while (can_parse(c) && c->pending_len > c->pending_off) {
		size_t before = c->pending_off;
		conn_execute(c, c->pending + c->pending_off, c->pending_len - c->pending_off, true);
		if (c->is_closing)
			return;
		if (c->pending_off == before && c->pending_len)
			break; /* paused without progress: wait for the exchange to move */
	}
	if (c->state == KG_CONN_TUNNEL && c->pending_len > c->pending_off) {
		conn_tunnel_data(c, c->pending + c->pending_off, c->pending_len - c->pending_off);
		c->pending_off = c->pending_len = 0;
	}
	conn_update_reading(c);
}

/* Appends received bytes that cannot be parsed yet to c->pending. */
static kg_err pending_append(struct kg_conn *c, const char *data, size_t len)
{
	if (c->pending_off) {
		memmove(c->pending, c->pending + c->pending_off, c->pending_len - c->pending_off);
		c->pending_len -= c->pending_off;
		c->pending_off = 0;
	}
	if (c->pending_len + len > c->pending_cap) {
		size_t cap = c->pending_len + len;
		char *np = realloc(c->pending, cap);
		if (!np)
			return KG_ENOMEM;
		c->pending = np;
		c->pending_cap = cap;
	}
	memcpy(c->pending + c->pending_len, data, len);
	c->pending_len += len;
	return KG_OK;
}

/* What a read brought, as plaintext: nread bytes at data, or a libuv error
 * (UV_EOF). */
static void conn_on_data(struct kg_conn *c, ssize_t nread, const char *data)
{
	uv_buf_t one = uv_buf_init((char *)data, nread > 0 ? (unsigned)nread : 0);
	const uv_buf_t *buf = &one;

	if (nread == 0 || c->is_closing)
		return;
	bool is_read_ahead = !can_parse(c) && c->state != KG_CONN_TUNNEL;
	if (nread < 0) {
		if (nread == UV_EOF && is_read_ahead && c->req.is_complete) {
			/* the client half-closed after its request: answer it, then close */
			c->keep_alive = false;
			c->is_half_closed = true;
			conn_update_reading(c);
			return;
		}
		if (c->state == KG_CONN_HEAD && c->is_idle)
			kg_debug("client %s: closed", c->peer);
		else if (nread != UV_EOF)
			kg_debug("client %s: read failed: %s", c->peer, uv_strerror((int)nread));
		if (c->state == KG_CONN_HEAD && !c->is_idle && nread == UV_EOF &&
		    llhttp_message_needs_eof(&c->parser)) {
			llhttp_finish(&c->parser);
		}
		kg__conn_close(c);
		return;
	}
	if (c->state == KG_CONN_TUNNEL) {
		conn_tunnel_data(c, buf->base, (size_t)nread);
		return;
	}
	if (is_read_ahead) {
		/* the next request arrives while this one is answered: keep it for
		 * later rather than stop reading (each stop/start is an epoll_ctl) */
		if (pending_append(c, buf->base, (size_t)nread) != KG_OK)
			kg__conn_close(c);
		else
			conn_update_reading(c);
		return;
	}
	if (c->is_idle) {
		/* first byte of the next request: from now on the header timeout applies */
		start_timer(c, kg__runtime_peek()->cfg->header_timeout_ms);
		c->is_idle = false;
	}
	conn_execute(c, buf->base, (size_t)nread, false);
	conn_pump(c);
}

/* Ciphertext from a TLS client: fed to its session, and the plaintext
 * handed on as a plain connection's reads are. All of it is decrypted now:
 * it is no more than the ciphertext just read, so c->pending stays bounded
 * as for plain reads. The session's answers (handshake, tickets) go out at
 * once. */
static void conn_tls_read(struct kg_conn *c, const char *cipher, size_t len)
{
	if (kg__tls_feed(c->tls, cipher, len) != KG_OK) {
		kg__conn_close(c);
		return;
	}
	/* cipher was w->rbuf, copied into the session: the plaintext goes there */
	char *plain = c->w->rbuf;
	for (;;) {
		ssize_t n = kg__tls_read(c->tls, plain, sizeof(c->w->rbuf));
		if (n > 0) {
			if (c->pending_len > c->pending_off && c->state != KG_CONN_TUNNEL) {
				/* bytes of an earlier read wait their turn: these go after them */
				if (pending_append(c, plain, (size_t)n) != KG_OK) {
					kg__conn_close(c);
					return;
				}
				conn_pump(c);
			} else {
				conn_on_data(c, n, plain);
			}
			if (c->is_closing)
				return;
			continue;
		}
		conn_tls_flush(c);
		if (c->is_closing || n == KG_TLS_AGAIN)
			return;
		if (n == KG_TLS_CLOSED) {
			conn_on_data(c, UV_EOF, NULL);
			return;
		}
		kg_info("client %s: TLS %s: %s; closing", c->peer,
		        kg__tls_is_established(c->tls) ? "session failed" : "handshake failed", kg__tls_error(c->tls));
		c->keep_alive = false;
		conn_close_gracefully(c);
		return;
	}
}

static bool on_data(uv_stream_t *s, ssize_t nread, const char *data)
{
	struct kg_conn *c = s->data;
	if (c->tls && nread > 0 && !c->is_closing)
		conn_tls_read(c, data, (size_t)nread);
	else
		conn_on_data(c, nread, data);
	return c->is_reading && !c->is_closing;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct kg_conn *c = s->data;
	kg__stream_on_read(s, nread, buf, c->w->rbuf, sizeof(c->w->rbuf), on_data);
}

static void conn_update_reading(struct kg_conn *c)
{
	bool is_empty = c->pending_len == c->pending_off;
	bool want = !c->is_closing && !c->is_read_paused && !c->is_half_closed;
	if (c->state == KG_CONN_HEAD || c->state == KG_CONN_TUNNEL || (c->state == KG_CONN_BODY && !c->req.is_complete))
		want = want && is_empty; /* parse what is pending first */
	else if (c->state == KG_CONN_AUTH || c->state == KG_CONN_WAIT || c->state == KG_CONN_RESPONSE ||
	         c->state == KG_CONN_BODY)
		want = want && c->pending_len - c->pending_off < KG_READ_BUF; /* read ahead, bounded */
	else
		want = false;
	if (want && !c->is_reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, kg__stream_no_buffer, on_read) == 0)
			c->is_reading = true;
	} else if (!want && c->is_reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->is_reading = false;
	}
}

/* ---- the upstream exchange (proxy.h): the sink proxy.c writes into ---- */

static void sink_pause_reading(void *ctx)
{
	struct kg_conn *c = ctx;
	c->is_read_paused = true;
	conn_update_reading(c);
	conn_watch(c, true); /* waiting for the upstream now, not the client */
}

static void sink_resume_reading(void *ctx)
{
	struct kg_conn *c = ctx;
	c->is_read_paused = false;
	conn_watch(c, true);
	conn_pump(c);
}

static void sink_ready(void *ctx)
{
	struct kg_conn *c = ctx;
	if (c->is_closing)
		return;
	if (c->req.is_complete) {
		/* nothing more to send: wait for the response (a 101 for upgrades) */
		c->state = KG_CONN_RESPONSE;
		conn_update_reading(c);
		return;
	}
	c->state = KG_CONN_BODY;
	conn_watch(c, true);
	conn_pump(c);
}

static bool sink_head(void *ctx, int status, bool is_close_delimited)
{
	struct kg_conn *c = ctx;
	if (is_close_delimited)
		c->keep_alive = false; /* an HTTP/1.0 client reads to the close */
	c->is_response_started = true;
	c->req.status = status;
	return !c->keep_alive || c->w->draining;
}

static bool sink_write(void *ctx, uv_buf_t *bufs, unsigned nbufs)
{
	struct kg_conn *c = ctx;
	conn_write(c, bufs, nbufs);
	return !c->is_closing && c->write_queued >= KG_HIGH_WATER;
}

static void sink_tunnel(void *ctx)
{
	struct kg_conn *c = ctx;
	c->state = KG_CONN_TUNNEL;
	kg__conn_log(c);
}

static void sink_done(void *ctx)
{
	struct kg_conn *c = ctx;
	c->px = NULL;
	if (!c->is_closing)
		conn_response_done(c);
}

static void sink_error(void *ctx, int status, const char *message, bool is_head_unsent)
{
	struct kg_conn *c = ctx;
	c->px = NULL;
	if (is_head_unsent)
		c->is_response_started = false;
	if (c->is_response_started) {
		kg__conn_close(c); /* mid-response: the client sees a truncated message (and it is logged) */
		return;
	}
	c->keep_alive = c->keep_alive && c->req.is_complete;
	kg__conn_respond_error(c, status, message);
}

static const struct kg_proxy_sink sink_proto = {
	.ready = sink_ready,
	.head = sink_head,
	.write = sink_write,
	.tunnel = sink_tunnel,
	.done = sink_done,
	.error = sink_error,
	.pause_reading = sink_pause_reading,
	.resume_reading = sink_resume_reading,
};

/* The head the upstream receives (lib/head.c writes it), kept in c->req.up_head for one
 * retry, and the exchange that sends it. */
static void conn_proxy_start(struct kg_conn *c)
{
	struct kg_request *r = &c->req;
	kg_head h;
	kg__req_head(c, &h);
	kg_buf_clear(&r->up_head);
	struct kg_proxy_sink sink = sink_proto;
	sink.ctx = c;
	if (kg_head_write_upstream(&h, &r->facts, &c->rt->head_rules,
	                           r->decision.is_authenticated ? &r->decision.principal : NULL, r->cred_consumed,
	                           &r->up_head) != KG_OK) {
		sink_error(c, 500, "out of memory", true);
		return;
	}
	struct kg_proxy_request req = {
		.w = c->w,
		.rt = c->rt,
		.arena = &c->arena,
		.head = kg_buf_str(&r->up_head),
		.method = r->method,
		.path = r->facts.path,
		.body = r->facts.body,
		.is_complete = r->is_complete,
		.is_head = r->is_head,
		.is_upgrade = r->facts.is_upgrade,
		.is_http11 = r->version_major == 1 && r->version_minor >= 1,
	};
	kg__proxy_start(&req, &sink, &c->px);
}

static void conn_proxy_cancel(struct kg_conn *c)
{
	struct kg_proxy *p = c->px;
	c->px = NULL;
	kg__proxy_cancel(p);
}

static void conn_tunnel_data(struct kg_conn *c, const char *data, size_t len)
{
	if (!c->px) {
		kg__conn_close(c);
		return;
	}
	kg__proxy_tunnel_data(c->px, data, len);
}

struct kg_request *kg__conn_req(const struct kg_conn *c)
{
	return (struct kg_request *)&c->req; /* the callers answer the request c holds */
}

struct kg_runtime *kg__conn_rt(const struct kg_conn *c)
{
	return c->rt;
}

struct kg_worker *kg__conn_worker(const struct kg_conn *c)
{
	return c->w;
}

kg_arena *kg__conn_arena(struct kg_conn *c)
{
	return &c->arena;
}

const char *kg__conn_client(const struct kg_conn *c)
{
	return c->client;
}

const char *kg__conn_peer(const struct kg_conn *c)
{
	return c->peer;
}

bool kg__conn_is_closing(const struct kg_conn *c)
{
	return c->is_closing;
}

void kg__conn_close_idle(struct kg_worker *w)
{
	struct kg_conn *c = w->conns;
	while (c) {
		struct kg_conn *next = c->next;
		if (c->state == KG_CONN_HEAD && c->is_idle)
			kg__conn_close(c);
		c = next;
	}
}

void kg__conn_accept(struct kg_worker *w, uv_stream_t *server, bool is_tls)
{
	struct kg_conn *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (!c) {
		/* libuv stops polling a listener whose connection is not taken
		 * (uv_accept never called): take it and close it, so one failed
		 * allocation does not stop this worker accepting for good.
		 * accepted_fd is the field uv_accept itself consumes (unix). */
		kg_warn("worker %d: out of memory: closing a new connection", w->id);
		if (server->accepted_fd >= 0) {
			close(server->accepted_fd);
			server->accepted_fd = -1;
		}
		return;
	}
	c->w = w;
	uv_tcp_init(&w->loop, &c->tcp);
	c->tcp.data = c;
	c->handles_open = 1;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	kg_arena_init(&c->arena, 8192);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		kg__conn_close(c);
		return;
	}
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
		else if (ss.ss_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof(c->peer));
	}
	if (!c->peer[0])
		snprintf(c->peer, sizeof(c->peer), "unknown");
	snprintf(c->client, sizeof(c->client), "%s", c->peer);
	uv_tcp_nodelay(&c->tcp, 1);
	llhttp_init(&c->parser, HTTP_REQUEST, &req_settings);
	c->parser.data = c;
	c->state = KG_CONN_HEAD;
	c->is_idle = true;

	struct kg_runtime *rt = kg__runtime_acquire();
	int64_t max = rt->cfg->max_connections, timeout = rt->cfg->header_timeout_ms;
	kg_err tls_err = KG_OK;
	if (is_tls)
		tls_err = rt->tls_ctx ? kg__tls_conn_new(rt->tls_ctx, true, &c->tls) : KG_ECONFIG;
	kg__runtime_release(rt);
	if (tls_err) {
		kg_warn("worker %d: cannot start TLS with %s: %s", w->id, c->peer,
		        tls_err == KG_ECONFIG ? "no certificate since the last reload (restart to apply tls.listen)"
		                              : "out of memory");
		kg__conn_close(c);
		return;
	}
	if ((int64_t)w->nconns > max && c->tls) {
		/* nothing readable can be said before a handshake it would cost */
		kg_warn("worker %d: %zu connections, over limits.max_connections=%lld: closing TLS connection from %s",
		        w->id, w->nconns, (long long)max, c->peer);
		kg__conn_close(c);
		return;
	}
	if ((int64_t)w->nconns > max) {
		kg_warn("worker %d: %zu connections, over limits.max_connections=%lld: refusing %s", w->id,
		        w->nconns, (long long)max, c->peer);
		c->req.is_complete = true;
		c->keep_alive = false;
		c->state = KG_CONN_RESPONSE;
		kg__conn_respond_error(c, 503, "too many connections");
		return;
	}
	start_timer(c, timeout);
	conn_update_reading(c);
}

__attribute__((constructor)) static void init_settings(void)
{
	llhttp_settings_init(&req_settings);
	req_settings.on_message_begin = on_message_begin;
	req_settings.on_url = on_url;
	req_settings.on_header_field = on_header_field;
	req_settings.on_header_value = on_header_value;
	req_settings.on_headers_complete = on_headers_complete;
	req_settings.on_body = on_body;
	req_settings.on_message_complete = on_message_complete;
}
