/* keygate-bench-uring: the io_uring experiment of issue 16 (item 6).
 *
 * One single-threaded HTTP/1.1 keep-alive proxy loop written twice with the
 * same user-space work, so that only the I/O interface differs:
 *   loop_epoll.c  epoll_wait + one recv and one send (MSG_NOSIGNAL) per
 *                 readable socket, as libuv does for keygate;
 *   loop_uring.c  io_uring: multishot accept, multishot recv into a provided
 *                 buffer ring, sends queued as SQEs and everything submitted
 *                 with one io_uring_enter per loop turn.
 * Each client connection gets its own upstream connection, opened when the
 * client is accepted and kept for the client's lifetime (the "pool" is one
 * connection per client). Bytes are forwarded as they arrive; the only
 * parsing is bp_frame's: where a head ends and how long its Content-Length
 * body is, which is what a proxy must know to keep a connection alive.
 * This is a benchmark, not a server: no timeouts, no limits beyond the head
 * cap, no chunked bodies (a message it cannot frame closes the connection). */
#ifndef BP_COMMON_H
#define BP_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the longest request or response head bp_frame keeps (the head is copied
 * as it streams by, to find Content-Length in it) */
#define BP_MAX_HEAD 8192
/* the largest Content-Length accepted (wrk and the upstream send far less) */
#define BP_MAX_BODY (64u << 20)

/* One direction of a connection: where its messages begin and end. */
struct bp_frame {
	uint64_t messages;  /* complete messages seen */
	uint64_t body_left; /* body bytes of the current message still to come */
	uint32_t head_len;  /* bytes of the current head kept in head[] */
	char head[BP_MAX_HEAD];
};

/* Observes n bytes of the stream; returns 0, or -1 if the stream cannot be
 * framed (head over BP_MAX_HEAD, Transfer-Encoding, a bad Content-Length). */
int bp_frame_feed(struct bp_frame *f, const char *p, size_t n);

/* Totals the loops print when they stop (SIGINT/SIGTERM). */
struct bp_stats {
	uint64_t requests, responses, accepted, closed;
};
extern struct bp_stats bp_stats;
extern volatile int bp_stop;

/* A listening socket on 127.0.0.1:port (non-blocking when nonblock). */
int bp_listen(int port, bool nonblock);
/* A connected TCP socket to 127.0.0.1:port, TCP_NODELAY, non-blocking when
 * nonblock. The connect is blocking: it happens once per client connection,
 * on loopback, in both loops alike. */
int bp_connect(int port, bool nonblock);
/* TCP_NODELAY on an accepted socket (keygate and nginx both set it). */
void bp_nodelay(int fd);
/* SIGINT/SIGTERM set bp_stop; SIGPIPE ignored. */
void bp_signals(void);
void bp_print_stats(const char *mode);

int bp_run_epoll(int listen_port, int upstream_port);
/* mode: "uring" (SINGLE_ISSUER | DEFER_TASKRUN), "uring-basic" (no setup
 * flags), "uring-sqpoll" (a kernel thread polls the submission queue) */
int bp_run_uring(const char *mode, int listen_port, int upstream_port);

#endif
