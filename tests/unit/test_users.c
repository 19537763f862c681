#include <stdio.h>
#include <stdlib.h>

#include "keygate/b64.h"
#include "keygate/hmac.h"
#include "keygate/password.h"
#include "keygate/users.h"
#include "kgtest.h"

static kg_policy *bee_policy(void)
{
	kg_policy *p = NULL;
	KG_CHECK(kg_policy_load_preset("bee", &p) == KG_OK, "bee preset");
	return p;
}

static char *hash_of(const char *plain)
{
	kg_buf h = { 0 };
	KG_CHECK(kg_bcrypt_hash(kg_str_c(plain), 4, &h) == KG_OK, "bcrypt");
	return h.p;
}

static void unhex(const char *hex, unsigned char *out)
{
	for (size_t i = 0; hex[2 * i]; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
}

KG_TEST(test_hmac_sha256_known_answers)
{
	/* independent values: Python's hmac.new(bytes(range(32)), msg, sha256) */
	unsigned char key[32], mac[32], want[32];
	for (int i = 0; i < 32; i++)
		key[i] = (unsigned char)i;
	unhex("2867d85143fa9948833a5ec6f3c7d31068cc5a9ba587e08b1e8ad88e1a30acb3", want);
	KG_CHECK(kg_hmac_sha256(key, "abc", 3, "def", 3, mac), "hmac");
	KG_CHECK_MEM(mac, want, 32, "HMAC(abc || def)");
	KG_CHECK(kg_hmac_sha256(key, "abcdef", 6, NULL, 0, mac), "hmac");
	KG_CHECK_MEM(mac, want, 32, "HMAC(abcdef) in one part");
	unhex("d38b42096d80f45f826b44a9d5607de72496a415d3f4a1a8c88e3bb9da8dc1cb", want);
	KG_CHECK(kg_hmac_sha256(key, "", 0, NULL, 0, mac), "hmac");
	KG_CHECK_MEM(mac, want, 32, "HMAC of nothing");
}

KG_TEST(test_sha256_known_answers)
{
	/* FIPS 180-2 appendix B.1 and the empty string */
	unsigned char d[32], want[32];
	unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want);
	KG_CHECK(kg_sha256("abc", 3, d), "sha256");
	KG_CHECK_MEM(d, want, 32, "SHA-256(abc)");
	unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want);
	KG_CHECK(kg_sha256("", 0, d), "sha256");
	KG_CHECK_MEM(d, want, 32, "SHA-256 of nothing");
}

KG_TEST(test_users_file_parses_comments_crlf_and_several_roles)
{
	kg_policy *p = bee_policy();
	char *ha = hash_of("alice-pw"), *ho = hash_of("ops-pw");
	kg_buf text = { 0 };
	KG_CHECK(kg_buf_printf(&text, "# users\n\nalice:%s:creator\r\n  ops:%s:maintainer, auditor  \n", ha, ho) ==
	             KG_OK, "text");
	kg_config_errors errs = { 0 };
	kg_users *u = NULL;
	KG_CHECK(kg_users_parse("users", text.p, text.n, p, &u, &errs) == KG_OK, "parse: %s",
	         errs.n ? errs.v[0] : "");
	KG_CHECK(u && kg_users_count(u) == 2, "two users");
	const struct kg_user *a = kg_users_find(u, KG_STR("alice"));
	const struct kg_user *o = kg_users_find(u, KG_STR("ops"));
	KG_CHECK(a && kg_str_eq(a->roles_text, KG_STR("creator")), "alice's role");
	KG_CHECK(a && (a->roles & kg_policy_role(p, KG_STR("consumer"))), "creator inherits consumer");
	KG_CHECK(a && !(a->roles & kg_policy_role(p, KG_STR("maintainer"))), "creator is not maintainer");
	KG_CHECK(o && kg_str_eq(o->roles_text, KG_STR("maintainer, auditor")), "ops's roles as written: '%.*s'",
	         o ? (int)o->roles_text.n : 0, o ? o->roles_text.p : "");
	KG_CHECK(o && (o->roles & kg_policy_role(p, KG_STR("auditor"))) &&
	             (o->roles & kg_policy_role(p, KG_STR("maintainer"))), "both roles");
	KG_CHECK(o && strcmp(o->hash, ho) == 0, "hash kept");
	KG_CHECK(!kg_users_find(u, KG_STR("ali")), "no prefix match");
	kg_users_free(&u);
	kg_config_errors_free(&errs);
	kg_buf_free(&text, false);
	free(ha);
	free(ho);
	kg_policy_free(&p);
}

