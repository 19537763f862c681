#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keygate/config.h"
#include "kgtest.h"

#ifndef KG_SOURCE_DIR
#define KG_SOURCE_DIR "."
#endif

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Writes text to a new file under /tmp; returns its owned path. */
static char *temp_yaml(const char *text)
{
	char *path = strdup("/tmp/kg_test_config_XXXXXX");
	int fd = path ? mkstemp(path) : -1;
	size_t n = strlen(text);
	if (fd < 0 || write(fd, text, n) != (ssize_t)n) {
		printf("# cannot write a temp file\n");
		abort();
	}
	close(fd);
	return path;
}

/* The result of one load, kept together so a test can free it in one call. */
struct result {
	kg_err err;
	kg_config *cfg;
	kg_config_errors errs;
	char *path;
};

/* Loads yaml (if not NULL) from a temp file, then env and argv (both
 * NULL-terminated, may be NULL). */
static struct result load(const char *yaml, char **env, char **argv)
{
	struct result r = { 0 };
	int argc = 0;
	while (argv && argv[argc])
		argc++;
	if (yaml)
		r.path = temp_yaml(yaml);
	r.err = kg_config_load(r.path, env, argc, argv, &r.cfg, &r.errs);
	return r;
}

static void result_free(struct result *r)
{
	kg_config_free(&r->cfg);
	kg_config_errors_free(&r->errs);
	if (r->path)
		unlink(r->path);
	free(r->path);
}

/* The errors of r on one line, for failure messages. */
static const char *errors_text(const struct result *r)
{
	static char text[4096];
	size_t at = 0;
	text[0] = '\0';
	for (size_t i = 0; i < r->errs.n && at < sizeof(text); i++) {
		int n = snprintf(text + at, sizeof(text) - at, "[%s] ", r->errs.v[i]);
		if (n < 0)
			break;
		at += (size_t)n;
	}
	return r->errs.n ? text : "(no errors)";
}

/* True when some error of r ends with want (the path prefix varies). */
static bool has_error(const struct result *r, const char *want)
{
	size_t wn = strlen(want);
	for (size_t i = 0; i < r->errs.n; i++) {
		size_t n = strlen(r->errs.v[i]);
		if (n >= wn && strcmp(r->errs.v[i] + n - wn, want) == 0)
			return true;
	}
	return false;
}

static char *dump(const kg_config *c)
{
	kg_buf b = { 0 };
	if (kg_config_dump(c, &b) != KG_OK)
		abort();
	return b.p;
}

/* ---- the table ---- */

KG_TEST(test_table_names_are_unique_in_every_spelling)
{
	for (const struct kg_setting *s = kg_settings; s->name; s++) {
		for (const char *p = s->name; *p; p++)
			KG_CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.',
			         "%s: canonical names are lower-case snake_case", s->name);
		KG_CHECK(s->help && s->help[0], "%s: no help", s->name);
		KG_CHECK(s->def != NULL, "%s: no default", s->name);
		KG_CHECK(s->offset + sizeof(int64_t) <= sizeof(kg_config) || s->type == KG_SET_BOOL ||
		                 s->type == KG_SET_TRIBOOL,
		         "%s: offset %zu outside kg_config", s->name, s->offset);
		KG_CHECK(kg_setting_find(s->name) == s, "%s: not found by its own name", s->name);
		for (const struct kg_setting *t = kg_settings; t < s; t++)
			KG_CHECK(t->offset != s->offset, "%s and %s share a field", t->name, s->name);
	}
}

KG_TEST(test_setting_find_accepts_every_spelling)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "proxy.upstream_timeout", "proxy.upstream_timeout" },
		{ "proxy.upstream-timeout", "proxy.upstream_timeout" },
		{ "--proxy-upstream-timeout", "proxy.upstream_timeout" },
		{ "proxy-upstream-timeout", "proxy.upstream_timeout" },
		{ "KEYGATE_PROXY_UPSTREAM_TIMEOUT", "proxy.upstream_timeout" },
		{ "listen", "listen" },
		{ "--listen", "listen" },
		{ "KEYGATE_LISTEN", "listen" },
		{ "log.level", "log.level" },
		{ "--log-level", "log.level" },
		{ "api-prefix", "api_prefix" },
		{ "KEYGATE_API_PREFIX", "api_prefix" },
		{ "proxy", NULL },
		{ "proxy.", NULL },
		{ "proxy.upstream_timeou", NULL },
		{ "proxy.upstream_timeoutx", NULL },
		{ "PROXY.UPSTREAM_TIMEOUT", NULL },
		{ "KEYGATE_proxy_upstream_timeout", NULL },
		{ "--proxy.upstream_timeout", NULL },
		{ "KEYGATE_CONFIG", NULL },
		{ "", NULL },
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		const struct kg_setting *s = kg_setting_find(cases[i].in);
		const char *got = s ? s->name : NULL;
		KG_CHECK((got == NULL) == (cases[i].want == NULL) && (!got || strcmp(got, cases[i].want) == 0),
		         "'%s': got %s, want %s", cases[i].in, got ? got : "NULL",
		         cases[i].want ? cases[i].want : "NULL");
	}
	KG_CHECK(kg_setting_find(NULL) == NULL, "NULL must find nothing");
}

/* ---- defaults ---- */

KG_TEST(test_defaults_without_any_source)
{
	struct result r = load(NULL, NULL, NULL);
	KG_CHECK(r.err == KG_OK, "load: %s %s", kg_errname(r.err), errors_text(&r));
	const kg_config *c = r.cfg;
	if (!c)
		goto out;
	KG_CHECK(c->listen.n == 1 && strcmp(c->listen.v[0], "127.0.0.1:8080") == 0, "listen");
	KG_CHECK(c->workers == 0, "workers %lld", (long long)c->workers);
	KG_CHECK(strcmp(c->data_dir, "./keygate-data") == 0, "data_dir %s", c->data_dir);
	KG_CHECK(strcmp(c->api_prefix, "/_keygate") == 0, "api_prefix %s", c->api_prefix);
	KG_CHECK(c->shutdown_timeout_ms == 10000, "shutdown_timeout %lld", (long long)c->shutdown_timeout_ms);
	KG_CHECK(c->require_auth == KG_UNSET, "require_auth %d", c->require_auth);
	KG_CHECK(strcmp(c->error_dialect, "auto") == 0, "error_dialect %s", c->error_dialect);
	KG_CHECK(strcmp(c->policy, "") == 0, "policy '%s'", c->policy);
	KG_CHECK(c->public_paths.n == 0, "public_paths has %zu", c->public_paths.n);
	KG_CHECK(c->trusted_proxies.n == 0, "trusted_proxies has %zu", c->trusted_proxies.n);
	KG_CHECK(strcmp(c->upstream, "") == 0, "upstream '%s'", c->upstream);
	KG_CHECK(c->max_header_bytes == 16384, "max_header_bytes %lld", (long long)c->max_header_bytes);
	KG_CHECK(c->max_headers == 100, "max_headers");
	KG_CHECK(c->max_url_bytes == 8192, "max_url_bytes");
	KG_CHECK(c->max_body_bytes == 1048576, "max_body_bytes");
	KG_CHECK(c->header_timeout_ms == 10000, "header_timeout");
	KG_CHECK(c->idle_timeout_ms == 60000, "idle_timeout");
	KG_CHECK(c->max_connections == 10000, "max_connections");
	KG_CHECK(c->upstream_timeout_ms == 60000, "upstream_timeout");
	KG_CHECK(c->connect_timeout_ms == 5000, "connect_timeout");
	KG_CHECK(c->pool_size == 64, "pool_size");
	KG_CHECK(c->preserve_host && c->forwarded_headers && !c->forward_credentials, "proxy booleans");
	KG_CHECK(strcmp(c->access_log, "-") == 0, "log.access %s", c->access_log);
	KG_CHECK(strcmp(c->log_level, "info") == 0, "log.level %s", c->log_level);
out:
	result_free(&r);
}

