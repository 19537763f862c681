/* config.c - the settings table, and loading it from YAML, env and flags.
 *
 * Every source turns into (setting, string value) pairs that go through
 * setting_apply(), so a value means the same thing in a file, a variable or
 * a flag, and is checked once. Loading never stops at the first problem:
 * `keygate config check` shows them all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <yaml.h>

#include "keygate/config.h"
#include "keygate/str.h"
#include "keygate/url.h"

#define SECOND 1000LL
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)
#define KIB 1024LL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define OFF(field) offsetof(kg_config, field)

/* A config file is written by a person: anything bigger is a mistake. */
#define KG_MAX_CONFIG_FILE (16 * MIB)

static bool check_listen(const char *v, kg_buf *why);
static bool check_path_prefix(const char *v, kg_buf *why);
static bool check_path(const char *v, kg_buf *why);
static bool check_cidr(const char *v, kg_buf *why);
static bool check_upstream(const char *v, kg_buf *why);
static bool check_not_empty(const char *v, kg_buf *why);

/* The one table. Adding a setting: a field in struct kg_config, one entry
 * here, and its block in etc/keygate.yaml (a unit test checks that). */
const struct kg_setting kg_settings[] = {
	/* server */
	{ .name = "listen", .type = KG_SET_LIST, .def = "127.0.0.1:8080", .min = 1, .offset = OFF(listen), .metavar = "HOST:PORT", .check = check_listen, .help = "address to listen on, HOST:PORT or [IPV6]:PORT; repeat for several" },
	{ .name = "workers", .type = KG_SET_INT, .def = "0", .min = 0, .max = 1024, .offset = OFF(workers), .help = "worker threads; 0 starts one per CPU core" },
	{ .name = "data_dir", .type = KG_SET_STRING, .def = "./keygate-data", .offset = OFF(data_dir), .metavar = "DIR", .check = check_not_empty, .help = "directory for the key store and other state" },
	{ .name = "api_prefix", .type = KG_SET_STRING, .def = "/_keygate", .offset = OFF(api_prefix), .metavar = "PATH", .check = check_path_prefix, .help = "path under which keygate serves its own endpoints" },
	{ .name = "shutdown_timeout", .type = KG_SET_DURATION, .def = "10s", .min = 0, .max = DAY, .offset = OFF(shutdown_timeout_ms), .help = "how long to let requests in flight finish on SIGTERM" },
	/* TLS towards clients */
	{ .name = "tls.listen", .type = KG_SET_LIST, .def = "", .offset = OFF(tls_listen), .metavar = "HOST:PORT", .check = check_listen, .help = "address that speaks TLS (HTTPS), beside the listen ones; repeat for several; needs tls.cert and tls.key" },
	{ .name = "tls.cert", .type = KG_SET_LIST, .def = "", .offset = OFF(tls_cert), .metavar = "FILE", .check = check_not_empty, .help = "PEM certificate file, its chain after it; repeat for several pairs (the first is the default, SNI picks the others by their names)" },
	{ .name = "tls.key", .type = KG_SET_LIST, .def = "", .offset = OFF(tls_key), .metavar = "FILE", .check = check_not_empty, .help = "PEM private key file of the tls.cert in the same position" },
	{ .name = "http_tls_enabled", .type = KG_SET_BOOL, .def = "false", .offset = OFF(http_tls_enabled), .help = "AvalancheGo's --http-tls-enabled: the listen addresses speak TLS too" },
	{ .name = "http_tls_cert_file", .type = KG_SET_STRING, .def = "", .offset = OFF(http_tls_cert_file), .metavar = "FILE", .help = "AvalancheGo's --http-tls-cert-file: a certificate pair after the tls.cert ones (with http_tls_key_file)" },
	{ .name = "http_tls_key_file", .type = KG_SET_STRING, .def = "", .offset = OFF(http_tls_key_file), .metavar = "FILE", .help = "AvalancheGo's --http-tls-key-file: the private key of http_tls_cert_file" },
	/* authorization */
	{ .name = "require_auth", .type = KG_SET_TRIBOOL, .def = "auto", .offset = OFF(require_auth), .help = "refuse requests without a valid credential; auto: on when any auth scheme is enabled" },
	{ .name = "error_dialect", .type = KG_SET_STRING, .def = "auto", .choices = "auto|keygate|bee|avalanche|elasticsearch", .offset = OFF(error_dialect), .help = "shape of error responses; auto follows the API the request looks like" },
	{ .name = "policy", .type = KG_SET_STRING, .def = "", .offset = OFF(policy), .metavar = "NAME|FILE", .help = "access policy: a preset name or the path of a policy file; empty: the built-in default" },
	{ .name = "public_paths", .type = KG_SET_LIST, .def = "", .offset = OFF(public_paths), .metavar = "PATH", .check = check_path, .help = "extra paths that never need a credential; repeat for several" },
	{ .name = "trusted_proxies", .type = KG_SET_LIST, .def = "", .offset = OFF(trusted_proxies), .metavar = "ADDR[/BITS]", .check = check_cidr, .help = "addresses or CIDRs of proxies whose X-Forwarded-For (IP entries only), Forwarded, X-Forwarded-Proto and X-Forwarded-Host are believed; repeat for several" },
	{ .name = "upstream", .type = KG_SET_STRING, .def = "", .offset = OFF(upstream), .metavar = "URL", .check = check_upstream, .help = "proxy allowed requests to http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH] (TLS, verified: see proxy.tls_*); empty: forward-auth only" },
	/* limits */
	{ .name = "limits.max_header_bytes", .type = KG_SET_SIZE, .def = "16KiB", .min = KIB, .max = MIB, .offset = OFF(max_header_bytes), .help = "largest request head (request line and headers)" },
	{ .name = "limits.max_headers", .type = KG_SET_INT, .def = "100", .min = 1, .max = 10000, .offset = OFF(max_headers), .help = "most header fields in one request" },
	{ .name = "limits.max_url_bytes", .type = KG_SET_SIZE, .def = "8KiB", .min = 256, .max = MIB, .offset = OFF(max_url_bytes), .help = "longest request target" },
	{ .name = "limits.max_body_bytes", .type = KG_SET_SIZE, .def = "1MiB", .min = KIB, .max = GIB, .offset = OFF(max_body_bytes), .help = "largest request body keygate reads for its own endpoints" },
	{ .name = "limits.header_timeout", .type = KG_SET_DURATION, .def = "10s", .min = 100, .max = HOUR, .offset = OFF(header_timeout_ms), .help = "time allowed to receive a request head" },
	{ .name = "limits.idle_timeout", .type = KG_SET_DURATION, .def = "60s", .min = 100, .max = DAY, .offset = OFF(idle_timeout_ms), .help = "how long an idle keep-alive connection stays open" },
	{ .name = "limits.body_timeout", .type = KG_SET_DURATION, .def = "60s", .min = 100, .max = DAY, .offset = OFF(body_timeout_ms), .help = "longest silence of a client while keygate reads its request body (408, then close)" },
	{ .name = "limits.send_timeout", .type = KG_SET_DURATION, .def = "60s", .min = 100, .max = DAY, .offset = OFF(send_timeout_ms), .help = "longest time a client may leave queued response bytes unread (then close)" },
	{ .name = "limits.max_connections", .type = KG_SET_INT, .def = "10000", .min = 1, .max = 1000000, .offset = OFF(max_connections), .help = "most open client connections per worker" },
	{ .name = "limits.password_jobs", .type = KG_SET_INT, .def = "1", .min = 1, .max = 1024, .offset = OFF(password_jobs), .help = "password hashes (bcrypt) computed at once per worker, at low priority" },
	{ .name = "limits.password_queue", .type = KG_SET_INT, .def = "4096", .min = 1, .max = 1000000, .offset = OFF(password_queue), .help = "password checks waiting for their turn per worker; beyond it 503" },
	/* proxy */
	{ .name = "proxy.upstream_timeout", .type = KG_SET_DURATION, .def = "60s", .min = 100, .max = DAY, .offset = OFF(upstream_timeout_ms), .help = "time allowed for the upstream to start its response once the request is out, and its longest silence while taking a body or sending a response" },
	{ .name = "proxy.connect_timeout", .type = KG_SET_DURATION, .def = "5s", .min = 100, .max = HOUR, .offset = OFF(connect_timeout_ms), .help = "time allowed to connect to the upstream (the TCP connection and, for https, the TLS handshake)" },
	{ .name = "proxy.tls_verify", .type = KG_SET_BOOL, .def = "true", .offset = OFF(proxy_tls_verify), .help = "verify an https upstream's certificate and host name; false accepts any certificate (a warning at every start and reload)" },
	{ .name = "proxy.tls_ca", .type = KG_SET_STRING, .def = "", .offset = OFF(proxy_tls_ca), .metavar = "FILE|DIR", .help = "PEM file or hashed directory of CA certificates an https upstream's certificate is verified against; empty: the system's" },
	{ .name = "proxy.tls_cert", .type = KG_SET_STRING, .def = "", .offset = OFF(proxy_tls_cert), .metavar = "FILE", .help = "PEM client certificate (its chain after it) keygate shows an https upstream that asks for one (mutual TLS); with proxy.tls_key" },
	{ .name = "proxy.tls_key", .type = KG_SET_STRING, .def = "", .offset = OFF(proxy_tls_key), .metavar = "FILE", .help = "PEM private key of proxy.tls_cert" },
	{ .name = "proxy.pool_size", .type = KG_SET_INT, .def = "64", .min = 0, .max = 100000, .offset = OFF(pool_size), .help = "idle upstream connections kept per worker" },
	{ .name = "proxy.preserve_host", .type = KG_SET_BOOL, .def = "true", .offset = OFF(preserve_host), .help = "pass the client's Host header upstream instead of the upstream's" },
	{ .name = "proxy.forwarded_headers", .type = KG_SET_BOOL, .def = "true", .offset = OFF(forwarded_headers), .help = "add X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host (a trusted proxy's own -Proto and -Host are kept)" },
	{ .name = "proxy.forward_credentials", .type = KG_SET_BOOL, .def = "false", .offset = OFF(forward_credentials), .help = "pass the client's credential headers upstream" },
	{ .name = "proxy.escaped_slashes", .type = KG_SET_STRING, .def = "reject", .choices = "reject|keep", .offset = OFF(escaped_slashes), .help = "request targets with an encoded / or \\ (%2F, %5C): reject with 400, or keep them encoded (judged and forwarded as sent)" },
	{ .name = "proxy.underscores_in_headers", .type = KG_SET_BOOL, .def = "false", .offset = OFF(underscores_in_headers), .help = "pass request headers whose names contain _ upstream (CGI-style upstreams read X_Role as X-Role); off drops them, as nginx does" },
	{ .name = "proxy.upgrades", .type = KG_SET_LIST, .def = "websocket", .offset = OFF(upgrades), .metavar = "PROTOCOL", .help = "Upgrade protocols tunnelled after authentication; other Upgrade requests are proxied as ordinary requests without their Upgrade headers" },
	{ .name = "forward_auth.source", .type = KG_SET_STRING, .def = "auto", .choices = "auto|nginx|traefik", .offset = OFF(forward_auth_source), .help = "which headers describe the original request to /_keygate/check: nginx (X-Original-URI/-Method), traefik (X-Forwarded-Uri/-Method), auto (either set, never both)" },
	/* logging */
	{ .name = "restricted", .type = KG_SET_BOOL, .def = "false", .offset = OFF(restricted), .help = "Bee restricted mode: serve /auth and /refresh and require Bee role tokens (Bee's --restricted)" },
	{ .name = "admin_password", .type = KG_SET_STRING, .def = "", .offset = OFF(admin_password), .metavar = "BCRYPT-HASH", .is_secret = true, .help = "bcrypt hash of the admin password for /auth (keygate bcrypt PLAIN); empty: generated on first start" },
	{ .name = "token_encryption_key", .type = KG_SET_LIST, .def = "", .offset = OFF(token_encryption_keys), .metavar = "KEY", .is_secret = true, .help = "key(s) that encrypt Bee/keygate tokens: the first encrypts, all decrypt; empty: generated and stored" },
	{ .name = "token_format", .type = KG_SET_STRING, .def = "keygate", .choices = "keygate|bee", .offset = OFF(token_format), .help = "format of minted tokens: keygate (versioned, HKDF, revocable) or bee (byte-compatible with Bee nodes)" },
	{ .name = "token_max_expiry", .type = KG_SET_DURATION, .def = "30d", .min = SECOND, .max = 3650 * DAY, .offset = OFF(token_max_expiry_ms), .help = "longest lifetime /auth and /refresh grant" },
	{ .name = "unrestricted_paths", .type = KG_SET_LIST, .def = "/health,/readiness,/metrics,/debug/*", .offset = OFF(unrestricted_paths), .metavar = "PATH", .check = check_path, .help = "paths restricted mode never restricts" },
	{ .name = "api_auth_required", .type = KG_SET_BOOL, .def = "false", .offset = OFF(api_auth_required), .help = "AvalancheGo Auth API: serve JSON-RPC at /ext/auth and require its JWTs on every other route (AvalancheGo's --api-auth-required)" },
	{ .name = "api_auth_password_file", .type = KG_SET_STRING, .def = "", .offset = OFF(api_auth_password_file), .metavar = "FILE", .help = "file with the initial Auth API password (read on first start only; auth.changePassword replaces it)" },
	{ .name = "api_auth_token_lifetime", .type = KG_SET_DURATION, .def = "12h", .min = SECOND, .max = 3650 * DAY, .offset = OFF(api_auth_token_lifetime_ms), .help = "lifetime of the JWTs auth.newToken issues" },
	{ .name = "api_keys", .type = KG_SET_BOOL, .def = "true", .offset = OFF(api_keys), .help = "Elasticsearch security APIs: serve /_security/* (API keys, users, roles) and accept Authorization: ApiKey and Elasticsearch users' Basic credentials on every route" },
	{ .name = "api_key.max_expiration", .type = KG_SET_DURATION, .def = "0", .min = 0, .max = 36500 * DAY, .offset = OFF(api_key_max_expiration_ms), .help = "longest lifetime an API key may be created or updated with (a key asked for without one gets it); 0: no limit, keys may never expire as in Elasticsearch" },
	{ .name = "api_key.retention", .type = KG_SET_DURATION, .def = "7d", .min = 0, .max = 36500 * DAY, .offset = OFF(api_key_retention_ms), .help = "how long invalidated and expired API keys stay visible before they are deleted (Elasticsearch's delete.retention_period)" },
	{ .name = "api_key.application", .type = KG_SET_STRING, .def = "keygate", .offset = OFF(api_key_application), .metavar = "NAME", .check = check_not_empty, .help = "application whose privileges in role descriptors open upstream routes: privileges are HTTP methods or *, resources path patterns" },
	{ .name = "api_key.info", .type = KG_SET_STRING, .def = "proxy", .choices = "proxy|keygate", .offset = OFF(api_key_info), .help = "who answers GET / (Elasticsearch's info API, which official clients ask first): proxy (the upstream, as any route) or keygate (an Elasticsearch 8 info body to a caller with the monitor privilege; ES's 401 or 403 otherwise)" },
	{ .name = "es.config_dir", .type = KG_SET_STRING, .def = "", .offset = OFF(es_config_dir), .metavar = "DIR", .help = "an Elasticsearch config directory whose file realm (users, users_roles, roles.yml) keygate reads at start and on SIGHUP; empty: none" },
	{ .name = "basic_users", .type = KG_SET_STRING, .def = "", .offset = OFF(basic_users), .metavar = "FILE", .help = "HTTP Basic users on proxied routes: a file of NAME:BCRYPT-HASH:ROLE[,ROLE] lines; empty: off" },
	{ .name = "basic_cache_ttl", .type = KG_SET_DURATION, .def = "5m", .min = SECOND, .max = DAY, .offset = OFF(basic_cache_ttl_ms), .help = "how long a verified Basic credential is trusted without another bcrypt check" },
	{ .name = "basic_cache_size", .type = KG_SET_INT, .def = "100000", .min = 1, .max = 100000000, .offset = OFF(basic_cache_size), .help = "verified Basic credentials kept in memory (60 bytes each: a 48-byte slot, a quarter spare)" },
	{ .name = "throttle.max_failures", .type = KG_SET_INT, .def = "5", .min = 1, .max = 1000000, .offset = OFF(throttle_max_failures), .help = "password checks per client address that may be in flight or have failed within throttle.window; beyond them 429 at once" },
	{ .name = "throttle.window", .type = KG_SET_DURATION, .def = "60s", .min = SECOND, .max = DAY, .offset = OFF(throttle_window_ms), .help = "period over which failed attempts count, and the longest Retry-After" },

	{ .name = "log.access", .type = KG_SET_STRING, .def = "-", .offset = OFF(access_log), .metavar = "-|off|FILE", .check = check_not_empty, .help = "access log: - for stderr, off, or a file path" },
	{ .name = "log.access_buffer", .type = KG_SET_SIZE, .def = "64KiB", .min = 0, .max = 16 * MIB, .offset = OFF(access_log_buffer), .help = "access-log bytes each worker collects before one write; 0: write every line at once" },
	{ .name = "log.access_flush", .type = KG_SET_DURATION, .def = "1s", .min = 10, .max = HOUR, .offset = OFF(access_log_flush_ms), .help = "longest time a line waits in the access-log buffer" },
	{ .name = "log.level", .type = KG_SET_STRING, .def = "info", .choices = "error|warn|info|debug", .offset = OFF(log_level), .help = "least severe message written to the error log" },
	{ .name = NULL },
};