KG_TEST(test_users_file_reports_every_problem_with_its_line)
{
	kg_policy *p = bee_policy();
	char *h = hash_of("pw");
	kg_buf text = { 0 };
	KG_CHECK(kg_buf_printf(&text,
	                       "nocolon\n"                       /* 1 */
	                       "bob:%s\n"                        /* 2: no role */
	                       "carol:$apr1$abc$def:creator\n"   /* 3: not bcrypt */
	                       "dave:%s:wizard\n"                /* 4: unknown role */
	                       "erin:%s:creator\n"               /* 5: fine */
	                       "erin:%s:consumer\n"              /* 6: twice */
	                       ":%s:creator\n"                   /* 7: empty name */
	                       "frank:%s:\n",                    /* 8: empty role */
	                       h, h, h, h, h, h) == KG_OK, "text");
	kg_config_errors errs = { 0 };
	kg_users *u = NULL;
	KG_CHECK(kg_users_parse("users.txt", text.p, text.n, p, &u, &errs) == KG_ECONFIG, "refused");
	KG_CHECK(u == NULL, "nothing returned");
	static const char *const want[] = {
		"users.txt:1: not NAME:BCRYPT-HASH:ROLE",
		"users.txt:2: user 'bob' has no role",
		"users.txt:3: user 'carol': not a bcrypt hash",
		"users.txt:4: user 'dave': role 'wizard' is not in the policy",
		"users.txt:6: user 'erin' appears twice (first on line 5)",
		"users.txt:7: user name must be 1 to 255 bytes",
		"users.txt:8: user 'frank' has no role",
	};
	KG_CHECK(errs.n == sizeof(want) / sizeof(want[0]), "%zu problems", errs.n);
	for (size_t i = 0; i < errs.n && i < sizeof(want) / sizeof(want[0]); i++)
		KG_CHECK(strncmp(errs.v[i], want[i], strlen(want[i])) == 0, "problem %zu: %s (want %s...)", i, errs.v[i],
		         want[i]);
	kg_config_errors_free(&errs);
	kg_buf_free(&text, false);
	free(h);
	kg_policy_free(&p);
}

KG_TEST(test_basic_decode)
{
	char buf[KG_USER_MAX_NAME + KG_USER_MAX_PASSWORD + 2];
	kg_str u, pw;
	KG_CHECK(kg_basic_decode(KG_STR("YWxpY2U6cDphOnNz"), buf, sizeof(buf), &u, &pw) == KG_OK, "alice:p:a:ss");
	KG_CHECK(kg_str_eq(u, KG_STR("alice")) && kg_str_eq(pw, KG_STR("p:a:ss")), "split at the first colon");
	KG_CHECK(kg_basic_decode(KG_STR("YWxpY2U6"), buf, sizeof(buf), &u, &pw) == KG_OK && pw.n == 0, "empty pw");
	KG_CHECK(kg_basic_decode(KG_STR("YWxpY2U="), buf, sizeof(buf), &u, &pw) == KG_EBADCRED, "no colon");
	KG_CHECK(kg_basic_decode(KG_STR("OnB3"), buf, sizeof(buf), &u, &pw) == KG_EBADCRED, "empty user");
	KG_CHECK(kg_basic_decode(KG_STR("YWxpY2U6cHc"), buf, sizeof(buf), &u, &pw) == KG_EBADCRED, "missing padding");
	KG_CHECK(kg_basic_decode(KG_STR("!!!!"), buf, sizeof(buf), &u, &pw) == KG_EBADCRED, "not base64");
	KG_CHECK(kg_basic_decode(KG_STR(""), buf, sizeof(buf), &u, &pw) == KG_EBADCRED, "empty");
	/* a password beyond the limit */
	kg_buf big = { 0 }, enc = { 0 };
	KG_CHECK(kg_buf_appends(&big, KG_STR("a:")) == KG_OK, "big");
	for (int i = 0; i < KG_USER_MAX_PASSWORD + 1; i++)
		KG_CHECK(kg_buf_append(&big, "x", 1) == KG_OK, "big");
	KG_CHECK(kg_b64_encode(KG_B64_STD, big.p, big.n, &enc) == KG_OK, "enc");
	KG_CHECK(kg_basic_decode(kg_buf_str(&enc), buf, sizeof(buf), &u, &pw) == KG_EBADCRED, "password too long");
	kg_buf_free(&big, false);
	kg_buf_free(&enc, false);
}