/* ---- scalar parsers ---- */

KG_TEST(test_parse_duration_table)
{
	static const struct {
		const char *in;
		kg_err err;
		int64_t want;
	} cases[] = {
		{ "10s", KG_OK, 10000 },
		{ "500ms", KG_OK, 500 },
		{ "2m", KG_OK, 120000 },
		{ "1h", KG_OK, 3600000 },
		{ "1d", KG_OK, 86400000 },
		{ "3d", KG_OK, 3 * 86400000LL },
		{ "10", KG_OK, 10000 },
		{ "0", KG_OK, 0 },
		{ "0ms", KG_OK, 0 },
		{ "5 s", KG_OK, 5000 },
		{ "", KG_EINVAL, 0 },
		{ "s", KG_EINVAL, 0 },
		{ "-1s", KG_EINVAL, 0 },
		{ "+1s", KG_EINVAL, 0 },
		{ " 1s", KG_EINVAL, 0 },
		{ "1.5s", KG_EINVAL, 0 },
		{ "10x", KG_EINVAL, 0 },
		{ "10S", KG_EINVAL, 0 },
		{ "1m30s", KG_EINVAL, 0 },
		{ "10s ", KG_EINVAL, 0 },
		{ "99999999999999999999", KG_ERANGE, 0 },
		{ "9223372036854775807d", KG_ERANGE, 0 },
		{ "9223372036854775807ms", KG_OK, INT64_MAX },
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		int64_t v = -7;
		kg_err err = kg_parse_duration_ms(cases[i].in, &v);
		KG_CHECK(err == cases[i].err, "'%s': got %s, want %s", cases[i].in, kg_errname(err),
		         kg_errname(cases[i].err));
		if (err == KG_OK)
			KG_CHECK(v == cases[i].want, "'%s': got %lld ms, want %lld", cases[i].in, (long long)v,
			         (long long)cases[i].want);
		else
			KG_CHECK(v == -7, "'%s': output written on error", cases[i].in);
	}
}

KG_TEST(test_parse_size_table)
{
	static const struct {
		const char *in;
		kg_err err;
		int64_t want;
	} cases[] = {
		{ "512", KG_OK, 512 },
		{ "0", KG_OK, 0 },
		{ "512B", KG_OK, 512 },
		{ "16KiB", KG_OK, 16384 },
		{ "16kib", KG_OK, 16384 },
		{ "1MiB", KG_OK, 1048576 },
		{ "1GiB", KG_OK, 1073741824 },
		{ "1TiB", KG_OK, 1099511627776LL },
		{ "1K", KG_OK, 1000 },
		{ "1KB", KG_OK, 1000 },
		{ "1kb", KG_OK, 1000 },
		{ "2M", KG_OK, 2000000 },
		{ "2MB", KG_OK, 2000000 },
		{ "1G", KG_OK, 1000000000 },
		{ "1GB", KG_OK, 1000000000 },
		{ "16 KiB", KG_OK, 16384 },
		{ "", KG_EINVAL, 0 },
		{ "KiB", KG_EINVAL, 0 },
		{ "-1", KG_EINVAL, 0 },
		{ "1.5MiB", KG_EINVAL, 0 },
		{ "1Ki", KG_EINVAL, 0 },
		{ "1 KiB ", KG_EINVAL, 0 },
		{ "0x10", KG_EINVAL, 0 },
		{ "99999999999999999999", KG_ERANGE, 0 },
		{ "9007199254740993KiB", KG_ERANGE, 0 },
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		int64_t v = -7;
		kg_err err = kg_parse_size(cases[i].in, &v);
		KG_CHECK(err == cases[i].err, "'%s': got %s, want %s", cases[i].in, kg_errname(err),
		         kg_errname(cases[i].err));
		if (err == KG_OK)
			KG_CHECK(v == cases[i].want, "'%s': got %lld, want %lld", cases[i].in, (long long)v,
			         (long long)cases[i].want);
	}
}

/* Values as environment variables: the same parser serves all sources, and
 * env is the shortest way to feed it one value. */
