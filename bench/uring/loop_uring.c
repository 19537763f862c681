/* (b) the io_uring loop: the same proxy as loop_epoll.c with io_uring's
 * batching. One multishot accept and, per socket, one multishot recv stay
 * armed; the kernel picks a buffer for each receive from a provided buffer
 * ring, and the bytes are sent from that same buffer (no copy), which goes
 * back to the ring when its send completes. Sends are SQEs queued while the
 * completions are handled; everything queued is submitted, and the next
 * completions waited for, by one io_uring_enter per loop turn.
 * A socket has at most one send in flight (bytes stay in order); what
 * arrives meanwhile waits in the side's queue of buffers. */
#include "common.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CLIENT, UPSTREAM };
enum { OP_RECV = 1, OP_SEND = 2, OP_MASK = 3 };

#define BGID 0
#define NBUF 1024    /* buffers in the ring (a power of two) */
#define BUFSZ 16384  /* bytes per buffer */
#define QCAP 64      /* buffers queued for one socket: more closes it (a bench cap) */

struct conn;
struct side {
	struct conn *c;
	int fd, idx;
	struct bp_frame frame; /* what this side sends */
	/* buffers received from the other side, to send on this socket */
	struct {
		uint16_t bid;
		uint32_t off, len;
	} q[QCAP];
	unsigned qhead, qlen;
	bool is_sending;
	struct side *next_starved;
};
struct conn {
	struct side s[2];
	int inflight; /* operations whose last completion has not come */
	bool is_closing;
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static int returned; /* buffers added to the ring this turn, not yet published */
static struct side *starved; /* recv stopped for want of buffers */
static char accept_tag;

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	if (!sqe) { /* the SQ is full: submit what is there (rare) */
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
	}
	return sqe;
}

static void buf_return(uint16_t bid)
{
	io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSZ, BUFSZ, bid, io_uring_buf_ring_mask(NBUF), returned++);
}

static void arm_recv(struct side *s)
{
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)s | OP_RECV);
	s->c->inflight++;
}

static void send_next(struct side *t)
{
	struct io_uring_sqe *sqe = get_sqe();
	unsigned i = t->qhead;
	io_uring_prep_send(sqe, t->fd, bufs + (size_t)t->q[i].bid * BUFSZ + t->q[i].off, t->q[i].len - t->q[i].off,
			   MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)t | OP_SEND);
	t->is_sending = true;
	t->c->inflight++;
}

/* Stops a connection: shutdown makes its armed receives complete (with 0)
 * and a blocked send fail; it is freed when the last completion is in. */
static void conn_close(struct conn *c)
{
	if (c->is_closing)
		return;
	c->is_closing = true;
	shutdown(c->s[CLIENT].fd, SHUT_RDWR);
	shutdown(c->s[UPSTREAM].fd, SHUT_RDWR);
}

static void conn_maybe_free(struct conn *c)
{
	if (!c->is_closing || c->inflight > 0)
		return;
	for (int i = 0; i < 2; i++) {
		struct side *s = &c->s[i];
		for (; s->qlen > 0; s->qlen--, s->qhead = (s->qhead + 1) % QCAP)
			buf_return(s->q[s->qhead].bid);
		close(s->fd);
	}
	bp_stats.closed++;
	free(c);
}

static void on_accept(struct io_uring_cqe *cqe, int upstream_port)
{
	if (cqe->res < 0)
		return;
	int fd = cqe->res;
	int ufd = bp_connect(upstream_port, false);
	struct conn *c = ufd < 0 ? NULL : calloc(1, sizeof *c);
	if (!c) {
		if (ufd >= 0)
			close(ufd);
		close(fd);
		return;
	}
	bp_nodelay(fd);
	bp_stats.accepted++;
	c->s[CLIENT].c = c;
	c->s[CLIENT].fd = fd;
	c->s[CLIENT].idx = CLIENT;
	c->s[UPSTREAM].c = c;
	c->s[UPSTREAM].fd = ufd;
	c->s[UPSTREAM].idx = UPSTREAM;
	arm_recv(&c->s[CLIENT]);
	arm_recv(&c->s[UPSTREAM]);
}