KG_TEST(test_basic_wipe_zeroes_every_decoded_byte_and_nothing_else)
{
	char buf[KG_USER_MAX_NAME + KG_USER_MAX_PASSWORD + 2];
	const char *plain[] = { "alice:p:a:ss", "a:", "bob:secret with spaces", "x:y" };
	const char *enc[] = { "YWxpY2U6cDphOnNz", "YTo=", "Ym9iOnNlY3JldCB3aXRoIHNwYWNlcw==", "eDp5" };
	for (size_t k = 0; k < sizeof(plain) / sizeof(plain[0]); k++) {
		kg_str u, pw;
		memset(buf, 0xAA, sizeof(buf));
		KG_CHECK(kg_basic_decode(kg_str_c(enc[k]), buf, sizeof(buf), &u, &pw) == KG_OK, "%s decodes", plain[k]);
		size_t n = strlen(plain[k]);
		KG_CHECK(memcmp(buf, plain[k], n) == 0, "%s decoded in place", plain[k]);
		kg_basic_wipe(buf, pw);
		size_t zero = 0, canary = 0;
		for (size_t i = 0; i < n; i++)
			zero += buf[i] == 0;
		for (size_t i = n; i < sizeof(buf); i++)
			canary += (unsigned char)buf[i] == 0xAA;
		KG_CHECK(zero == n, "%s: %zu of its %zu decoded bytes wiped", plain[k], zero, n);
		KG_CHECK(canary == sizeof(buf) - n, "%s: bytes past the credential left alone", plain[k]);
	}
}

static kg_users *two_users(kg_policy *p, size_t cache, int64_t ttl)
{
	char *ha = hash_of("alice-pw"), *hb = hash_of("bob-pw");
	kg_buf text = { 0 };
	KG_CHECK(kg_buf_printf(&text, "alice:%s:creator\nbob:%s:maintainer\n", ha, hb) == KG_OK, "text");
	kg_config_errors errs = { 0 };
	kg_users *u = NULL;
	KG_CHECK(kg_users_parse("users", text.p, text.n, p, &u, &errs) == KG_OK, "parse");
	KG_CHECK(u && kg_users_cache_init(u, cache, ttl) == KG_OK, "cache");
	kg_config_errors_free(&errs);
	kg_buf_free(&text, false);
	free(ha);
	free(hb);
	return u;
}

KG_TEST(test_only_verified_credentials_are_cached_until_they_expire)
{
	kg_policy *p = bee_policy();
	kg_users *u = two_users(p, 1000, 300);
	const struct kg_user *who = NULL;
	int64_t now = 1700000000;
	if (!u)
		return;
	KG_CHECK(!kg_users_cached(u, KG_STR("alice"), KG_STR("alice-pw"), now), "nothing cached at first");
	KG_CHECK(kg_users_verify(u, KG_STR("alice"), KG_STR("wrong"), now, &who) == KG_EBADCRED, "wrong password");
	KG_CHECK(!kg_users_cached(u, KG_STR("alice"), KG_STR("wrong"), now), "a wrong password is never cached");
	KG_CHECK(kg_users_verify(u, KG_STR("mallory"), KG_STR("alice-pw"), now, &who) == KG_EBADCRED, "unknown user");
	KG_CHECK(kg_users_verify(u, KG_STR("bob"), KG_STR("alice-pw"), now, &who) == KG_EBADCRED, "another's password");
	KG_CHECK(kg_users_verify(u, KG_STR("alice"), KG_STR("alice-pw"), now, &who) == KG_OK, "right password");
	KG_CHECK(who && kg_str_eq(who->name, KG_STR("alice")), "alice");
	who = kg_users_cached(u, KG_STR("alice"), KG_STR("alice-pw"), now + 299);
	KG_CHECK(who && kg_str_eq(who->name, KG_STR("alice")), "cached within the ttl");
	KG_CHECK(!kg_users_cached(u, KG_STR("alice"), KG_STR("alice-pw"), now + 300), "expired after the ttl");
	KG_CHECK(!kg_users_cached(u, KG_STR("alice"), KG_STR("alice-pwX"), now), "another password is not a hit");
	KG_CHECK(!kg_users_cached(u, KG_STR("alicealice"), KG_STR("-pw"), now), "the user/password split counts");
	KG_CHECK(!kg_users_cached(u, KG_STR("bob"), KG_STR("alice-pw"), now), "another user is not a hit");
	kg_users_free(&u);
	kg_policy_free(&p);
}

