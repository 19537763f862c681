/* keygate-bench: in-process micro-benchmarks, one thread (= per core).
 * Prints verifications per second for each credential format, and the
 * policy decision time with Bee's preset. */
#include <stdio.h>
#include <time.h>

#include "keygate/jwt.h"
#include "keygate/policy.h"
#include "keygate/token.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs fn n times and returns calls per second. */
#define RATE(n, expr)                                                   \
	({                                                              \
		double t0_ = now_s();                                   \
		for (long i_ = 0; i_ < (n); i_++)                       \
			if (!(expr)) {                                  \
				fprintf(stderr, "failed: %s\n", #expr); \
				return 1;                               \
			}                                               \
		(double)(n) / (now_s() - t0_);                          \
	})

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

	printf("| in-process, one thread | per second | per call |\n|---|---|---|\n");
	printf("| keygate token open (AES-256-GCM) | %.0f | %.0f ns |\n", r_kg, 1e9 / r_kg);
	printf("| Bee-format token open | %.0f | %.0f ns |\n", r_bee, 1e9 / r_bee);
	printf("| Avalanche JWT verify (HS256) | %.0f | %.0f ns |\n", r_jwt, 1e9 / r_jwt);
	printf("| policy decision (bee preset) | %.0f | %.1f ns |\n", r_pol, 1e9 / r_pol);
	printf("| ApiKey lookup, cached Basic | not implemented yet | |\n");
	kg_policy_free(&p);
	kg_arena_destroy(&a);
	kg_token_keys_free(&k);
	kg_buf_free(&kt, false);
	kg_buf_free(&bt, false);
	kg_buf_free(&jt, false);
	return 0;
}
