/* keygate-bench: in-process micro-benchmarks, one thread (= per core).
 * Prints verifications per second for each credential format, the policy
 * decision time with Bee's preset, and the Basic credential cache's lookup
 * time and memory with 1,000,000 entries. The Elasticsearch ApiKey path
 * needs the daemon's key slots (src/api_es.c): keygate-bench-es (bench/es.c).
 * Each rate is the best of 5 runs: this machine is shared, and the best run
 * is the one least disturbed. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "keygate/b64.h"
#include "keygate/jwt.h"
#include "keygate/password.h"
#include "keygate/path.h"
#include "keygate/policy.h"
#include "keygate/token.h"
#include "keygate/users.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs expr n times, 5 times over, and returns the best calls per second. */
#define RATE(n, expr)                                                           \
	({                                                                      \
		double best_ = 0;                                               \
		for (int r_ = 0; r_ < 5; r_++) {                                \
			double t0_ = now_s();                                   \
			for (long i_ = 0; i_ < (n); i_++)                       \
				if (!(expr)) {                                  \
					fprintf(stderr, "failed: %s\n", #expr); \
					return 1;                               \
				}                                               \
			double r0_ = (double)(n) / (now_s() - t0_);             \
			best_ = r0_ > best_ ? r0_ : best_;                      \
		}                                                               \
		best_;                                                          \
	})

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

/* A users set of one user with a cache of capacity entries. */
static kg_users *one_user(const kg_policy *p, size_t capacity)
{
	kg_buf h = { 0 }, text = { 0 };
	kg_config_errors errs = { 0 };
	kg_users *u = NULL;
	if (kg_bcrypt_hash(KG_STR("bench-pw"), 4, &h) || kg_buf_printf(&text, "bench:%s:consumer\n", h.p) ||
	    kg_users_parse("bench", text.p, text.n, p, &u, &errs) || kg_users_cache_init(u, capacity, 3600))
		u = NULL;
	kg_buf_free(&h, false);
	kg_buf_free(&text, false);
	kg_config_errors_free(&errs);
	return u;
}

/* Fills u's cache with n credentials "pw<i>" and returns ns per lookup of
 * random ones among them. */
static double cache_lookup_ns(kg_users *u, long n)
{
	char pw[32];
	for (long i = 0; i < n; i++) {
		int len = snprintf(pw, sizeof(pw), "pw%ld", i);
		kg_users__remember(u, KG_STR("bench"), (kg_str){ pw, (size_t)len }, 0, 1000);
	}
	long hits = 0, tries = 500000;
	unsigned x = 12345;
	double t0 = now_s();
	for (long i = 0; i < tries; i++) {
		x = x * 1103515245u + 12345u;
		int len = snprintf(pw, sizeof(pw), "pw%ld", (long)(x % (unsigned)n));
		hits += kg_users_cached(u, KG_STR("bench"), (kg_str){ pw, (size_t)len }, 1001) != NULL;
	}
	double ns = (now_s() - t0) * 1e9 / (double)tries;
	if (hits < tries * 9 / 10)
		fprintf(stderr, "cache: only %ld of %ld found\n", hits, tries);
	return ns;
}

int main(void)
{
	const long n = 500000;
	const char *keys[1] = { "benchmark-key" };
	kg_token_keys *k = NULL;
	if (kg_token_keys_new(keys, 1, &k) != KG_OK)
		return 1;
	struct kg_token_claims c = { .role = "consumer", .expires_ms = 4102444800000LL }, o;
	kg_buf kt = { 0 }, bt = { 0 }, jt = { 0 };
	if (kg_token_mint(k, KG_TOKEN_FORMAT_KEYGATE, &c, &kt) || kg_token_mint(k, KG_TOKEN_FORMAT_BEE, &c, &bt))
		return 1;
	unsigned char jk[32] = "0123456789abcdef0123456789abcdef";
	const char *eps[1] = { "/ext/info" };
	if (kg_jwt_sign(jk, 4102444800LL, eps, 1, &jt, NULL))
		return 1;
	kg_arena a;
	kg_arena_init(&a, 4096);
	struct kg_jwt_claims jc;
	const char *msg;
	kg_policy *p = NULL;
	if (kg_policy_load_preset("bee", &p))
		return 1;
	kg_rolemask consumer = kg_policy_role(p, KG_STR("consumer"));

	double r_kg = RATE(n, kg_token_open(k, kg_buf_str(&kt), &o) == KG_OK);
	double r_bee = RATE(n, kg_token_open(k, kg_buf_str(&bt), &o) == KG_OK);
	double r_jwt = RATE(n, (kg_arena_reset(&a), kg_jwt_verify(jk, kg_buf_str(&jt), 1, &a, &jc, &msg) == KG_JWT_OK));
	double r_pol = RATE(n * 10, kg_policy_allows(p, consumer, KG_STR("GET"), KG_STR("/v1/bytes/0123456789abcdef")));
	/* the request-path normalisation every request goes through: a clean
	 * path (the common case) and one with escapes and dot segments */
	char pout[128];
	size_t plen;
	kg_str clean = KG_STR("/v1/bytes/0123456789abcdef0123456789abcdef");
	kg_str dirty = KG_STR("/v1/debug/%2e%2e//bytes/./%41bc/../0123456789abcdef");
	double r_path = RATE(n * 10, kg_path_normalize(clean, 0, pout, &plen, NULL, NULL) == KG_OK);
	double r_path_dirty = RATE(n * 10, kg_path_normalize(dirty, 0, pout, &plen, NULL, NULL) == KG_OK);

	/* cached Basic: what the Basic authenticator does per request on a hit */
	kg_users *bu = one_user(p, 1000);
	if (!bu)
		return 1;
	const struct kg_authenticator *ba = kg_users_authenticator(bu, KG_DIALECT_KEYGATE);
	kg_users__remember(bu, KG_STR("bench"), KG_STR("bench-pw"), 0, 1000);
	struct kg_auth_request breq = { .method = KG_STR("GET"), .path = KG_STR("/bytes/x"), .policy = p, .now = 1001,
		                        .cred = kg_cred_parse(KG_STR("Basic YmVuY2g6YmVuY2gtcHc=")) };
	struct kg_principal pr;
	double r_basic = RATE(n, ba->authenticate(ba, &breq, &a, &pr, &msg) == KG_OK);
	kg_users_free(&bu);

	/* the cache at 1,000 and at 1,000,000 entries: lookup time and memory */
	kg_users *small = one_user(p, 1000);
	double ns_small = small ? cache_lookup_ns(small, 1000) : 0;
	kg_users_free(&small);
	long rss0 = rss_bytes();
	kg_users *big = one_user(p, 1000000);
	double ns_big = big ? cache_lookup_ns(big, 1000000) : 0;
	long rss1 = rss_bytes();
	kg_users_free(&big);

	printf("| in-process, one thread | per second | per call |\n|---|---|---|\n");
	printf("| keygate token open (AES-256-GCM) | %.0f | %.0f ns |\n", r_kg, 1e9 / r_kg);
	printf("| Bee-format token open | %.0f | %.0f ns |\n", r_bee, 1e9 / r_bee);
	printf("| Avalanche JWT verify (HS256) | %.0f | %.0f ns |\n", r_jwt, 1e9 / r_jwt);
	printf("| policy decision (bee preset) | %.0f | %.1f ns |\n", r_pol, 1e9 / r_pol);
	printf("| request path normalisation, clean 41-byte path | %.0f | %.1f ns |\n", r_path, 1e9 / r_path);
	printf("| request path normalisation, escapes and dot segments | %.0f | %.1f ns |\n", r_path_dirty,
	       1e9 / r_path_dirty);
	printf("| cached HTTP Basic (base64, HMAC-SHA256, cache lookup) | %.0f | %.0f ns |\n", r_basic, 1e9 / r_basic);
	printf("\n| Basic credential cache | lookup | memory per entry |\n|---|---|---|\n");
	printf("| 1,000 entries | %.0f ns | %zu bytes (slot) |\n", ns_small, kg_users_cache_entry_size());
	printf("| 1,000,000 entries | %.0f ns | %.0f bytes (RSS growth / entries) |\n", ns_big,
	       (double)(rss1 - rss0) / 1e6);
	kg_policy_free(&p);
	kg_arena_destroy(&a);
	kg_token_keys_free(&k);
	kg_buf_free(&kt, false);
	kg_buf_free(&bt, false);
	kg_buf_free(&jt, false);
	return 0;
}