/* KEYGATE_* variables that are not settings. */
static const char *const env_not_settings[] = { "KEYGATE_CONFIG", NULL };

#define ENV_PREFIX "KEYGATE_"

/* ---- errors ---- */

void kg_config_errors_free(kg_config_errors *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
	e->v = NULL;
	e->n = 0;
}

static kg_err errors_vadd(kg_config_errors *e, const char *fmt, va_list ap)
{
	kg_buf b = { 0 };
	kg_err err = kg_buf_vprintf(&b, fmt, ap);
	if (err)
		goto out;
	char **v = realloc(e->v, (e->n + 1) * sizeof(*v));
	if (!v) {
		err = KG_ENOMEM;
		goto out;
	}
	e->v = v;
	e->v[e->n++] = b.p;
	b.p = NULL;
out:
	kg_buf_free(&b, false);
	return err;
}

kg_err kg_config_errors_add(kg_config_errors *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kg_err err = errors_vadd(e, fmt, ap);
	va_end(ap);
	return err;
}

/* Writes a problem into why and returns KG_EINVAL, for one-line rejections. */
static kg_err __attribute__((format(printf, 2, 3))) bad(kg_buf *why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	(void)kg_buf_vprintf(why, fmt, ap);
	va_end(ap);
	return KG_EINVAL;
}

