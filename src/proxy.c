/* proxy.c - the upstream side: a per-worker pool of keep-alive connections,
 * the request head rewritten once (hop-by-hop headers out, X-Forwarded-*
 * and identity headers in), bodies streamed both ways with backpressure, and
 * Upgrade requests tunnelled once the upstream answers 101. The response
 * head is checked and its framing decided here, by keygate: whatever the
 * upstream writes, the client connection cannot be desynchronised.
 *
 * An https upstream is the same connection with a TLS session (tls.h) in
 * between, as on the client side: ciphertext read from the socket is fed to
 * the session and the plaintext goes where a plain read goes; what is
 * written is encrypted and the records go out through the same write path,
 * so the queued bytes (backpressure) count ciphertext. The session lives
 * with the connection, so a pooled connection is a pooled TLS session. */
#include <arpa/inet.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include <llhttp.h>
#include <uv.h>

#include "keygate/log.h"
#include "kg.h"
#include "proxy.h"
#include "stream.h"
#include "tls.h"

#define KG_MAX_RESP_HEAD (64 * 1024)
#define KG_MAX_RESP_HEADERS 256
#define KG_POOL_IDLE_MS 15000
/* interim (1xx) responses relayed before the final one; an upstream that
 * sends more is broken or hostile: 502 */
#define KG_MAX_INTERIM 8

enum kg_resp_framing { KG_FRAME_PLAIN, KG_FRAME_CHUNKED, KG_FRAME_NONE };

struct kg_upconn {
	uv_tcp_t tcp;
	kg_deadline deadline;    /* connect, upstream or pool idle timeout */
	uv_connect_t connect;
	struct kg_worker *w;
	struct kg_proxy *p;      /* the exchange being served; NULL while pooled */
	struct kg_upconn *next;  /* pool link */
	llhttp_t parser;
	struct kg_tls_conn *tls; /* https upstream: the session (its handshake done once is_connected) */
	unsigned gen;            /* runtime generation whose upstream this reaches */
	int handles_open;
	size_t write_queued;
	/* response head */
	char *rhead;
	size_t rhead_len;
	struct kg_header rh[KG_MAX_RESP_HEADERS];
	size_t nrh;
	int last_cb;
	size_t status_off, status_len;
	enum kg_resp_framing framing;
	bool is_connected, is_reused, got_bytes, is_closing, is_reading, is_read_paused;
	bool is_awaiting_response; /* the whole request is out; the response clock runs */
	bool is_tunnel, is_interim, is_done, is_pooled, keep_alive;
	const char *bad_why;     /* the response head was refused: the 502's message */
	unsigned ninterim;       /* interim responses to the current request */
	/* the response head for the client, held back so it leaves in the same
	 * write as the first body bytes (one syscall, one TCP segment for small
	 * responses); reused from response to response */
	kg_buf head_out;
	bool has_head_pending;
};

/* One exchange: what to send, where the response goes, and the upstream
 * connection serving it (a retry swaps it for a fresh one). */
struct kg_proxy {
	struct kg_proxy_request req;
	struct kg_proxy_sink sink;
	struct kg_upconn *u;
	bool is_client_paused;   /* sink.pause_reading is in force */
	bool is_head_sent;       /* the final response's head went into the sink */
};

static llhttp_settings_t resp_settings;

static void up_close(struct kg_upconn *u);
static void up_read_start(struct kg_upconn *u);
static void start_exchange(struct kg_proxy *p, struct kg_upconn *u);

/* ---- building the request head ---- */

static bool is_idempotent(kg_str m)
{
	return kg_str_eq(m, KG_STR("GET")) || kg_str_eq(m, KG_STR("HEAD")) || kg_str_eq(m, KG_STR("OPTIONS")) ||
	       kg_str_eq(m, KG_STR("PUT")) || kg_str_eq(m, KG_STR("DELETE")) || kg_str_eq(m, KG_STR("TRACE"));
}

/* ---- upstream connection lifetime ---- */

static void on_up_closed(uv_handle_t *h)
{
	struct kg_upconn *u = h->data;
	if (--u->handles_open == 0) {
		kg__tls_conn_free(&u->tls);
		kg_buf_free(&u->head_out, false);
		free(u->rhead);
		free(u);
	}
}

static void pool_remove(struct kg_upconn *u)
{
	struct kg_upconn **pp = &u->w->pool;
	while (*pp && *pp != u)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = u->next;
		u->w->npool--;
	}
	u->is_pooled = false;
	u->next = NULL;
}

static void up_close(struct kg_upconn *u)
{
	if (u->is_closing)
		return;
	u->is_closing = true;
	if (u->is_pooled)
		pool_remove(u);
	if (u->p && u->p->u == u)
		u->p->u = NULL;
	u->p = NULL;
	if (u->tls && u->is_connected && u->write_queued == 0) {
		/* a close_notify, if the socket takes it at once: the upstream
		 * then knows the session ended on purpose (best effort, no wait) */
		const char *out;
		kg__tls_shutdown(u->tls);
		size_t n = kg__tls_pending_out(u->tls, &out);
		uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
		if (n)
			(void)uv_try_write((uv_stream_t *)&u->tcp, &b, 1);
		kg__tls_consumed(u->tls);
	}
	kg_wheel_remove(&u->w->wheel, &u->deadline);
	uv_close((uv_handle_t *)&u->tcp, on_up_closed);
}

