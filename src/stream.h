/* stream.h - what the client side (http.c) and the upstream side (proxy.c)
 * share to speak HTTP on a socket (stream.c): the socket layer (reads,
 * writes and their queue, connect, shutdown, close), the backpressure
 * threshold, the reason phrases, and a header kept as offsets
 * into its head buffer. */
#ifndef KG_STREAM_H
#define KG_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
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

/* A connected TCP socket keygate reads and writes itself (stream.c): a
 * uv_poll_t on a descriptor it owns, recv(2) into the worker's buffer when
 * it is readable, send(2)/sendmsg(2) with MSG_NOSIGNAL straight away when
 * nothing is queued (a peer gone mid-write is an EPIPE for that connection,
 * never a SIGPIPE for the process), and only what the kernel did not take
 * copied into a queue that drains when the socket is writable again. The
 * poll watches exactly what is needed: readable while a read callback is
 * set, writable while bytes are queued or a connect is under way, so a
 * change costs libuv's epoll_ctl only when the set really changes. Embed it
 * in the connection; data is the connection. Errors are libuv codes
 * (UV_EOF, UV_ECONNRESET, UV_EPIPE...). */
struct kg_sock;
/* nread > 0 bytes at data (valid until the callback returns), or nread < 0:
 * UV_EOF or the error. */
typedef void (*kg_sock_read_cb)(struct kg_sock *s, ssize_t nread, const char *data);
/* Queued bytes went out (s->queued is what is left), or status < 0: the
 * write failed and the queue was dropped. */
typedef void (*kg_sock_write_cb)(struct kg_sock *s, int status);
/* connect finished (status 0) or failed; also the FIN after the queue
 * drained (kg__sock_shutdown) */
typedef void (*kg_sock_status_cb)(struct kg_sock *s, int status);
typedef void (*kg_sock_close_cb)(struct kg_sock *s);

struct kg_wchunk;
struct kg_sock {
	uv_poll_t poll;
	void *data;
	int fd;
	int events;                  /* what the poll watches now (UV_READABLE, UV_WRITABLE) */
	size_t queued;               /* bytes accepted by kg__sock_write and not yet sent */
	struct kg_wchunk *wq_head, *wq_tail;
	char *rbuf;                  /* where reads go (the worker's buffer) */
	size_t rbuf_len;
	kg_sock_read_cb on_read;     /* set while reading */
	kg_sock_write_cb on_write;
	kg_sock_status_cb on_connect; /* set while connecting */
	kg_sock_status_cb on_shutdown; /* set while a FIN waits for the queue */
	kg_sock_close_cb on_close;
	bool is_closing;
};

/* Takes fd (connected or about to connect, non-blocking): s watches it on
 * loop from now on and kg__sock_close closes it. On failure fd is closed
 * and s must not be closed (a libuv error code). */
int kg__sock_open(uv_loop_t *loop, struct kg_sock *s, int fd, void *data, char *rbuf, size_t rbuf_len,
                  kg_sock_write_cb on_write);
/* A non-blocking TCP socket for addr's family (not yet watched: give it to
 * kg__sock_open): the descriptor or a libuv error code. */
int kg__sock_socket(const struct sockaddr *addr);
/* Starts connecting to addr; cb follows from the loop. A libuv error code
 * when it failed at once. */
int kg__sock_connect(struct kg_sock *s, const struct sockaddr *addr, socklen_t len, kg_sock_status_cb cb);
void kg__sock_read_start(struct kg_sock *s, kg_sock_read_cb cb);
void kg__sock_read_stop(struct kg_sock *s);
/* Sends bufs, copying what the kernel did not take (after the queue, if
 * one waits: order is kept). 0, or a libuv error code (nothing queued). */
int kg__sock_write(struct kg_sock *s, const uv_buf_t *bufs, unsigned nbufs);
/* Sends bufs only if it goes out at once and nothing is queued (best
 * effort: a close_notify before a close). */
void kg__sock_try_write(struct kg_sock *s, const uv_buf_t *bufs, unsigned nbufs);
/* shutdown(SHUT_WR) once the queued bytes are out, then cb(s, status): at
 * once when nothing is queued. */
void kg__sock_shutdown(struct kg_sock *s, kg_sock_status_cb cb);
/* Stops everything, drops the queue, and closes the descriptor once libuv
 * lets go of it; cb then runs from the loop (free s's memory there). */
void kg__sock_close(struct kg_sock *s, kg_sock_close_cb cb);

/* The reason phrase keygate writes for status ("Unknown" when it has none). */
const char *kg__reason(int status);
/* "HTTP/1.1 <status> <reason>\r\n" made at compile time for each status
 * kg__reason has a phrase for (no formatting per response); KG_STR_NULL
 * for any other status. */
kg_str kg__status_line(int status);

#endif