/* ---- names ---- */

static size_t settings_count(void)
{
	size_t n = 0;
	while (kg_settings[n].name)
		n++;
	return n;
}

enum spelling {
	SPELL_YAML, /* "proxy.upstream_timeout" or "proxy.upstream-timeout" */
	SPELL_FLAG, /* "proxy-upstream-timeout" */
	SPELL_ENV,  /* "PROXY_UPSTREAM_TIMEOUT" (after the KEYGATE_ prefix) */
};

/* Is g, as written, the character c of a canonical name? */
static bool same_char(char c, char g, enum spelling how)
{
	switch (how) {
	case SPELL_YAML:
		return c == '_' ? (g == '_' || g == '-') : g == c;
	case SPELL_FLAG:
		return (c == '_' || c == '.') ? g == '-' : g == c;
	case SPELL_ENV:
		return (c == '_' || c == '.') ? g == '_' : g == ((c >= 'a' && c <= 'z') ? c - 32 : c);
	}
	return false;
}

/* Does the first n bytes of name spell the first n of canon? */
static bool spelled_prefix(const char *canon, const char *name, size_t n, enum spelling how)
{
	for (size_t i = 0; i < n; i++)
		if (!canon[i] || !same_char(canon[i], name[i], how))
			return false;
	return true;
}