static struct kg_upconn *up_new(struct kg_worker *w, unsigned gen)
{
	struct kg_upconn *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->rhead = malloc(KG_MAX_RESP_HEAD);
	if (!u->rhead) {
		free(u);
		return NULL;
	}
	u->w = w;
	u->gen = gen;
	uv_tcp_init(&w->loop, &u->tcp);
	u->tcp.data = u;
	u->handles_open = 1;
	return u;
}

static struct kg_upconn *up_of_deadline(kg_deadline *d)
{
	return (struct kg_upconn *)((char *)d - offsetof(struct kg_upconn, deadline));
}

static void on_pool_idle(kg_deadline *d)
{
	up_close(up_of_deadline(d));
}

static void pool_put(struct kg_upconn *u, int64_t pool_size)
{
	struct kg_worker *w = u->w;
	u->p = NULL;
	if ((int64_t)w->npool >= pool_size || w->draining) {
		up_close(u);
		return;
	}
	/* the connection keeps reading with on_up_read, which closes a pooled
	 * connection (no client) that speaks or ends: no read stop/start, and so
	 * no epoll_ctl, per request */
	if (!u->is_reading)
		up_read_start(u);
	if (!u->is_reading) {
		up_close(u);
		return;
	}
	kg__deadline_set(w, &u->deadline, KG_POOL_IDLE_MS, on_pool_idle);
	if (u->tls)
		kg__tls_release_buffers(u->tls); /* an idle session keeps no record buffers */
	u->is_pooled = true;
	u->next = w->pool;
	w->pool = u;
	w->npool++;
}

static struct kg_upconn *pool_get(struct kg_worker *w, unsigned gen)
{
	while (w->pool) {
		struct kg_upconn *u = w->pool;
		pool_remove(u);
		if (u->gen == gen) {
			kg_wheel_clear(&u->deadline);
			return u;
		}
		up_close(u); /* made for an upstream a reload replaced */
	}
	return NULL;
}

void kg__pool_close_all(struct kg_worker *w)
{
	while (w->pool)
		up_close(w->pool);
	SSL_SESSION_free(w->up_session);
	w->up_session = NULL;
}

int kg__proxy_tls_session(SSL *ssl, SSL_SESSION *sess)
{
	struct kg_upconn *u = SSL_get_app_data(ssl);
	if (!u)
		return 0;
	SSL_SESSION_free(u->w->up_session);
	u->w->up_session = sess;
	u->w->up_session_gen = u->gen;
	return 1;
}

/* ---- failures ---- */

/* Ends the exchange: no callback follows. p's memory is the request
 * arena's, which the client side resets with its next request. */
static void exchange_end(struct kg_proxy *p)
{
	if (p->u) {
		p->u->p = NULL;
		p->u = NULL;
	}
}

static void fail(struct kg_proxy *p, int status, const char *message)
{
	struct kg_upconn *u = p->u;
	/* the head is held back for the first body bytes: until they come,
	 * nothing reached the client, which can still get a proper error */
	bool is_head_unsent = !p->is_head_sent;
	if (u) {
		u->has_head_pending = false;
		up_close(u);
	}
	struct kg_proxy_sink sink = p->sink;
	exchange_end(p);
	sink.error(sink.ctx, status, message, is_head_unsent);
}

static bool try_retry(struct kg_proxy *p, struct kg_upconn *u)
{
	/* a pooled connection that died before answering: the request never
	 * reached the upstream's application, so an idempotent request without a
	 * body can be sent again, once, on a fresh connection */
	if (!u->is_reused || u->got_bytes || p->req.body != KG_BODY_NONE || !is_idempotent(p->req.method))
		return false;
	kg_debug("upstream connection from the pool was stale; retrying on a fresh one");
	up_close(u);
	struct kg_upconn *fresh = up_new(p->req.w, p->req.rt->gen);
	if (!fresh)
		return false;
	start_exchange(p, fresh);
	return true;
}

/* ---- writing upstream ---- */

/* "prefix reason" in the request's arena (it lives as long as the error
 * response needs it); the prefix alone when the arena is exhausted. */
static const char *tls_message(struct kg_proxy *p, const char *prefix, const char *reason)
{
	size_t a = strlen(prefix), b = strlen(reason);
	char *m = kg_arena_alloc(p->req.arena, a + b + 1);
	if (!m)
		return prefix;
	memcpy(m, prefix, a);
	memcpy(m + a, reason, b + 1);
	return m;
}

/* Why an https upstream closed on keygate: the alert it sent before
 * closing, when one waits unread in the socket (an upstream that refuses the
 * client certificate answers the first request with one: in TLS 1.3 it
 * judges the certificate after keygate's handshake ended). NULL when none. */
static const char *up_tls_last_words(struct kg_upconn *u)
{
	uv_os_fd_t fd;
	char cipher[4096];
	if (!u->tls || uv_fileno((uv_handle_t *)&u->tcp, &fd) != 0)
		return NULL;
	ssize_t n = recv(fd, cipher, sizeof(cipher), MSG_DONTWAIT);
	if (n <= 0 || kg__tls_feed(u->tls, cipher, (size_t)n) != KG_OK)
		return NULL;
	/* plaintext here would be a response to a request the upstream did not
	 * take whole: dropped, only the alert matters */
	ssize_t r;
	while ((r = kg__tls_read(u->tls, u->w->ubuf, sizeof(u->w->ubuf))) > 0)
		;
	return r == KG_TLS_ERROR ? kg__tls_error(u->tls) : NULL;
}

