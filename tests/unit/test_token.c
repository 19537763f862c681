#include <stdio.h>
#include <time.h>

#include "keygate/token.h"
#include "kgtest.h"

/* Minted by tests/compat/bee_token.mjs (Node's crypto, an independent
 * implementation of Bee's format) with the key "hello". */
static const struct {
	const char *token, *role;
	long long expires_ms;
} node_vectors[] = {
	{ "uOeS42akpYX+fV5jbWnf487KgqU2p8YNt7wAFR++j5FY9vWY78aW8N/xdIFT6EBy1DiupVD8QlRiolUQwoOZRsRSAjiJyY2iRMXMzAwCrvVAT5ZXd7nZqw==",
	  "maintainer", 1951286400123LL }, /* e = 2031-11-01T10:00:00.123456789+02:00 */
	{ "HyNIa1rZHef8yzCvaOho+l/FPS+w8ZjzrtjWX4RWlxvQ3VRPUhbBUnlpv1PRKI8dzV0mfWHAOS8eW2Sd8AxH8/Su8TqvLuiqrg==",
	  "maintainer", 1577836800000LL }, /* 2020-01-01T00:00:00Z */
	{ "Mn2H8OFWpd24AQ7jFjVvwynRZXcX/8xogei/lDkYkd0kAGbPl2+gO07L8lGgvSDDYZt297ZGJ1qF9J/N+40Zhs40y5t4bOWkI8g8",
	  "maintainer", 4070908800500LL }, /* 2099-01-01T00:00:00.5Z */
};

static kg_token_keys *keys_of(const char *a, const char *b)
{
	const char *v[2] = { a, b };
	kg_token_keys *k = NULL;
	if (kg_token_keys_new(v, b ? 2 : 1, &k) != KG_OK)
		return NULL;
	return k;
}

KG_TEST(test_opens_bee_tokens_minted_by_node)
{
	kg_token_keys *k = keys_of("hello", NULL);
	for (size_t i = 0; k && i < sizeof(node_vectors) / sizeof(node_vectors[0]); i++) {
		struct kg_token_claims c;
		kg_err err = kg_token_open(k, kg_str_c(node_vectors[i].token), &c);
		KG_CHECK(err == KG_OK, "vector %zu: %s", i, kg_errname(err));
		KG_CHECK(strcmp(c.role, node_vectors[i].role) == 0, "vector %zu: role %s", i, c.role);
		KG_CHECK(c.expires_ms == node_vectors[i].expires_ms, "vector %zu: expires %lld, want %lld", i,
		         (long long)c.expires_ms, node_vectors[i].expires_ms);
		KG_CHECK(c.issued_ms == 0 && strlen(c.id) == 32, "vector %zu: id %s", i, c.id);
	}
	kg_token_keys_free(&k);
	k = keys_of("not hello", NULL);
	struct kg_token_claims c;
	KG_CHECK(k && kg_token_open(k, kg_str_c(node_vectors[0].token), &c) == KG_EBADCRED, "wrong key must fail");
	kg_token_keys_free(&k);
}

KG_TEST(test_bee_plaintext_matches_go_and_node_bytes)
{
	kg_buf b = { 0 };
	/* new Date(1700000000123).toISOString() == Go's RFC3339Nano in UTC for ms precision */
	KG_CHECK(kg__token_bee_plaintext("creator", 1700000000123LL, &b) == KG_OK, "plaintext");
	KG_CHECK(b.p && strcmp(b.p, "{\"r\":\"creator\",\"e\":\"2023-11-14T22:13:20.123Z\"}") == 0, "got %s", b.p);
	kg_buf_clear(&b);
	KG_CHECK(kg__token_bee_plaintext("consumer", 1700000000100LL, &b) == KG_OK && strstr(b.p, ":20.1Z\""),
	         "trailing zeros trimmed as Go does: %s", b.p);
	kg_buf_clear(&b);
	KG_CHECK(kg__token_bee_plaintext("consumer", 1700000000000LL, &b) == KG_OK && strstr(b.p, ":20Z\""),
	         "no fraction when zero: %s", b.p);
	KG_CHECK(kg__token_bee_plaintext("a\"b", 0, &b) == KG_EINVAL, "a role JSON would need to escape");
	kg_buf_free(&b, false);
}