/* Does the first n bytes of name spell all of canon? */
static bool spelled(const char *canon, const char *name, size_t n, enum spelling how)
{
	return spelled_prefix(canon, name, n, how) && canon[n] == '\0';
}

static const struct kg_setting *find_n(const char *name, size_t n, enum spelling how)
{
	for (const struct kg_setting *s = kg_settings; s->name; s++)
		if (spelled(s->name, name, n, how))
			return s;
	return NULL;
}

const struct kg_setting *kg_setting_find(const char *name)
{
	const struct kg_setting *s;

	if (!name)
		return NULL;
	if (strncmp(name, "--", 2) == 0)
		return find_n(name + 2, strlen(name + 2), SPELL_FLAG);
	if (strncmp(name, ENV_PREFIX, strlen(ENV_PREFIX)) == 0)
		return find_n(name + strlen(ENV_PREFIX), strlen(name + strlen(ENV_PREFIX)), SPELL_ENV);
	if ((s = find_n(name, strlen(name), SPELL_YAML)))
		return s;
	return find_n(name, strlen(name), SPELL_FLAG);
}

/* True when some setting lives under section ("proxy" for "proxy.x"). */
static bool is_section(const char *section)
{
	size_t n = strlen(section);
	for (const struct kg_setting *s = kg_settings; s->name; s++)
		if (spelled_prefix(s->name, section, n, SPELL_YAML) && s->name[n] == '.')
			return true;
	return false;
}

static kg_err flag_name(const struct kg_setting *s, kg_buf *out)
{
	kg_err err = kg_buf_append(out, "--", 2);
	for (const char *p = s->name; !err && *p; p++)
		err = kg_buf_append(out, (*p == '_' || *p == '.') ? "-" : p, 1);
	return err;
}

static kg_err env_name(const struct kg_setting *s, kg_buf *out)
{
	kg_err err = kg_buf_append(out, ENV_PREFIX, strlen(ENV_PREFIX));
	for (const char *p = s->name; !err && *p; p++) {
		char c = *p == '.' ? '_' : (*p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
		err = kg_buf_append(out, &c, 1);
	}
	return err;
}

/* ---- scalar parsers ---- */

/* Reads the leading non-negative decimal of s; *end points past it. */
static kg_err leading_number(const char *s, int64_t *out, const char **end)
{
	char *e;
	if (*s < '0' || *s > '9')
		return KG_EINVAL;
	errno = 0;
	long long v = strtoll(s, &e, 10);
	if (errno == ERANGE)
		return KG_ERANGE;
	*out = v;
	*end = e;
	return KG_OK;
}

/* A number with one of units' suffixes (compared case-sensitively or
 * not), scaled by its factor without overflow. */
struct unit {
	const char *name;
	int64_t factor;
};

static kg_err parse_with_unit(const char *s, const struct unit *units, size_t n, bool is_case_sensitive,
                              int64_t *out)
{
	const char *end;
	int64_t v;
	kg_err err;

	if (!s || (err = leading_number(s, &v, &end)))
		return s ? err : KG_EINVAL;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < n; i++) {
		if ((is_case_sensitive ? strcmp(end, units[i].name) : strcasecmp(end, units[i].name)) != 0)
			continue;
		if (v > INT64_MAX / units[i].factor)
			return KG_ERANGE;
		*out = v * units[i].factor;
		return KG_OK;
	}
	return KG_EINVAL;
}

kg_err kg_parse_duration_ms(const char *s, int64_t *out_ms)
{
	static const struct unit units[] = {
		{ "", SECOND }, { "ms", 1 }, { "s", SECOND }, { "m", MINUTE }, { "h", HOUR }, { "d", DAY },
	};
	return parse_with_unit(s, units, sizeof(units) / sizeof(units[0]), true, out_ms);
}

kg_err kg_parse_size(const char *s, int64_t *out_bytes)
{
	static const struct unit units[] = {
		{ "", 1 },
		{ "b", 1 },
		{ "k", 1000 },
		{ "kb", 1000 },
		{ "m", 1000 * 1000 },
		{ "mb", 1000 * 1000 },
		{ "g", 1000 * 1000 * 1000 },
		{ "gb", 1000 * 1000 * 1000 },
		{ "t", 1000LL * 1000 * 1000 * 1000 },
		{ "tb", 1000LL * 1000 * 1000 * 1000 },
		{ "kib", KIB },
		{ "mib", MIB },
		{ "gib", GIB },
		{ "tib", 1024 * GIB },
	};
	return parse_with_unit(s, units, sizeof(units) / sizeof(units[0]), false, out_bytes);
}

static kg_err parse_int(const char *s, int64_t *out)
{
	char *end;
	const char *p = s[0] == '-' ? s + 1 : s;
	if (*p < '0' || *p > '9')
		return KG_EINVAL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end != '\0')
		return KG_EINVAL;
	if (errno == ERANGE)
		return KG_ERANGE;
	*out = v;
	return KG_OK;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* Formats a duration with the largest unit that divides it: "90s", "1h". */
static void fmt_duration(int64_t ms, char *out, size_t n)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = { { "d", DAY }, { "h", HOUR }, { "m", MINUTE }, { "s", SECOND } };
	for (size_t i = 0; ms != 0 && i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].ms == 0) {
			snprintf(out, n, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	}
	snprintf(out, n, ms ? "%lldms" : "%llds", (long long)ms);
}

static void fmt_size(int64_t bytes, char *out, size_t n)
{
	static const struct {
		const char *unit;
		int64_t bytes;
	} units[] = { { "GiB", GIB }, { "MiB", MIB }, { "KiB", KIB } };
	for (size_t i = 0; bytes != 0 && i < sizeof(units) / sizeof(units[0]); i++) {
		if (bytes % units[i].bytes == 0) {
			snprintf(out, n, "%lld%s", (long long)(bytes / units[i].bytes), units[i].unit);
			return;
		}
	}
	snprintf(out, n, "%lld", (long long)bytes);
}