KG_TEST(test_values_by_type_table)
{
	static const struct {
		const char *env;
		const char *want_dump; /* the setting's dump line, or NULL when an error */
		const char *want_err;  /* the error, when want_dump is NULL */
	} cases[] = {
		/* INT */
		{ "KEYGATE_WORKERS=4", "workers: 4", NULL },
		{ "KEYGATE_WORKERS=1024", "workers: 1024", NULL },
		{ "KEYGATE_WORKERS=1025", NULL, "KEYGATE_WORKERS: must be between 0 and 1024, got 1025" },
		{ "KEYGATE_WORKERS=-1", NULL, "KEYGATE_WORKERS: must be between 0 and 1024, got -1" },
		{ "KEYGATE_WORKERS=four", NULL, "KEYGATE_WORKERS: expected an integer, got 'four'" },
		{ "KEYGATE_WORKERS=4x", NULL, "KEYGATE_WORKERS: expected an integer, got '4x'" },
		{ "KEYGATE_WORKERS=", NULL, "KEYGATE_WORKERS: expected an integer, got ''" },
		{ "KEYGATE_WORKERS=99999999999999999999", NULL,
		  "KEYGATE_WORKERS: must be between 0 and 1024, got 99999999999999999999" },
		{ "KEYGATE_LIMITS_MAX_HEADERS=0", NULL, "KEYGATE_LIMITS_MAX_HEADERS: must be between 1 and 10000, got 0" },
		/* DURATION */
		{ "KEYGATE_SHUTDOWN_TIMEOUT=90", "shutdown_timeout: 90s", NULL },
		{ "KEYGATE_SHUTDOWN_TIMEOUT=0", "shutdown_timeout: 0s", NULL },
		{ "KEYGATE_LIMITS_HEADER_TIMEOUT=1500ms", "limits.header_timeout: 1500ms", NULL },
		{ "KEYGATE_LIMITS_IDLE_TIMEOUT=120m", "limits.idle_timeout: 2h", NULL },
		{ "KEYGATE_LIMITS_HEADER_TIMEOUT=50ms", NULL,
		  "KEYGATE_LIMITS_HEADER_TIMEOUT: must be between 100ms and 1h, got 50ms" },
		{ "KEYGATE_PROXY_CONNECT_TIMEOUT=2h", NULL,
		  "KEYGATE_PROXY_CONNECT_TIMEOUT: must be between 100ms and 1h, got 2h" },
		{ "KEYGATE_PROXY_CONNECT_TIMEOUT=soon", NULL,
		  "KEYGATE_PROXY_CONNECT_TIMEOUT: expected a duration such as 500ms, 10s, 2m, 1h or 1d, got 'soon'" },
		/* SIZE */
		{ "KEYGATE_LIMITS_MAX_BODY_BYTES=1GiB", "limits.max_body_bytes: 1GiB", NULL },
		{ "KEYGATE_LIMITS_MAX_BODY_BYTES=5000", "limits.max_body_bytes: 5000", NULL },
		{ "KEYGATE_LIMITS_MAX_BODY_BYTES=2GiB", NULL,
		  "KEYGATE_LIMITS_MAX_BODY_BYTES: must be between 1KiB and 1GiB, got 2GiB" },
		{ "KEYGATE_LIMITS_MAX_URL_BYTES=255", NULL,
		  "KEYGATE_LIMITS_MAX_URL_BYTES: must be between 256 and 1MiB, got 255" },
		{ "KEYGATE_LIMITS_MAX_URL_BYTES=lots", NULL,
		  "KEYGATE_LIMITS_MAX_URL_BYTES: expected a size such as 512, 16KiB, 1MiB or 1GiB, got 'lots'" },
		/* BOOL */
		{ "KEYGATE_PROXY_PRESERVE_HOST=false", "proxy.preserve_host: false", NULL },
		{ "KEYGATE_PROXY_PRESERVE_HOST=no", "proxy.preserve_host: false", NULL },
		{ "KEYGATE_PROXY_PRESERVE_HOST=off", "proxy.preserve_host: false", NULL },
		{ "KEYGATE_PROXY_PRESERVE_HOST=0", "proxy.preserve_host: false", NULL },
		{ "KEYGATE_PROXY_FORWARD_CREDENTIALS=TRUE", "proxy.forward_credentials: true", NULL },
		{ "KEYGATE_PROXY_FORWARD_CREDENTIALS=yes", "proxy.forward_credentials: true", NULL },
		{ "KEYGATE_PROXY_FORWARD_CREDENTIALS=on", "proxy.forward_credentials: true", NULL },
		{ "KEYGATE_PROXY_FORWARD_CREDENTIALS=1", "proxy.forward_credentials: true", NULL },
		{ "KEYGATE_PROXY_FORWARD_CREDENTIALS=maybe", NULL,
		  "KEYGATE_PROXY_FORWARD_CREDENTIALS: expected true or false, got 'maybe'" },
		{ "KEYGATE_PROXY_FORWARD_CREDENTIALS=auto", NULL,
		  "KEYGATE_PROXY_FORWARD_CREDENTIALS: expected true or false, got 'auto'" },
		/* TRIBOOL */
		{ "KEYGATE_REQUIRE_AUTH=true", "require_auth: true", NULL },
		{ "KEYGATE_REQUIRE_AUTH=off", "require_auth: false", NULL },
		{ "KEYGATE_REQUIRE_AUTH=auto", "require_auth: auto", NULL },
		{ "KEYGATE_REQUIRE_AUTH=2", NULL, "KEYGATE_REQUIRE_AUTH: expected true, false or auto, got '2'" },
		/* STRING with choices */
		{ "KEYGATE_ERROR_DIALECT=bee", "error_dialect: \"bee\"", NULL },
		{ "KEYGATE_ERROR_DIALECT=elasticsearch", "error_dialect: \"elasticsearch\"", NULL },
		{ "KEYGATE_ERROR_DIALECT=Bee", NULL,
		  "KEYGATE_ERROR_DIALECT: must be one of auto|keygate|bee|avalanche|elasticsearch, got 'Bee'" },
		{ "KEYGATE_ERROR_DIALECT=", NULL,
		  "KEYGATE_ERROR_DIALECT: must be one of auto|keygate|bee|avalanche|elasticsearch, got ''" },
		{ "KEYGATE_LOG_LEVEL=debug", "log.level: \"debug\"", NULL },
		{ "KEYGATE_LOG_LEVEL=trace", NULL, "KEYGATE_LOG_LEVEL: must be one of error|warn|info|debug, got 'trace'" },
		/* STRING */
		{ "KEYGATE_POLICY=readonly", "policy: \"readonly\"", NULL },
		{ "KEYGATE_POLICY=", "policy: \"\"", NULL },
		{ "KEYGATE_DATA_DIR=/var/lib/keygate", "data_dir: \"/var/lib/keygate\"", NULL },
		{ "KEYGATE_DATA_DIR=", NULL, "KEYGATE_DATA_DIR: must not be empty" },
		{ "KEYGATE_LOG_ACCESS=off", "log.access: \"off\"", NULL },
		{ "KEYGATE_LOG_ACCESS=", NULL, "KEYGATE_LOG_ACCESS: must not be empty" },
		{ "KEYGATE_API_PREFIX=/gate", "api_prefix: \"/gate\"", NULL },
		{ "KEYGATE_API_PREFIX=/a/b", "api_prefix: \"/a/b\"", NULL },
		{ "KEYGATE_API_PREFIX=gate", NULL, "KEYGATE_API_PREFIX: must start with '/' and not end with '/', got 'gate'" },
		{ "KEYGATE_API_PREFIX=/gate/", NULL, "KEYGATE_API_PREFIX: must start with '/' and not end with '/', got '/gate/'" },
		{ "KEYGATE_API_PREFIX=/", NULL, "KEYGATE_API_PREFIX: must start with '/' and not end with '/', got '/'" },
		{ "KEYGATE_API_PREFIX=", NULL, "KEYGATE_API_PREFIX: must start with '/' and not end with '/', got ''" },
		{ "KEYGATE_API_PREFIX=/a b", NULL,
		  "KEYGATE_API_PREFIX: '/a b': a path cannot contain spaces, controls, '?' or '#'" },
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		char *env[] = { (char *)cases[i].env, NULL };
		struct result r = load(NULL, env, NULL);
		if (cases[i].want_dump) {
			KG_CHECK(r.err == KG_OK, "%s: %s", cases[i].env, errors_text(&r));
			if (r.cfg) {
				char *d = dump(r.cfg);
				KG_CHECK(strstr(d, cases[i].want_dump) != NULL, "%s: dump lacks '%s'", cases[i].env,
				         cases[i].want_dump);
				free(d);
			}
		} else {
			KG_CHECK(r.err == KG_ECONFIG && r.cfg == NULL, "%s: got %s, want ECONFIG", cases[i].env,
			         kg_errname(r.err));
			KG_CHECK(r.errs.n == 1 && strcmp(r.errs.v[0], cases[i].want_err) == 0, "%s: got %s, want [%s]",
			         cases[i].env, errors_text(&r), cases[i].want_err);
		}
		result_free(&r);
	}
}

/* ---- list items with their own syntax ---- */

