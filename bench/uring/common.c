/* keygate-bench-uring: main(), the framing both loops share, and sockets.
 *   keygate-bench-uring MODE LISTEN_PORT UPSTREAM_PORT
 * MODE: epoll, uring, uring-basic or uring-sqpoll (see common.h). */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct bp_stats bp_stats;
volatile int bp_stop;

/* Content-Length's value from a complete head (head[0..len) ends with the
 * blank line). Returns 0 and sets *out (0 when absent), or -1. */
static int head_body_length(const char *head, size_t len, uint64_t *out)
{
	static const char cl[] = "content-length:";
	static const char te[] = "transfer-encoding:";
	const char *p = memchr(head, '\n', len); /* skip the start line */
	const char *end = head + len;
	bool seen = false;

	*out = 0;
	while (p && p + 1 < end) {
		const char *line = p + 1;
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		size_t n = (size_t)((eol ? eol : end) - line);
		if (n >= sizeof te - 1 && strncasecmp(line, te, sizeof te - 1) == 0)
			return -1; /* chunked bodies are not framed here */
		if (n >= sizeof cl - 1 && strncasecmp(line, cl, sizeof cl - 1) == 0) {
			const char *v = line + sizeof cl - 1, *ve = line + n;
			uint64_t x = 0;
			bool digits = false;
			if (seen)
				return -1;
			seen = true;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (v < ve && *v >= '0' && *v <= '9') {
				x = x * 10 + (uint64_t)(*v++ - '0');
				digits = true;
				if (x > BP_MAX_BODY)
					return -1;
			}
			while (v < ve && (*v == ' ' || *v == '\t' || *v == '\r'))
				v++;
			if (!digits || v != ve)
				return -1;
			*out = x;
		}
		p = eol;
	}
	return 0;
}

int bp_frame_feed(struct bp_frame *f, const char *p, size_t n)
{
	while (n > 0) {
		if (f->body_left > 0) {
			size_t take = n < f->body_left ? n : (size_t)f->body_left;
			f->body_left -= take;
			p += take;
			n -= take;
			if (f->body_left == 0)
				f->messages++;
			continue;
		}
		/* in a head: copy it as it streams by, then look for the blank
		 * line from just before the bytes added (it may straddle reads) */
		size_t room = BP_MAX_HEAD - f->head_len;
		size_t take = n < room ? n : room;
		if (take == 0)
			return -1;
		size_t from = f->head_len > 3 ? f->head_len - 3 : 0;
		memcpy(f->head + f->head_len, p, take);
		f->head_len += (uint32_t)take;
		const char *hit = memmem(f->head + from, f->head_len - from, "\r\n\r\n", 4);
		if (!hit) {
			p += take;
			n -= take;
			continue;
		}
		size_t head_end = (size_t)(hit + 4 - f->head);
		size_t used = head_end - (f->head_len - take); /* of this chunk */
		uint64_t body;
		if (head_body_length(f->head, head_end, &body) < 0)
			return -1;
		f->head_len = 0;
		f->body_left = body;
		if (body == 0)
			f->messages++;
		p += used;
		n -= used;
	}
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
	bp_stop = 1;
}

void bp_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: epoll_wait and io_uring_enter return EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void bp_print_stats(const char *mode)
{
	fprintf(stderr, "%s: %llu connections accepted, %llu closed, %llu requests, %llu responses\n", mode,
		(unsigned long long)bp_stats.accepted, (unsigned long long)bp_stats.closed,
		(unsigned long long)bp_stats.requests, (unsigned long long)bp_stats.responses);
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

int bp_listen(int port, bool nonblock)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	struct sockaddr_in a = loopback(port);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void bp_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int bp_connect(int port, bool nonblock)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = loopback(port);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	bp_nodelay(fd);
	if (nonblock && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int parse_port(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return errno || end == s || *end || v <= 0 || v > 65535 ? -1 : (int)v;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s epoll|uring|uring-basic|uring-sqpoll LISTEN_PORT UPSTREAM_PORT\n", argv[0]);
		return 2;
	}
	int lport = parse_port(argv[2]), uport = parse_port(argv[3]);
	if (lport < 0 || uport < 0) {
		fprintf(stderr, "bad port\n");
		return 2;
	}
	bp_signals();
	if (strcmp(argv[1], "epoll") == 0)
		return bp_run_epoll(lport, uport);
	if (strncmp(argv[1], "uring", 5) == 0)
		return bp_run_uring(argv[1], lport, uport);
	fprintf(stderr, "unknown mode %s\n", argv[1]);
	return 2;
}