static void fmt_number(const struct kg_setting *s, int64_t v, char *out, size_t n)
{
	if (s->type == KG_SET_DURATION)
		fmt_duration(v, out, n);
	else if (s->type == KG_SET_SIZE)
		fmt_size(v, out, n);
	else
		snprintf(out, n, "%lld", (long long)v);
}

/* ---- value checks ---- */

static bool check_listen(const char *v, kg_buf *why)
{
	kg_hostport hp;
	return kg_hostport_parse(kg_str_c(v), true, &hp, why) == KG_OK;
}

static bool check_upstream(const char *v, kg_buf *why)
{
	kg_url u;
	return v[0] == '\0' || kg_url_parse(kg_str_c(v), &u, why) == KG_OK;
}

static bool check_cidr(const char *v, kg_buf *why)
{
	const char *slash = strchr(v, '/');
	size_t n = slash ? (size_t)(slash - v) : strlen(v);
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char a[16];
	unsigned long long bits, max;

	if (n >= sizeof(addr))
		goto not_addr;
	memcpy(addr, v, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, a) == 1)
		max = 32;
	else if (inet_pton(AF_INET6, addr, a) == 1)
		max = 128;
	else
		goto not_addr;
	if (slash && kg_str_to_u64(kg_str_c(slash + 1), max, &bits) != KG_OK) {
		bad(why, "'%s': the prefix length must be between 0 and %llu", v, max);
		return false;
	}
	return true;
not_addr:
	bad(why, "'%s': not an IP address or CIDR", v);
	return false;
}

static bool is_path_char_ok(char c)
{
	return (unsigned char)c > ' ' && c != 0x7f && c != '?' && c != '#';
}

static bool check_path(const char *v, kg_buf *why)
{
	if (v[0] != '/') {
		bad(why, "'%s': must start with '/'", v);
		return false;
	}
	for (const char *p = v; *p; p++)
		if (!is_path_char_ok(*p)) {
			bad(why, "'%s': a path cannot contain spaces, controls, '?' or '#'", v);
			return false;
		}
	return true;
}

static bool check_path_prefix(const char *v, kg_buf *why)
{
	size_t n = strlen(v);
	if (n < 2 || v[0] != '/' || v[n - 1] == '/') {
		bad(why, "must start with '/' and not end with '/', got '%s'", v);
		return false;
	}
	return check_path(v, why);
}

static bool check_not_empty(const char *v, kg_buf *why)
{
	if (v[0] == '\0') {
		bad(why, "must not be empty");
		return false;
	}
	return true;
}

/* ---- storing values ---- */

static void *field(kg_config *c, const struct kg_setting *s)
{
	return (char *)c + s->offset;
}

static const void *cfield(const kg_config *c, const struct kg_setting *s)
{
	return (const char *)c + s->offset;
}