KG_TEST(test_list_item_validation_table)
{
	static const struct {
		const char *flag, *value;
		const char *want_err; /* NULL: accepted */
	} cases[] = {
		{ "--listen", "127.0.0.1:8080", NULL },
		{ "--listen", "0.0.0.0:1", NULL },
		{ "--listen", "localhost:65535", NULL },
		{ "--listen", "[::1]:8080", NULL },
		{ "--listen", "[::]:443", NULL },
		{ "--listen", "127.0.0.1:0", "--listen: '127.0.0.1:0': the port must be a number between 1 and 65535" },
		{ "--listen", "127.0.0.1:65536", "--listen: '127.0.0.1:65536': the port must be a number between 1 and 65535" },
		{ "--listen", "127.0.0.1:http", "--listen: '127.0.0.1:http': the port must be a number between 1 and 65535" },
		{ "--listen", "127.0.0.1:", "--listen: '127.0.0.1:': the port must be a number between 1 and 65535" },
		{ "--listen", "127.0.0.1", "--listen: '127.0.0.1': expected HOST:PORT" },
		{ "--listen", ":8080", "--listen: ':8080': the host is empty" },
		{ "--listen", "::1:8080", "--listen: '::1:8080': put an IPv6 address in brackets, as in [::1]:8080" },
		{ "--listen", "[::1]", "--listen: '[::1]': expected HOST:PORT" },
		{ "--listen", "[::1:8080", "--listen: '[::1:8080': missing ']' after the IPv6 address" },
		{ "--listen", "[nope]:80", "--listen: '[nope]:80': 'nope' is not an IPv6 address" },
		{ "--listen", "[::1]x80", "--listen: '[::1]x80': expected ':' and a port after ']'" },
		{ "--public-paths", "/metrics", NULL },
		{ "--public-paths", "/", NULL },
		{ "--public-paths", "metrics", "--public-paths: 'metrics': must start with '/'" },
		{ "--public-paths", "", "--public-paths: '': must start with '/'" },
		{ "--trusted-proxies", "10.0.0.1", NULL },
		{ "--trusted-proxies", "10.0.0.0/8", NULL },
		{ "--trusted-proxies", "0.0.0.0/0", NULL },
		{ "--trusted-proxies", "::1", NULL },
		{ "--trusted-proxies", "fd00::/8", NULL },
		{ "--trusted-proxies", "2001:db8::/128", NULL },
		{ "--trusted-proxies", "10.0.0.0/33", "--trusted-proxies: '10.0.0.0/33': the prefix length must be between 0 and 32" },
		{ "--trusted-proxies", "fd00::/129", "--trusted-proxies: 'fd00::/129': the prefix length must be between 0 and 128" },
		{ "--trusted-proxies", "10.0.0.0/", "--trusted-proxies: '10.0.0.0/': the prefix length must be between 0 and 32" },
		{ "--trusted-proxies", "10.0.0.0/-1", "--trusted-proxies: '10.0.0.0/-1': the prefix length must be between 0 and 32" },
		{ "--trusted-proxies", "10.0.0", "--trusted-proxies: '10.0.0': not an IP address or CIDR" },
		{ "--trusted-proxies", "proxy.local", "--trusted-proxies: 'proxy.local': not an IP address or CIDR" },
		{ "--upstream", "", NULL },
		{ "--upstream", "http://127.0.0.1:9000", NULL },
		{ "--upstream", "http://backend:9000/api", NULL },
		{ "--upstream", "http://backend", NULL },
		{ "--upstream", "http://[::1]:9000/", NULL },
		{ "--upstream", "https://backend:443", NULL },
		{ "--upstream", "https://backend/api", NULL },
		{ "--upstream", "HTTPS://backend", "--upstream: 'HTTPS://backend': expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]" },
		{ "--upstream", "backend:9000", "--upstream: 'backend:9000': expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]" },
		{ "--upstream", "ftp://backend", "--upstream: 'ftp://backend': expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]" },
		{ "--upstream", "http://", "--upstream: 'http://': the host is empty" },
		{ "--upstream", "http://:9000", "--upstream: 'http://:9000': the host is empty" },
		{ "--upstream", "http:///x", "--upstream: 'http:///x': the host is empty" },
		{ "--upstream", "http://backend:0", "--upstream: 'http://backend:0': the port must be a number between 1 and 65535" },
		{ "--upstream", "http://backend:99999/", "--upstream: 'http://backend:99999/': the port must be a number between 1 and 65535" },
		{ "--upstream", "http://u:p@backend", "--upstream: 'http://u:p@backend': credentials in the upstream URL are not supported" },
		{ "--upstream", "http://backend/?a=1", "--upstream: 'http://backend/?a=1': an upstream URL cannot have a query or fragment" },
		{ "--upstream", "http://back end", "--upstream: 'http://back end': the URL contains a space or control character" },
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		char *argv[] = { (char *)cases[i].flag, (char *)cases[i].value, NULL };
		struct result r = load(NULL, NULL, argv);
		if (!cases[i].want_err)
			KG_CHECK(r.err == KG_OK, "%s '%s': %s", cases[i].flag, cases[i].value, errors_text(&r));
		else
			KG_CHECK(r.err == KG_ECONFIG && r.errs.n == 1 && strcmp(r.errs.v[0], cases[i].want_err) == 0,
			         "%s '%s': got %s, want [%s]", cases[i].flag, cases[i].value, errors_text(&r),
			         cases[i].want_err);
		result_free(&r);
	}
}

KG_TEST(test_listen_cannot_end_up_empty)
{
	char *env[] = { "KEYGATE_LISTEN=", NULL };
	struct result r = load(NULL, env, NULL);
	KG_CHECK(r.err == KG_ECONFIG && has_error(&r, "listen: needs at least 1 value"), "got %s", errors_text(&r));
	result_free(&r);

	/* emptied by the file, refilled by a flag: only the result counts */
	char *argv[] = { "--listen", "[::1]:9000", NULL };
	r = load("listen: []\n", NULL, argv);
	KG_CHECK(r.err == KG_OK && r.cfg->listen.n == 1, "got %s", errors_text(&r));
	result_free(&r);
}

/* ---- precedence ---- */

KG_TEST(test_precedence_flags_over_env_over_file_over_defaults)
{
	const char *yaml = "workers: 2\n"
	                   "policy: from-file\n"
	                   "log.level: warn\n"
	                   "proxy:\n"
	                   "  pool_size: 3\n";
	char *env[] = { "KEYGATE_POLICY=from-env", "KEYGATE_LOG_LEVEL=error", "PATH=/bin", NULL };
	char *argv[] = { "--log-level", "debug", NULL };
	struct result r = load(yaml, env, argv);
	KG_CHECK(r.err == KG_OK, "load: %s", errors_text(&r));
	if (r.cfg) {
		KG_CHECK(r.cfg->workers == 2, "file must beat the default: workers %lld", (long long)r.cfg->workers);
		KG_CHECK(r.cfg->pool_size == 3, "file must beat the default: pool_size %lld", (long long)r.cfg->pool_size);
		KG_CHECK(strcmp(r.cfg->policy, "from-env") == 0, "env must beat the file: policy %s", r.cfg->policy);
		KG_CHECK(strcmp(r.cfg->log_level, "debug") == 0, "flag must beat env and file: %s", r.cfg->log_level);
		KG_CHECK(r.cfg->max_headers == 100, "untouched settings keep their default");
	}
	result_free(&r);
}

KG_TEST(test_list_precedence_first_flag_replaces_later_append)
{
	const char *yaml = "listen: [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n"
	                   "public_paths: /from-file\n";
	char *env[] = { "KEYGATE_PUBLIC_PATHS=/env1, /env2,,", NULL };
	char *argv[] = { "--listen", "127.0.0.1:3", "--workers=1", "--listen=127.0.0.1:4", NULL };
	struct result r = load(yaml, env, argv);
	KG_CHECK(r.err == KG_OK, "load: %s", errors_text(&r));
	if (r.cfg) {
		const kg_strlist *l = &r.cfg->listen;
		KG_CHECK(l->n == 2 && strcmp(l->v[0], "127.0.0.1:3") == 0 && strcmp(l->v[1], "127.0.0.1:4") == 0,
		         "listen: %zu items, first %s", l->n, l->n ? l->v[0] : "-");
		const kg_strlist *p = &r.cfg->public_paths;
		KG_CHECK(p->n == 2 && strcmp(p->v[0], "/env1") == 0 && strcmp(p->v[1], "/env2") == 0,
		         "env list must replace the file's, trimmed, empties skipped: %zu items", p->n);
	}
	result_free(&r);
}

