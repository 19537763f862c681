/* server.c - the daemon: runtime snapshots (built from the config, swapped
 * on SIGHUP), one event loop per worker thread each accepting on its own
 * SO_REUSEPORT socket, signals, and the maintenance timer on the main loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "keygate/tokcache.h"
#include "keygate/cache.h"
#include "keygate/log.h"
#include "keygate/path.h"
#include "keygate/store.h"
#include "keygate/url.h"
#include "keygate/users.h"
#include "access_log.h"
#include "admin.h"
#include "avax.h"
#include "bee.h"
#include "conn.h"
#include "es.h"
#include "kg.h"
#include "proxy.h"
#include "server.h"
#include "tls.h"

const char *const kg__version = KG_VERSION;

static pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kg_runtime *g_rt;
static atomic_uint g_gen;
static _Thread_local struct kg_runtime *tl_rt;
static _Thread_local unsigned tl_gen;
static int64_t g_started_at;
static size_t nworkers;

static kg_store *g_store;
static kg_cache *g_cache;
static pthread_mutex_t store_status_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_store_status[256] = "starting";

/* Slow work (bcrypt, store writes) runs on libuv's thread pool. Those
 * threads get a lower CPU priority the first time they run it, so a burst of
 * password checks cannot starve the event loops of CPU: they are not
 * blocked by it, but on a small machine they would wait for a core. */
void kg__slow_work_begin(void)
{
	static _Thread_local bool is_niced;
	if (is_niced)
		return;
	is_niced = true;
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0)
		kg_debug("cannot lower the priority of a thread-pool thread: %s", strerror(errno));
}

size_t kg__worker_count(void)
{
	return nworkers;
}

int64_t kg__started_at(void)
{
	return g_started_at;
}

struct kg_store *kg__store(void)
{
	return g_store;
}

const char *kg__store_status(const char **backend)
{
	static _Thread_local char copy[256];
	*backend = g_store ? g_store->ops->name : "none";
	pthread_mutex_lock(&store_status_lock);
	memcpy(copy, g_store_status, sizeof(copy));
	pthread_mutex_unlock(&store_status_lock);
	return copy;
}

/* ---- runtime snapshots ---- */

static void runtime_free(struct kg_runtime *rt)
{
	kg__bee_free(&rt->bee);
	kg__avax_free(&rt->avax);
	kg__es_free(&rt->es);
	kg_users_free(&rt->users);
	kg_policy_free(&rt->policy);
	kg_config_free(&rt->cfg);
	free(rt->trusted);
	OPENSSL_cleanse(rt->admin_hash, sizeof(rt->admin_hash));
	SSL_CTX_free(rt->tls_ctx); /* sessions still open hold their own reference */
	SSL_CTX_free(rt->up_tls);
	free(rt);
}

void kg__runtime_release(struct kg_runtime *rt)
{
	if (rt && atomic_fetch_sub(&rt->refs, 1) == 1)
		runtime_free(rt);
}

void kg__runtime_hold(struct kg_runtime *rt)
{
	atomic_fetch_add(&rt->refs, 1);
}

/* Each thread keeps a reference to the newest snapshot it has seen, so the
 * common case is one relaxed load and one atomic increment, no lock. */
static struct kg_runtime *runtime_refresh(void)
{
	pthread_mutex_lock(&rt_lock);
	struct kg_runtime *rt = g_rt;
	atomic_fetch_add(&rt->refs, 1);
	pthread_mutex_unlock(&rt_lock);
	kg__runtime_release(tl_rt);
	tl_rt = rt;
	tl_gen = rt->gen;
	return rt;
}

static inline struct kg_runtime *runtime_newest(void)
{
	unsigned gen = atomic_load(&g_gen);
	if (!tl_rt || tl_gen != gen)
		return runtime_refresh();
	return tl_rt;
}

struct kg_runtime *kg__runtime_acquire(void)
{
	struct kg_runtime *rt = runtime_newest();
	atomic_fetch_add(&rt->refs, 1);
	return rt;
}

const struct kg_runtime *kg__runtime_peek(void)
{
	return runtime_newest();
}

/* Drops this thread's cached reference (at thread exit). */
static void runtime_forget(void)
{
	kg__runtime_release(tl_rt);
	tl_rt = NULL;
}

static void runtime_install(struct kg_runtime *rt)
{
	pthread_mutex_lock(&rt_lock);
	struct kg_runtime *old = g_rt;
	rt->gen = atomic_load(&g_gen) + 1;
	g_rt = rt;
	atomic_store(&g_gen, rt->gen);
	pthread_mutex_unlock(&rt_lock);
	kg__runtime_release(old);
}

/* The config check (kg_url_parse) has accepted url; this parses it again for
 * the parts the proxy needs and resolves the host. */
