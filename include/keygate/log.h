/* log.h - the daemon's diagnostic log (stderr). The access log is separate
 * (src/access_log.c). Never pass a secret to these functions. */
#ifndef KEYGATE_LOG_H
#define KEYGATE_LOG_H

enum kg_log_level { KG_LOG_ERROR = 0, KG_LOG_WARN, KG_LOG_INFO, KG_LOG_DEBUG };

/* Sets the threshold; messages above it are dropped. Thread-safe. */
void kg_log_set_level(enum kg_log_level level);

/* Parses "error" | "warn" | "info" | "debug"; returns -1 if unknown. */
int kg_log_level_parse(const char *name);

/* True when level would be written (to skip building expensive messages). */
int kg_log_enabled(enum kg_log_level level);

/* Writes one line "TIME LEVEL message" to stderr. */
void kg_log(enum kg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define kg_error(...) kg_log(KG_LOG_ERROR, __VA_ARGS__)
#define kg_warn(...) kg_log(KG_LOG_WARN, __VA_ARGS__)
#define kg_info(...) kg_log(KG_LOG_INFO, __VA_ARGS__)
#define kg_debug(...) kg_log(KG_LOG_DEBUG, __VA_ARGS__)

#endif