KG_TEST(test_list_sources_table)
{
	static const struct {
		const char *yaml;
		const char *env;
		const char *flags[5];
		size_t want_n;
		const char *want[3];
	} cases[] = {
		{ "trusted_proxies: 10.0.0.1\n", NULL, { NULL }, 1, { "10.0.0.1" } },
		{ "trusted_proxies: [10.0.0.1, \"::1\"]\n", NULL, { NULL }, 2, { "10.0.0.1", "::1" } },
		{ "trusted_proxies:\n  - 10.0.0.1\n  - 10.0.0.2\n  - 10.0.0.3\n", NULL, { NULL }, 3,
		  { "10.0.0.1", "10.0.0.2", "10.0.0.3" } },
		{ "trusted_proxies: []\n", NULL, { NULL }, 0, { NULL } },
		{ "trusted_proxies:\n", NULL, { NULL }, 0, { NULL } },
		{ NULL, "KEYGATE_TRUSTED_PROXIES=10.0.0.1,10.0.0.2", { NULL }, 2, { "10.0.0.1", "10.0.0.2" } },
		{ NULL, "KEYGATE_TRUSTED_PROXIES=", { NULL }, 0, { NULL } },
		{ NULL, NULL, { "--trusted-proxies", "10.0.0.1", "--trusted-proxies=10.0.0.2", NULL }, 2,
		  { "10.0.0.1", "10.0.0.2" } },
		{ "trusted_proxies: [10.0.0.9]\n", "KEYGATE_TRUSTED_PROXIES=10.0.0.8",
		  { "--trusted-proxies", "10.0.0.1", NULL }, 1, { "10.0.0.1" } },
		{ "trusted_proxies: [10.0.0.9]\n", "KEYGATE_TRUSTED_PROXIES=10.0.0.8", { NULL }, 1, { "10.0.0.8" } },
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		char *env[] = { (char *)cases[i].env, NULL };
		struct result r = load(cases[i].yaml, env, (char **)cases[i].flags);
		KG_CHECK(r.err == KG_OK, "case %zu: %s", i, errors_text(&r));
		if (!r.cfg) {
			result_free(&r);
			continue;
		}
		const kg_strlist *l = &r.cfg->trusted_proxies;
		KG_CHECK(l->n == cases[i].want_n, "case %zu: %zu items, want %zu", i, l->n, cases[i].want_n);
		for (size_t k = 0; k < l->n && k < cases[i].want_n; k++)
			KG_CHECK(strcmp(l->v[k], cases[i].want[k]) == 0, "case %zu item %zu: %s, want %s", i, k, l->v[k],
			         cases[i].want[k]);
		result_free(&r);
	}
}

/* ---- flags ---- */

KG_TEST(test_bool_flags_alone_mean_true)
{
	static const struct {
		const char *argv[5];
		int want_require_auth;
		bool want_preserve_host;
		const char *want_listen;
	} cases[] = {
		{ { "--require-auth", NULL }, KG_TRUE, true, "127.0.0.1:8080" },
		{ { "--require-auth", "--listen", "[::1]:1", NULL }, KG_TRUE, true, "[::1]:1" },
		{ { "--require-auth=false", NULL }, KG_FALSE, true, "127.0.0.1:8080" },
		{ { "--require-auth=auto", NULL }, KG_UNSET, true, "127.0.0.1:8080" },
		{ { "--proxy-preserve-host=false", NULL }, KG_UNSET, false, "127.0.0.1:8080" },
		{ { "--proxy-preserve-host=no", "--require-auth=on", NULL }, KG_TRUE, false, "127.0.0.1:8080" },
		{ { "--proxy-preserve-host=off", "--proxy-preserve-host", NULL }, KG_UNSET, true, "127.0.0.1:8080" },
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct result r = load(NULL, NULL, (char **)cases[i].argv);
		KG_CHECK(r.err == KG_OK, "case %zu: %s", i, errors_text(&r));
		if (r.cfg) {
			KG_CHECK(r.cfg->require_auth == cases[i].want_require_auth, "case %zu: require_auth %d", i,
			         r.cfg->require_auth);
			KG_CHECK(r.cfg->preserve_host == cases[i].want_preserve_host, "case %zu: preserve_host", i);
			KG_CHECK(strcmp(r.cfg->listen.v[0], cases[i].want_listen) == 0, "case %zu: listen %s", i,
			         r.cfg->listen.v[0]);
		}
		result_free(&r);
	}
}

KG_TEST(test_bool_flag_does_not_take_next_token)
{
	/* "--require-auth false" is the switch and then a stray argument */
	char *argv[] = { "--require-auth", "false", NULL };
	struct result r = load(NULL, NULL, argv);
	KG_CHECK(r.err == KG_ECONFIG && r.errs.n == 1 &&
	                 strcmp(r.errs.v[0], "false: unexpected argument (flags start with --)") == 0,
	         "got %s", errors_text(&r));
	result_free(&r);
}

KG_TEST(test_flag_errors_table)
{
	static const struct {
		const char *argv[6];
		const char *want[3];
	} cases[] = {
		{ { "--foo", NULL }, { "--foo: unknown flag" } },
		{ { "--foo=1", NULL }, { "--foo: unknown flag" } },
		{ { "--foo", "bar", "--workers", "2", NULL }, { "--foo: unknown flag" } },
		{ { "--listen", NULL }, { "--listen: needs a value" } },
		{ { "--listen", "--workers", "2", NULL }, { "--listen: needs a value" } },
		{ { "--config", NULL }, { "--config: needs a value" } },
		{ { "serve", NULL }, { "serve: unexpected argument (flags start with --)" } },
		{ { "-w", "2", NULL }, { "-w: unexpected argument (flags start with --)", "2: unexpected argument (flags start with --)" } },
		{ { "--", NULL }, { "--: unexpected argument (flags start with --)" } },
		{ { "--proxy.pool_size", "1", NULL }, { "--proxy.pool_size: unknown flag" } },
		{ { "--limits-max-headers", "0", "--workers=x", NULL },
		  { "--limits-max-headers: must be between 1 and 10000, got 0", "--workers: expected an integer, got 'x'" } },
		{ { "--require-auth=maybe", NULL }, { "--require-auth: expected true, false or auto, got 'maybe'" } },
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct result r = load(NULL, NULL, (char **)cases[i].argv);
		size_t want_n = 0;
		while (want_n < 3 && cases[i].want[want_n])
			want_n++;
		KG_CHECK(r.err == KG_ECONFIG && r.cfg == NULL, "case %zu (%s): got %s", i, cases[i].argv[0],
		         kg_errname(r.err));
		KG_CHECK(r.errs.n == want_n, "case %zu (%s): %zu errors, want %zu: %s", i, cases[i].argv[0], r.errs.n,
		         want_n, errors_text(&r));
		for (size_t k = 0; k < want_n && k < r.errs.n; k++)
			KG_CHECK(strcmp(r.errs.v[k], cases[i].want[k]) == 0, "case %zu: got [%s], want [%s]", i,
			         r.errs.v[k], cases[i].want[k]);
		result_free(&r);
	}
}