KG_TEST(test_a_full_cache_keeps_the_newest_credentials)
{
	/* 300 users in a cache of the smallest size (16 shards x 8 slots) */
	enum { N = 300 };
	kg_policy *p = bee_policy();
	char *h = hash_of("same-pw");
	kg_buf text = { 0 };
	for (int i = 0; i < N; i++)
		KG_CHECK(kg_buf_printf(&text, "user%d:%s:consumer\n", i, h) == KG_OK, "text");
	kg_config_errors errs = { 0 };
	kg_users *u = NULL;
	KG_CHECK(kg_users_parse("users", text.p, text.n, p, &u, &errs) == KG_OK, "parse");
	KG_CHECK(u && kg_users_cache_init(u, 1, 60) == KG_OK, "cache");
	if (!u)
		return;
	const struct kg_user *who;
	char name[32];
	/* the name index grew and rehashed several times on the way: every
	 * user is found, by name, with the line that defines it */
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		who = kg_users_find(u, kg_str_c(name));
		KG_CHECK(who && kg_str_eq(who->name, kg_str_c(name)) && who->line == (size_t)i + 1, "find %s", name);
	}
	KG_CHECK(!kg_users_find(u, KG_STR("user300")) && !kg_users_find(u, KG_STR("user")), "unknown names");
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		KG_CHECK(kg_users_verify(u, kg_str_c(name), KG_STR("same-pw"), 1000 + i, &who) == KG_OK, "verify %s", name);
	}
	int hits = 0;
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		hits += kg_users_cached(u, kg_str_c(name), KG_STR("same-pw"), 1000 + N) != NULL;
	}
	KG_CHECK(hits > 0 && hits <= 128, "%d of %d cached in 128 slots", hits, N);
	KG_CHECK(kg_users_cached(u, KG_STR("user299"), KG_STR("same-pw"), 1000 + N) != NULL, "the newest is cached");
	KG_CHECK(kg_users_cache_entry_size() <= 64, "%zu bytes per entry", kg_users_cache_entry_size());
	kg_users_free(&u);
	kg_config_errors_free(&errs);
	kg_buf_free(&text, false);
	free(h);
	kg_policy_free(&p);
}

static kg_str basic(const char *user_pw, kg_buf *b)
{
	kg_buf_clear(b);
	KG_CHECK(kg_buf_appends(b, KG_STR("Basic ")) == KG_OK, "basic");
	KG_CHECK(kg_b64_encode(KG_B64_STD, user_pw, strlen(user_pw), b) == KG_OK, "b64");
	return kg_buf_str(b);
}

KG_TEST(test_the_basic_scheme_decides_through_the_policy)
{
	kg_policy *p = bee_policy();
	kg_users *u = two_users(p, 1000, 300);
	if (!u)
		return;
	struct kg_auth_config ac = { .policy = p, .require_auth = true };
	ac.by_kind[KG_CRED_BASIC] = kg_users_authenticator(u, KG_DIALECT_KEYGATE);
	kg_arena a;
	kg_arena_init(&a, 0);
	struct kg_decision d;
	kg_buf h = { 0 };
	int64_t now = 1700000000;
	const char *msg = NULL;

	/* alice (creator) may POST /bytes, not touch /stake (maintainer) */
	kg_auth_decide(&ac, KG_STR("POST"), KG_STR("/bytes"), basic("alice:alice-pw", &h), now, &a, &d);
	KG_CHECK(d.err == KG_ESLOW && d.status == 200, "first sight: slow check (err %d)", d.err);
	KG_CHECK(kg_auth_slow(&ac, basic("alice:alice-pw", &h), now, &msg) == KG_OK, "bcrypt ok");
	kg_auth_decide(&ac, KG_STR("POST"), KG_STR("/bytes"), basic("alice:alice-pw", &h), now, &a, &d);
	KG_CHECK(d.status == 200 && d.is_authenticated, "then allowed from the cache: %d", d.status);
	KG_CHECK(strcmp(d.principal.scheme, "basic") == 0 && kg_str_eq(d.principal.id, KG_STR("alice")) &&
	             kg_str_eq(d.principal.role, KG_STR("creator")), "principal");
	kg_auth_decide(&ac, KG_STR("GET"), KG_STR("/stake"), basic("alice:alice-pw", &h), now, &a, &d);
	KG_CHECK(d.status == 403, "creator may not read /stake: %d", d.status);

	msg = NULL;
	KG_CHECK(kg_auth_slow(&ac, basic("alice:nope", &h), now, &msg) == KG_EBADCRED, "wrong password");
	KG_CHECK(msg && strcmp(msg, "wrong user name or password") == 0, "message %s", msg ? msg : "(none)");
	kg_auth_decide(&ac, KG_STR("GET"), KG_STR("/bytes/x"), KG_STR("Basic !!"), now, &a, &d);
	KG_CHECK(d.status == 401 && d.err == KG_EBADCRED && d.message && strstr(d.message, "malformed Basic"),
	         "malformed: %d %s", d.status, d.message ? d.message : "");
	kg_buf_free(&h, false);
	kg_arena_destroy(&a);
	kg_users_free(&u);
	kg_policy_free(&p);
}

