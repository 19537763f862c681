#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "keygate/b64.h"
#include "keygate/jwt.h"
#include "kgtest.h"

static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";

/* Builds header.claims.signature by hand, with any algorithm name and an
 * HMAC of the given digest: the attacker's view. */
static void forge(const char *header, const char *claims, const EVP_MD *md, kg_buf *out)
{
	unsigned char mac[64];
	unsigned int len = 0;
	kg_buf_clear(out);
	KG_CHECK(kg_b64_encode(KG_B64_URL_RAW, header, strlen(header), out) == KG_OK, "b64");
	KG_CHECK(kg_buf_append(out, ".", 1) == KG_OK, "dot");
	KG_CHECK(kg_b64_encode(KG_B64_URL_RAW, claims, strlen(claims), out) == KG_OK, "b64");
	HMAC(md, key, 32, (unsigned char *)out->p, out->n, mac, &len);
	KG_CHECK(kg_buf_append(out, ".", 1) == KG_OK, "dot");
	KG_CHECK(kg_b64_encode(KG_B64_URL_RAW, mac, len, out) == KG_OK, "b64");
}

KG_TEST(test_rfc7515_style_known_answer)
{
	/* HS256 over a fixed header.claims with a fixed key, checked against an
	 * independent HMAC: the signature segment must equal it byte for byte */
	kg_buf t = { 0 };
	forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"exp\":4102444800,\"jti\":\"x\",\"endpoints\":[\"*\"]}",
	      EVP_sha256(), &t);
	kg_arena a;
	kg_arena_init(&a, 0);
	struct kg_jwt_claims c;
	const char *msg;
	KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 1700000000, &a, &c, &msg) == KG_JWT_OK, "verify: %s", msg);
	KG_CHECK(c.exp == 4102444800LL && kg_str_eq(c.jti, KG_STR("x")) && c.nendpoints == 1, "claims");
	KG_CHECK(strncmp(t.p, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0, "header segment %s", t.p);
	kg_arena_destroy(&a);
	kg_buf_free(&t, false);
}

KG_TEST(test_sign_then_verify_and_claim_layout)
{
	const char *eps[] = { "/ext/info", "/ext/bc/X" };
	kg_buf t = { 0 }, part = { 0 };
	char jti[64];
	KG_CHECK(kg_jwt_sign(key, 4102444800LL, eps, 2, &t, jti) == KG_OK, "sign");
	KG_CHECK(strlen(jti) == 27, "jti is 20 bytes base64url: %s", jti);
	const char *d1 = strchr(t.p, '.'), *d2 = strrchr(t.p, '.');
	KG_CHECK(kg_b64_decode(KG_B64_URL_RAW, (kg_str){ d1 + 1, (size_t)(d2 - d1 - 1) }, 4096, &part) == KG_OK, "claims b64");
	char want[256];
	snprintf(want, sizeof(want), "{\"exp\":4102444800,\"jti\":\"%s\",\"endpoints\":[\"/ext/info\",\"/ext/bc/X\"]}", jti);
	KG_CHECK(part.n == strlen(want) && memcmp(part.p, want, part.n) == 0, "claims %.*s", (int)part.n, part.p);
	kg_arena a;
	kg_arena_init(&a, 0);
	struct kg_jwt_claims c;
	const char *msg;
	KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 1700000000, &a, &c, &msg) == KG_JWT_OK, "verify");
	KG_CHECK(c.nendpoints == 2 && kg_str_eq(c.endpoints[1], KG_STR("/ext/bc/X")), "endpoints");
	const char *star[] = { "/ext/info", "*" };
	kg_buf_clear(&t);
	KG_CHECK(kg_jwt_sign(key, 4102444800LL, star, 2, &t, NULL) == KG_OK, "sign *");
	KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 0, &a, &c, &msg) == KG_JWT_OK && c.nendpoints == 1 &&
	             kg_str_eq(c.endpoints[0], KG_STR("*")),
	         "any '*' makes the claim just [\"*\"]");
	kg_arena_destroy(&a);
	kg_buf_free(&t, false);
	kg_buf_free(&part, false);
}