KG_TEST(test_flag_forms_and_config_is_skipped)
{
	char *argv[] = { "--config", "/nonexistent.yaml", "--workers", "3", "--config=/x.yaml",
		         "--policy=a=b", "--upstream=", "--proxy-pool-size=-0", NULL };
	struct result r = load(NULL, NULL, argv);
	KG_CHECK(r.err == KG_OK, "load: %s", errors_text(&r));
	if (r.cfg) {
		KG_CHECK(r.cfg->workers == 3, "workers %lld", (long long)r.cfg->workers);
		KG_CHECK(strcmp(r.cfg->policy, "a=b") == 0, "only the first '=' splits: %s", r.cfg->policy);
		KG_CHECK(strcmp(r.cfg->upstream, "") == 0, "--upstream= sets empty");
		KG_CHECK(r.cfg->pool_size == 0, "pool_size %lld", (long long)r.cfg->pool_size);
	}
	result_free(&r);
}

KG_TEST(test_config_path_table)
{
	static const struct {
		const char *argv[5];
		const char *env;
		const char *want;
	} cases[] = {
		{ { "--config", "a.yaml", NULL }, NULL, "a.yaml" },
		{ { "--config=b.yaml", NULL }, NULL, "b.yaml" },
		{ { "--workers", "2", "--config", "c.yaml", NULL }, "KEYGATE_CONFIG=env.yaml", "c.yaml" },
		{ { "--workers", "2", NULL }, "KEYGATE_CONFIG=env.yaml", "env.yaml" },
		{ { NULL }, "KEYGATE_CONFIG=", NULL },
		{ { NULL }, NULL, NULL },
		{ { "--config", NULL }, NULL, NULL },
		{ { "--policy", "--config", NULL }, NULL, NULL },
		{ { "--data-dir", "x", "--config", "d.yaml", NULL }, NULL, "d.yaml" },
		{ { "--require-auth", "--config", "e.yaml", NULL }, NULL, "e.yaml" },
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		int argc = 0;
		while (cases[i].argv[argc])
			argc++;
		char *env[] = { "HOME=/root", (char *)cases[i].env, NULL };
		const char *got = kg_config_path(env, argc, (char **)cases[i].argv);
		KG_CHECK((got == NULL) == (cases[i].want == NULL) && (!got || strcmp(got, cases[i].want) == 0),
		         "case %zu: got %s, want %s", i, got ? got : "NULL", cases[i].want ? cases[i].want : "NULL");
	}
}

/* ---- environment ---- */

KG_TEST(test_env_unknown_is_an_error_but_config_is_not)
{
	char *env[] = { "KEYGATE_CONFIG=/etc/keygate.yaml", "KEYGATE_FOO=1", "KEYGATE=1", "KEYGATEWAY=1",
		        "KEYGATE_proxy_pool_size=1", "KEYGATE_WORKERS=2", "OTHER_THING=x", NULL };
	struct result r = load(NULL, env, NULL);
	KG_CHECK(r.err == KG_ECONFIG, "got %s", kg_errname(r.err));
	KG_CHECK(r.errs.n == 2 && strcmp(r.errs.v[0], "KEYGATE_FOO: unknown setting") == 0 &&
	                 strcmp(r.errs.v[1], "KEYGATE_proxy_pool_size: unknown setting") == 0,
	         "got %s", errors_text(&r));
	result_free(&r);
}

/* ---- YAML ---- */

KG_TEST(test_yaml_nested_dotted_and_hyphenated_keys_are_the_same)
{
	static const char *const files[] = {
		"proxy:\n  upstream_timeout: 5s\n  pool-size: 7\nlimits:\n  max_headers: 50\n",
		"proxy.upstream_timeout: 5s\nproxy.pool_size: 7\nlimits.max_headers: 50\n",
		"proxy.upstream-timeout: 5s\nproxy.pool-size: 7\nlimits.max-headers: 50\n",
		"proxy: {upstream-timeout: 5s, pool_size: 7}\nlimits: {max-headers: 50}\n",
		"{proxy: {upstream_timeout: 5000ms}, proxy.pool_size: 7, limits.max_headers: 50}\n",
	};
	for (size_t i = 0; i < N_ELEMS(files); i++) {
		struct result r = load(files[i], NULL, NULL);
		KG_CHECK(r.err == KG_OK, "file %zu: %s", i, errors_text(&r));
		if (r.cfg)
			KG_CHECK(r.cfg->upstream_timeout_ms == 5000 && r.cfg->pool_size == 7 && r.cfg->max_headers == 50,
			         "file %zu: %lld %lld %lld", i, (long long)r.cfg->upstream_timeout_ms,
			         (long long)r.cfg->pool_size, (long long)r.cfg->max_headers);
		result_free(&r);
	}
}

KG_TEST(test_yaml_bee_style_hyphenated_keys)
{
	struct result r = load("api-prefix: /gate\ndata-dir: /srv/kg\nrequire-auth: yes\n"
	                       "error-dialect: bee\ntrusted-proxies: [\"10.0.0.0/8\"]\n",
	                       NULL, NULL);
	KG_CHECK(r.err == KG_OK, "load: %s", errors_text(&r));
	if (r.cfg)
		KG_CHECK(strcmp(r.cfg->api_prefix, "/gate") == 0 && strcmp(r.cfg->data_dir, "/srv/kg") == 0 &&
		                 r.cfg->require_auth == KG_TRUE && strcmp(r.cfg->error_dialect, "bee") == 0 &&
		                 r.cfg->trusted_proxies.n == 1,
		         "values not applied");
	result_free(&r);
}

KG_TEST(test_yaml_empty_and_comment_only_files_are_valid)
{
	static const char *const files[] = {
		"",
		"\n\n",
		"# nothing here\n# at all\n",
		"---\n",
		"---\n# only comments\n...\n",
		"~\n",
		"proxy:\n  # pool_size: 64\nlimits:\n",
		"{}\n",
	};
	for (size_t i = 0; i < N_ELEMS(files); i++) {
		struct result r = load(files[i], NULL, NULL);
		KG_CHECK(r.err == KG_OK && r.cfg && r.cfg->pool_size == 64, "file %zu: %s", i, errors_text(&r));
		result_free(&r);
	}
}

KG_TEST(test_yaml_null_values)
{
	struct result r = load("policy:\nrequire_auth: ~\npublic_paths:\n", NULL, NULL);
	KG_CHECK(r.err == KG_OK, "load: %s", errors_text(&r));
	if (r.cfg)
		KG_CHECK(strcmp(r.cfg->policy, "") == 0 && r.cfg->require_auth == KG_UNSET && r.cfg->public_paths.n == 0,
		         "null values");
	result_free(&r);

	r = load("workers:\ndata_dir:\npolicy: \"null\"\n", NULL, NULL);
	KG_CHECK(has_error(&r, ":1: workers: needs a value"), "got %s", errors_text(&r));
	KG_CHECK(has_error(&r, ":2: data_dir: must not be empty"), "got %s", errors_text(&r));
	KG_CHECK(r.errs.n == 2, "a quoted \"null\" is a string: %s", errors_text(&r));
	result_free(&r);
}