static void string_free(char **p, bool is_secret)
{
	if (*p && is_secret)
		OPENSSL_cleanse(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

static void list_clear(kg_strlist *l, bool is_secret)
{
	for (size_t i = 0; i < l->n; i++)
		string_free(&l->v[i], is_secret);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static kg_err list_add(kg_strlist *l, const char *v)
{
	char *dup = strdup(v);
	char **nv = dup ? realloc(l->v, (l->n + 1) * sizeof(*nv)) : NULL;
	if (!nv) {
		free(dup);
		return KG_ENOMEM;
	}
	l->v = nv;
	l->v[l->n++] = dup;
	return KG_OK;
}

static bool in_choices(const char *choices, const char *v)
{
	size_t n = strlen(v);
	for (const char *p = choices; *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && memcmp(p, v, n) == 0)
			return true;
		p += len + (bar ? 1 : 0);
	}
	return false;
}

/* Parses v as a value of s and stores it in c; a LIST gets v appended.
 * Returns KG_EINVAL with the problem in why when v is not acceptable (c is
 * then unchanged), or KG_ENOMEM. */
static kg_err setting_apply(kg_config *c, const struct kg_setting *s, const char *v, kg_buf *why)
{
	void *f = field(c, s);
	int64_t n = 0;
	kg_err err = KG_OK;
	bool b;

	switch (s->type) {
	case KG_SET_BOOL:
		if (!parse_bool(v, &b))
			return bad(why, "expected true or false, got '%s'", v);
		*(bool *)f = b;
		return KG_OK;
	case KG_SET_TRIBOOL:
		if (strcasecmp(v, "auto") == 0) {
			*(int *)f = KG_UNSET;
			return KG_OK;
		}
		if (!parse_bool(v, &b))
			return bad(why, "expected true, false or auto, got '%s'", v);
		*(int *)f = b ? KG_TRUE : KG_FALSE;
		return KG_OK;
	case KG_SET_INT:
		if ((err = parse_int(v, &n)) == KG_EINVAL)
			return bad(why, "expected an integer, got '%s'", v);
		break;
	case KG_SET_DURATION:
		if ((err = kg_parse_duration_ms(v, &n)) == KG_EINVAL)
			return bad(why, "expected a duration such as 500ms, 10s, 2m, 1h or 1d, got '%s'", v);
		break;
	case KG_SET_SIZE:
		if ((err = kg_parse_size(v, &n)) == KG_EINVAL)
			return bad(why, "expected a size such as 512, 16KiB, 1MiB or 1GiB, got '%s'", v);
		break;
	case KG_SET_STRING:
	case KG_SET_LIST:
		if (s->choices && !in_choices(s->choices, v))
			return bad(why, "must be one of %s, got '%s'", s->choices, v);
		if (s->check && !s->check(v, why))
			return KG_EINVAL;
		if (s->type == KG_SET_LIST)
			return list_add(f, v);
		char *dup = strdup(v);
		if (!dup)
			return KG_ENOMEM;
		string_free(f, s->is_secret);
		*(char **)f = dup;
		return KG_OK;
	}
	if (err == KG_ERANGE || n < s->min || n > s->max) {
		char lo[32], hi[32];
		fmt_number(s, s->min, lo, sizeof(lo));
		fmt_number(s, s->max, hi, sizeof(hi));
		return bad(why, "must be between %s and %s, got %s", lo, hi, v);
	}
	*(int64_t *)f = n;
	return KG_OK;
}

/* ---- loading ---- */

struct load {
	kg_config *cfg;
	kg_config_errors *errs;
	kg_err fatal;          /* KG_ENOMEM: give up */
	const char *file;
	unsigned *file_line;   /* per setting: line that set it in the file */
	bool *has_problem;     /* per setting: some value of it was rejected */
	bool *is_flag_seen;    /* per setting: a LIST flag was already given */
};

static void __attribute__((format(printf, 2, 3))) problem(struct load *ld, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kg_err err = errors_vadd(ld->errs, fmt, ap);
	va_end(ap);
	if (err)
		ld->fatal = err;
}

/* Applies v to s; a problem is reported as "where: problem". */
static void apply(struct load *ld, const struct kg_setting *s, const char *v, const char *where)
{
	kg_buf why = { 0 };
	kg_err err = setting_apply(ld->cfg, s, v, &why);
	if (err == KG_EINVAL) {
		problem(ld, "%s: %s", where, why.p ? why.p : "invalid value");
		ld->has_problem[s - kg_settings] = true;
	} else if (err)
		ld->fatal = err;
	kg_buf_free(&why, s->is_secret);
}

/* Applies a comma-separated list (defaults, environment); empty items are
 * skipped and items are trimmed so "a, b" works. */
static void apply_list(struct load *ld, const struct kg_setting *s, const char *v, const char *where)
{
	list_clear(field(ld->cfg, s), s->is_secret);
	while (*v && !ld->fatal) {
		const char *comma = strchr(v, ',');
		kg_str item = kg_str_trim((kg_str){ v, comma ? (size_t)(comma - v) : strlen(v) });
		if (item.n) {
			char *dup = strndup(item.p, item.n);
			if (!dup) {
				ld->fatal = KG_ENOMEM;
				return;
			}
			apply(ld, s, dup, where);
			free(dup);
		}
		v = comma ? comma + 1 : v + strlen(v);
	}
}

static void load_defaults(struct load *ld)
{
	for (const struct kg_setting *s = kg_settings; s->name && !ld->fatal; s++) {
		if (s->type == KG_SET_LIST)
			apply_list(ld, s, s->def, s->name);
		else
			apply(ld, s, s->def, s->name);
	}
}

/* -- YAML -- */

static bool yaml_is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (strcmp((const char *)n->data.scalar.value, nulls[i]) == 0)
			return true;
	return false;
}

static unsigned line_of(const yaml_node_t *n)
{
	return (unsigned)n->start_mark.line + 1;
}

static const char *node_kind(const yaml_node_t *n)
{
	return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a value";
}

/* Applies the scalar node n, or v instead of its text when v != NULL;
 * problems read "file:line: name: ...". */
static void yaml_apply(struct load *ld, const struct kg_setting *s, const yaml_node_t *n, const char *v)
{
	kg_buf where = { 0 };

	if (kg_buf_printf(&where, "%s:%u: %s", ld->file, line_of(n), s->name)) {
		ld->fatal = KG_ENOMEM;
		goto out;
	}
	if (!v && strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		problem(ld, "%s: contains a NUL byte", where.p);
	else
		apply(ld, s, v ? v : (const char *)n->data.scalar.value, where.p);
out:
	kg_buf_free(&where, false);
}

static void yaml_setting(struct load *ld, yaml_document_t *doc, const struct kg_setting *s, yaml_node_t *v,
                         unsigned key_line)
{
	size_t i = (size_t)(s - kg_settings);

	if (ld->file_line[i]) {
		problem(ld, "%s:%u: %s: set twice (first on line %u)", ld->file, key_line, s->name, ld->file_line[i]);
		return;
	}
	ld->file_line[i] = key_line;

	if (v->type == YAML_MAPPING_NODE || (v->type == YAML_SEQUENCE_NODE && s->type != KG_SET_LIST)) {
		problem(ld, "%s:%u: %s: expected a single value, got %s", ld->file, line_of(v), s->name, node_kind(v));
		return;
	}
	if (s->type == KG_SET_LIST)
		list_clear(field(ld->cfg, s), s->is_secret);
	if (v->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
			yaml_node_t *item = yaml_document_get_node(doc, *it);
			if (item->type != YAML_SCALAR_NODE)
				problem(ld, "%s:%u: %s: expected a list of values, got %s in it", ld->file, line_of(item),
				        s->name, node_kind(item));
			else
				yaml_apply(ld, s, item, NULL);
		}
		return;
	}
	if (yaml_is_null(v)) {
		/* "key:" with nothing after it: an empty list, an empty string,
		 * "auto"; a number or a boolean has no empty value */
		if (s->type == KG_SET_LIST)
			return;
		if (s->type != KG_SET_STRING && s->type != KG_SET_TRIBOOL) {
			problem(ld, "%s:%u: %s: needs a value", ld->file, line_of(v), s->name);
			return;
		}
		yaml_apply(ld, s, v, s->type == KG_SET_STRING ? "" : "auto");
		return;
	}
	yaml_apply(ld, s, v, NULL);
}

static void yaml_mapping(struct load *ld, yaml_document_t *doc, yaml_node_t *map, const char *prefix)
{
	kg_buf key = { 0 };

	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top && !ld->fatal; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		yaml_node_t *v = yaml_document_get_node(doc, p->value);
		unsigned line = line_of(k);

		if (k->type != YAML_SCALAR_NODE) {
			problem(ld, "%s:%u: a key must be a plain name, not %s", ld->file, line, node_kind(k));
			continue;
		}
		kg_buf_clear(&key);
		if (kg_buf_printf(&key, "%s%s%s", prefix ? prefix : "", prefix ? "." : "",
		                  (const char *)k->data.scalar.value)) {
			ld->fatal = KG_ENOMEM;
			break;
		}
		const struct kg_setting *s = find_n(key.p, key.n, SPELL_YAML);
		if (s) {
			yaml_setting(ld, doc, s, v, line);
		} else if (is_section(key.p)) {
			/* a section whose settings are all commented out is null */
			if (v->type == YAML_MAPPING_NODE)
				yaml_mapping(ld, doc, v, key.p);
			else if (!yaml_is_null(v))
				problem(ld, "%s:%u: %s: expected a mapping of settings, got %s", ld->file, line, key.p,
				        node_kind(v));
		} else {
			problem(ld, "%s:%u: %s: unknown setting", ld->file, line, key.p);
		}
	}
	kg_buf_free(&key, false);
}

static kg_err read_file(const char *path, kg_buf *out, int *out_errno)
{
	errno = 0;
	kg_err err = kg_buf_read_file(out, path, KG_MAX_CONFIG_FILE);
	*out_errno = errno;
	return err;
}