KG_TEST(test_algorithm_confusion_and_tampering_are_refused)
{
	kg_buf t = { 0 };
	kg_arena a;
	kg_arena_init(&a, 0);
	struct kg_jwt_claims c;
	const char *msg;
	const char *claims = "{\"exp\":4102444800,\"jti\":\"x\",\"endpoints\":[\"*\"]}";
	forge("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claims, EVP_sha512(), &t);
	KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 0, &a, &c, &msg) == KG_JWT_BAD_ALG, "HS512, correctly signed");
	KG_CHECK(strcmp(msg, "auth token didn't specify the HS256 signing method correctly") == 0, "message %s", msg);
	forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, EVP_sha256(), &t);
	KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 0, &a, &c, &msg) == KG_JWT_BAD_ALG, "alg none");
	forge("{\"alg\":\"RS256\"}", claims, EVP_sha256(), &t);
	KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 0, &a, &c, &msg) == KG_JWT_BAD_ALG, "RS256");
	forge("{\"alg\":\"hs256\"}", claims, EVP_sha256(), &t);
	KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 0, &a, &c, &msg) == KG_JWT_BAD_ALG, "alg names are exact");
	forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, EVP_sha256(), &t);
	t.p[t.n - 2] = t.p[t.n - 2] == 'A' ? 'B' : 'A';
	KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 0, &a, &c, &msg) == KG_JWT_BAD_SIGNATURE, "tampered signature");
	KG_CHECK(strcmp(msg, "signature is invalid") == 0, "message %s", msg);
	unsigned char other[32] = { 0 };
	forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, EVP_sha256(), &t);
	KG_CHECK(kg_jwt_verify(other, kg_buf_str(&t), 0, &a, &c, &msg) == KG_JWT_BAD_SIGNATURE, "other key");
	static const char *const bad[] = { "", "a", "a.b", "a.b.c.d", "!!.!!.!!", "eyJhbGciOiJIUzI1NiJ9.e30" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		KG_CHECK(kg_jwt_verify(key, kg_str_c(bad[i]), 0, &a, &c, &msg) != KG_JWT_OK, "'%s' verified", bad[i]);
	kg_arena_destroy(&a);
	kg_buf_free(&t, false);
}

KG_TEST(test_expiry_and_case_insensitive_claims)
{
	kg_buf t = { 0 };
	kg_arena a;
	kg_arena_init(&a, 0);
	struct kg_jwt_claims c;
	const char *msg;
	forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"EXP\":1000,\"Jti\":\"j\",\"Endpoints\":[\"/ext/info\"]}",
	      EVP_sha256(), &t);
	KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 999, &a, &c, &msg) == KG_JWT_OK, "before exp: %s", msg);
	KG_CHECK(c.exp == 1000 && c.nendpoints == 1 && kg_str_eq(c.jti, KG_STR("j")), "Go-style case-insensitive names");
	KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 1001, &a, &c, &msg) == KG_JWT_EXPIRED, "after exp");
	KG_CHECK(strstr(msg, "token is expired"), "message %s", msg);
	/* found by fuzzing: a real or out-of-range exp was converted with UB */
	static const char *const bad_exp[] = { "{\"exp\":8.88889e19}", "{\"exp\":1.5}", "{\"exp\":\"1\"}" };
	for (size_t i = 0; i < 3; i++) {
		forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", bad_exp[i], EVP_sha256(), &t);
		KG_CHECK(kg_jwt_verify(key, kg_buf_str(&t), 0, &a, &c, &msg) == KG_JWT_MALFORMED, "exp %s accepted", bad_exp[i]);
	}
	kg_arena_destroy(&a);
	kg_buf_free(&t, false);
}

KG_TEST(test_endpoint_rule_is_a_suffix_match)
{
	kg_str eps[] = { KG_STR("/ext/info") };
	struct kg_jwt_claims c = { .endpoints = eps, .nendpoints = 1 };
	KG_CHECK(kg_jwt_allows_path(&c, KG_STR("/ext/info")), "/ext/info");
	KG_CHECK(kg_jwt_allows_path(&c, KG_STR("/prefix/ext/info")), "ends with /ext/info");
	KG_CHECK(!kg_jwt_allows_path(&c, KG_STR("/ext/info/foo")), "/ext/info/foo");
	KG_CHECK(!kg_jwt_allows_path(&c, KG_STR("/ext/bc/X")), "/ext/bc/X");
	KG_CHECK(!kg_jwt_allows_path(&c, KG_STR("/foo")), "/foo");
	kg_str star[] = { KG_STR("*") };
	struct kg_jwt_claims s = { .endpoints = star, .nendpoints = 1 };
	KG_CHECK(kg_jwt_allows_path(&s, KG_STR("/anything")), "*");
}

int main(void)
{
	return kg_test_main();
}
