/* keygate-bench-es: the Elasticsearch ApiKey path of the daemon
 * (src/api_es.c), in process, one thread (= per core):
 *   - verifications per second of one key: the whole authenticator a proxied
 *     request runs (decode the credential, look the key up, verify the
 *     secret, judge the application privilege);
 *   - with BENCH_ES_KEYS keys (default 1,000,000) written straight into a
 *     SQLite store in the shape POST /_security/api_key writes: the memory
 *     keygate takes per key (RSS growth over loading the cache, which keeps
 *     no copy of es.api_key, and building api_es.c's index / keys), the time
 *     to build the index, and the whole check of 10,000 keys in turn and of
 *     random keys among them all.
 * Prints markdown rows for docs/benchmarks.md. Each rate is the best of 5
 * runs: this machine is shared, and the best run is the one least disturbed. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "keygate/arena.h"
#include "keygate/auth.h"
#include "keygate/cache.h"
#include "keygate/config.h"
#include "keygate/es.h"
#include "keygate/es_role.h"
#include "keygate/store.h"
#include "es.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void key_id(long i, char out[32])
{
	snprintf(out, 32, "bench%015ld", i);
}

/* The document POST /_security/api_key writes for elastic (limited by the
 * superuser snapshot), with a key granting GET on /bytes/ and below. */
static char *key_doc(const char *id, const char *hash)
{
	json_t *desc = json_pack("{s:{s:[], s:[], s:[{s:s, s:[s], s:[s]}], s:[], s:{}}}", "bench", "cluster", "indices",
	                         "applications", "application", "keygate", "privileges", "GET", "resources", "/bytes/*",
	                         "run_as", "metadata");
	json_t *doc = json_pack("{s:s, s:s, s:s, s:I, s:b, s:s, s:s, s:s, s:{}, s:o, s:{s:o}, s:s}", "id", id, "name",
	                        "bench key", "type", "rest", "creation", (json_int_t)1764547200000LL, "invalidated", 0,
	                        "username", "elastic", "realm", "reserved", "realm_type", "reserved", "metadata",
	                        "role_descriptors", desc, "limited_by", "superuser", kg_es_role_superuser(), "hash", hash);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	return text;
}

/* Writes n keys (ids key_id(i), all with the secret "bench-secret-22-chars")
 * into the store of dir in one transaction. */
static int fill_store(const char *dir, long n, const char *hash)
{
	char path[512];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = 1;
	snprintf(path, sizeof(path), "%s/keygate.db", dir);
	if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO kv (ns, key, value, updated_at) VALUES ('es.api_key', ?1, ?2, 0)", -1, &st,
	                       NULL) != SQLITE_OK) {
		fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
		goto out;
	}
	for (long i = 0; i < n; i++) {
		char id[32];
		key_id(i, id);
		char *doc = key_doc(id, hash);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, doc, (int)strlen(doc), free);
		if (sqlite3_step(st) != SQLITE_DONE) {
			fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
			goto out;
		}
		sqlite3_reset(st);
	}
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

struct bench {
	const struct kg_authenticator *a;
	kg_arena arena;
	struct kg_auth_request req;
	char header[256];
};

static void bench_set_key(struct bench *b, const char *id, const char *secret)
{
	kg_buf enc = { 0 };
	if (kg_es_encoded(kg_str_c(id), kg_str_c(secret), &enc) != KG_OK)
		abort();
	snprintf(b->header, sizeof(b->header), "ApiKey %s", enc.p);
	kg_buf_free(&enc, true);
	b->req.cred = kg_cred_parse(kg_str_c(b->header));
}

static bool bench_check(struct bench *b)
{
	struct kg_principal p = { 0 };
	const char *message = NULL;
	kg_arena_reset(&b->arena);
	return b->a->authenticate(b->a, &b->req, &b->arena, &p, &message) == KG_OK;
}

