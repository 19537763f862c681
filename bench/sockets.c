/* keygate-bench-sockets: what the socket calls of one proxied request cost
 * the kernel, by the call used and by whether the process shares its file
 * table with another thread (issue 16, item 5).
 *
 * A proxied request is four socket calls on loopback TCP: read the client's
 * request, write it upstream, read the upstream's answer, write it to the
 * client. Here one thread owns both ends of two loopback connections and
 * makes those calls, and the client's and the upstream's too (eight calls,
 * two requests' worth), with 200-byte messages, so every byte is delivered
 * inline (loopback runs the receiver's TCP input in the sender's call) and
 * nothing sleeps: the CPU time is the calls' own cost.
 * Variants:
 *   read/write   what libuv's streams call (the file layer: fdget_pos,
 *                rw_verify_area, fsnotify hooks, then the socket);
 *   recv/send    the socket calls, MSG_NOSIGNAL on send;
 *   "private"    the process has one thread: the kernel's fdget skips the
 *                file reference count when the file table is not shared;
 *   "shared"     a second (idle) thread shares the file table, as a worker
 *                thread does in keygate's one process: every call takes and
 *                drops a reference on the file.
 * Each measurement runs in a fresh child process (a file table that was ever
 * shared stays counted as shared while the thread lives) and the variants
 * take turns, ROUNDS times; printed: the median and range of each. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 7
#define CALLS 50000 /* requests per measurement */
#define MSG 200

struct variant {
	const char *name;
	bool is_socket_call, is_shared;
};

static const struct variant variants[] = {
	{ "read/write, private file table", false, false },
	{ "read/write, shared file table (threads)", false, true },
	{ "recv/send, private file table", true, false },
	{ "recv/send, shared file table (threads)", true, true },
};
#define NVARIANTS (sizeof(variants) / sizeof(variants[0]))

static double thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* A connected loopback pair: *a is the connecting end, *b the accepted one. */
static bool loopback_pair(int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = false;
	*a = *b = -1;
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) != 0)
		goto out;
	if ((*a = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(*a, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    (*b = accept(l, NULL, NULL)) < 0)
		goto out;
	setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ok = true;
out:
	if (l >= 0)
		close(l);
	return ok;
}

static bool put(const struct variant *v, int fd, const char *p, size_t n)
{
	ssize_t r = v->is_socket_call ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
	return r == (ssize_t)n;
}

static bool get(const struct variant *v, int fd, char *p, size_t n)
{
	ssize_t r = v->is_socket_call ? recv(fd, p, n, 0) : read(fd, p, n);
	return r == MSG; /* loopback delivered the whole message inline */
}

/* In the child: ns of CPU per request (4 calls), or a negative value. */
static double measure(const struct variant *v)
{
	int client, client_srv, up, up_srv;
	char buf[4096];
	pthread_t t;
	if (!loopback_pair(&client, &client_srv) || !loopback_pair(&up, &up_srv))
		return -1;
	if (v->is_shared && pthread_create(&t, NULL, idle_thread, NULL) != 0)
		return -1;
	memset(buf, 'x', sizeof(buf));
	/* the client's and the upstream's calls run in this thread too and use
	 * the same variant, so the loop is eight calls: two requests' worth */
	double t0 = thread_cpu_ns();
	for (int i = 0; i < CALLS; i++) {
		if (!put(v, client, buf, MSG) || !get(v, client_srv, buf, sizeof(buf)) || !put(v, up, buf, MSG) ||
		    !get(v, up_srv, buf, sizeof(buf)) || !put(v, up_srv, buf, MSG) || !get(v, up, buf, sizeof(buf)) ||
		    !put(v, client_srv, buf, MSG) || !get(v, client, buf, sizeof(buf)))
			return -1;
	}
	return (thread_cpu_ns() - t0) / CALLS / 2;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(void)
{
	double ns[NVARIANTS][ROUNDS];
	signal(SIGPIPE, SIG_IGN);
	for (int r = 0; r < ROUNDS; r++) {
		for (size_t i = 0; i < NVARIANTS; i++) {
			int fds[2];
			double got = -1;
			if (pipe(fds) != 0)
				return 1;
			pid_t pid = fork();
			if (pid < 0)
				return 1;
			if (pid == 0) {
				double m = measure(&variants[i]);
				_exit(write(fds[1], &m, sizeof(m)) == sizeof(m) ? 0 : 1);
			}
			close(fds[1]);
			if (read(fds[0], &got, sizeof(got)) != sizeof(got))
				got = -1;
			close(fds[0]);
			waitpid(pid, NULL, 0);
			if (got < 0) {
				fprintf(stderr, "keygate-bench-sockets: %s failed\n", variants[i].name);
				return 1;
			}
			ns[i][r] = got;
		}
	}
	printf("| socket calls of one proxied request, loopback, one thread | CPU ns per request | range | vs read/write, shared |\n");
	printf("|---|---|---|---|\n");
	double base = 0;
	for (size_t i = 0; i < NVARIANTS; i++) {
		qsort(ns[i], ROUNDS, sizeof(double), cmp_double);
		if (i == 1)
			base = ns[i][ROUNDS / 2];
	}
	for (size_t i = 0; i < NVARIANTS; i++)
		printf("| %s | %.0f | %.0f–%.0f | %.3f× |\n", variants[i].name, ns[i][ROUNDS / 2], ns[i][0],
		       ns[i][ROUNDS - 1], ns[i][ROUNDS / 2] / base);
	return 0;
}