static void on_recv(struct side *s, struct io_uring_cqe *cqe)
{
	struct conn *c = s->c;
	struct side *to = &c->s[!s->idx];
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (!more)
		c->inflight--;
	if (cqe->res == -ENOBUFS && !c->is_closing) {
		/* no buffer left: armed again once some come back (held as in
		 * flight meanwhile, so the connection is not freed under it) */
		c->inflight++;
		s->next_starved = starved;
		starved = s;
		return;
	}
	if (cqe->res <= 0) {
		conn_close(c);
		goto out;
	}
	uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	if (c->is_closing) {
		buf_return(bid);
		goto out;
	}
	const char *p = bufs + (size_t)bid * BUFSZ;
	uint64_t before = s->frame.messages;
	if (bp_frame_feed(&s->frame, p, (size_t)cqe->res) < 0 || to->qlen == QCAP) {
		buf_return(bid);
		conn_close(c);
		goto out;
	}
	*(s->idx == CLIENT ? &bp_stats.requests : &bp_stats.responses) += s->frame.messages - before;
	unsigned i = (to->qhead + to->qlen++) % QCAP;
	to->q[i].bid = bid;
	to->q[i].off = 0;
	to->q[i].len = (uint32_t)cqe->res;
	if (!to->is_sending)
		send_next(to);
	if (!more)
		arm_recv(s);
out:
	conn_maybe_free(c);
}

static void on_send(struct side *t, struct io_uring_cqe *cqe)
{
	struct conn *c = t->c;
	c->inflight--;
	t->is_sending = false;
	if (cqe->res < 0) {
		conn_close(c);
		goto out;
	}
	unsigned i = t->qhead;
	t->q[i].off += (uint32_t)cqe->res;
	if (t->q[i].off == t->q[i].len) {
		buf_return(t->q[i].bid);
		t->qhead = (t->qhead + 1) % QCAP;
		t->qlen--;
	}
	if (!c->is_closing && t->qlen > 0)
		send_next(t);
out:
	conn_maybe_free(c);
}

static int setup(const char *mode)
{
	struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE, .cq_entries = 16384};
	if (strcmp(mode, "uring") == 0)
		p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	else if (strcmp(mode, "uring-sqpoll") == 0) {
		p.flags |= IORING_SETUP_SQPOLL;
		p.sq_thread_idle = 100; /* ms of idling before the poller sleeps */
	} else if (strcmp(mode, "uring-basic") != 0) {
		fprintf(stderr, "unknown mode %s\n", mode);
		return -1;
	}
	int r = io_uring_queue_init_params(4096, &ring, &p);
	if (r < 0) {
		fprintf(stderr, "io_uring_queue_init_params (%s): %s\n", mode, strerror(-r));
		return -1;
	}
	io_uring_register_ring_fd(&ring); /* saves an fd lookup per enter; optional */

	size_t ring_bytes = NBUF * sizeof(struct io_uring_buf);
	if (posix_memalign((void **)&br, 4096, ring_bytes) || posix_memalign((void **)&bufs, 4096, (size_t)NBUF * BUFSZ)) {
		fprintf(stderr, "out of memory\n");
		return -1;
	}
	io_uring_buf_ring_init(br);
	struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = NBUF, .bgid = BGID};
	r = io_uring_register_buf_ring(&ring, &reg, 0);
	if (r < 0) {
		fprintf(stderr, "io_uring_register_buf_ring: %s\n", strerror(-r));
		return -1;
	}
	for (int i = 0; i < NBUF; i++)
		buf_return((uint16_t)i);
	io_uring_buf_ring_advance(br, returned);
	returned = 0;
	return 0;
}

int bp_run_uring(const char *mode, int listen_port, int upstream_port)
{
	int lfd = bp_listen(listen_port, false);
	if (lfd < 0) {
		perror("listen");
		return 1;
	}
	if (setup(mode) < 0)
		return 1;
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, &accept_tag);

	while (!bp_stop) {
		int r = io_uring_submit_and_wait(&ring, 1);
		if (r < 0 && r != -EINTR) {
			fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-r));
			return 1;
		}
		unsigned head, n = 0;
		struct io_uring_cqe *cqe;
		io_uring_for_each_cqe(&ring, head, cqe) {
			n++;
			void *data = io_uring_cqe_get_data(cqe);
			if (data == &accept_tag) {
				if (!(cqe->flags & IORING_CQE_F_MORE)) { /* it ended: again */
					struct io_uring_sqe *a = get_sqe();
					io_uring_prep_multishot_accept(a, lfd, NULL, NULL, SOCK_CLOEXEC);
					io_uring_sqe_set_data(a, &accept_tag);
				}
				on_accept(cqe, upstream_port);
				continue;
			}
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			struct side *s = (struct side *)(uintptr_t)(tag & ~(uint64_t)OP_MASK);
			if ((tag & OP_MASK) == OP_RECV)
				on_recv(s, cqe);
			else
				on_send(s, cqe);
		}
		io_uring_cq_advance(&ring, n);
		if (returned > 0) {
			io_uring_buf_ring_advance(br, returned);
			returned = 0;
			while (starved) { /* buffers came back: receive again */
				struct side *s = starved;
				starved = s->next_starved;
				s->c->inflight--;
				if (s->c->is_closing)
					conn_maybe_free(s->c);
				else
					arm_recv(s);
			}
		}
	}
	bp_print_stats(mode);
	return 0;
}
