/* stream.c - writing to a libuv stream without copying in the common case:
 * uv_try_write first (it refuses to jump the queue while writes are
 * pending), and only what the kernel did not take is copied into one write
 * request. The caller counts the queued bytes for its backpressure. */
#include <stdlib.h>
#include <string.h>

#include "stream.h"

int kg__stream_write(uv_stream_t *s, uv_buf_t *bufs, unsigned nbufs, void *owner, size_t *queued, uv_write_cb cb)
{
	size_t total = 0, done = 0;
	for (unsigned i = 0; i < nbufs; i++)
		total += bufs[i].len;
	if (total == 0)
		return 0;
	if (*queued == 0) {
		int r = uv_try_write(s, bufs, nbufs);
		if (r < 0 && r != UV_EAGAIN)
			return r;
		if (r > 0)
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
