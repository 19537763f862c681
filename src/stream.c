/* stream.c - the socket layer both sides of the proxy use: a uv_poll_t on a
 * descriptor keygate owns, recv(2) and send(2)/sendmsg(2) with MSG_NOSIGNAL
 * on it. libuv's TCP streams would do read(2)/write(2)/writev(2), the
 * heavier file path, and keep a write request per write; here a write goes
 * straight to the kernel when nothing is queued (the common case: one send
 * per response) and only what the kernel did not take is copied into the
 * queue, which drains when the socket is writable again. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "stream.h"

/* uv_buf_t is laid out as struct iovec on unix (libuv says so); sendmsg
 * takes the caller's buffers as they are */
_Static_assert(sizeof(uv_buf_t) == sizeof(struct iovec) && offsetof(uv_buf_t, base) == offsetof(struct iovec, iov_base) &&
                       offsetof(uv_buf_t, len) == offsetof(struct iovec, iov_len),
               "uv_buf_t is not a struct iovec");

/* bytes the kernel did not take at once, sent in order from off */
struct kg_wchunk {
	struct kg_wchunk *next;
	size_t len, off;
	char data[];
};

/* as libuv reads a stream: again while the buffer came back full, at most
 * this many times per readiness event, so one busy socket cannot starve the
 * others */
#define KG_READS_PER_EVENT 32

static void sock_on_poll(uv_poll_t *h, int status, int events);

/* Makes the poll watch what s needs now. */
static void sock_update(struct kg_sock *s)
{
	if (s->is_closing)
		return;
	int want = (s->on_read ? UV_READABLE : 0) | (s->wq_head || s->on_connect ? UV_WRITABLE : 0);
	if (want == s->events)
		return;
	s->events = want;
	if (want)
		uv_poll_start(&s->poll, want, sock_on_poll);
	else
		uv_poll_stop(&s->poll);
}

int kg__sock_socket(const struct sockaddr *addr)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return fd < 0 ? uv_translate_sys_error(errno) : fd;
}

int kg__sock_open(uv_loop_t *loop, struct kg_sock *s, int fd, void *data, char *rbuf, size_t rbuf_len,
                  kg_sock_write_cb on_write)
{
	*s = (struct kg_sock){ .data = data, .fd = fd, .rbuf = rbuf, .rbuf_len = rbuf_len, .on_write = on_write };
	int r = uv_poll_init_socket(loop, &s->poll, fd);
	if (r < 0) {
		close(fd);
		s->fd = -1;
		return r;
	}
	s->poll.data = s;
	/* requests and responses go out whole: no Nagle delay on the last segment */
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

int kg__sock_connect(struct kg_sock *s, const struct sockaddr *addr, socklen_t len, kg_sock_status_cb cb)
{
	int r;
	do
		r = connect(s->fd, addr, len);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno != EINPROGRESS)
		return uv_translate_sys_error(errno);
	/* done or under way: either way the answer comes from the loop, when
	 * the socket turns writable (SO_ERROR says how it went) */
	s->on_connect = cb;
	sock_update(s);
	return 0;
}

void kg__sock_read_start(struct kg_sock *s, kg_sock_read_cb cb)
{
	s->on_read = cb;
	sock_update(s);
}

void kg__sock_read_stop(struct kg_sock *s)
{
	s->on_read = NULL;
	sock_update(s);
}

static void queue_free(struct kg_sock *s)
{
	struct kg_wchunk *q = s->wq_head;
	while (q) {
		struct kg_wchunk *next = q->next;
		free(q);
		q = next;
	}
	s->wq_head = s->wq_tail = NULL;
	s->queued = 0;
}

/* One send of bufs: bytes sent (0: the kernel took nothing, EAGAIN) or a
 * libuv error code. */