static void up_write_failed(struct kg_upconn *u, int status)
{
	struct kg_proxy *p = u->p;
	kg_debug("upstream write failed: %s", uv_strerror(status));
	const char *alert = p && !u->got_bytes ? up_tls_last_words(u) : NULL;
	if (alert) {
		kg_warn("upstream %s: TLS session failed: %s", p->req.rt->up_hostport, alert);
		fail(p, 502, tls_message(p, "upstream TLS session failed: ", alert));
		return;
	}
	if (p && !try_retry(p, u))
		fail(p, 502, "upstream closed the connection while receiving the request");
	else if (!p)
		up_close(u);
}

static void on_up_timeout(kg_deadline *d);

/* (Re)starts the upstream's proxy.upstream_timeout clock. */
static void up_clock(struct kg_upconn *u, const struct kg_proxy *p)
{
	if (!u->is_closing) /* a closed one's deadline is off the wheel for good */
		kg__deadline_set(u->w, &u->deadline, p->req.rt->cfg->upstream_timeout_ms, on_up_timeout);
}

/* The upstream timer while the response has not begun: from the moment the
 * whole request was handed over, proxy.upstream_timeout for the response to
 * start; before that (a body still streaming in from the client), the same
 * time for the upstream to take what is queued for it. Waiting for the
 * client is limits.body_timeout's business, not the upstream's. */
static void up_watch_request(struct kg_upconn *u)
{
	struct kg_proxy *p = u->p;
	if (!p || u->got_bytes || u->is_tunnel || !u->is_connected)
		return;
	if (p->req.is_complete) {
		if (!u->is_awaiting_response) {
			u->is_awaiting_response = true;
			up_clock(u, p);
		}
	} else if (u->write_queued > 0) {
		up_clock(u, p);
	} else {
		kg_wheel_clear(&u->deadline);
	}
}

static void on_up_write(uv_write_t *req, int status)
{
	struct kg_wreq *wr = (struct kg_wreq *)req;
	struct kg_upconn *u = wr->owner;
	u->write_queued -= wr->len;
	free(wr);
	if (u->is_closing)
		return;
	struct kg_proxy *p = u->p;
	if (status < 0) {
		up_write_failed(u, status);
		return;
	}
	if (p && !u->is_awaiting_response)
		up_watch_request(u); /* the upstream took some of the body: progress */
	if (p && p->is_client_paused && u->write_queued < KG_HIGH_WATER) {
		p->is_client_paused = false;
		p->sink.resume_reading(p->sink.ctx);
	}
}

/* Sends the records u's TLS session has ready (request bytes, handshake
 * messages, alerts): a libuv error code or 0. */
static int up_tls_flush(struct kg_upconn *u)
{
	const char *out;
	size_t n = kg__tls_pending_out(u->tls, &out);
	if (n == 0)
		return 0;
	uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
	int r = kg__stream_write((uv_stream_t *)&u->tcp, &b, 1, u, &u->write_queued, on_up_write);
	kg__tls_consumed(u->tls); /* written or copied into the write request */
	return r;
}

/* False when the write failed: the exchange was retried, or failed and its
 * handle is gone (the caller must not touch it again). */
static bool up_write(struct kg_upconn *u, uv_buf_t *bufs, unsigned nbufs)
{
	if (u->is_closing)
		return true;
	bool was_queued = u->write_queued > 0;
	int r;
	if (u->tls) {
		for (unsigned i = 0; i < nbufs; i++)
			if (kg__tls_write(u->tls, bufs[i].base, bufs[i].len) != KG_OK) {
				kg_warn("upstream %s: TLS session failed: %s", u->p ? u->p->req.rt->up_hostport : "",
				        kg__tls_error(u->tls));
				up_write_failed(u, UV_EPROTO);
				return false;
			}
		r = up_tls_flush(u);
	} else {
		r = kg__stream_write((uv_stream_t *)&u->tcp, bufs, nbufs, u, &u->write_queued, on_up_write);
	}
	if (r < 0) {
		up_write_failed(u, r);
		return false;
	}
	if (!was_queued && u->write_queued > 0 && !u->is_awaiting_response)
		up_watch_request(u);
	return true;
}

/* The upstream has a queue's worth of the client's bytes: stop reading the
 * client until on_up_write sees it drain. */
static void client_pause_if_full(struct kg_proxy *p)
{
	if (p->u && p->u->write_queued >= KG_HIGH_WATER && !p->is_client_paused) {
		p->is_client_paused = true;
		p->sink.pause_reading(p->sink.ctx);
	}
}

void kg__proxy_body(struct kg_proxy *p, const char *data, size_t len)
{
	struct kg_upconn *u = p->u;
	if (!u || len == 0)
		return;
	if (p->req.body == KG_BODY_CHUNKED) {
		char hdr[24];
		int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
		uv_buf_t b[3] = { uv_buf_init(hdr, (unsigned)n), uv_buf_init((char *)data, (unsigned)len),
			          uv_buf_init("\r\n", 2) };
		if (!up_write(u, b, 3))
			return;
	} else {
		uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
		if (!up_write(u, &b, 1))
			return;
	}
	client_pause_if_full(p);
}

void kg__proxy_body_end(struct kg_proxy *p)
{
	p->req.is_complete = true;
	if (p->u && p->req.body == KG_BODY_CHUNKED) {
		uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
		if (!up_write(p->u, &b, 1))
			return;
	}
	if (p->u)
		up_watch_request(p->u); /* the whole request is out: the response clock starts */
}

void kg__proxy_tunnel_data(struct kg_proxy *p, const char *data, size_t len)
{
	if (!p->u) {
		fail(p, 502, "upstream closed the tunnel");
		return;
	}
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	if (up_write(p->u, &b, 1))
		client_pause_if_full(p);
}