static kg_err parse_upstream(struct kg_runtime *rt, const char *url, kg_buf *why)
{
	kg_url u;
	kg_buf problem = { 0 };
	char port[12];

	if (kg_url_parse(kg_str_c(url), &u, &problem) != KG_OK) {
		kg_buf_printf(why, "upstream: %s", problem.p ? problem.p : url);
		kg_buf_free(&problem, false);
		return KG_ECONFIG;
	}
	const kg_hostport *a = &u.authority;
	/* kg_url_parse caps a host name at 255 bytes: these cannot truncate */
	if (a->hostport.n >= sizeof(rt->up_hostport) || a->host.n >= sizeof(rt->up_host)) {
		kg_buf_printf(why, "upstream: %s: host name too long", url);
		return KG_ECONFIG;
	}
	if (u.path.n >= sizeof(rt->up_base)) {
		kg_buf_printf(why, "upstream: %s: path too long", url);
		return KG_ECONFIG;
	}
	snprintf(rt->up_hostport, sizeof(rt->up_hostport), "%.*s", (int)a->hostport.n, a->hostport.p);
	snprintf(rt->up_host, sizeof(rt->up_host), "%.*s", (int)a->host.n, a->host.p);
	snprintf(port, sizeof(port), "%u", a->port ? a->port : u.is_https ? 443 : 80);
	rt->up_is_tls = u.is_https;
	/* "/api/" + "/x" would give "//x": the request target brings its own '/' */
	while (u.path.n > 0 && u.path.p[u.path.n - 1] == '/')
		u.path.n--;
	snprintf(rt->up_base, sizeof(rt->up_base), "%.*s", (int)u.path.n, u.path.p);

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
	int rc = getaddrinfo(rt->up_host, port, &hints, &res);
	if (rc != 0 || !res) {
		kg_buf_printf(why, "upstream: %s: cannot resolve %s: %s", url, rt->up_host, gai_strerror(rc));
		return KG_ECONFIG;
	}
	memcpy(&rt->up_addr, res->ai_addr, res->ai_addrlen);
	rt->up_addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (u.is_https && kg__tls_client_new(rt->cfg, rt->up_host, kg__proxy_tls_session, &rt->up_tls, why) != KG_OK)
		return KG_ECONFIG;
	rt->has_upstream = true;
	return KG_OK;
}

/* The scheme that owns a route answers a missing credential there: with
 * several schemes on, AvalancheGo's /ext/ routes and the routes the Bee
 * policy names. */
static bool route_dialect(void *data, kg_str path, enum kg_dialect *out)
{
	const struct kg_runtime *rt = data;
	if (rt->avax && kg_str_has_prefix(path, KG_STR("/ext/"))) {
		*out = KG_DIALECT_AVALANCHE;
		return true;
	}
	if (rt->bee && kg_policy_knows_path(rt->policy, path)) {
		*out = KG_DIALECT_BEE;
		return true;
	}
	return false;
}

/* Every address keygate listens on: the listen ones, then tls.listen's.
 * http_tls_enabled (AvalancheGo's flag) makes the listen ones speak TLS. */
static size_t listen_count(const kg_config *cfg)
{
	return cfg->listen.n + cfg->tls_listen.n;
}

static const char *listen_at(const kg_config *cfg, size_t i, bool *is_tls)
{
	if (i < cfg->listen.n) {
		*is_tls = cfg->http_tls_enabled;
		return cfg->listen.v[i];
	}
	*is_tls = true;
	return cfg->tls_listen.v[i - cfg->listen.n];
}

static bool has_tls_listener(const kg_config *cfg)
{
	return cfg->tls_listen.n > 0 || cfg->http_tls_enabled;
}

/* The certificate pairs in order: tls.cert/tls.key, then AvalancheGo's
 * http_tls_cert_file/http_tls_key_file (the config check has paired them). */
static kg_err runtime_build_tls(struct kg_runtime *rt, const kg_config *cfg, kg_buf *why)
{
	size_t n = cfg->tls_cert.n < cfg->tls_key.n ? cfg->tls_cert.n : cfg->tls_key.n;
	const char **certs = calloc(n + 1, sizeof(*certs)), **keys = calloc(n + 1, sizeof(*keys));
	kg_err err = KG_ENOMEM;
	if (!certs || !keys)
		goto out;
	for (size_t i = 0; i < n; i++) {
		certs[i] = cfg->tls_cert.v[i];
		keys[i] = cfg->tls_key.v[i];
	}
	if (cfg->http_tls_cert_file[0] && cfg->http_tls_key_file[0]) {
		certs[n] = cfg->http_tls_cert_file;
		keys[n] = cfg->http_tls_key_file;
		n++;
	}
	err = kg__tls_server_new(certs, keys, n, &rt->tls_ctx, why);
out:
	free(certs);
	free(keys);
	return err;
}

