/* stream.c - reading and writing a libuv TCP stream with the socket calls:
 * recv(2) when libuv says it is readable, send(2)/sendmsg(2) with
 * MSG_NOSIGNAL while nothing is queued (libuv's own read(2), write(2) and
 * writev(2) take the heavier file path), and only what the kernel did not
 * take copied into one libuv write request. The caller counts the queued
 * bytes for its backpressure. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "stream.h"

/* uv_buf_t is laid out as struct iovec on unix (libuv says so): sendmsg
 * takes the caller's buffers as they are */
_Static_assert(sizeof(uv_buf_t) == sizeof(struct iovec) && offsetof(uv_buf_t, base) == offsetof(struct iovec, iov_base) &&
                       offsetof(uv_buf_t, len) == offsetof(struct iovec, iov_len),
               "uv_buf_t is not a struct iovec");

/* The socket calls go through syscall(2), not glibc's recv/send/sendmsg:
 * those are cancellation points, and in a process with more than one thread
 * glibc wraps each in two atomic updates of the thread's cancellation state
 * (__pthread_enable/disable_asynccancel: about 0.19 us of a 10 us proxied
 * request in perf on the benchmark machine). keygate never cancels a
 * thread, so the wrapper buys nothing. Same calls, same errno. */
static ssize_t sys_recv(int fd, void *buf, size_t len)
{
	return syscall(SYS_recvfrom, fd, buf, len, 0, NULL, NULL);
}

static ssize_t sys_send(int fd, const void *buf, size_t len)
{
	return syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, NULL, 0);
}

static ssize_t sys_sendmsg(int fd, const struct msghdr *m)
{
	return syscall(SYS_sendmsg, fd, m, MSG_NOSIGNAL);
}

/* as libuv reads a stream: again while the buffer came back full, at most
 * this many times per readiness event */
#define KG_READS_PER_EVENT 32

void kg__stream_no_buffer(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(NULL, 0);
}

/* s's descriptor, -1 once it is closed: what uv_fileno answers, read where
 * libuv keeps it on unix (as uv_accept reads accepted_fd), not through a
 * call and its checks on every recv and send */
static int stream_fd(const uv_stream_t *s)
{
	return s->io_watcher.fd;
}

void kg__stream_recv(uv_stream_t *s, char *buf, size_t cap, kg_stream_data_cb cb)
{
	int fd = stream_fd(s);
	if (fd < 0)
		return;
	for (int i = 0; i < KG_READS_PER_EVENT; i++) {
		ssize_t n;
		do
			n = sys_recv(fd, buf, cap);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				cb(s, uv_translate_sys_error(errno), NULL);
			return;
		}
		if (n == 0) {
			cb(s, UV_EOF, NULL);
			return;
		}
		/* a short read: the kernel had no more; a stopped or closed stream
		 * (libuv closes a stream's descriptor in uv_close) is not read again */
		if (!cb(s, n, buf) || (size_t)n < cap)
			return;
	}
}

void kg__stream_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b, char *buf, size_t cap,
                        kg_stream_data_cb cb)
{
	if (nread == UV_ENOBUFS)
		kg__stream_recv(s, buf, cap, cb);
	else
		cb(s, nread, b ? b->base : NULL);
}

/* One send of bufs with nothing queued: bytes sent (0: the kernel took
 * nothing, EAGAIN), or a libuv error code. */
static ssize_t stream_send(uv_stream_t *s, const uv_buf_t *bufs, unsigned nbufs)
{
	int fd = stream_fd(s);
	if (fd < 0)
		return UV_EBADF;
	ssize_t n;
	do {
		if (nbufs == 1) {
			n = sys_send(fd, bufs[0].base, bufs[0].len);
		} else {
			struct msghdr m = { .msg_iov = (struct iovec *)bufs, .msg_iovlen = nbufs };
			n = sys_sendmsg(fd, &m);
		}
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : uv_translate_sys_error(errno);
	return n;
}

int kg__stream_write(uv_stream_t *s, uv_buf_t *bufs, unsigned nbufs, void *owner, size_t *queued, uv_write_cb cb)
{
	size_t total = 0, done = 0;
	for (unsigned i = 0; i < nbufs; i++)
		total += bufs[i].len;
	if (total == 0)
		return 0;
	/* while a write request is pending, a send would jump its queue */
	if (*queued == 0) {
		ssize_t r = stream_send(s, bufs, nbufs);
		if (r < 0)
			return (int)r;
		done = (size_t)r;
		if (done == total)
			return 0;
	}
	struct kg_wreq *wr = malloc(sizeof(*wr) + (total - done));
	if (!wr)
		return UV_ENOMEM;
	wr->owner = owner;
	wr->len = total - done;
	size_t off = 0, skip = done;
	for (unsigned i = 0; i < nbufs; i++) {
		size_t n = bufs[i].len;
		if (skip >= n) {
			skip -= n;
			continue;
		}
		memcpy(wr->data + off, bufs[i].base + skip, n - skip);
		off += n - skip;
		skip = 0;
	}
	uv_buf_t b = uv_buf_init(wr->data, (unsigned)wr->len);
	*queued += wr->len;
	int r = uv_write(&wr->req, s, &b, 1, cb);
	if (r < 0) {
		*queued -= wr->len;
		free(wr);
	}
	return r;
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