void kg__proxy_cancel(struct kg_proxy *p)
{
	struct kg_upconn *u = p->u;
	exchange_end(p);
	if (u)
		up_close(u);
}

void kg__proxy_proceed(struct kg_proxy *p)
{
	struct kg_upconn *u = p->u;
	if (u && u->is_read_paused) {
		u->is_read_paused = false;
		up_read_start(u);
		if (!u->is_tunnel)
			up_clock(u, p);
	}
}

/* ---- reading the response ---- */

/* Writes into the sink; false when that ended the exchange (the client
 * went away and cancelled it: u is closing, p is gone). */
static bool client_write(struct kg_proxy *p, struct kg_upconn *u, uv_buf_t *b, unsigned n)
{
	bool is_congested = false;
	if (u->has_head_pending) {
		if (!u->is_interim)
			p->is_head_sent = true;
		uv_buf_t all[4];
		all[0] = uv_buf_init(u->head_out.p, (unsigned)u->head_out.n);
		for (unsigned i = 0; i < n && i < 3; i++)
			all[i + 1] = b[i];
		u->has_head_pending = false;
		is_congested = p->sink.write(p->sink.ctx, all, n + 1); /* copies whatever it cannot send at once */
	} else if (n) {
		is_congested = p->sink.write(p->sink.ctx, b, n);
	}
	if (u->p != p)
		return false;
	if (is_congested && !u->is_read_paused) {
		u->is_read_paused = true;
		uv_read_stop((uv_stream_t *)&u->tcp);
		u->is_reading = false;
		kg_wheel_clear(&u->deadline); /* waiting for the client now: limits.send_timeout */
	}
	return true;
}

static int r_message_begin(llhttp_t *p)
{
	struct kg_upconn *u = p->data;
	u->rhead_len = 0;
	u->nrh = 0;
	u->last_cb = 0;
	u->status_off = u->status_len = 0;
	u->is_interim = false;
	return 0;
}

static int r_append(struct kg_upconn *u, const char *at, size_t len)
{
	if (u->rhead_len + len > KG_MAX_RESP_HEAD)
		return -1;
	memcpy(u->rhead + u->rhead_len, at, len);
	u->rhead_len += len;
	return 0;
}

static int r_status(llhttp_t *p, const char *at, size_t len)
{
	struct kg_upconn *u = p->data;
	if (u->status_len == 0)
		u->status_off = u->rhead_len;
	u->status_len += len;
	return r_append(u, at, len);
}

static int r_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct kg_upconn *u = p->data;
	if (u->last_cb != 1) {
		if (u->nrh == KG_MAX_RESP_HEADERS)
			return -1;
		struct kg_header *h = &u->rh[u->nrh++];
		h->name_off = (uint32_t)u->rhead_len;
		h->name_len = h->value_off = h->value_len = 0;
		u->last_cb = 1;
	}
	u->rh[u->nrh - 1].name_len += (uint32_t)len;
	return r_append(u, at, len);
}

static int r_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct kg_upconn *u = p->data;
	struct kg_header *h = &u->rh[u->nrh - 1];
	if (u->last_cb != 2) {
		h->value_off = (uint32_t)u->rhead_len;
		u->last_cb = 2;
	}
	h->value_len += (uint32_t)len;
	return r_append(u, at, len);
}

static kg_str rh_name(const struct kg_upconn *u, size_t i)
{
	return (kg_str){ u->rhead + u->rh[i].name_off, u->rh[i].name_len };
}

/* the value without surrounding OWS: r_headers_complete trims it in place */
static kg_str rh_value(const struct kg_upconn *u, size_t i)
{
	return (kg_str){ u->rhead + u->rh[i].value_off, u->rh[i].value_len };
}

/* Drops the value's surrounding SP and HTAB from h, once (kg_str_trim's
 * bytes), so that every later read of it is a plain load. */
static void rh_trim(struct kg_header *h, const char *head)
{
	const char *v = head + h->value_off;
	uint32_t n = h->value_len, lead = 0;
	if (n && v[0] > ' ' && v[n - 1] > ' ')
		return; /* the common value: neither end is SP or HTAB */
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	while (lead < n && (v[lead] == ' ' || v[lead] == '\t'))
		lead++;
	h->value_off += lead;
	h->value_len = n - lead;
}

/* "name: value\r\n" into b: one room check for the four pieces (the
 * reservation above makes room), kg_buf_put's growth otherwise. */
static inline kg_err put_field(kg_buf *b, kg_str name, kg_str value)
{
	size_t n = name.n + value.n + 4;
	if (b->cap - b->n <= n) {
		kg_err err = kg_buf_put(b, name);
		if (!err)
			err = kg_buf_put(b, KG_STR(": "));
		if (!err)
			err = kg_buf_put(b, value);
		if (!err)
			err = kg_buf_put(b, KG_STR("\r\n"));
		return err;
	}
	char *o = b->p + b->n;
	memcpy(o, name.p, name.n); /* a name is never empty */
	o += name.n;
	memcpy(o, ": ", 2);
	if (value.n)
		memcpy(o + 2, value.p, value.n);
	memcpy(o + 2 + value.n, "\r\n", 2);
	b->n += n;
	b->p[b->n] = '\0';
	return KG_OK;
}

/* Framing headers are keygate's to write: never copied from the upstream,
 * whatever its Connection header lists. id: the name's kg_head_name_id. */