kg_err kg__runtime_build(kg_config *cfg, struct kg_runtime **out, kg_buf *why)
{
	struct kg_runtime *rt = calloc(1, sizeof(*rt));
	kg_err err = KG_ENOMEM;
	kg_config_errors errs = { 0 };

	if (!rt)
		goto fail;
	rt->cfg = cfg;
	atomic_init(&rt->refs, 1);
	rt->prefix = kg_str_c(cfg->api_prefix);

	/* restricted mode without a policy of its own gets Bee's */
	const char *policy = cfg->policy[0] ? cfg->policy : cfg->restricted ? "bee" : "";
	if (policy[0] == '\0') {
		err = kg_policy_new(&rt->policy);
	} else {
		err = kg_policy_load_preset(policy, &rt->policy);
		if (err == KG_ENOENT)
			err = kg_policy_load_file(policy, &rt->policy, &errs);
	}
	if (err) {
		kg_buf_printf(why, "policy %s: ", cfg->policy);
		for (size_t i = 0; i < errs.n; i++)
			kg_buf_printf(why, "%s%s", i ? "; " : "", errs.v[i]);
		if (!errs.n)
			kg_buf_printf(why, "%s", kg_strerror(err));
		goto fail;
	}
	for (size_t i = 0; i < cfg->public_paths.n; i++) {
		if ((err = kg_policy_add_public(rt->policy, cfg->public_paths.v[i]))) {
			kg_buf_printf(why, "public_paths: %s: invalid pattern", cfg->public_paths.v[i]);
			goto fail;
		}
	}
	for (size_t i = 0; cfg->restricted && i < cfg->unrestricted_paths.n; i++) {
		if ((err = kg_policy_add_public(rt->policy, cfg->unrestricted_paths.v[i]))) {
			kg_buf_printf(why, "unrestricted_paths: %s: invalid pattern", cfg->unrestricted_paths.v[i]);
			goto fail;
		}
	}
	if (cfg->upstream[0] && (err = parse_upstream(rt, cfg->upstream, why)))
		goto fail;
	if (has_tls_listener(cfg) && (err = runtime_build_tls(rt, cfg, why)))
		goto fail;
	if (cfg->trusted_proxies.n) {
		rt->trusted = calloc(cfg->trusted_proxies.n, sizeof(*rt->trusted));
		if (!rt->trusted)
			goto fail;
		for (size_t i = 0; i < cfg->trusted_proxies.n; i++) {
			if (kg_cidr_parse(cfg->trusted_proxies.v[i], &rt->trusted[i]) != KG_OK) {
				kg_buf_printf(why, "trusted_proxies: %s: not an address or CIDR", cfg->trusted_proxies.v[i]);
				err = KG_ECONFIG;
				goto fail;
			}
		}
		rt->ntrusted = cfg->trusted_proxies.n;
	}
	rt->head_rules = (kg_head_rules){
		.path_flags = strcmp(cfg->escaped_slashes, "keep") == 0 ? KG_PATH_KEEP_ESCAPED_SLASHES : 0,
		.upgrades = cfg->upgrades,
		.trusted = rt->trusted,
		.ntrusted = rt->ntrusted,
		.underscores_in_headers = cfg->underscores_in_headers,
		.forwarded_headers = cfg->forwarded_headers,
		.forward_credentials = cfg->forward_credentials,
		.preserve_host = cfg->preserve_host,
		.up_base = kg_str_c(rt->up_base),
		.up_hostport = kg_str_c(rt->up_hostport),
	};

	/* one admin password for every dialect that has one */
	if ((cfg->restricted || cfg->api_keys) &&
	    (err = kg__admin_hash(cfg, g_store,
	                          cfg->restricted && cfg->api_keys
	                              ? "Use it with POST /auth (HTTP Basic, any user name); it is also the password of "
	                                "the Elasticsearch user elastic."
	                          : cfg->restricted ? "Use it with POST /auth (HTTP Basic, any user name)."
	                                            : "It is the password of the Elasticsearch user elastic (curl -u elastic "
	                                              "...).",
	                          rt->admin_hash, sizeof(rt->admin_hash), why)))
		goto fail;
	if (cfg->restricted) {
		if ((err = kg__bee_new(cfg, rt->policy, rt->admin_hash, g_store, g_cache, &rt->bee, why)))
			goto fail;
		const struct kg_authenticator *a = kg__bee_authenticator(rt->bee);
		rt->auth.by_kind[KG_CRED_BEARER_BEE] = a;
		rt->auth.by_kind[KG_CRED_BEARER_KG] = a;
	}
	if (cfg->api_auth_required) {
		if ((err = kg__avax_new(cfg, g_store, g_cache, &rt->avax, why)))
			goto fail;
		rt->auth.by_kind[KG_CRED_BEARER_JWT] = kg__avax_authenticator(rt->avax);
	}
	/* A Bearer token of a shape whose scheme is off goes to the Bearer scheme
	 * that is on, so it is refused in that scheme's words ("Invalid token",
	 * "token contains an invalid number of segments"). */
	if (rt->bee && !rt->avax)
		rt->auth.by_kind[KG_CRED_BEARER_JWT] = kg__bee_authenticator(rt->bee);
	if (rt->avax && !rt->bee)
		rt->auth.by_kind[KG_CRED_BEARER_BEE] = rt->auth.by_kind[KG_CRED_BEARER_KG] =
		    kg__avax_authenticator(rt->avax);
	rt->auth.has_bearer = rt->auth.by_kind[KG_CRED_BEARER_KG] != NULL;
	if (cfg->basic_users[0]) {
		err = kg_users_load(cfg->basic_users, rt->policy, &rt->users, &errs);
		if (!err && kg_users_count(rt->users) == 0) {
			kg_config_errors_add(&errs, "%s: no users", cfg->basic_users);
			err = KG_ECONFIG;
		}
		if (!err)
			err = kg_users_cache_init(rt->users, (size_t)cfg->basic_cache_size, cfg->basic_cache_ttl_ms / 1000);
		if (err) {
			kg_buf_printf(why, "basic_users: ");
			for (size_t i = 0; i < errs.n; i++)
				kg_buf_printf(why, "%s%s", i ? "; " : "", errs.v[i]);
			if (!errs.n)
				kg_buf_printf(why, "%s", kg_strerror(err));
			goto fail;
		}
	}
	if (cfg->api_keys) {
		const struct kg_authenticator *users_basic =
		    rt->users ? kg_users_authenticator(rt->users, KG_DIALECT_ES) : NULL;
		if ((err = kg__es_new(cfg, rt->admin_hash, g_store, g_cache, users_basic, &rt->es, why)))
			goto fail;
		rt->auth.by_kind[KG_CRED_APIKEY] = kg__es_apikey_authenticator(rt->es);
	}
	rt->auth.route_dialect = route_dialect;
	rt->auth.route_dialect_data = rt;
	bool any_scheme = rt->users != NULL || rt->es != NULL;
	for (int k = 0; k < KG__CRED_COUNT; k++)
		any_scheme |= rt->auth.by_kind[k] != NULL;
	rt->auth.policy = rt->policy;
	rt->auth.require_auth = cfg->require_auth == KG_UNSET ? any_scheme : cfg->require_auth == KG_TRUE;
	/* auto: the only enabled scheme's dialect, else keygate's */
	int d = strcmp(cfg->error_dialect, "auto") != 0 ? kg_dialect_parse(cfg->error_dialect)
	        : rt->bee && !rt->avax                 ? KG_DIALECT_BEE
	        : rt->avax && !rt->bee                 ? KG_DIALECT_AVALANCHE
	        : rt->es && !rt->bee && !rt->avax && !rt->users ? KG_DIALECT_ES
	                                               : KG_DIALECT_KEYGATE;
	rt->auth.default_dialect = d < 0 ? KG_DIALECT_KEYGATE : (enum kg_dialect)d;
	if (rt->users)
		rt->auth.by_kind[KG_CRED_BASIC] = kg_users_authenticator(rt->users, rt->auth.default_dialect);
	/* Elasticsearch's users over Basic on every route, then the users
	 * file's; not beside Bee's or AvalancheGo's schemes, whose clients get
	 * their own answers to a Basic credential (they may use Basic on
	 * /_security/ itself). Its refusals read like the other schemes'. */
	if (rt->es && !rt->bee && !rt->avax)
		rt->auth.by_kind[KG_CRED_BASIC] = kg__es_basic_authenticator(rt->es, rt->auth.default_dialect);
	kg_config_errors_free(&errs);
	*out = rt;
	return KG_OK;
fail:
	kg_config_errors_free(&errs);
	if (rt) {
		rt->cfg = NULL; /* the caller still owns cfg on failure */
		runtime_free(rt);
	}
	return err ? err : KG_ECONFIG;
}

