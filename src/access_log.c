/* access_log.c - one line per request: time, client, method, path (never the
 * query string: it may carry secrets), status, bytes, duration in µs, scheme
 * and principal id.
 *
 * Each worker collects its lines in a buffer (log.access_buffer) written with
 * one write(2) when it fills and at most log.access_flush after its first
 * line, and when the worker stops; 0 writes every line at once. The file is
 * opened with O_APPEND and every write holds whole lines, so workers never
 * interleave and logrotate's copytruncate works. SIGHUP reopens the file in
 * place (dup2 onto the same descriptor), so a worker never writes to a
 * descriptor that was closed, or reused for something else, under it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access_log.h"
#include "conn.h"
#include "kg.h"

static atomic_int log_fd = -1; /* -1: off; STDERR_FILENO or own_fd */
static int own_fd = -1;        /* the file; replaced in place on reopen */
static pthread_mutex_t reopen_lock = PTHREAD_MUTEX_INITIALIZER;

kg_err kg__access_log_open(const char *where)
{
	int fd = -1;
	kg_err err = KG_OK;
	pthread_mutex_lock(&reopen_lock);
	if (strcmp(where, "-") == 0) {
		fd = STDERR_FILENO;
	} else if (strcmp(where, "off") != 0) {
		int nfd = open(where, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (nfd < 0) {
			err = KG_EIO;
			goto out;
		}
		if (own_fd < 0) {
			own_fd = nfd;
		} else {
			int saved;
			int r = dup3(nfd, own_fd, O_CLOEXEC);
			saved = errno;
			close(nfd);
			errno = saved;
			if (r < 0) {
				err = KG_EIO;
				goto out;
			}
		}
		fd = own_fd;
	}
	atomic_store(&log_fd, fd);
out:
	pthread_mutex_unlock(&reopen_lock);
	return err;
}

/* After the workers have stopped. */
void kg__access_log_close(void)
{
	atomic_store(&log_fd, -1);
	if (own_fd >= 0)
		close(own_fd);
	own_fd = -1;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* a full disk loses log lines, never requests */
		p += w;
		n -= (size_t)w;
	}
}

void kg__access_log_flush(struct kg_worker *w)
{
	int fd = atomic_load(&log_fd);
	if (w->log_len && fd >= 0)
		write_all(fd, w->log_buf, w->log_len);
	w->log_len = 0;
}

static void on_log_timer(uv_timer_t *t)
{
	kg__access_log_flush(t->data);
}

void kg__access_log_free(struct kg_worker *w)
{
	kg__access_log_flush(w);
	free(w->log_buf);
	w->log_buf = NULL;
	w->log_cap = 0;
}

/* Keeps line for a later write, or writes it now when buffering is off. */
static void emit(struct kg_worker *w, const struct kg_config *cfg, int fd, const char *line, size_t n)
{
	size_t cap = cfg ? (size_t)cfg->access_log_buffer : 0;
	if (cap != w->log_cap) { /* changed by a reload */
		kg__access_log_flush(w);
		char *nb = cap ? realloc(w->log_buf, cap) : NULL;
		if (!nb) {
			free(w->log_buf);
			cap = 0;
		}
		w->log_buf = nb;
		w->log_cap = cap;
	}
	if (cap == 0 || w->draining || uv_is_closing((uv_handle_t *)&w->log_timer)) {
		kg__access_log_flush(w);
		write_all(fd, line, n);
		return;
	}
	if (w->log_len + n > w->log_cap)
		kg__access_log_flush(w);
	if (n > w->log_cap) {
		write_all(fd, line, n);
		return;
	}
	memcpy(w->log_buf + w->log_len, line, n);
	w->log_len += n;
	if (!uv_is_active((uv_handle_t *)&w->log_timer))
		uv_timer_start(&w->log_timer, on_log_timer, (uint64_t)cfg->access_log_flush_ms, 0);
}

/* Unix ms now, from the monotonic reading the duration needs anyway: the
 * offset to the wall clock is re-read once a second (so a clock that is set
 * moves the lines within a second), instead of a second clock_gettime and a
 * gmtime_r per line. */
static int64_t wall_ms(struct kg_worker *w, uint64_t mono_ns)
{
	int64_t mono_ms = (int64_t)(mono_ns / 1000000u);
	int64_t mono_s = mono_ms / 1000 + 1;
	if (w->log_wall_checked_s != mono_s) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		w->log_wall_offset_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - mono_ms;
		w->log_wall_checked_s = mono_s;
	}
	return mono_ms + w->log_wall_offset_ms;
}

_Static_assert(KG_ADDR_MAX * 4 == KG_ACCESS_ROOM_CLIENT, "the client field's room is that of four escaped addresses");

void kg__access_log(const struct kg_conn *c)
{
	const struct kg_request *r = kg__conn_req(c);
	int fd = atomic_load(&log_fd);
	char line[KG_ACCESS_LINE_ROOM];
	struct timespec mono;

	if (fd < 0 || !r->method.n)
		return;
	struct kg_worker *w = kg__conn_worker(c);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	uint64_t now = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
	const struct kg_decision *d = &r->decision;
	/* the client address is a checked IP today; escaped all the same, as
	 * every field a client could influence is (lib/access_line.c) */
	struct kg_access_fields f = {
		.time_ms = wall_ms(w, now),
		.client = kg_str_c(kg__conn_client(c)),
		.method = r->method,
		.path = r->facts.path,
		.status = r->status,
		.bytes_out = r->bytes_out,
		.duration_us = r->start_ns && now > r->start_ns ? (now - r->start_ns) / 1000 : 0,
		.is_authenticated = d->is_authenticated,
		.scheme = d->is_authenticated ? d->principal.scheme : "-",
		.principal = d->principal.id,
	};
	size_t n = kg_access_line(&w->log_clock, &f, line);
	emit(w, kg__conn_rt(c) ? kg__conn_rt(c)->cfg : NULL, fd, line, n);
}