static bool is_framing(enum kg_head_name id)
{
	return id == KG_HEAD_NAME_CONTENT_LENGTH || id == KG_HEAD_NAME_TRANSFER_ENCODING;
}

/* Returns 1 (no body follows: llhttp completes the message at once), 2 (a
 * tunnel), 0 (a body as the framing says) or -1 (502; u->bad_why says why). */
static int r_headers_complete(llhttp_t *p)
{
	struct kg_upconn *u = p->data;
	struct kg_proxy *x = u->p;
	int status = p->status_code;
	kg_str connection = KG_STR_NULL;
	kg_buf *hb = &u->head_out;
	unsigned char ids[KG_MAX_RESP_HEADERS]; /* each name interned once (kg_head_name_id) */
	/* room for the head keygate writes (the fields, the status line and
	 * what keygate adds): one reservation, then inline copies */
	size_t need = 128 + u->status_len;

	if (!x)
		return -1;
	if (status < 100 || status > 599) {
		u->bad_why = "upstream sent an invalid response: status code out of range";
		return -1;
	}
	for (size_t i = 0; i < u->nrh; i++) {
		/* A name must be a token and a value must hold no control byte
		 * but HTAB (no CR, LF or NUL: what keygate relays cannot split
		 * into more lines). llhttp (resp_settings, no lenient flags)
		 * already refuses every value byte that could, and every name
		 * byte but SP; kg_head_is_parsed_name_token checks the rest. */
		if (!kg_head_is_parsed_name_token(rh_name(u, i))) {
			u->bad_why = "upstream sent an invalid response: malformed header field";
			return -1;
		}
		rh_trim(&u->rh[i], u->rhead);
		need += u->rh[i].name_len + u->rh[i].value_len + 4;
		ids[i] = (unsigned char)kg_head_name_id(rh_name(u, i));
		if (ids[i] == KG_HEAD_NAME_CONNECTION)
			connection = rh_value(u, i);
	}

	bool is_switch = status == 101;
	if (is_switch && !x->req.is_upgrade) {
		u->bad_why = "upstream switched protocols without being asked";
		return -1;
	}
	bool client11 = x->req.is_http11;
	u->is_interim = status < 200 && !is_switch;
	if (u->is_interim) {
		if (++u->ninterim > KG_MAX_INTERIM) {
			u->bad_why = "upstream sent an invalid response: too many interim responses";
			return -1;
		}
		if (!client11)
			return 1; /* HTTP/1.0 has no interim responses: drop it */
	}
	/* RFC 9112 section 6.3: whatever its headers say, no body follows a 1xx,
	 * 204 or 304, or the answer to a HEAD. llhttp knows only the HEAD case
	 * (returning 1 says it), so a 204 with Content-Length would otherwise
	 * hand its next bytes to the client as a body. */
	bool no_body = x->req.is_head || status == 204 || status == 304 || status < 200;
	bool has_length = (p->flags & F_CONTENT_LENGTH) != 0 && !(p->flags & F_TRANSFER_ENCODING);
	if ((status < 200 || status == 204) &&
	    (((p->flags & F_CONTENT_LENGTH) && p->content_length > 0) || (p->flags & F_TRANSFER_ENCODING)))
		u->keep_alive = false; /* the upstream thinks a body follows: its next bytes are not an answer */
	if (no_body || is_switch)
		u->framing = KG_FRAME_NONE;
	else if (has_length)
		u->framing = KG_FRAME_PLAIN;
	else if (client11)
		u->framing = KG_FRAME_CHUNKED; /* chunked or close-delimited upstream: we frame it */
	else
		u->framing = KG_FRAME_PLAIN; /* an HTTP/1.0 client reads to the close */
	if (!u->is_interim && !is_switch && !(p->flags & (F_CONTENT_LENGTH | F_CHUNKED)) && !no_body)
		u->keep_alive = false; /* close-delimited: the upstream connection ends with it */

	/* the client side learns of the final response (or the 101) and says
	 * whether its connection ends with it */
	bool is_last = false;
	if (!u->is_interim)
		is_last = x->sink.head(x->sink.ctx, status,
		                       !is_switch && !no_body && !has_length && !client11);
	kg_buf_clear(hb);
	kg_err err = kg_buf_reserve(hb, need);
	kg_str line = u->status_len ? KG_STR_NULL : kg__status_line(status);
	if (!err && line.n) {
		err = kg_buf_put(hb, line); /* made at compile time */
	} else if (!err) {
		/* the upstream's own reason phrase is kept */
		kg_str reason = u->status_len ? (kg_str){ u->rhead + u->status_off, u->status_len }
		                              : kg_str_c(kg__reason(status));
		char code[4] = { (char)('0' + status / 100), (char)('0' + status / 10 % 10), (char)('0' + status % 10),
			         ' ' }; /* 100..599, checked above */
		err = kg_buf_put(hb, KG_STR("HTTP/1.1 "));
		if (!err)
			err = kg_buf_put(hb, (kg_str){ code, 4 });
		if (!err)
			err = kg_buf_put(hb, reason);
		if (!err)
			err = kg_buf_put(hb, KG_STR("\r\n"));
	}
	for (size_t i = 0; i < u->nrh && !err; i++) {
		kg_str name = rh_name(u, i);
		if (is_framing(ids[i]) || kg_head_name_is_hop_by_hop(ids[i]) ||
		    (connection.n && kg_head_is_hop_by_hop_id(ids[i], name, connection)))
			continue;
		err = put_field(hb, name, rh_value(u, i));
	}
	if (!err && is_switch) {
		for (size_t i = 0; i < u->nrh && !err; i++)
			if (ids[i] == KG_HEAD_NAME_UPGRADE) {
				err = kg_buf_put(hb, KG_STR("Upgrade: "));
				if (!err)
					err = kg_buf_put(hb, rh_value(u, i));
				if (!err)
					err = kg_buf_put(hb, KG_STR("\r\n"));
			}
		if (!err)
			err = kg_buf_put(hb, KG_STR("Connection: upgrade\r\n"));
	}
	/* a 304 and the answer to a HEAD keep Content-Length as metadata (the
	 * size a GET would get); a 1xx or 204 has none */
	if (!err && has_length && status >= 200 && status != 204) {
		char digits[KG_U64_DEC_MAX];
		err = kg_buf_put(hb, KG_STR("Content-Length: "));
		if (!err)
			err = kg_buf_put(hb, kg_u64_dec(p->content_length, digits));
		if (!err)
			err = kg_buf_put(hb, KG_STR("\r\n"));
	}
	if (!err && u->framing == KG_FRAME_CHUNKED)
		err = kg_buf_put(hb, KG_STR("Transfer-Encoding: chunked\r\n"));
	if (!err && !u->is_interim && !is_switch && is_last)
		err = kg_buf_put(hb, KG_STR("Connection: close\r\n"));
	if (!err)
		err = kg_buf_put(hb, KG_STR("\r\n"));
	if (err)
		return -1;
	u->has_head_pending = true;
	if (u->is_interim && !client_write(x, u, NULL, 0)) /* a 100 Continue goes at once */
		return -1;
	if (is_switch)
		return 2;
	return no_body ? 1 : 0;
}