KG_TEST(test_rfc3339_table)
{
	static const struct {
		const char *in;
		kg_err err;
		long long ms;
	} cases[] = {
		{ "2020-01-01T00:00:00Z", KG_OK, 1577836800000LL },
		{ "2020-01-01T02:00:00+02:00", KG_OK, 1577836800000LL },
		{ "2019-12-31T23:00:00-01:00", KG_OK, 1577836800000LL },
		{ "2020-01-01T00:00:00.999999999Z", KG_OK, 1577836800999LL },
		{ "2020-01-01T00:00:00.1Z", KG_OK, 1577836800100LL },
		{ "2020-01-01T00:00:00", KG_EINVAL, 0 },
		{ "2020-01-01 00:00:00Z", KG_EINVAL, 0 },
		{ "2020-02-31T00:00:00Z", KG_EINVAL, 0 },
		{ "2020-01-01T00:00:00.Z", KG_EINVAL, 0 },
		{ "2020-01-01T00:00:00.1234567891Z", KG_EINVAL, 0 },
		{ "2020-01-01T24:00:00Z", KG_EINVAL, 0 },
		{ "2020-01-01T00:00:00+0200", KG_EINVAL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = 0;
		kg_err err = kg__token_parse_rfc3339(kg_str_c(cases[i].in), &ms);
		KG_CHECK(err == cases[i].err, "%s: %s", cases[i].in, kg_errname(err));
		if (!err)
			KG_CHECK(ms == cases[i].ms, "%s: %lld", cases[i].in, (long long)ms);
	}
}

KG_TEST(test_both_formats_round_trip)
{
	kg_token_keys *k = keys_of("secret", NULL);
	for (int f = 0; k && f < 2; f++) {
		struct kg_token_claims c = { .role = "accountant", .expires_ms = 4102444800123LL }, o;
		kg_buf t = { 0 };
		KG_CHECK(kg_token_mint(k, (enum kg_token_format)f, &c, &t) == KG_OK, "mint %d", f);
		KG_CHECK(kg_token_format_of(kg_buf_str(&t)) == (enum kg_token_format)f, "format of %s", t.p);
		KG_CHECK(kg_token_open(k, kg_buf_str(&t), &o) == KG_OK, "open %d", f);
		KG_CHECK(strcmp(o.role, "accountant") == 0 && o.expires_ms == c.expires_ms, "claims %d: %s %lld", f, o.role,
		         (long long)o.expires_ms);
		KG_CHECK(strcmp(o.id, c.id) == 0 && strlen(o.id) == 32, "id %d: %s vs %s", f, o.id, c.id);
		if (f == KG_TOKEN_FORMAT_KEYGATE) {
			KG_CHECK(o.issued_ms == c.issued_ms && o.issued_ms > 0, "issued");
			for (size_t i = 4; i < t.n; i++)
				KG_CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", t.p[i]),
				         "non-base64url char at %zu", i);
		}
		kg_buf_free(&t, false);
	}
	kg_token_keys_free(&k);
}