/* best of 5 runs of n calls of expr: calls per second */
#define RATE(n, expr)                                                           \
	({                                                                      \
		double best_ = 0;                                               \
		for (int r_ = 0; r_ < 5; r_++) {                                \
			double t0_ = now_s();                                   \
			for (long i_ = 0; i_ < (n); i_++)                       \
				if (!(expr)) {                                  \
					fprintf(stderr, "failed: %s\n", #expr); \
					exit(1);                                \
				}                                               \
			double r0_ = (double)(n) / (now_s() - t0_);             \
			best_ = r0_ > best_ ? r0_ : best_;                      \
		}                                                               \
		best_;                                                          \
	})

int main(void)
{
	const char *secret = "bench-secret-22-chars!";
	long nkeys = getenv("BENCH_ES_KEYS") ? atol(getenv("BENCH_ES_KEYS")) : 1000000;
	char dir[] = "/tmp/keygate-bench-es-XXXXXX";
	kg_store *store = NULL;
	kg_cache *cache = NULL;
	kg_config *cfg = NULL;
	kg_config_errors errs = { 0 };
	struct kg_es *es = NULL;
	kg_buf hash = { 0 }, why = { 0 };
	char *argv[] = { NULL }, *envp[] = { NULL };
	int rc = 1;
	unsigned x = 12345;
	if (nkeys < 1 || !mkdtemp(dir))
		return 1;
	chmod(dir, 0700);
	if (kg_es_secret_hash(kg_str_c(secret), &hash) || kg_store_open_sqlite(dir, &store, &why)) {
		fprintf(stderr, "store: %s\n", why.p ? why.p : "");
		goto out;
	}
	kg_store_close(&store);
	double t0 = now_s();
	if (fill_store(dir, nkeys, hash.p))
		goto out;
	fprintf(stderr, "bench-es: %ld keys written in %.1f s\n", nkeys, now_s() - t0);
	if (kg_store_open_sqlite(dir, &store, &why))
		goto out;
	if (kg_config_load(NULL, envp, 0, argv, &cfg, &errs)) {
		fprintf(stderr, "config\n");
		goto out;
	}
	/* as the daemon does (server.c): es.api_key is api_es.c's index's alone */
	static const char *const unstored[] = { "es.api_key", NULL };
	long rss0 = rss_bytes();
	t0 = now_s();
	if (kg_cache_new_unstored(store, unstored, &cache))
		goto out;
	double t1 = now_s();
	if (kg__es_new(cfg, "", store, cache, NULL, &es, &why)) {
		fprintf(stderr, "es: %s\n", why.p ? why.p : "");
		goto out;
	}
	double t2 = now_s();
	long rss1 = rss_bytes();
	fprintf(stderr, "bench-es: cache loaded in %.1f s, index built in %.1f s\n", t1 - t0, t2 - t1);
	struct bench b = { .a = kg__es_apikey_authenticator(es) };
	kg_arena_init(&b.arena, 4096);
	b.req.method = KG_STR("GET");
	b.req.path = KG_STR("/bytes/abc");
	b.req.now = (int64_t)time(NULL);
	char id[32];

	/* one key, over and over: the steady state of a client */
	key_id(nkeys / 2, id);
	bench_set_key(&b, id, secret);
	double one = RATE(1000000, bench_check(&b));

	/* 10,000 keys in turn */
	long ws = nkeys < 10000 ? nkeys : 10000;
	static char headers[10000][256];
	struct kg_cred creds[10000];
	for (long i = 0; i < ws; i++) {
		key_id(i * (nkeys / ws), id);
		bench_set_key(&b, id, secret);
		snprintf(headers[i], sizeof(headers[i]), "%s", b.header);
		creds[i] = kg_cred_parse(kg_str_c(headers[i]));
	}
	double many = RATE(200000, (b.req.cred = creds[i_ % ws], bench_check(&b)));

	/* random keys among all (the credential encoded anew for each: counted) */
	double cold = RATE(20000, (x = x * 1103515245u + 12345u, key_id((long)(x % (unsigned)nkeys), id),
	                           bench_set_key(&b, id, secret), bench_check(&b)));

	/* what encoding the credential alone costs, to subtract from the above */
	double enc = RATE(20000, (x = x * 1103515245u + 12345u, key_id((long)(x % (unsigned)nkeys), id),
	                          bench_set_key(&b, id, secret), true));

	printf("| Elasticsearch ApiKey, in-process, one thread | per second | per call |\n");
	printf("|---|---|---|\n");
	printf("| one key: decode, lookup, HMAC-SHA256 secret check, application privilege | %.0f | %.0f ns |\n", one,
	       1e9 / one);
	printf("| %ld keys in turn | %.0f | %.0f ns |\n", ws, many, 1e9 / many);
	printf("| random keys among %ld (the check alone: the credential's encoding, %.0f ns, subtracted) | %.0f | %.0f ns |\n",
	       nkeys, 1e9 / enc, 1e9 / (1e9 / cold - 1e9 / enc), 1e9 / cold - 1e9 / enc);
	printf("\n");
	printf("| Elasticsearch API keys in the store | memory in keygate per key |\n");
	printf("|---|---|\n");
	char *sample = key_doc("bench000000000000000", hash.p);
	printf("| %ld keys (documents of %zu bytes, as POST /_security/api_key writes them for elastic) | %.0f bytes (RSS growth over the cache's load and the index's build / keys; built in %.1f s) |\n",
	       nkeys, sample ? strlen(sample) : 0, (double)(rss1 - rss0) / (double)nkeys, t2 - t1);
	free(sample);
	rc = 0;
	kg_arena_destroy(&b.arena);
out:
	kg__es_free(&es);
	kg_cache_free(&cache);
	kg_store_close(&store);
	kg_config_free(&cfg);
	kg_config_errors_free(&errs);
	kg_buf_free(&hash, false);
	kg_buf_free(&why, false);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