static int r_body(llhttp_t *p, const char *at, size_t len)
{
	struct kg_upconn *u = p->data;
	struct kg_proxy *x = u->p;
	if (!x)
		return -1;
	if (u->framing == KG_FRAME_CHUNKED) {
		char hdr[24];
		int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
		uv_buf_t b[3] = { uv_buf_init(hdr, (unsigned)n), uv_buf_init((char *)at, (unsigned)len),
			          uv_buf_init("\r\n", 2) };
		return client_write(x, u, b, 3) ? 0 : -1;
	}
	uv_buf_t b = uv_buf_init((char *)at, (unsigned)len);
	return client_write(x, u, &b, 1) ? 0 : -1;
}

static int r_message_complete(llhttp_t *p)
{
	struct kg_upconn *u = p->data;
	if (u->is_interim)
		return 0; /* a 100 Continue: the real response follows */
	if (p->status_code == 101)
		return 0; /* llhttp goes on to return HPE_PAUSED_UPGRADE: a tunnel, not an end */
	u->is_done = true;
	return HPE_PAUSED;
}

static void response_finished(struct kg_upconn *u)
{
	struct kg_proxy *p = u->p;
	bool reuse = u->keep_alive && llhttp_should_keep_alive(&u->parser) && p && p->req.is_complete &&
	             u->write_queued == 0;
	int64_t pool_size = p ? p->req.rt->cfg->pool_size : 0;

	kg_wheel_clear(&u->deadline);
	if (!p) {
		up_close(u);
		return;
	}
	uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
	if (!client_write(p, u, &b, u->framing == KG_FRAME_CHUNKED ? 1 : 0))
		return; /* the client went away meanwhile */
	struct kg_proxy_sink sink = p->sink;
	exchange_end(p);
	if (reuse)
		pool_put(u, pool_size);
	else
		up_close(u);
	sink.done(sink.ctx);
}

static void start_tunnel(struct kg_upconn *u, const char *rest, size_t len)
{
	struct kg_proxy *p = u->p;
	u->is_tunnel = true;
	kg_wheel_clear(&u->deadline);
	p->sink.tunnel(p->sink.ctx);
	uv_buf_t b = uv_buf_init((char *)rest, (unsigned)len);
	if (!client_write(p, u, &b, len ? 1 : 0)) /* the 101 head, and what followed it */
		return;
	p->is_client_paused = false;
	p->sink.resume_reading(p->sink.ctx);
}

/* What the upstream said (plaintext for an https one), or nread < 0: its
 * end or a failure. */
static void up_on_data(struct kg_upconn *u, ssize_t nread, const char *data)
{
	struct kg_proxy *p = u->p;

	if (u->is_closing)
		return;
	if (!p) {
		up_close(u);
		return;
	}
	if (nread < 0) {
		if (u->is_tunnel) {
			fail(p, 502, "upstream closed the tunnel"); /* the client's connection closes too */
			return;
		}
		if (nread == UV_EOF && u->got_bytes && llhttp_message_needs_eof(&u->parser)) {
			llhttp_finish(&u->parser);
			if (u->is_done) {
				response_finished(u);
				return;
			}
		}
		if (!u->got_bytes && try_retry(p, u))
			return;
		kg_debug("upstream read failed: %s", uv_strerror((int)nread));
		fail(p, 502, "upstream closed the connection before the response was complete");
		return;
	}
	u->got_bytes = true;
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)nread);
	if (u->is_tunnel) {
		client_write(p, u, &b, 1);
		return;
	}
	/* until the response is complete, the upstream may not fall silent for
	 * longer than proxy.upstream_timeout while keygate is reading from it
	 * (response_finished and start_tunnel stop the clock) */
	up_clock(u, p);
	llhttp_errno_t e = llhttp_execute(&u->parser, b.base, b.len);
	if (u->is_closing || !u->p)
		return;
	if (e == HPE_PAUSED_UPGRADE) {
		size_t used = (size_t)(llhttp_get_error_pos(&u->parser) - b.base);
		start_tunnel(u, b.base + used, b.len - used);
		return;
	}
	if (e == HPE_PAUSED) {
		size_t used = (size_t)(llhttp_get_error_pos(&u->parser) - b.base);
		if (used < b.len)
			u->keep_alive = false; /* bytes after the response: not a connection to reuse */
		response_finished(u);
		return;
	}
	if (e != HPE_OK) {
		kg_warn("upstream sent an invalid response: %s",
		        u->bad_why ? u->bad_why : llhttp_get_error_reason(&u->parser));
		fail(p, 502, u->bad_why ? u->bad_why : "upstream sent an invalid response");
	}
}

