/* stream.h - what the client side (http.c) and the upstream side (proxy.c)
 * share to speak HTTP on a socket (stream.c): one write path and its
 * backpressure threshold, the reason phrases, and a header kept as offsets
 * into its head buffer. */
#ifndef KG_STREAM_H
#define KG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* Writing: send(2), or sendmsg(2) for several buffers, with MSG_NOSIGNAL
 * straight on the socket while nothing is queued (the common case: one send
 * per response, and a peer gone mid-write is an EPIPE for that connection,
 * never a SIGPIPE); only what the kernel did not take is copied into one
 * libuv write request, and later writes queue behind it until it is out.
 * cb must subtract wr->len from *queued and free the request. s: a TCP
 * stream. */
struct kg_wreq {
	uv_write_t req;
	void *owner;
	size_t len;
	char data[];
};
int kg__stream_write(uv_stream_t *s, uv_buf_t *bufs, unsigned nbufs, void *owner, size_t *queued, uv_write_cb cb);

/* Reading: libuv says when the socket is readable and keygate reads it with
 * recv(2) itself, not libuv with read(2) (the heavier file path). Give
 * kg__stream_no_buffer to uv_read_start as its alloc callback: libuv then
 * reads nothing and calls the read callback with UV_ENOBUFS (its documented
 * answer to a zero-length buffer), which hands the stream to
 * kg__stream_recv. Everything else (the poll, the write queue, shutdown,
 * connect, close) stays libuv's: no descriptor is watched twice and no
 * syscall is added per connection. */
void kg__stream_no_buffer(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
/* What one recv brought: nread > 0 bytes at data (valid until it returns),
 * or UV_EOF or an error. Returns true while the stream is still read (not
 * stopped, not closing): only then does kg__stream_recv read again. */
typedef bool (*kg_stream_data_cb)(uv_stream_t *s, ssize_t nread, const char *data);
/* recv(2) into buf (cap bytes) and each read to cb; again while the buffer
 * came back full and cb says it still reads, at most 32 times (as libuv
 * reads a stream, so one busy socket cannot starve the others). */
void kg__stream_recv(uv_stream_t *s, char *buf, size_t cap, kg_stream_data_cb cb);
/* The read callback's body for such a stream: UV_ENOBUFS (readable) reads
 * it with kg__stream_recv into buf; anything else (UV_EOF, an error) goes
 * to cb as libuv gave it. */
void kg__stream_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b, char *buf, size_t cap,
                        kg_stream_data_cb cb);

/* The reason phrase keygate writes for status ("Unknown" when it has none). */
const char *kg__reason(int status);
/* "HTTP/1.1 <status> <reason>\r\n" made at compile time for each status
 * kg__reason has a phrase for (no formatting per response); KG_STR_NULL
 * for any other status. */
kg_str kg__status_line(int status);

#endif
