/* config.h - every keygate setting, from one table.
 *
 * A setting has one canonical snake_case name, dotted for sections
 * ("proxy.upstream_timeout"). Its flag is that name with '-' for '_' and '.'
 * ("--proxy-upstream-timeout"), its environment variable KEYGATE_ plus the
 * name upper-cased with '_' for '.' ("KEYGATE_PROXY_UPSTREAM_TIMEOUT").
 * Precedence: flags > environment > file > defaults.
 *
 * YAML files take nested maps or dotted keys, and hyphenated spellings as
 * aliases ("admin-password" == "admin_password"). Unknown keys are errors.
 * Errors read "file:line: key: problem".
 */
#ifndef KEYGATE_CONFIG_H
#define KEYGATE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "keygate/err.h"
#include "keygate/str.h"

/* A tri-state boolean: a setting whose default depends on others. */
enum kg_tribool { KG_UNSET = -1, KG_FALSE = 0, KG_TRUE = 1 };

/* A list of owned C strings. */
typedef struct kg_strlist {
	char **v;
	size_t n;
} kg_strlist;

/* The whole configuration. Strings and lists are owned by the config.
 * Durations are in milliseconds, sizes in bytes. */
typedef struct kg_config {
	/* server */
	kg_strlist listen;            /* "HOST:PORT", "[v6]:PORT" */
	int64_t workers;              /* 0: one per core */
	char *data_dir;
	char *api_prefix;             /* "/_keygate" */
	int64_t shutdown_timeout_ms;

	/* TLS towards clients (docs/tls.md) */
	kg_strlist tls_listen;        /* tls.listen: addresses that speak TLS */
	kg_strlist tls_cert;          /* tls.cert: PEM certificate (and chain) files, paired with tls.key */
	kg_strlist tls_key;           /* tls.key: PEM private key files */
	bool http_tls_enabled;        /* AvalancheGo's http-tls-enabled: listen speaks TLS */
	char *http_tls_cert_file;     /* AvalancheGo's http-tls-cert-file: one more pair, after tls.cert's */
	char *http_tls_key_file;      /* AvalancheGo's http-tls-key-file */

	/* authorization */
	int require_auth;             /* enum kg_tribool */
	char *error_dialect;          /* "auto" | "keygate" | "bee" | "avalanche" | "elasticsearch" */
	char *policy;                 /* "" | preset name | path of a policy file */
	kg_strlist public_paths;      /* extra paths that never need a credential */
	kg_strlist trusted_proxies;   /* addresses or CIDRs whose X-Forwarded-For is believed */

	/* limits */
	int64_t max_header_bytes;     /* limits.max_header_bytes */
	int64_t max_headers;          /* limits.max_headers */
	int64_t max_url_bytes;        /* limits.max_url_bytes */
	int64_t max_body_bytes;       /* limits.max_body_bytes: keygate's own endpoints */
	int64_t header_timeout_ms;    /* limits.header_timeout */
	int64_t idle_timeout_ms;      /* limits.idle_timeout */
	int64_t max_connections;      /* limits.max_connections: per worker */
	int64_t body_timeout_ms;      /* limits.body_timeout: client silent while keygate reads its body */
	int64_t send_timeout_ms;      /* limits.send_timeout: client not taking the response */
	int64_t password_jobs;        /* limits.password_jobs: bcrypt jobs at once, per worker */
	int64_t password_queue;       /* limits.password_queue: jobs waiting, per worker */

	/* proxy */
	char *upstream;               /* "" or http[s]://host:port[/base] */
	int64_t upstream_timeout_ms;  /* proxy.upstream_timeout: to first response byte */
	int64_t connect_timeout_ms;   /* proxy.connect_timeout */
	int64_t pool_size;            /* proxy.pool_size: idle upstream connections per worker */
	bool proxy_tls_verify;        /* proxy.tls_verify: check an https upstream's certificate and name */
	char *proxy_tls_ca;           /* proxy.tls_ca: CA file or directory; "": the system's */
	char *proxy_tls_cert;         /* proxy.tls_cert: client certificate for mutual TLS, "" when none */
	char *proxy_tls_key;          /* proxy.tls_key: its private key */
	bool preserve_host;           /* proxy.preserve_host */
	bool forwarded_headers;       /* proxy.forwarded_headers: X-Forwarded-For/-Proto/-Host */
	bool forward_credentials;     /* proxy.forward_credentials */
	char *escaped_slashes;        /* proxy.escaped_slashes: "reject" | "keep" */
	bool underscores_in_headers;  /* proxy.underscores_in_headers */
	kg_strlist upgrades;          /* proxy.upgrades: Upgrade protocols tunnelled */
	char *forward_auth_source;    /* forward_auth.source: "auto" | "nginx" | "traefik" */

	/* Bee restricted mode */
	bool restricted;
	char *admin_password;         /* bcrypt hash, "" when keygate generates one */
	kg_strlist token_encryption_keys;
	char *token_format;           /* "keygate" | "bee" */
	int64_t token_max_expiry_ms;
	kg_strlist unrestricted_paths;
	/* AvalancheGo Auth API */
	bool api_auth_required;
	char *api_auth_password_file;
	int64_t api_auth_token_lifetime_ms;

	/* Elasticsearch security APIs */
	bool api_keys;
	int64_t api_key_max_expiration_ms; /* 0: none */
	int64_t api_key_retention_ms;
	char *api_key_application;
	char *api_key_info; /* proxy|keygate */
	char *es_config_dir;          /* "" none */

	int64_t throttle_max_failures;
	int64_t throttle_window_ms;
	char *basic_users;            /* basic_users: users file, "" off */
	int64_t basic_cache_ttl_ms;   /* basic_cache_ttl */
	int64_t basic_cache_size;     /* basic_cache_size */

	/* logging */
	char *access_log;             /* log.access: "-" stderr, "off", or a file path */
	int64_t access_log_buffer;    /* log.access_buffer: bytes per worker, 0: write each line */
	int64_t access_log_flush_ms;  /* log.access_flush */
	char *log_level;              /* log.level: error | warn | info | debug */
} kg_config;