/* ---- listeners and workers ---- */

static struct kg_worker *workers;
static uv_loop_t main_loop;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t maint_timer;
static struct kg_serve_args serve_args;
static bool is_stopping;

/* One listen address, resolved. */
struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[INET6_ADDRSTRLEN + 8]; /* numeric "ADDR:PORT" / "[ADDR]:PORT" */
	unsigned port;
};

/* The config check (kg_hostport_parse) has accepted hostport; this parses
 * it again for the host and port to resolve. */
static kg_err listen_resolve(const char *hostport, struct listen_addr *la, kg_buf *why)
{
	char host[256], port[12], addr[INET6_ADDRSTRLEN];
	kg_hostport hp;
	kg_buf problem = { 0 };
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE },
	                *res = NULL;

	if (kg_hostport_parse(kg_str_c(hostport), true, &hp, &problem) != KG_OK) {
		kg_buf_printf(why, "listen: %s", problem.p ? problem.p : hostport);
		kg_buf_free(&problem, false);
		return KG_ECONFIG;
	}
	/* host names are at most 255 bytes (kg_hostport_parse) */
	snprintf(host, sizeof(host), "%.*s", (int)hp.host.n, hp.host.p);
	snprintf(port, sizeof(port), "%u", hp.port);
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || !res) {
		kg_buf_printf(why, "listen %s: %s", hostport, gai_strerror(rc));
		return KG_ECONFIG;
	}
	memset(la, 0, sizeof(*la));
	memcpy(&la->ss, res->ai_addr, res->ai_addrlen);
	la->len = res->ai_addrlen;
	freeaddrinfo(res);
	if (la->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&la->ss;
		inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
		la->port = ntohs(a->sin6_port);
		snprintf(la->text, sizeof(la->text), "[%s]:%u", addr, la->port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&la->ss;
		inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
		la->port = ntohs(a->sin_port);
		snprintf(la->text, sizeof(la->text), "%s:%u", addr, la->port);
	}
	return KG_OK;
}

/* A TCP socket bound to la; listening when is_worker. Workers set
 * SO_REUSEPORT so that each has its own accept queue; the probe does not. */
