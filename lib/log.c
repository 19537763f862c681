#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keygate/log.h"

static atomic_int threshold = KG_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void kg_log_set_level(enum kg_log_level level)
{
	atomic_store(&threshold, (int)level);
}

int kg_log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

int kg_log_enabled(enum kg_log_level level)
{
	return (int)level <= atomic_load(&threshold);
}

void kg_log(enum kg_log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m;

	if (!kg_log_enabled(level))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ", tm.tm_year + 1900,
	             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
	             level_names[level]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	if ((size_t)(n + m) > sizeof(line) - 2)
		m = (int)sizeof(line) - 2 - n; /* truncated: keep the line whole */
	line[n + m] = '\n';
	/* one write(2) per line so lines from several threads never interleave */
	ssize_t w = write(STDERR_FILENO, line, (size_t)(n + m + 1));
	(void)w;
}