static void load_file(struct load *ld, const char *path)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	bool has_parser = false, has_doc = false;
	kg_buf text = { 0 };
	int eno = 0;

	ld->file = path;
	kg_err err = read_file(path, &text, &eno);
	if (err == KG_ENOMEM) {
		ld->fatal = err;
		goto out;
	}
	if (err) {
		problem(ld, "%s: cannot read: %s", path, strerror(eno));
		goto out;
	}
	if (!yaml_parser_initialize(&parser)) {
		ld->fatal = KG_ENOMEM;
		goto out;
	}
	has_parser = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)(text.p ? text.p : ""), text.n);
	if (!yaml_parser_load(&parser, &doc))
		goto syntax;
	has_doc = true;

	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root || yaml_is_null(root))
		goto out;
	if (root->type != YAML_MAPPING_NODE) {
		problem(ld, "%s:%u: expected a mapping of settings, got %s", path, line_of(root), node_kind(root));
		goto out;
	}
	yaml_mapping(ld, &doc, root, NULL);

	/* a second document would be silently ignored: refuse it */
	yaml_document_delete(&doc);
	has_doc = false;
	if (!yaml_parser_load(&parser, &doc))
		goto syntax;
	has_doc = true;
	if ((root = yaml_document_get_root_node(&doc)))
		problem(ld, "%s:%u: only one YAML document is allowed", path, line_of(root));
	goto out;

syntax:
	if (parser.error == YAML_MEMORY_ERROR) {
		ld->fatal = KG_ENOMEM;
		goto out;
	}
	unsigned line = (unsigned)parser.problem_mark.line + 1;
	if (parser.error == YAML_READER_ERROR) {
		/* the reader reports a byte offset, not a mark */
		line = 1;
		for (size_t i = 0; i < parser.problem_offset && i < text.n; i++)
			line += text.p[i] == '\n';
	}
	problem(ld, "%s:%u: syntax error: %s%s%s", path, line, parser.problem ? parser.problem : "invalid YAML",
	        parser.context ? " " : "", parser.context ? parser.context : "");
out:
	if (has_doc)
		yaml_document_delete(&doc);
	if (has_parser)
		yaml_parser_delete(&parser);
	kg_buf_free(&text, false);
}

/* -- environment -- */

static void load_env(struct load *ld, char *const *envp)
{
	kg_buf name = { 0 };
	const size_t plen = strlen(ENV_PREFIX);

	for (; envp && *envp && !ld->fatal; envp++) {
		const char *e = *envp, *eq = strchr(e, '=');
		if (strncmp(e, ENV_PREFIX, plen) != 0 || !eq)
			continue;
		kg_buf_clear(&name);
		if (kg_buf_append(&name, e, (size_t)(eq - e))) {
			ld->fatal = KG_ENOMEM;
			break;
		}
		bool is_ignored = false;
		for (size_t i = 0; env_not_settings[i]; i++)
			is_ignored |= strcmp(name.p, env_not_settings[i]) == 0;
		if (is_ignored)
			continue;
		const struct kg_setting *s = find_n(name.p + plen, name.n - plen, SPELL_ENV);
		if (!s)
			problem(ld, "%s: unknown setting", name.p);
		else if (s->type == KG_SET_LIST)
			apply_list(ld, s, eq + 1, name.p);
		else
			apply(ld, s, eq + 1, name.p);
	}
	kg_buf_free(&name, false);
}

/* -- flags -- */

static bool is_switch(const struct kg_setting *s)
{
	return s->type == KG_SET_BOOL || s->type == KG_SET_TRIBOOL;
}

/* May argv[i + 1] be the value of the flag at argv[i]? A token that looks
 * like a flag is not taken, so "--listen --workers 2" says what is missing. */
static bool has_next_value(int argc, char *const *argv, int i)
{
	return i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0;
}

static void load_flags(struct load *ld, int argc, char *const *argv)
{
	kg_buf flag = { 0 };

	for (int i = 0; i < argc && !ld->fatal; i++) {
		const char *a = argv[i], *eq = strchr(a, '='), *value = eq ? eq + 1 : NULL;

		if (strncmp(a, "--", 2) != 0 || a[2] == '\0' || a[2] == '=') {
			problem(ld, "%s: unexpected argument (flags start with --)", a);
			continue;
		}
		kg_buf_clear(&flag);
		if (kg_buf_append(&flag, a, eq ? (size_t)(eq - a) : strlen(a))) {
			ld->fatal = KG_ENOMEM;
			break;
		}
		if (strcmp(flag.p, "--config") == 0) {
			/* kg_config_path() found it; only check it is complete */
			if (!value && !has_next_value(argc, argv, i))
				problem(ld, "--config: needs a value");
			else if (!value)
				i++;
			continue;
		}
		const struct kg_setting *s = find_n(flag.p + 2, flag.n - 2, SPELL_FLAG);
		if (!s) {
			problem(ld, "%s: unknown flag", flag.p);
			/* its value, if any, is not a second problem */
			if (!value && has_next_value(argc, argv, i))
				i++;
			continue;
		}
		if (!value && is_switch(s)) {
			value = "true";
		} else if (!value) {
			if (!has_next_value(argc, argv, i)) {
				problem(ld, "%s: needs a value", flag.p);
				continue;
			}
			value = argv[++i];
		}
		if (s->type == KG_SET_LIST) {
			/* the first occurrence replaces the file's or env's list */
			size_t k = (size_t)(s - kg_settings);
			if (!ld->is_flag_seen[k])
				list_clear(field(ld->cfg, s), s->is_secret);
			ld->is_flag_seen[k] = true;
		}
		apply(ld, s, value, flag.p);
	}
	kg_buf_free(&flag, false);
}

/* The TLS settings that only make sense together: pairs complete, and a
 * certificate for every address that speaks TLS. */
static void check_tls(struct load *ld)
{
	const kg_config *c = ld->cfg;
	bool has_alias_cert = c->http_tls_cert_file[0] != '\0', has_alias_key = c->http_tls_key_file[0] != '\0';
	if (c->tls_cert.n != c->tls_key.n)
		problem(ld, "tls.cert and tls.key: %zu certificate%s but %zu key%s; they go in pairs, in the same order",
		        c->tls_cert.n, c->tls_cert.n == 1 ? "" : "s", c->tls_key.n, c->tls_key.n == 1 ? "" : "s");
	if (has_alias_cert != has_alias_key)
		problem(ld, "http_tls_cert_file and http_tls_key_file: set both or neither");
	bool has_pair = c->tls_cert.n > 0 || (has_alias_cert && has_alias_key);
	if ((c->tls_listen.n > 0 || c->http_tls_enabled) && !has_pair)
		problem(ld, "%s: needs a certificate and its key (tls.cert and tls.key)",
		        c->tls_listen.n > 0 ? "tls.listen" : "http_tls_enabled");
	if ((c->proxy_tls_cert[0] != '\0') != (c->proxy_tls_key[0] != '\0'))
		problem(ld, "proxy.tls_cert and proxy.tls_key: set both or neither");
}