static ssize_t sock_send(int fd, const uv_buf_t *bufs, unsigned nbufs)
{
	ssize_t n;
	do {
		if (nbufs == 1) {
			n = send(fd, bufs[0].base, bufs[0].len, MSG_NOSIGNAL);
		} else {
			struct msghdr m = { .msg_iov = (struct iovec *)bufs, .msg_iovlen = nbufs };
			n = sendmsg(fd, &m, MSG_NOSIGNAL);
		}
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : uv_translate_sys_error(errno);
	return n;
}

int kg__sock_write(struct kg_sock *s, const uv_buf_t *bufs, unsigned nbufs)
{
	size_t total = 0, done = 0;
	for (unsigned i = 0; i < nbufs; i++)
		total += bufs[i].len;
	if (total == 0 || s->is_closing)
		return 0;
	if (!s->wq_head) {
		ssize_t r = sock_send(s->fd, bufs, nbufs);
		if (r < 0)
			return (int)r;
		done = (size_t)r;
		if (done == total)
			return 0;
	}
	struct kg_wchunk *q = malloc(sizeof(*q) + (total - done));
	if (!q)
		return UV_ENOMEM;
	q->next = NULL;
	q->len = total - done;
	q->off = 0;
	size_t off = 0, skip = done;
	for (unsigned i = 0; i < nbufs; i++) {
		size_t n = bufs[i].len;
		if (skip >= n) {
			skip -= n;
			continue;
		}
		memcpy(q->data + off, bufs[i].base + skip, n - skip);
		off += n - skip;
		skip = 0;
	}
	if (s->wq_tail)
		s->wq_tail->next = q;
	else
		s->wq_head = q;
	s->wq_tail = q;
	s->queued += q->len;
	sock_update(s);
	return 0;
}

void kg__sock_try_write(struct kg_sock *s, const uv_buf_t *bufs, unsigned nbufs)
{
	if (!s->wq_head && !s->is_closing)
		(void)sock_send(s->fd, bufs, nbufs);
}

static void sock_fin(struct kg_sock *s)
{
	kg_sock_status_cb cb = s->on_shutdown;
	s->on_shutdown = NULL;
	int r = shutdown(s->fd, SHUT_WR);
	cb(s, r < 0 ? uv_translate_sys_error(errno) : 0);
}

void kg__sock_shutdown(struct kg_sock *s, kg_sock_status_cb cb)
{
	if (s->is_closing)
		return;
	s->on_shutdown = cb;
	if (!s->wq_head)
		sock_fin(s);
}

/* The socket is writable: the queue goes out as far as the kernel takes it. */
static void sock_flush(struct kg_sock *s)
{
	size_t before = s->queued;
	int err = 0;
	while (s->wq_head) {
		struct kg_wchunk *q = s->wq_head;
		uv_buf_t b = uv_buf_init(q->data + q->off, (unsigned)(q->len - q->off));
		ssize_t r = sock_send(s->fd, &b, 1);
		if (r < 0) {
			err = (int)r;
			break;
		}
		q->off += (size_t)r;
		s->queued -= (size_t)r;
		if (q->off < q->len)
			break; /* the kernel is full again */
		s->wq_head = q->next;
		if (!s->wq_head)
			s->wq_tail = NULL;
		free(q);
	}
	if (err) {
		queue_free(s); /* it can never be sent */
		s->on_shutdown = NULL;
		sock_update(s);
		s->on_write(s, err);
		return;
	}
	sock_update(s);
	if (s->queued != before)
		s->on_write(s, 0);
	if (!s->is_closing && !s->wq_head && s->on_shutdown)
		sock_fin(s);
}

/* The socket is readable (or has an error or the peer's end to report). */
static void sock_read(struct kg_sock *s)
{
	for (int i = 0; i < KG_READS_PER_EVENT && s->on_read && !s->is_closing; i++) {
		ssize_t n;
		do
			n = recv(s->fd, s->rbuf, s->rbuf_len, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			s->on_read(s, uv_translate_sys_error(errno), NULL);
			return;
		}
		if (n == 0) {
			s->on_read(s, UV_EOF, NULL);
			return;
		}
		s->on_read(s, n, s->rbuf);
		if ((size_t)n < s->rbuf_len)
			return; /* the kernel had no more */
	}
}

static void sock_connected(struct kg_sock *s)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	kg_sock_status_cb cb = s->on_connect;
	s->on_connect = NULL;
	sock_update(s);
	cb(s, err ? uv_translate_sys_error(err) : 0);
}

static void sock_on_poll(uv_poll_t *h, int status, int events)
{
	struct kg_sock *s = h->data;
	if (status < 0) {
		/* libuv stopped the poll on POLLERR: the socket's error is for
		 * whoever waits on it, which the calls below fetch (recv and send
		 * return it, a connect reads SO_ERROR); the poll starts again with
		 * the next change */
		s->events = 0;
		events = UV_READABLE | UV_WRITABLE;
	}
	if (s->on_connect) {
		if (events & UV_WRITABLE)
			sock_connected(s);
		return;
	}
	/* a read error is reported first, as libuv does: the owner closes and
	 * the queued writes die with the connection */
	if ((events & UV_READABLE) && s->on_read)
		sock_read(s);
	if ((events & UV_WRITABLE) && s->wq_head && !s->is_closing)
		sock_flush(s);
	sock_update(s);
}

static void sock_on_closed(uv_handle_t *h)
{
	struct kg_sock *s = h->data;
	/* libuv no longer watches the descriptor: it can be closed (and its
	 * number reused) now, not before */
	close(s->fd);
	s->fd = -1;
	s->on_close(s);
}

void kg__sock_close(struct kg_sock *s, kg_sock_close_cb cb)
{
	if (s->is_closing)
		return;
	s->is_closing = true;
	queue_free(s);
	s->on_read = NULL;
	s->on_connect = s->on_shutdown = NULL;
	s->on_close = cb;
	uv_close((uv_handle_t *)&s->poll, sock_on_closed);
}

/* The statuses keygate has a reason phrase for. */
#define KG_STATUS_LIST(X) \
	X(100, "Continue") \
	X(101, "Switching Protocols") \
	X(200, "OK") \
	X(201, "Created") \
	X(204, "No Content") \
	X(304, "Not Modified") \
	X(400, "Bad Request") \
	X(401, "Unauthorized") \
	X(403, "Forbidden") \
	X(404, "Not Found") \
	X(405, "Method Not Allowed") \
	X(408, "Request Timeout") \
	X(413, "Content Too Large") \
	X(414, "URI Too Long") \
	X(415, "Unsupported Media Type") \
	X(429, "Too Many Requests") \
	X(431, "Request Header Fields Too Large") \
	X(500, "Internal Server Error") \
	X(502, "Bad Gateway") \
	X(503, "Service Unavailable") \
	X(504, "Gateway Timeout") \
	X(505, "HTTP Version Not Supported")

const char *kg__reason(int status)
{
	switch (status) {
#define X(code, reason) case code: return reason;
	KG_STATUS_LIST(X)
#undef X
	default: return "Unknown";
	}
}

kg_str kg__status_line(int status)
{
	switch (status) {
#define X(code, reason) case code: return KG_STR("HTTP/1.1 " #code " " reason "\r\n");
	KG_STATUS_LIST(X)
#undef X
	default: return KG_STR_NULL;
	}
}