static void send_request(struct kg_proxy *p, struct kg_upconn *u);

/* The TLS handshake with the upstream failed (or the upstream left during
 * it): a 502 saying why, and a log line naming the upstream and OpenSSL's
 * reason (the certificate verification's when it refused the certificate). */
static void up_tls_failed(struct kg_upconn *u, const char *reason)
{
	struct kg_proxy *p = u->p;
	if (!p) {
		up_close(u);
		return;
	}
	kg_warn("upstream %s: TLS handshake failed: %s", p->req.rt->up_hostport, reason);
	fail(p, 502, tls_message(p, "upstream TLS handshake failed: ", reason));
}

/* Ciphertext from an https upstream: fed to its session and decrypted at
 * once (no more plaintext than the ciphertext just read, as a plain read);
 * the plaintext goes to up_on_data. The handshake advances here too, and
 * the request goes out when it ends. */
static void up_tls_read(struct kg_upconn *u, const char *cipher, size_t len)
{
	if (kg__tls_feed(u->tls, cipher, len) != KG_OK) {
		up_on_data(u, UV_ENOMEM, NULL);
		return;
	}
	/* cipher was w->ubuf, copied into the session: the plaintext goes there */
	char *plain = u->w->ubuf;
	for (;;) {
		ssize_t n = kg__tls_read(u->tls, plain, sizeof(u->w->ubuf));
		if (n > 0) {
			up_on_data(u, n, plain);
			if (u->is_closing)
				return;
			continue;
		}
		int r = up_tls_flush(u);
		if (u->is_closing)
			return;
		if (n == KG_TLS_ERROR) {
			if (!u->is_connected) {
				up_tls_failed(u, kg__tls_verify_error(u->tls));
				return;
			}
			kg_warn("upstream %s: TLS session failed: %s", u->p ? u->p->req.rt->up_hostport : "(pooled)",
			        kg__tls_error(u->tls));
			if (u->p && !u->got_bytes) {
				/* not a stale connection: the upstream refused the session
				 * (a client certificate it does not accept, say) */
				fail(u->p, 502, tls_message(u->p, "upstream TLS session failed: ", kg__tls_error(u->tls)));
				return;
			}
			up_on_data(u, UV_EPROTO, NULL);
			return;
		}
		if (n == KG_TLS_CLOSED) {
			if (!u->is_connected)
				up_tls_failed(u, "the upstream closed the connection during the handshake");
			else
				up_on_data(u, UV_EOF, NULL);
			return;
		}
		if (r < 0) {
			up_write_failed(u, r);
			return;
		}
		break; /* KG_TLS_AGAIN */
	}
	if (!u->is_connected && kg__tls_is_established(u->tls) && u->p) {
		/* TCP connect and handshake are both proxy.connect_timeout's */
		kg_wheel_clear(&u->deadline);
		u->is_connected = true;
		send_request(u->p, u);
	}
}

static void up_data(struct kg_upconn *u, ssize_t nread, const char *data)
{
	if (nread == 0 || u->is_closing)
		return;
	if (u->tls && nread > 0) {
		up_tls_read(u, data, (size_t)nread);
		return;
	}
	if (u->tls && !u->is_connected && u->p) {
		up_tls_failed(u, nread == UV_EOF ? "the upstream closed the connection during the handshake"
		                                 : uv_strerror((int)nread));
		return;
	}
	up_on_data(u, nread, data);
}

static bool on_up_data(uv_stream_t *s, ssize_t nread, const char *data)
{
	struct kg_upconn *u = s->data;
	up_data(u, nread, data);
	return u->is_reading && !u->is_closing;
}

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct kg_upconn *u = s->data;
	kg__stream_on_read(s, nread, buf, u->w->ubuf, sizeof(u->w->ubuf), on_up_data);
}

static void up_read_start(struct kg_upconn *u)
{
	if (u->is_reading || u->is_closing)
		return;
	if (uv_read_start((uv_stream_t *)&u->tcp, kg__stream_no_buffer, on_up_read) == 0)
		u->is_reading = true;
}

static void on_up_timeout(kg_deadline *d)
{
	struct kg_upconn *u = up_of_deadline(d);
	struct kg_proxy *p = u->p;
	if (!p) {
		up_close(u);
		return;
	}
	kg_str m = p->req.method, path = p->req.path;
	if (!u->is_connected && u->tls) {
		kg_warn("upstream %s: connect timed out (the TLS handshake did not finish)", p->req.rt->up_hostport);
		fail(p, 504, "upstream timed out: no TLS connection within proxy.connect_timeout");
	} else if (!u->is_connected) {
		kg_warn("upstream connect timed out");
		fail(p, 504, "upstream timed out: no connection within proxy.connect_timeout");
	} else if (u->got_bytes) {
		kg_warn("upstream fell silent in the middle of the response to %.*s %.*s", (int)m.n, m.p, (int)path.n,
		        path.p);
		fail(p, 504, "upstream timed out in the middle of its response");
	} else if (!p->req.is_complete) {
		kg_warn("upstream stopped taking the body of %.*s %.*s", (int)m.n, m.p, (int)path.n, path.p);
		fail(p, 504, "upstream timed out: it stopped reading the request body");
	} else {
		kg_warn("upstream did not answer %.*s %.*s in time", (int)m.n, m.p, (int)path.n, path.p);
		fail(p, 504, "upstream timed out: no response within proxy.upstream_timeout");
	}
}

