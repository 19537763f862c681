/* (a) the epoll loop: what keygate does through libuv. Every socket is in
 * the epoll set once, level-triggered for reading, and stays there (no
 * epoll_ctl per request); a readable socket gets one recv, and what it read
 * one send to the other side (MSG_NOSIGNAL). Only a short send changes the
 * interest set: the rest is kept, the reading side stops reading and the
 * writing side waits for EPOLLOUT, until the rest is sent. */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CLIENT, UPSTREAM };

struct conn;
struct side {
	struct conn *c;
	int fd, idx;
	struct bp_frame frame; /* what this side sends */
	char *pending;         /* unsent bytes for this side's socket */
	size_t pending_off, pending_len;
};
struct conn {
	struct side s[2];
	bool is_closed;
	struct conn *next_dead;
};

static int ep;
static struct conn *dead; /* closed this turn, freed after it */
static char rbuf[65536];

static void conn_close(struct conn *c)
{
	if (c->is_closed)
		return;
	c->is_closed = true;
	for (int i = 0; i < 2; i++) {
		close(c->s[i].fd); /* leaves the epoll set with it */
		free(c->s[i].pending);
	}
	bp_stats.closed++;
	/* events for the other side may follow in this turn's batch */
	c->next_dead = dead;
	dead = c;
}

static int set_events(struct side *s, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = s};
	return epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

static void on_accept(int lfd, int upstream_port)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or an error the next turn sees again */
		int ufd = bp_connect(upstream_port, true);
		struct conn *c = ufd < 0 ? NULL : calloc(1, sizeof *c);
		if (!c) {
			if (ufd >= 0)
				close(ufd);
			close(fd);
			continue;
		}
		bp_nodelay(fd);
		bp_stats.accepted++;
		c->s[CLIENT] = (struct side){.c = c, .fd = fd, .idx = CLIENT};
		c->s[UPSTREAM] = (struct side){.c = c, .fd = ufd, .idx = UPSTREAM};
		for (int i = 0; i < 2; i++) {
			struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->s[i]};
			if (epoll_ctl(ep, EPOLL_CTL_ADD, c->s[i].fd, &ev) < 0) {
				conn_close(c);
				break;
			}
		}
	}
}

/* sends what is left in s->pending; when all is gone, both sides read again */
static void on_writable(struct side *s)
{
	struct side *from = &s->c->s[!s->idx];
	ssize_t n = send(s->fd, s->pending + s->pending_off, s->pending_len - s->pending_off, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(s->c);
		return;
	}
	s->pending_off += (size_t)n;
	if (s->pending_off < s->pending_len)
		return;
	free(s->pending);
	s->pending = NULL;
	if (set_events(s, EPOLLIN) < 0 || set_events(from, EPOLLIN) < 0)
		conn_close(s->c);
}

static void on_readable(struct side *s)
{
	struct side *to = &s->c->s[!s->idx];
	ssize_t n = recv(s->fd, rbuf, sizeof rbuf, 0);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			conn_close(s->c);
		return;
	}
	uint64_t before = s->frame.messages;
	if (bp_frame_feed(&s->frame, rbuf, (size_t)n) < 0) {
		conn_close(s->c);
		return;
	}
	*(s->idx == CLIENT ? &bp_stats.requests : &bp_stats.responses) += s->frame.messages - before;
	ssize_t m = send(to->fd, rbuf, (size_t)n, MSG_NOSIGNAL);
	if (m < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			conn_close(s->c);
			return;
		}
		m = 0;
	}
	if (m == n)
		return;
	/* a short send: keep the rest, stop reading here until it is gone */
	to->pending_len = (size_t)(n - m);
	to->pending_off = 0;
	to->pending = malloc(to->pending_len);
	if (!to->pending) {
		conn_close(s->c);
		return;
	}
	memcpy(to->pending, rbuf + m, to->pending_len);
	if (set_events(s, 0) < 0 || set_events(to, EPOLLIN | EPOLLOUT) < 0)
		conn_close(s->c);
}

int bp_run_epoll(int listen_port, int upstream_port)
{
	static char listen_tag; /* the listener's data.ptr */
	int lfd = bp_listen(listen_port, true);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (lfd < 0 || ep < 0) {
		perror("listen");
		return 1;
	}
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listen_tag};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

	struct epoll_event evs[256];
	while (!bp_stop) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &listen_tag) {
				on_accept(lfd, upstream_port);
				continue;
			}
			struct side *s = evs[i].data.ptr;
			if (s->c->is_closed)
				continue;
			if ((evs[i].events & EPOLLOUT) && s->pending)
				on_writable(s);
			if (s->c->is_closed || !(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				continue;
			if (!s->c->s[!s->idx].pending)
				on_readable(s);
			else if (evs[i].events & (EPOLLERR | EPOLLHUP))
				conn_close(s->c); /* reported even while not reading */
		}
		while (dead) {
			struct conn *c = dead;
			dead = c->next_dead;
			free(c);
		}
	}
	bp_print_stats("epoll");
	return 0;
}
