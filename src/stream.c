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

const char *kg__reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