static int bind_socket(const struct listen_addr *la, bool is_worker)
{
	int fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (is_worker && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
	    (la->ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(fd, (const struct sockaddr *)&la->ss, la->len) != 0 || (is_worker && listen(fd, 1024) != 0)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void in_use(const char *hostport, const struct listen_addr *la, const char *holder, kg_buf *why)
{
	kg_buf_printf(why,
	              "listen %s: port %u is already in use (%s %s); stop it or choose another listen address. "
	              "keygate does not share a port: two servers on one port would each answer a share of "
	              "the requests",
	              hostport, la->port, holder, la->text);
}

/* Checks that nothing listens on la: a socket bound to it *without*
 * SO_REUSEPORT fails with EADDRINUSE while anything (another program, an
 * older keygate) listens there, with or without SO_REUSEPORT. */
static kg_err listen_probe(const char *hostport, const struct listen_addr *la, kg_buf *why)
{
	int probe = bind_socket(la, false);
	if (probe < 0) {
		if (errno == EADDRINUSE)
			in_use(hostport, la, "another program listens on", why);
		else
			kg_buf_printf(why, "listen %s: %s", hostport, strerror(errno));
		return KG_EIO;
	}
	close(probe);
	return KG_OK;
}

/* Claims a listen address for this process, before the store is opened (a
 * second instance must not get as far as generating secrets).
 *
 * The workers' sockets carry SO_REUSEPORT (one accept queue each), and Linux
 * lets any later socket of the same user with SO_REUSEPORT join that group:
 * a second keygate on the same port would start without an error and take a
 * share of the connections, with its own configuration. Two things stop that:
 *
 * 1. A lock that only keygate takes: an abstract unix socket named after the
 *    numeric address, bound for as long as this process listens (the kernel
 *    drops it when the process ends; per network namespace, like the port).
 *    Its bind is atomic, so of two keygates starting together one fails.
 * 2. A probe (listen_probe), here and again just before the workers bind. It
 *    is closed before they do: a socket without SO_REUSEPORT held open would
 *    make their binds fail too (checked on Linux 6.x: every socket on the
 *    port needs the option). The workers bind right after the second probe,
 *    in the same thread; a program that takes the port in between without
 *    SO_REUSEPORT makes their bind fail with the same error, so the only
 *    start that could still slip in is one using SO_REUSEPORT as this user
 *    within those few system calls, and keygate itself is kept out by the
 *    lock.
 *
 * *lock_fd gets the lock's descriptor (the caller keeps it open). */
static kg_err listen_claim(const char *hostport, const struct listen_addr *la, int *lock_fd, kg_buf *why)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int n = snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "keygate/listen/%s", la->text);
	socklen_t un_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	*lock_fd = -1;
	if (fd < 0 || bind(fd, (const struct sockaddr *)&un, un_len) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (e == EADDRINUSE)
			in_use(hostport, la, "another keygate listens on", why);
		else
			kg_buf_printf(why, "listen %s: cannot take the per-address lock: %s", hostport, strerror(e));
		return KG_EIO;
	}
	kg_err err = listen_probe(hostport, la, why);
	if (err) {
		close(fd);
		return err;
	}
	*lock_fd = fd;
	return KG_OK;
}

static int *listen_locks;
static size_t nlisten_locks;

/* Claims every listen address (listen_claim); on failure the ones taken
 * stay in listen_locks for listen_locks_release. */
static kg_err listen_claim_all(const kg_config *cfg, kg_buf *why)
{
	size_t n = listen_count(cfg);
	listen_locks = calloc(n, sizeof(*listen_locks));
	if (!listen_locks)
		return KG_ENOMEM;
	for (size_t j = 0; j < n; j++) {
		struct listen_addr la, other;
		bool is_tls;
		const char *at = listen_at(cfg, j, &is_tls);
		kg_err err = listen_resolve(at, &la, why);
		if (err)
			return err;
		/* our own lock would call it "another keygate" */
		for (size_t k = 0; k < j; k++) {
			const char *before = listen_at(cfg, k, &is_tls);
			if (listen_resolve(before, &other, why) == KG_OK && la.port != 0 && strcmp(la.text, other.text) == 0) {
				kg_buf_printf(why, "listen: %s and %s are the same address", before, at);
				return KG_ECONFIG;
			}
		}
		if ((err = listen_claim(at, &la, &listen_locks[j], why)))
			return err;
		nlisten_locks = j + 1;
	}
	return KG_OK;
}

/* Lets a replacement start once this process stops accepting. */
static void listen_locks_release(void)
{
	for (size_t i = 0; i < nlisten_locks; i++)
		if (listen_locks[i] >= 0)
			close(listen_locks[i]);
	free(listen_locks);
	listen_locks = NULL;
	nlisten_locks = 0;
}

static void accept_on(uv_stream_t *server, int status, bool is_tls)
{
	struct kg_worker *w = server->data;
	if (status < 0) {
		kg_warn("worker %d: accept: %s", w->id, uv_strerror(status));
		return;
	}
	if (w->draining)
		return;
	kg__conn_accept(w, server, is_tls);
}

static void on_connection(uv_stream_t *server, int status)
{
	accept_on(server, status, false);
}

static void on_tls_connection(uv_stream_t *server, int status)
{
	accept_on(server, status, true);
}

static void close_handle(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void kg__worker_drain(struct kg_worker *w)
{
	if (w->nconns > 0)
		return;
	/* everything served: let the loop run out */
	kg__pool_close_all(w);
	uv_walk(&w->loop, close_handle, NULL);
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct kg_worker *w = t->data;
	kg_warn("worker %d: shutdown_timeout reached with %zu connection(s) open; closing them", w->id, w->nconns);
	while (w->conns)
		kg__conn_close(w->conns);
	kg__worker_drain(w);
}

static void on_tick(uv_timer_t *t)
{
	struct kg_worker *w = t->data;
	/* a deadline's callback may drain the worker, which closes this timer */
	if (kg_wheel_run(&w->wheel, uv_now(&w->loop)) > 0 && !uv_is_closing((uv_handle_t *)t))
		kg__worker_tick_start(w);
}

void kg__worker_tick_start(struct kg_worker *w)
{
	/* to the next tick boundary, not a repeating timer: a repeat restarts
	 * from when it ran and would drift up to a tick behind the boundaries
	 * the wheel counts in, making timeouts up to two ticks late */
	if (!uv_is_closing((uv_handle_t *)&w->tick_timer))
		uv_timer_start(&w->tick_timer, on_tick, kg_wheel_next_ms(&w->wheel, uv_now(&w->loop)), 0);
}

static void on_wakeup(uv_async_t *a)
{
	struct kg_worker *w = a->data;
	if (!atomic_load(&w->stop_requested) || w->draining)
		return;
	w->draining = true;
	for (size_t i = 0; i < w->nlisteners; i++)
		uv_close((uv_handle_t *)&w->listeners[i], NULL);
	w->nlisteners = 0;
	kg__pool_close_all(w);
	/* idle keep-alive connections go at once; the others finish their request */
	kg__conn_close_idle(w);
	struct kg_runtime *rt = kg__runtime_acquire();
	uv_timer_start(&w->drain_timer, on_drain_timeout, (uint64_t)rt->cfg->shutdown_timeout_ms, 0);
	kg__runtime_release(rt);
	kg__worker_drain(w);
}

static void worker_main(void *arg)
{
	struct kg_worker *w = arg;
	uv_run(&w->loop, UV_RUN_DEFAULT);
	kg__access_log_free(w);
	uv_walk(&w->loop, close_handle, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_loop_close(&w->loop);
	runtime_forget();
}

static kg_err workers_start(const kg_config *cfg, kg_buf *why)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	nworkers = cfg->workers > 0 ? (size_t)cfg->workers : (size_t)(cores > 0 ? cores : 1);
	workers = calloc(nworkers, sizeof(*workers));
	if (!workers)
		return KG_ENOMEM;
	for (size_t i = 0; i < nworkers; i++) {
		struct kg_worker *w = &workers[i];
		w->id = (int)i;
		uv_loop_init(&w->loop);
		uv_async_init(&w->loop, &w->wakeup, on_wakeup);
		w->wakeup.data = w;
		uv_timer_init(&w->loop, &w->drain_timer);
		w->drain_timer.data = w;
		uv_timer_init(&w->loop, &w->log_timer);
		w->log_timer.data = w;
		uv_timer_init(&w->loop, &w->tick_timer);
		w->tick_timer.data = w;
		kg_wheel_init(&w->wheel, KG_TICK_MS, uv_now(&w->loop));
		w->listeners = calloc(listen_count(cfg), sizeof(uv_tcp_t));
		if (!w->listeners)
			return KG_ENOMEM;
	}
	/* address by address: probe it, then every worker binds it at once (see
	 * listen_claim for why nothing may come in between) */
	for (size_t j = 0; j < listen_count(cfg); j++) {
		struct listen_addr la;
		bool is_tls;
		const char *at = listen_at(cfg, j, &is_tls);
		kg_err err = listen_resolve(at, &la, why);
		if (!err)
			err = listen_probe(at, &la, why);
		if (err)
			return err;
		for (size_t i = 0; i < nworkers; i++) {
			struct kg_worker *w = &workers[i];
			int fd = bind_socket(&la, true);
			if (fd < 0) {
				if (errno == EADDRINUSE)
					in_use(at, &la, "another program took", why);
				else
					kg_buf_printf(why, "listen %s: %s", at, strerror(errno));
				return KG_EIO;
			}
			uv_tcp_init(&w->loop, &w->listeners[j]);
			w->listeners[j].data = w;
			uv_tcp_open(&w->listeners[j], fd);
			int r = uv_listen((uv_stream_t *)&w->listeners[j], 1024, is_tls ? on_tls_connection : on_connection);
			if (r < 0) {
				kg_buf_printf(why, "listen %s: %s", at, uv_strerror(r));
				return KG_EIO;
			}
			w->nlisteners++;
		}
	}
	for (size_t i = 0; i < nworkers; i++) {
		if (uv_thread_create(&workers[i].thread, worker_main, &workers[i]) != 0) {
			kg_buf_printf(why, "cannot start worker thread %zu", i);
			return KG_EIO;
		}
	}
	return KG_OK;
}

/* ---- signals, reload, maintenance ---- */

static void stop_all(void)
{
	if (is_stopping)
		return;
	is_stopping = true;
	kg_info("shutting down: finishing in-flight requests");
	for (size_t i = 0; i < nworkers; i++) {
		atomic_store(&workers[i].stop_requested, true);
		uv_async_send(&workers[i].wakeup);
	}
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	uv_close((uv_handle_t *)&maint_timer, NULL);
	/* the workers are closing their listeners now; a replacement that
	 * starts before they are all closed fails its probe, cleanly */
	listen_locks_release();
}

static void on_sigterm(uv_signal_t *s, int signum)
{
	kg_info("received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
	stop_all();
}

static bool same_list(const kg_strlist *a, const kg_strlist *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	return true;
}

/* Warns about a file holding secrets (passwords, keys, password hashes)
 * that other users can read, or that group or others can change. A warning,
 * not a refusal: these files are the operator's, often shared with a
 * deployment tool, and keygate only reads them. */
static void warn_exposed_file(const char *what, const char *path)
{
	struct stat sb;
	if (!path || !path[0] || stat(path, &sb) != 0)
		return;
	if (sb.st_mode & S_IROTH)
		kg_warn("%s %s can be read by every user (mode %04o): chmod o-r %s (or chmod 600, owned by the user "
		        "keygate runs as)",
		        what, path, (unsigned)(sb.st_mode & 07777), path);
	if (sb.st_mode & (S_IWGRP | S_IWOTH))
		kg_warn("%s %s can be changed by group or others (mode %04o): chmod go-w %s", what, path,
		        (unsigned)(sb.st_mode & 07777), path);
}

/* A TLS private key: nobody but its owner (and keygate) needs to read it. */
static void warn_key_file(const char *what, const char *path)
{
	struct stat sb;
	if (!path || !path[0] || stat(path, &sb) != 0)
		return;
	if (sb.st_mode & (S_IRGRP | S_IROTH))
		kg_warn("%s %s can be read by %s (mode %04o): chmod 600 %s (owned by the user keygate runs as)", what,
		        path, (sb.st_mode & S_IROTH) ? "every user" : "its group", (unsigned)(sb.st_mode & 07777), path);
	if (sb.st_mode & (S_IWGRP | S_IWOTH))
		kg_warn("%s %s can be changed by group or others (mode %04o): chmod go-w %s", what, path,
		        (unsigned)(sb.st_mode & 07777), path);
}

static void warn_exposed_files(const kg_config *cfg, const char *config_path)
{
	warn_exposed_file("api_auth_password_file", cfg->api_auth_password_file);
	warn_exposed_file("basic_users file", cfg->basic_users);
	for (size_t i = 0; i < cfg->tls_key.n; i++)
		warn_key_file("tls.key", cfg->tls_key.v[i]);
	warn_key_file("http_tls_key_file", cfg->http_tls_key_file);
	if (!config_path)
		return;
	/* the config file matters when it is where a secret comes from, not
	 * the environment or a flag: read it alone */
	kg_config *file_only = NULL;
	kg_config_errors errs = { 0 };
	if (kg_config_load(config_path, NULL, 0, NULL, &file_only, &errs) == KG_OK &&
	    (file_only->admin_password[0] || file_only->token_encryption_keys.n))
		warn_exposed_file("config file (it sets admin_password or token_encryption_key)", config_path);
	kg_config_free(&file_only);
	kg_config_errors_free(&errs);
}

/* Turning verification off is allowed (a test upstream, a self-signed
 * certificate one cannot add to proxy.tls_ca yet) but never silently: it is
 * said at every start and reload. */
static void warn_upstream_tls(const kg_config *cfg)
{
	if (!cfg->proxy_tls_verify && kg_str_has_prefix(kg_str_c(cfg->upstream), KG_STR("https://")))
		kg_warn("proxy.tls_verify is false: the certificate of upstream %s is NOT verified; anyone on the "
		        "path can read and change what keygate sends it (passwords and tokens included)",
		        cfg->upstream);
}

static void reload(void)
{
	kg_config *cfg = NULL;
	kg_config_errors errs = { 0 };
	kg_buf why = { 0 };
	struct kg_runtime *rt = NULL;

	kg_info("SIGHUP: reloading configuration");
	if (kg_config_load(serve_args.config_path, serve_args.envp, serve_args.argc, serve_args.argv, &cfg, &errs) !=
	    KG_OK) {
		for (size_t i = 0; i < errs.n; i++)
			kg_error("reload failed: %s", errs.v[i]);
		kg_error("reload failed: keeping the previous configuration");
		goto out;
	}
	if (kg__runtime_build(cfg, &rt, &why) != KG_OK) {
		kg_error("reload failed: %s; keeping the previous configuration", why.p ? why.p : "invalid");
		kg_config_free(&cfg);
		goto out;
	}
	struct kg_runtime *cur = kg__runtime_acquire();
	if (!same_list(&cur->cfg->listen, &cfg->listen) || !same_list(&cur->cfg->tls_listen, &cfg->tls_listen) ||
	    cur->cfg->http_tls_enabled != cfg->http_tls_enabled || cur->cfg->workers != cfg->workers ||
	    strcmp(cur->cfg->data_dir, cfg->data_dir) != 0)
		kg_warn("listen, tls.listen, http_tls_enabled, workers and data_dir take effect only after a restart");
	if (strcmp(cur->cfg->access_log, cfg->access_log) != 0 || strcmp(cfg->access_log, "-") != 0) {
		if (kg__access_log_open(cfg->access_log) != KG_OK)
			kg_error("cannot open access log %s: %s", cfg->access_log, strerror(errno));
	}
	/* the addresses are a restart's business: certificates for TLS are
	 * loaded only when the running process has a TLS listener */
	if (!cur->tls_ctx && rt->tls_ctx) {
		SSL_CTX_free(rt->tls_ctx);
		rt->tls_ctx = NULL;
	}
	bool is_tls_reloaded = rt->tls_ctx != NULL;
	kg__runtime_release(cur);
	kg_log_set_level((enum kg_log_level)kg_log_level_parse(cfg->log_level));
	warn_exposed_files(cfg, serve_args.config_path);
	warn_upstream_tls(cfg);
	runtime_install(rt);
	kg_info("configuration reloaded%s", is_tls_reloaded ? " (TLS certificates too: new connections get them)" : "");
out:
	kg_config_errors_free(&errs);
	kg_buf_free(&why, false);
}

static void on_sighup(uv_signal_t *s, int signum)
{
	reload();
}

static void on_maintenance(uv_timer_t *t)
{
	kg_buf detail = { 0 };
	const char *status = "ok";
	if (g_store && g_store->ops->ping(g_store, &detail) != KG_OK)
		status = detail.p ? detail.p : "unavailable";
	pthread_mutex_lock(&store_status_lock);
	snprintf(g_store_status, sizeof(g_store_status), "%s", status);
	pthread_mutex_unlock(&store_status_lock);
	kg_buf_free(&detail, false);
	if (g_cache) {
		static unsigned ticks;
		kg_cache_refresh(g_cache);
		if (ticks++ % 60 == 0) /* a prune is a durable write: once a minute is plenty */
			kg_cache_prune(g_cache, (int64_t)time(NULL));
		struct kg_runtime *rt = kg__runtime_acquire();
		if (rt->bee)
			kg__bee_refresh(rt->bee);
		if (rt->avax)
			kg__avax_refresh(rt->avax);
		if (rt->es && ticks % 3600 == 1) /* retention is counted in days: hourly is plenty */
			kg__es_maintain(rt->es);
		if (rt->es && ticks % 2 == 0) /* API keys' last uses, coalesced: one write per key per 2 s at most */
			kg__es_flush_last_used(rt->es);
		kg__runtime_release(rt);
	}
}

int kg_serve(const struct kg_serve_args *args, kg_config *cfg)
{
	struct kg_runtime *rt = NULL;
	kg_buf why = { 0 };
	int rc = 1;

	serve_args = *args;
	g_started_at = (int64_t)time(NULL);
	signal(SIGPIPE, SIG_IGN);
	kg_log_set_level((enum kg_log_level)kg_log_level_parse(cfg->log_level));

	if (listen_claim_all(cfg, &why) != KG_OK) {
		fprintf(stderr, "keygate: %s\n", why.p ? why.p : "cannot listen");
		kg_config_free(&cfg);
		goto out;
	}
	if (kg_store_open_sqlite(cfg->data_dir, &g_store, &why) != KG_OK) {
		fprintf(stderr, "keygate: store: %s\n", why.p ? why.p : "cannot open");
		kg_config_free(&cfg);
		goto out;
	}
	/* the API keys live in api_es.c's index instead (kg_cache_watch): a
	 * copy of every document here would cost their size a million times */
	static const char *const unstored[] = { "es.api_key", NULL };
	if (kg_cache_new_unstored(g_store, unstored, &g_cache) != KG_OK) {
		fprintf(stderr, "keygate: store: cannot load the cache\n");
		kg_config_free(&cfg);
		goto out;
	}
	if (kg__runtime_build(cfg, &rt, &why) != KG_OK) {
		fprintf(stderr, "keygate: %s\n", why.p ? why.p : "invalid configuration");
		kg_config_free(&cfg);
		goto out;
	}
	if (kg__access_log_open(cfg->access_log) != KG_OK) {
		fprintf(stderr, "keygate: cannot open access log %s: %s\n", cfg->access_log, strerror(errno));
		goto out;
	}
	warn_exposed_files(cfg, args->config_path);
	warn_upstream_tls(cfg);
	runtime_install(rt);
	rt = NULL;
	on_maintenance(NULL);

	uv_loop_init(&main_loop);
	uv_signal_init(&main_loop, &sig_term);
	uv_signal_init(&main_loop, &sig_int);
	uv_signal_init(&main_loop, &sig_hup);
	uv_signal_start(&sig_term, on_sigterm, SIGTERM);
	uv_signal_start(&sig_int, on_sigterm, SIGINT);
	uv_signal_start(&sig_hup, on_sighup, SIGHUP);
	uv_timer_init(&main_loop, &maint_timer);
	/* once a second: revocations written by `keygate token revoke` or by
	 * another instance take effect within that time */
	uv_timer_start(&maint_timer, on_maintenance, 1000, 1000);

	struct kg_runtime *cur = kg__runtime_acquire();
	if (workers_start(cur->cfg, &why) != KG_OK) {
		fprintf(stderr, "keygate: %s\n", why.p ? why.p : "cannot start");
		kg__runtime_release(cur);
		exit(1); /* threads may be half started: no orderly way back */
	}
	for (size_t i = 0; i < listen_count(cur->cfg); i++) {
		bool is_tls;
		const char *at = listen_at(cur->cfg, i, &is_tls);
		kg_info("keygate %s listening on %s%s (%zu workers, %s%s)", kg__version, at, is_tls ? " (TLS)" : "",
		        nworkers, cur->has_upstream ? "proxy to " : "forward-auth mode",
		        cur->has_upstream ? cur->cfg->upstream : "");
	}
	kg_info("store: %s %s; require_auth %s", g_store->ops->name, kg_store_location(g_store),
	        cur->auth.require_auth ? "on" : "off (pass-through)");
	kg__runtime_release(cur);

	uv_run(&main_loop, UV_RUN_DEFAULT);
	for (size_t i = 0; i < nworkers; i++)
		uv_thread_join(&workers[i].thread);
	uv_loop_close(&main_loop);
	kg_info("stopped");
	rc = 0;
out:
	kg_buf_free(&why, false);
	if (rt)
		runtime_free(rt);
	runtime_forget();
	pthread_mutex_lock(&rt_lock);
	kg__runtime_release(g_rt);
	g_rt = NULL;
	pthread_mutex_unlock(&rt_lock);
	for (size_t i = 0; i < nworkers; i++)
		free(workers[i].listeners);
	free(workers);
	listen_locks_release();
	kg_cache_free(&g_cache);
	kg_store_close(&g_store);
	kg__access_log_close();
	return rc;
}