KG_TEST(test_yaml_errors_are_all_reported_with_lines)
{
	const char *yaml = "# a comment\n"              /* 1 */
	                   "listen: 127.0.0.1:8080\n"   /* 2 */
	                   "proxy:\n"                   /* 3 */
	                   "  bogus: 1\n"               /* 4 */
	                   "  pool_size: lots\n"        /* 5 */
	                   "limits:\n"                  /* 6 */
	                   "  max_headers: 0\n"         /* 7 */
	                   "  max-url-bytes: {a: 1}\n"  /* 8 */
	                   "nonsense: true\n"           /* 9 */
	                   "error_dialect: nginx\n"     /* 10 */
	                   "workers: [1, 2]\n"          /* 11 */
	                   "public_paths:\n"            /* 12 */
	                   "  - /ok\n"                  /* 13 */
	                   "  - nope\n"                 /* 14 */
	                   "  - {a: b}\n"               /* 15 */
	                   "log: verbose\n"             /* 16 */
	                   "upstream: ftp://x\n"        /* 17 */
	                   "proxy.pool_size: 5\n"       /* 18 */
	                   "? [a, b]\n"                 /* 19 */
	                   ": c\n";                     /* 20 */
	static const char *const want[] = {
		":4: proxy.bogus: unknown setting",
		":5: proxy.pool_size: expected an integer, got 'lots'",
		":7: limits.max_headers: must be between 1 and 10000, got 0",
		":8: limits.max_url_bytes: expected a single value, got a mapping",
		":9: nonsense: unknown setting",
		":10: error_dialect: must be one of auto|keygate|bee|avalanche|elasticsearch, got 'nginx'",
		":11: workers: expected a single value, got a list",
		":14: public_paths: 'nope': must start with '/'",
		":15: public_paths: expected a list of values, got a mapping in it",
		":16: log: expected a mapping of settings, got a value",
		":17: upstream: 'ftp://x': expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]",
		":18: proxy.pool_size: set twice (first on line 5)",
		":19: a key must be a plain name, not a list",
	};
	struct result r = load(yaml, NULL, NULL);
	KG_CHECK(r.err == KG_ECONFIG && r.cfg == NULL, "got %s", kg_errname(r.err));
	KG_CHECK(r.errs.n == N_ELEMS(want), "%zu errors, want %zu: %s", r.errs.n, N_ELEMS(want), errors_text(&r));
	for (size_t i = 0; i < N_ELEMS(want) && i < r.errs.n; i++) {
		char full[512];
		snprintf(full, sizeof(full), "%s%s", r.path, want[i]);
		KG_CHECK(strcmp(r.errs.v[i], full) == 0, "error %zu: got [%s], want [%s]", i, r.errs.v[i], full);
	}
	result_free(&r);
}

KG_TEST(test_errors_from_every_source_in_one_load)
{
	char *env[] = { "KEYGATE_WORKERS=x", "KEYGATE_NOPE=1", NULL };
	char *argv[] = { "--bogus", "--limits-max-headers", "0", NULL };
	struct result r = load("limits:\n  max_headers: 0\n", env, argv);
	KG_CHECK(r.errs.n == 5, "want 5 errors: %s", errors_text(&r));
	KG_CHECK(has_error(&r, ":2: limits.max_headers: must be between 1 and 10000, got 0"), "file: %s", errors_text(&r));
	KG_CHECK(has_error(&r, "KEYGATE_WORKERS: expected an integer, got 'x'"), "env: %s", errors_text(&r));
	KG_CHECK(has_error(&r, "KEYGATE_NOPE: unknown setting"), "env: %s", errors_text(&r));
	KG_CHECK(has_error(&r, "--bogus: unknown flag"), "flags: %s", errors_text(&r));
	KG_CHECK(has_error(&r, "--limits-max-headers: must be between 1 and 10000, got 0"), "flags: %s",
	         errors_text(&r));
	/* in source order: file, then environment, then flags */
	KG_CHECK(r.errs.n == 5 && strstr(r.errs.v[0], ":2: ") && strncmp(r.errs.v[1], "KEYGATE_", 8) == 0 &&
	                 strncmp(r.errs.v[4], "--", 2) == 0,
	         "order: %s", errors_text(&r));
	result_free(&r);
}

KG_TEST(test_errors_are_appended_not_replaced)
{
	kg_config_errors errs = { 0 };
	kg_config *cfg = NULL;
	KG_CHECK(kg_config_errors_add(&errs, "policy.yaml:%d: earlier", 3) == KG_OK, "add");
	char *argv[] = { "--nope", NULL };
	kg_err err = kg_config_load(NULL, NULL, 1, argv, &cfg, &errs);
	KG_CHECK(err == KG_ECONFIG && cfg == NULL, "got %s", kg_errname(err));
	KG_CHECK(errs.n == 2 && strcmp(errs.v[0], "policy.yaml:3: earlier") == 0 &&
	                 strcmp(errs.v[1], "--nope: unknown flag") == 0,
	         "got %zu errors", errs.n);
	kg_config_errors_free(&errs);
	KG_CHECK(errs.v == NULL && errs.n == 0, "free must reset");
	kg_config_errors_free(&errs);
}

KG_TEST(test_yaml_syntax_error_has_line)
{
	static const struct {
		const char *yaml;
		const char *want_prefix; /* after the path */
	} cases[] = {
		{ "workers: 1\nproxy:\n  pool_size: 1\n pool_size: 2\n", ":4: syntax error: " },
		{ "workers: 1\nlisten: [a, b\n", ":3: syntax error: " },
		{ "workers: 1\n\tpolicy: x\n", ":2: syntax error: " },
		{ "a: 1\nb: \"unterminated\n", ":3: syntax error: " },
		{ "workers: 1\n--- \nworkers: 2\n", ":3: only one YAML document is allowed" },
		{ "workers: 1\npolicy: \xff\xfe\n", ":2: syntax error: " },
		{ "- workers\n", ":1: expected a mapping of settings, got a list" },
		{ "just a string\n", ":1: expected a mapping of settings, got a value" },
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct result r = load(cases[i].yaml, NULL, NULL);
		char want[512];
		snprintf(want, sizeof(want), "%s%s", r.path, cases[i].want_prefix);
		KG_CHECK(r.err == KG_ECONFIG && r.errs.n == 1 && strncmp(r.errs.v[0], want, strlen(want)) == 0,
		         "case %zu: got %s, want [%s...]", i, errors_text(&r), want);
		result_free(&r);
	}
}

KG_TEST(test_missing_file_says_cannot_read)
{
	kg_config_errors errs = { 0 };
	kg_config *cfg = NULL;
	kg_err err = kg_config_load("/nonexistent/keygate.yaml", NULL, 0, NULL, &cfg, &errs);
	KG_CHECK(err == KG_ECONFIG && cfg == NULL, "got %s", kg_errname(err));
	KG_CHECK(errs.n == 1 && strcmp(errs.v[0], "/nonexistent/keygate.yaml: cannot read: No such file or directory") == 0,
	         "got %s", errs.n ? errs.v[0] : "(none)");
	kg_config_errors_free(&errs);

	err = kg_config_load("/tmp", NULL, 0, NULL, &cfg, &errs);
	KG_CHECK(err == KG_ECONFIG && errs.n == 1 && strcmp(errs.v[0], "/tmp: cannot read: Is a directory") == 0,
	         "directory: got %s", errs.n ? errs.v[0] : "(none)");
	kg_config_errors_free(&errs);
}

/* ---- output ---- */