static void send_request(struct kg_proxy *p, struct kg_upconn *u)
{
	uv_buf_t b = uv_buf_init((char *)p->req.head.p, (unsigned)p->req.head.n);
	llhttp_init(&u->parser, HTTP_RESPONSE, &resp_settings);
	u->parser.data = u;
	u->got_bytes = u->is_done = u->is_interim = false;
	u->bad_why = NULL;
	u->ninterim = 0;
	u->keep_alive = true;
	u->is_read_paused = false;
	u->is_awaiting_response = false;
	up_read_start(u);
	if (!up_write(u, &b, 1))
		return; /* retried on a fresh connection, or failed */
	up_watch_request(u);
	if (p->u == u)
		p->sink.ready(p->sink.ctx);
}

/* The TCP connection to an https upstream is up: a client session with
 * SNI (a name, not an IP literal), the worker's last session to resume,
 * and the ClientHello. The handshake goes on in up_tls_read. */
static void up_tls_start(struct kg_proxy *p, struct kg_upconn *u)
{
	const struct kg_runtime *rt = p->req.rt;
	struct kg_worker *w = u->w;
	unsigned char a[sizeof(struct in6_addr)];

	if (kg__tls_conn_new(rt->up_tls, false, &u->tls) != KG_OK) {
		fail(p, 500, "out of memory");
		return;
	}
	SSL *ssl = kg__tls_ssl(u->tls);
	SSL_set_app_data(ssl, u); /* kg__proxy_tls_session finds the worker */
	bool is_ip = inet_pton(AF_INET, rt->up_host, a) == 1 || inet_pton(AF_INET6, rt->up_host, a) == 1;
	if (!is_ip && SSL_set_tlsext_host_name(ssl, rt->up_host) != 1) {
		fail(p, 500, "out of memory");
		return;
	}
	if (w->up_session && w->up_session_gen == u->gen)
		(void)SSL_set_session(ssl, w->up_session); /* a refused one: a full handshake */
	up_read_start(u);
	if (!u->is_reading) {
		fail(p, 502, "upstream unavailable: cannot read from the connection");
		return;
	}
	/* nothing to read yet: this writes the ClientHello */
	up_tls_read(u, NULL, 0);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct kg_upconn *u = req->data;
	struct kg_proxy *p = u->p;
	if (u->is_closing)
		return;
	if (!p) {
		up_close(u);
		return;
	}
	if (status < 0) {
		kg_wheel_clear(&u->deadline);
		kg_warn("upstream %s: connect failed: %s", p->req.rt->up_hostport, uv_strerror(status));
		fail(p, 502, status == UV_ECONNREFUSED ? "upstream unavailable: connection refused"
		                                       : "upstream unavailable: connect failed");
		return;
	}
	uv_tcp_nodelay(&u->tcp, 1);
	if (p->req.rt->up_tls) {
		up_tls_start(p, u); /* the connect timer runs on through the handshake */
		return;
	}
	kg_wheel_clear(&u->deadline);
	u->is_connected = true;
	send_request(p, u);
}

static void start_exchange(struct kg_proxy *p, struct kg_upconn *u)
{
	u->p = p;
	p->u = u;
	if (u->is_connected) {
		send_request(p, u);
		return;
	}
	const struct kg_runtime *rt = p->req.rt;
	u->connect.data = u;
	kg__deadline_set(u->w, &u->deadline, rt->cfg->connect_timeout_ms, on_up_timeout);
	int r = uv_tcp_connect(&u->connect, &u->tcp, (const struct sockaddr *)&rt->up_addr, on_connect);
	if (r < 0) {
		kg_warn("upstream %s: connect failed: %s", rt->up_hostport, uv_strerror(r));
		fail(p, 502, "upstream unavailable: connect failed");
	}
}

void kg__proxy_start(const struct kg_proxy_request *req, const struct kg_proxy_sink *sink, struct kg_proxy **out)
{
	struct kg_proxy *p = kg_arena_alloc(req->arena, sizeof(*p));
	*out = p;
	if (!p) {
		sink->error(sink->ctx, 500, "out of memory", true);
		return;
	}
	*p = (struct kg_proxy){ .req = *req, .sink = *sink };
	struct kg_upconn *u = pool_get(req->w, req->rt->gen);
	if (u) {
		u->is_reused = true;
	} else {
		u = up_new(req->w, req->rt->gen);
		if (!u) {
			fail(p, 500, "out of memory");
			return;
		}
	}
	start_exchange(p, u);
}

__attribute__((constructor)) static void init_resp_settings(void)
{
	llhttp_settings_init(&resp_settings);
	resp_settings.on_message_begin = r_message_begin;
	resp_settings.on_status = r_status;
	resp_settings.on_header_field = r_header_field;
	resp_settings.on_header_value = r_header_value;
	resp_settings.on_headers_complete = r_headers_complete;
	resp_settings.on_body = r_body;
	resp_settings.on_message_complete = r_message_complete;
}
