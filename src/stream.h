/* stream.h - what the client side (http.c) and the upstream side (proxy.c)
 * share to speak HTTP on a socket (stream.c): one write path and its
 * backpressure threshold, the reason phrases, and a header kept as offsets
 * into its head buffer. */
#ifndef KG_STREAM_H
#define KG_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "keygate/str.h"

/* Above this many bytes queued towards a peer, keygate stops reading from
 * the other side until the queue drains: memory stays flat whatever the
 * body size. */
#define KG_HIGH_WATER (256 * 1024)

/* A header of a head kept in a buffer (a client's request, an upstream's
 * response), as offsets into that buffer. */
struct kg_header {
	uint32_t name_off, name_len, value_off, value_len;
};

/* A write that copies only what the kernel did not take at once. cb must
 * subtract wr->len from *queued and free the request. */
struct kg_wreq {
	uv_write_t req;
	void *owner;
	size_t len;
	char data[];
};
int kg__stream_write(uv_stream_t *s, uv_buf_t *bufs, unsigned nbufs, void *owner, size_t *queued, uv_write_cb cb);

/* The reason phrase keygate writes for status ("Unknown" when it has none). */
const char *kg__reason(int status);
/* "HTTP/1.1 <status> <reason>\r\n" made at compile time for each status
 * kg__reason has a phrase for (no formatting per response); KG_STR_NULL
 * for any other status. */
kg_str kg__status_line(int status);

#endif