KG_TEST(test_dump_reads_back_to_the_same_config)
{
	char *env[] = { "KEYGATE_LISTEN=127.0.0.1:1,[::1]:2", "KEYGATE_POLICY=we \"quote\" \\ it", NULL };
	char *argv[] = { "--require-auth=false", "--limits-max-body-bytes", "5000", "--proxy-connect-timeout=1500ms",
		         "--public-paths", "/a", "--public-paths", "/b%20c", NULL };
	struct result r = load(NULL, env, argv);
	KG_CHECK(r.err == KG_OK, "load: %s", errors_text(&r));
	if (!r.cfg)
		goto out;
	char *d1 = dump(r.cfg);
	KG_CHECK(strstr(d1, "listen: [\"127.0.0.1:1\", \"[::1]:2\"]\n") != NULL, "listen line in:\n%s", d1);
	KG_CHECK(strstr(d1, "proxy.connect_timeout: 1500ms\n") != NULL, "duration line in:\n%s", d1);
	KG_CHECK(strstr(d1, "limits.max_header_bytes: 16KiB\n") != NULL, "size line in:\n%s", d1);
	struct result back = load(d1, NULL, NULL);
	KG_CHECK(back.err == KG_OK, "dump must load: %s\n%s", errors_text(&back), d1);
	if (back.cfg) {
		char *d2 = dump(back.cfg);
		KG_CHECK(strcmp(d1, d2) == 0, "round trip differs:\n%s\n---\n%s", d1, d2);
		KG_CHECK(strcmp(back.cfg->policy, "we \"quote\" \\ it") == 0, "policy %s", back.cfg->policy);
		free(d2);
	}
	result_free(&back);
	free(d1);
out:
	result_free(&r);
}

KG_TEST(test_dump_has_one_line_per_setting)
{
	struct result r = load(NULL, NULL, NULL);
	char *d = r.cfg ? dump(r.cfg) : NULL;
	size_t lines = 0, n = 0;
	for (const char *p = d; p && *p; p++)
		lines += *p == '\n';
	for (const struct kg_setting *s = kg_settings; s->name; s++) {
		char want[128];
		snprintf(want, sizeof(want), "%s: ", s->name);
		KG_CHECK(d && strstr(d, want), "dump lacks %s", s->name);
		n++;
	}
	KG_CHECK(lines == n, "%zu lines for %zu settings", lines, n);
	free(d);
	result_free(&r);
}

KG_TEST(test_help_mentions_every_flag_env_and_default)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	kg_config_print_help(f);
	fclose(f);
	const char *at = text;
	for (const struct kg_setting *s = kg_settings; s->name; s++) {
		char flag[128], env[128];
		size_t k = 0;
		snprintf(flag, sizeof(flag), "  --");
		k = strlen(flag);
		for (const char *p = s->name; *p && k + 1 < sizeof(flag); p++)
			flag[k++] = (*p == '_' || *p == '.') ? '-' : *p;
		flag[k] = '\0';
		k = (size_t)snprintf(env, sizeof(env), "KEYGATE_");
		for (const char *p = s->name; *p && k + 1 < sizeof(env); p++)
			env[k++] = *p == '.' ? '_' : (*p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
		env[k] = '\0';
		const char *fp = strstr(at, flag);
		KG_CHECK(fp != NULL, "%s missing or out of table order", flag);
		if (!fp)
			continue;
		const char *next = strstr(fp + 1, "\n  --");
		size_t block = next ? (size_t)(next - fp) : strlen(fp);
		char *b = strndup(fp, block);
		KG_CHECK(strstr(b, env) != NULL, "%s: env %s missing", s->name, env);
		KG_CHECK(strstr(b, s->help) != NULL, "%s: help missing", s->name);
		KG_CHECK(s->def[0] == '\0' || strstr(b, s->def) != NULL, "%s: default %s missing", s->name, s->def);
		free(b);
		at = fp + 1;
	}
	free(text);
}

/* ---- the example file ---- */

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	kg_buf b = { 0 };
	char chunk[4096];
	size_t n;
	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (kg_buf_append(&b, chunk, n))
			break;
	fclose(f);
	return b.p;
}

/* The last segment of a setting name: what the example writes under its
 * section. */
static bool is_leaf_name(const char *p, size_t n)
{
	for (const struct kg_setting *s = kg_settings; s->name; s++) {
		const char *dot = strrchr(s->name, '.');
		const char *leaf = dot ? dot + 1 : s->name;
		if (strlen(leaf) == n && memcmp(leaf, p, n) == 0)
			return true;
	}
	return false;
}

/* Turns every "# name: default" line of the example into "name: default". */
static char *uncomment_defaults(const char *text)
{
	kg_buf out = { 0 };
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
		size_t indent = strspn(line, " ");
		const char *p = line + indent;
		size_t name = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz_");
		if (strncmp(p, "# ", 2) == 0 && name && p[2 + name] == ':' && is_leaf_name(p + 2, name)) {
			(void)kg_buf_append(&out, line, indent);
			(void)kg_buf_append(&out, p + 2, len - indent - 2);
		} else {
			(void)kg_buf_append(&out, line, len);
		}
		line += len;
	}
	return out.p;
}

KG_TEST(test_example_config_loads_and_documents_every_setting)
{
	const char *path = KG_SOURCE_DIR "/etc/keygate.yaml";
	char *text = read_all(path);
	KG_CHECK(text != NULL, "cannot read %s", path);
	if (!text)
		return;

	kg_config_errors errs = { 0 };
	kg_config *cfg = NULL;
	kg_err err = kg_config_load(path, NULL, 0, NULL, &cfg, &errs);
	KG_CHECK(err == KG_OK, "%s: %s", path, errs.n ? errs.v[0] : kg_errname(err));
	kg_config_free(&cfg);
	kg_config_errors_free(&errs);

	for (const struct kg_setting *s = kg_settings; s->name; s++) {
		char env[128];
		size_t k = (size_t)snprintf(env, sizeof(env), "env KEYGATE_");
		for (const char *p = s->name; *p && k + 1 < sizeof(env); p++)
			env[k++] = *p == '.' ? '_' : (*p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
		env[k] = '\0';
		KG_CHECK(strstr(text, env) != NULL, "%s does not document %s (no '%s')", path, s->name, env);
		const char *dot = strrchr(s->name, '.');
		char line[128];
		snprintf(line, sizeof(line), "# %s: ", dot ? dot + 1 : s->name);
		KG_CHECK(strstr(text, line) != NULL, "%s has no '%s' line for %s", path, line, s->name);
	}

	/* the commented-out values must be the defaults, and valid */
	char *uncommented = uncomment_defaults(text);
	struct result r = load(uncommented, NULL, NULL);
	struct result defaults = load(NULL, NULL, NULL);
	KG_CHECK(r.err == KG_OK, "uncommented example: %s", errors_text(&r));
	if (r.cfg && defaults.cfg) {
		char *d1 = dump(r.cfg), *d2 = dump(defaults.cfg);
		KG_CHECK(strcmp(d1, d2) == 0, "the example's values differ from the defaults:\n%s\n---\n%s", d1, d2);
		free(d1);
		free(d2);
	}
	/* and every one of them was set: a repeat of the file is all duplicates */
	size_t nset = 0;
	for (const struct kg_setting *s = kg_settings; s->name; s++)
		nset++;
	kg_buf twice = { 0 };
	(void)kg_buf_printf(&twice, "%s%s", uncommented, uncommented);
	struct result dup = load(twice.p, NULL, NULL);
	size_t ndup = 0;
	for (size_t i = 0; i < dup.errs.n; i++)
		ndup += strstr(dup.errs.v[i], ": set twice") != NULL;
	KG_CHECK(ndup == nset, "the uncommented example sets %zu of %zu settings", ndup, nset);
	result_free(&dup);
	kg_buf_free(&twice, false);
	result_free(&r);
	result_free(&defaults);
	free(uncommented);
	free(text);
}

int main(void)
{
	return kg_test_main();
}