static char *hash_at(const char *plain, int cost)
{
	kg_buf h = { 0 };
	KG_CHECK(kg_bcrypt_hash(kg_str_c(plain), cost, &h) == KG_OK, "bcrypt at cost %d", cost);
	return h.p;
}

KG_TEST(test_unknown_names_are_checked_at_the_highest_cost_in_the_file)
{
	kg_policy *p = bee_policy();
	/* the dearest user is neither first nor last */
	char *h4 = hash_at("a-pw", 4), *h6 = hash_at("b-pw", 6), *h5 = hash_at("c-pw", 5);
	kg_buf text = { 0 };
	KG_CHECK(kg_buf_printf(&text, "a:%s:creator\nb:%s:creator\nc:%s:creator\n", h4, h6, h5) == KG_OK, "text");
	kg_config_errors errs = { 0 };
	kg_users *u = NULL;
	const struct kg_user *who = NULL;
	KG_CHECK(kg_users_parse("users", text.p, text.n, p, &u, &errs) == KG_OK, "parse: %s", errs.n ? errs.v[0] : "");
	KG_CHECK(u && kg_users__dummy_cost(u) == 6, "unknown names are checked at cost %d, the file's highest is 6",
	         u ? kg_users__dummy_cost(u) : -1);
	uint64_t before = kg_bcrypt_count();
	KG_CHECK(kg_users_verify(u, KG_STR("nobody"), KG_STR("b-pw"), 1000, &who) == KG_EBADCRED,
	         "an unknown name is refused, even with a known user's password");
	KG_CHECK(kg_bcrypt_count() - before == 1, "an unknown name costs one bcrypt, saw %llu",
	         (unsigned long long)(kg_bcrypt_count() - before));
	KG_CHECK(kg_users_verify(u, KG_STR("b"), KG_STR("b-pw"), 1000, &who) == KG_OK && who, "b still verifies");
	kg_users_free(&u);

	kg_buf_clear(&text);
	KG_CHECK(kg_buf_printf(&text, "a:%s:creator\n", h4) == KG_OK, "text");
	KG_CHECK(kg_users_parse("users", text.p, text.n, p, &u, &errs) == KG_OK, "parse one");
	KG_CHECK(kg_users__dummy_cost(u) == 4, "one user at cost 4: dummy cost %d", kg_users__dummy_cost(u));
	kg_users_free(&u);
	kg_config_errors_free(&errs);
	kg_buf_free(&text, false);
	free(h4);
	free(h6);
	free(h5);
	kg_policy_free(&p);
}

KG_TEST(test_a_refused_basic_credential_is_wiped_from_the_buffer)
{
	char buf[KG_USER_MAX_NAME + KG_USER_MAX_PASSWORD + 2];
	kg_str user, password;
	kg_buf enc = { 0 };
	/* decodes fine, but has no ':' (and then a name that is too long) */
	const char *bad[] = { "secret-without-colon", NULL };
	char longname[KG_USER_MAX_NAME + 20];
	memset(longname, 'n', sizeof(longname) - 3);
	memcpy(longname + sizeof(longname) - 3, ":p", 3);
	bad[1] = longname;
	for (size_t k = 0; k < 2; k++) {
		kg_buf_clear(&enc);
		KG_CHECK(kg_b64_encode(KG_B64_STD, bad[k], strlen(bad[k]), &enc) == KG_OK, "encode");
		memset(buf, 0, sizeof(buf));
		KG_CHECK(kg_basic_decode(kg_buf_str(&enc), buf, sizeof(buf), &user, &password) == KG_EBADCRED,
		         "case %zu refused", k);
		size_t nonzero = 0;
		for (size_t i = 0; i < sizeof(buf); i++)
			nonzero += buf[i] != 0;
		KG_CHECK(nonzero == 0, "case %zu: %zu decoded bytes left in the buffer", k, nonzero);
	}
	kg_buf_free(&enc, false);
}

int main(void)
{
	return kg_test_main();
}