KG_TEST(test_every_tampered_byte_is_refused)
{
	kg_token_keys *k = keys_of("secret", NULL);
	for (int f = 0; k && f < 2; f++) {
		struct kg_token_claims c = { .role = "consumer", .expires_ms = 4102444800000LL }, o;
		kg_buf t = { 0 };
		KG_CHECK(kg_token_mint(k, (enum kg_token_format)f, &c, &t) == KG_OK, "mint");
		size_t refused = 0;
		for (size_t i = (f == KG_TOKEN_FORMAT_KEYGATE ? 4 : 0); i < t.n; i++) {
			char saved = t.p[i];
			t.p[i] = saved == 'A' ? 'B' : 'A';
			refused += kg_token_open(k, kg_buf_str(&t), &o) == KG_EBADCRED;
			t.p[i] = saved;
		}
		size_t total = t.n - (f == KG_TOKEN_FORMAT_KEYGATE ? 4 : 0);
		/* a change in base64 padding bits or padding itself is still refused (canonical decoding) */
		KG_CHECK(refused == total, "format %d: %zu of %zu tampered tokens refused", f, refused, total);
		kg_buf_free(&t, false);
	}
	kg_token_keys_free(&k);
}

KG_TEST(test_garbage_never_opens)
{
	kg_token_keys *k = keys_of("secret", NULL);
	static const char *const bad[] = { "", "A", "AAAA", "AAAAAAAAAAAAAAAAAAAAAAAA", "kg1.", "kg1.AAAA", "%%%%",
		                           "kg1.!!!!", "eyJhbGciOiJIUzI1NiJ9" };
	for (size_t i = 0; k && i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kg_token_claims o;
		KG_CHECK(kg_token_open(k, kg_str_c(bad[i]), &o) == KG_EBADCRED, "'%s' opened", bad[i]);
	}
	kg_token_keys_free(&k);
}

KG_TEST(test_key_rotation_first_encrypts_all_decrypt)
{
	kg_token_keys *old = keys_of("old", NULL), *both = keys_of("new", "old"), *fresh = keys_of("new", NULL);
	for (int f = 0; old && both && fresh && f < 2; f++) {
		struct kg_token_claims c = { .role = "consumer", .expires_ms = 4102444800000LL }, o;
		kg_buf t = { 0 }, t2 = { 0 };
		KG_CHECK(kg_token_mint(old, (enum kg_token_format)f, &c, &t) == KG_OK, "mint");
		KG_CHECK(kg_token_open(both, kg_buf_str(&t), &o) == KG_OK, "%d: [new, old] opens an old token", f);
		KG_CHECK(kg_token_open(fresh, kg_buf_str(&t), &o) == KG_EBADCRED, "%d: [new] refuses it", f);
		KG_CHECK(kg_token_mint(both, (enum kg_token_format)f, &c, &t2) == KG_OK, "mint");
		KG_CHECK(kg_token_open(fresh, kg_buf_str(&t2), &o) == KG_OK, "%d: [new, old] encrypts with new", f);
		kg_buf_free(&t, false);
		kg_buf_free(&t2, false);
	}
	kg_token_keys_free(&old);
	kg_token_keys_free(&both);
	kg_token_keys_free(&fresh);
	const char *empty[1] = { "" };
	kg_token_keys *e = NULL;
	KG_CHECK(kg_token_keys_new(empty, 1, &e) == KG_EINVAL && !e, "an empty key is refused");
}

KG_TEST(test_open_rate_is_reported)
{
	kg_token_keys *k = keys_of("secret", NULL);
	for (int f = 0; k && f < 2; f++) {
		struct kg_token_claims c = { .role = "consumer", .expires_ms = 4102444800000LL }, o;
		kg_buf t = { 0 };
		KG_CHECK(kg_token_mint(k, (enum kg_token_format)f, &c, &t) == KG_OK, "mint");
		struct timespec a, b;
		int n = 20000, ok = 0;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (int i = 0; i < n; i++)
			ok += kg_token_open(k, kg_buf_str(&t), &o) == KG_OK;
		clock_gettime(CLOCK_MONOTONIC, &b);
		double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		printf("# %s format: %.0f opens/s\n", f ? "bee" : "keygate", n / s);
		KG_CHECK(ok == n, "all opens succeed");
		kg_buf_free(&t, false);
	}
	kg_token_keys_free(&k);
}

int main(void)
{
	return kg_test_main();
}
