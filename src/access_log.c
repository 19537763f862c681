/* access_log.c - one line per request: time, client, method, path (never the
 * query string: it may carry secrets), status, bytes, duration in µs, scheme
 * and principal id. Each line is one write(2) with O_APPEND, so workers never
 * interleave and logrotate's copytruncate or a SIGHUP reopen both work. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keygate/log.h"
#include "kg.h"

static atomic_int log_fd = -1; /* -1: off */
static pthread_mutex_t reopen_lock = PTHREAD_MUTEX_INITIALIZER;

kg_err kg__access_log_open(const char *where)
{
	int fd;
	if (!where || strcmp(where, "off") == 0)
		fd = -1;
	else if (strcmp(where, "-") == 0)
		fd = STDERR_FILENO;
	else {
		fd = open(where, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (fd < 0)
			return KG_EIO;
	}
	pthread_mutex_lock(&reopen_lock);
	int old = atomic_exchange(&log_fd, fd);
	if (old > STDERR_FILENO)
		close(old);
	pthread_mutex_unlock(&reopen_lock);
	return KG_OK;
}

void kg__access_log_close(void)
{
	int old = atomic_exchange(&log_fd, -1);
	if (old > STDERR_FILENO)
		close(old);
}

/* Copies s, escaping bytes that could forge a log line. */
static size_t put_clean(char *out, size_t cap, kg_str s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for (size_t i = 0; i < s.n && n + 4 < cap; i++) {
		unsigned char ch = (unsigned char)s.p[i];
		if (ch < 0x21 || ch >= 0x7f || ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		} else {
			out[n++] = (char)ch;
		}
	}
	return n;
}

void kg__access_log(const struct kg_conn *c)
{
	int fd = atomic_load(&log_fd);
	char line[4096], method[64], path[2048], principal[256];
	struct timespec ts, mono;
	struct tm tm;

	if (fd < 0 || !c->req.method.n)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	gmtime_r(&ts.tv_sec, &tm);
	uint64_t now = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
	uint64_t us = c->req.start_ns && now > c->req.start_ns ? (now - c->req.start_ns) / 1000 : 0;
	const struct kg_decision *d = &c->req.decision;
	size_t mn = put_clean(method, sizeof(method), c->req.method);
	size_t pn = put_clean(path, sizeof(path), c->req.path);
	size_t in = d->is_authenticated ? put_clean(principal, sizeof(principal), d->principal.id) : 0;
	if (!in)
		principal[in++] = '-';
	int n = snprintf(line, sizeof(line),
	                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s \"%.*s %.*s\" %d %llu %lluus scheme=%s principal=%.*s\n",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 ts.tv_nsec / 1000000, c->client, (int)mn, method, (int)pn, path, c->req.status,
	                 (unsigned long long)c->req.bytes_out, (unsigned long long)us,
	                 d->is_authenticated ? d->principal.scheme : "-", (int)in, principal);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	ssize_t w = write(fd, line, (size_t)n);
	(void)w;
}