/* One entry of the settings table, exposed for --help and the man page. */
enum kg_setting_type {
	KG_SET_BOOL,
	KG_SET_TRIBOOL,
	KG_SET_INT,
	KG_SET_DURATION, /* "10s", "500ms", "2m", "1h"; a bare number is seconds */
	KG_SET_SIZE,     /* "16KiB", "1MiB", "1048576" */
	KG_SET_STRING,
	KG_SET_LIST,     /* repeatable flag; scalar or YAML sequence */
};

struct kg_setting {
	const char *name;     /* canonical: "proxy.upstream_timeout" */
	enum kg_setting_type type;
	const char *def;      /* default, as it would be written in YAML; for a
	                       * LIST comma-separated items, "" for none; for a
	                       * TRIBOOL "auto" (unset) */
	const char *choices;  /* "a|b|c" for enumerated strings, else NULL */
	int64_t min, max;     /* for INT / DURATION (ms) / SIZE; for a LIST,
	                       * min is the fewest items it may end up with */
	const char *help;
	size_t offset;        /* offsetof(kg_config, field) */
	const char *metavar;  /* value placeholder in --help; NULL: from the type */
	/* Extra check of a STRING value or of each LIST item, or NULL. Returns
	 * true when v is acceptable, else appends the problem to why. */
	bool (*check)(const char *v, kg_buf *why);
	bool is_secret;       /* never printed by kg_config_dump, wiped on free */
};

/* The table, terminated by an entry with name == NULL. */
extern const struct kg_setting kg_settings[];

/* Finds a setting by any of its spellings: canonical ("proxy.upstream_timeout"),
 * hyphenated ("proxy.upstream-timeout"), flag ("--proxy-upstream-timeout" or
 * "proxy-upstream-timeout") or environment ("KEYGATE_PROXY_UPSTREAM_TIMEOUT").
 * Returns a pointer into kg_settings, or NULL. */
const struct kg_setting *kg_setting_find(const char *name);

/* Error list: config check reports every problem, not just the first. */
typedef struct kg_config_errors {
	char **v; /* owned messages "file:line: key: problem" */
	size_t n;
} kg_config_errors;

/* Frees every message and resets e to empty. Safe on an empty list. */
void kg_config_errors_free(kg_config_errors *e);

/* Appends a printf-formatted message to e (for modules that validate files
 * of their own, like policies). Returns KG_ENOMEM when it could not. */
kg_err kg_config_errors_add(kg_config_errors *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Builds a config from defaults, then file (if path != NULL), then the
 * environment (envp, NULL-terminated "K=V" strings; may be NULL), then flags
 * (argv[0..argc), already stripped of the subcommand). Every problem found is
 * appended to errs; returns KG_OK only if there were none. On success *out is
 * a new config (returns owned) that the caller frees with kg_config_free(). */
kg_err kg_config_load(const char *path, char *const *envp, int argc, char *const *argv,
                      kg_config **out, kg_config_errors *errs) KG_MUST_CHECK;

/* Finds "--config FILE" / "--config=FILE" in argv, else KEYGATE_CONFIG in
 * envp. Returns a borrowed pointer, or NULL when none was given. */
const char *kg_config_path(char *const *envp, int argc, char *const *argv);

/* Frees a config and sets *cfg to NULL. Safe on NULL. */
void kg_config_free(kg_config **cfg);

/* Writes the flag help (one block per setting) for --help. */
void kg_config_print_help(FILE *out);

/* Appends the effective configuration to out as YAML "name: value" lines,
 * one per setting in table order, which kg_config_load reads back. Secret
 * settings print as "<hidden>" when set. Returns KG_ENOMEM on failure. */
kg_err kg_config_dump(const kg_config *c, kg_buf *out) KG_MUST_CHECK;

/* Parses "10s"/"500ms"/"2m"/"1h"/"3d" or a bare number of seconds.
 * Returns KG_EINVAL on bad syntax, KG_ERANGE when it overflows int64 ms. */
kg_err kg_parse_duration_ms(const char *s, int64_t *out_ms) KG_MUST_CHECK;

/* Parses "16KiB"/"1MiB"/"1GiB"/"512" (bytes; KB/MB also accepted as 1000s).
 * Units are case-insensitive: KiB/MiB/GiB/TiB are powers of 1024, K/KB, M/MB,
 * G/GB, T/TB powers of 1000, B or none bytes. Returns KG_EINVAL on bad
 * syntax, KG_ERANGE when it overflows int64. */
kg_err kg_parse_size(const char *s, int64_t *out_bytes) KG_MUST_CHECK;

#endif