kg_err kg_config_load(const char *path, char *const *envp, int argc, char *const *argv, kg_config **out,
                      kg_config_errors *errs)
{
	size_t nset = settings_count();
	size_t nerr = errs->n;
	struct load ld = { .errs = errs };
	kg_err err = KG_ENOMEM;

	*out = NULL;
	if (!(ld.cfg = calloc(1, sizeof(*ld.cfg))) || !(ld.file_line = calloc(nset, sizeof(*ld.file_line))) ||
	    !(ld.is_flag_seen = calloc(nset, sizeof(*ld.is_flag_seen))) ||
	    !(ld.has_problem = calloc(nset, sizeof(*ld.has_problem))))
		goto out;

	load_defaults(&ld);
	if (path && !ld.fatal)
		load_file(&ld, path);
	if (!ld.fatal)
		load_env(&ld, envp);
	if (!ld.fatal)
		load_flags(&ld, argc, argv);

	/* a list can be emptied by any source; only the result counts (and a
	 * rejected item already said what is wrong) */
	for (const struct kg_setting *s = kg_settings; s->name && !ld.fatal; s++) {
		const kg_strlist *l = field(ld.cfg, s);
		if (s->type == KG_SET_LIST && (int64_t)l->n < s->min && !ld.has_problem[s - kg_settings])
			problem(&ld, "%s: needs at least %lld value%s", s->name, (long long)s->min, s->min == 1 ? "" : "s");
	}
	if (!ld.fatal)
		check_tls(&ld);
	if (ld.fatal) {
		err = ld.fatal;
		goto out;
	}
	if (errs->n > nerr) {
		err = KG_ECONFIG;
		goto out;
	}
	*out = ld.cfg;
	ld.cfg = NULL;
	err = KG_OK;
out:
	kg_config_free(&ld.cfg);
	free(ld.file_line);
	free(ld.is_flag_seen);
	free(ld.has_problem);
	return err;
}

const char *kg_config_path(char *const *envp, int argc, char *const *argv)
{
	const char *path = NULL;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--config") == 0) {
			if (has_next_value(argc, argv, i))
				path = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			path = a + 9;
		} else if (strncmp(a, "--", 2) == 0 && !strchr(a, '=')) {
			/* skip a value, which could itself read "--config" */
			const struct kg_setting *s = find_n(a + 2, strlen(a + 2), SPELL_FLAG);
			if (s && !is_switch(s) && has_next_value(argc, argv, i))
				i++;
		}
	}
	if (path)
		return path;
	for (; envp && *envp; envp++)
		if (strncmp(*envp, "KEYGATE_CONFIG=", 15) == 0 && (*envp)[15])
			path = *envp + 15;
	return path;
}

void kg_config_free(kg_config **cfg)
{
	if (!cfg || !*cfg)
		return;
	for (const struct kg_setting *s = kg_settings; s->name; s++) {
		if (s->type == KG_SET_STRING)
			string_free(field(*cfg, s), s->is_secret);
		else if (s->type == KG_SET_LIST)
			list_clear(field(*cfg, s), s->is_secret);
	}
	free(*cfg);
	*cfg = NULL;
}

/* ---- output ---- */

static const char *metavar(const struct kg_setting *s)
{
	if (s->metavar)
		return s->metavar;
	if (s->choices)
		return s->choices;
	switch (s->type) {
	case KG_SET_BOOL:
		return "BOOL";
	case KG_SET_TRIBOOL:
		return "BOOL|auto";
	case KG_SET_INT:
		return "N";
	case KG_SET_DURATION:
		return "DURATION";
	case KG_SET_SIZE:
		return "SIZE";
	case KG_SET_STRING:
	case KG_SET_LIST:
		break;
	}
	return "VALUE";
}

void kg_config_print_help(FILE *out)
{
	kg_buf flag = { 0 }, env = { 0 };

	for (const struct kg_setting *s = kg_settings; s->name; s++) {
		kg_buf_clear(&flag);
		kg_buf_clear(&env);
		if (flag_name(s, &flag) || env_name(s, &env))
			break;
		if (is_switch(s))
			fprintf(out, "  %s[=%s]\n", flag.p, metavar(s));
		else
			fprintf(out, "  %s %s%s\n", flag.p, metavar(s), s->type == KG_SET_LIST ? " (repeatable)" : "");
		fprintf(out, "      %s\n", s->help);
		fprintf(out, "      default: %s", s->def[0] ? s->def : "(none)");
		if (s->type == KG_SET_INT || s->type == KG_SET_DURATION || s->type == KG_SET_SIZE) {
			char lo[32], hi[32];
			fmt_number(s, s->min, lo, sizeof(lo));
			fmt_number(s, s->max, hi, sizeof(hi));
			fprintf(out, ", range %s..%s", lo, hi);
		}
		fprintf(out, "; env %s%s\n", env.p, s->type == KG_SET_LIST ? " (comma-separated)" : "");
	}
	kg_buf_free(&flag, false);
	kg_buf_free(&env, false);
}

kg_err kg_config_dump(const kg_config *c, kg_buf *out)
{
	kg_err err = KG_OK;
	char num[32];

	for (const struct kg_setting *s = kg_settings; s->name && !err; s++) {
		const void *f = cfield(c, s);
		if ((err = kg_buf_printf(out, "%s: ", s->name)))
			break;
		switch (s->type) {
		case KG_SET_BOOL:
			err = kg_buf_printf(out, "%s", *(const bool *)f ? "true" : "false");
			break;
		case KG_SET_TRIBOOL: {
			int t = *(const int *)f;
			err = kg_buf_printf(out, "%s", t == KG_UNSET ? "auto" : t == KG_TRUE ? "true" : "false");
			break;
		}
		case KG_SET_INT:
		case KG_SET_DURATION:
		case KG_SET_SIZE:
			fmt_number(s, *(const int64_t *)f, num, sizeof(num));
			err = kg_buf_printf(out, "%s", num);
			break;
		case KG_SET_STRING: {
			const char *v = *(char *const *)f;
			if (s->is_secret && v[0])
				v = "<hidden>";
			/* a JSON string is a YAML double-quoted scalar */
			err = kg_buf_append_json_string(out, kg_str_c(v));
			break;
		}
		case KG_SET_LIST: {
			const kg_strlist *l = f;
			err = kg_buf_append(out, "[", 1);
			for (size_t i = 0; i < l->n && !err; i++) {
				if (i)
					err = kg_buf_append(out, ", ", 2);
				if (!err)
					err = kg_buf_append_json_string(out, kg_str_c(s->is_secret ? "<hidden>" : l->v[i]));
			}
			if (!err)
				err = kg_buf_append(out, "]", 1);
			break;
		}
		}
		if (!err)
			err = kg_buf_append(out, "\n", 1);
	}
	return err;
}
