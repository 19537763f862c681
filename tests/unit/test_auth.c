#include <stdio.h>
#include <string.h>

#include "keygate/auth.h"
#include "kgtest.h"

KG_TEST(test_credentials_are_classified_by_shape)
{
	static const struct {
		const char *header;
		enum kg_cred_kind kind;
		const char *value;
	} cases[] = {
		{ "", KG_CRED_NONE, "" },
		{ "   ", KG_CRED_NONE, "" },
		{ "Basic OmhlbGxv", KG_CRED_BASIC, "OmhlbGxv" },
		{ "basic   OmhlbGxv  ", KG_CRED_BASIC, "OmhlbGxv" },
		{ "ApiKey aWQ6a2V5", KG_CRED_APIKEY, "aWQ6a2V5" },
		{ "Bearer eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln", KG_CRED_BEARER_JWT,
		  "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln" },
		{ "Bearer eyJhbGciOiJub25lIn0.eyJleHAiOjF9.", KG_CRED_BEARER_JWT, "eyJhbGciOiJub25lIn0.eyJleHAiOjF9." },
		{ "Bearer kg1.abcdef", KG_CRED_BEARER_KG, "kg1.abcdef" },
		{ "Bearer 3q2+7w==", KG_CRED_BEARER_BEE, "3q2+7w==" },
		{ "Bearer a.b", KG_CRED_BEARER_BEE, "a.b" },
		{ "Bearer .b.c", KG_CRED_BEARER_BEE, ".b.c" },
		{ "Bearer a.b.c.d", KG_CRED_BEARER_BEE, "a.b.c.d" },
		{ "Digest username=x", KG_CRED_UNKNOWN, "username=x" },
		{ "Bearer", KG_CRED_BEARER_BEE, "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kg_cred c = kg_cred_parse(kg_str_c(cases[i].header));
		KG_CHECK(c.kind == cases[i].kind, "'%s': kind %d, want %d", cases[i].header, c.kind, cases[i].kind);
		KG_CHECK(kg_str_eq(c.value, kg_str_c(cases[i].value)), "'%s': value '%.*s'", cases[i].header,
		         (int)c.value.n, c.value.p);
	}
}

/* Every byte value at a few places of a JWT: the shape is three parts of
 * base64url characters or '=' (A-Z a-z 0-9 - _ =) split by two dots, the
 * first two parts non-empty; a byte outside that set makes it a Bee-format
 * token, and a space or tab at either end is trimmed away. */
KG_TEST(test_jwt_shape_known_answers_for_every_byte_at_each_place)
{
	static const char jwt[] = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln";
	static const char part_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=";
	/* the first byte of each part, one inside each, and the last */
	static const size_t at[] = { 0, 5, 21, 26, 34, 35, 37 };
	char h[64];
	for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
		for (int b = 0; b < 256; b++) {
			int n = snprintf(h, sizeof(h), "Bearer %s", jwt);
			size_t i = 7 + at[k];
			h[i] = (char)b;
			bool is_part = b != 0 && strchr(part_chars, b) != NULL;
			bool is_blank = b == ' ' || b == '\t';
			bool is_end = at[k] == 0 || at[k] == sizeof(jwt) - 2;
			/* a blank at either end is trimmed: "yJhb..." or "...c2l" is left */
			enum kg_cred_kind want = is_part || (is_blank && is_end) ? KG_CRED_BEARER_JWT : KG_CRED_BEARER_BEE;
			struct kg_cred c = kg_cred_parse((kg_str){ h, (size_t)n });
			KG_CHECK(c.kind == want, "byte 0x%02x at %zu of the JWT: kind %d, want %d", b, at[k], c.kind, want);
		}
	}
	static const struct {
		const char *value;
		enum kg_cred_kind kind;
	} shapes[] = {
		{ "a.b.c", KG_CRED_BEARER_JWT },   { "a.b.", KG_CRED_BEARER_JWT },   { "==.=.=", KG_CRED_BEARER_JWT },
		{ "a..c", KG_CRED_BEARER_BEE },    { ".b.c", KG_CRED_BEARER_BEE },   { "a.b.c.", KG_CRED_BEARER_BEE },
		{ "a.b.c.d", KG_CRED_BEARER_BEE }, { "a.b..", KG_CRED_BEARER_BEE },  { "..", KG_CRED_BEARER_BEE },
		{ "abc", KG_CRED_BEARER_BEE },     { "a.b", KG_CRED_BEARER_BEE },    { "a.b.c+", KG_CRED_BEARER_BEE },
		{ "a/.b.c", KG_CRED_BEARER_BEE },  { "a.b\x80.c", KG_CRED_BEARER_BEE }, { "a.b.\xff", KG_CRED_BEARER_BEE },
	};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		int n = snprintf(h, sizeof(h), "Bearer %s", shapes[i].value);
		struct kg_cred c = kg_cred_parse((kg_str){ h, (size_t)n });
		KG_CHECK(c.kind == shapes[i].kind, "'%s': kind %d, want %d", shapes[i].value, c.kind, shapes[i].kind);
	}
}

/* The same over a JWT long enough for several 16-byte blocks and a tail:
 * every byte value at every place, so that each lane of the block check
 * and each byte of the tail meets all 256 values. */
KG_TEST(test_jwt_shape_of_a_long_token_for_every_byte_at_every_place)
{
	static const char part_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=";
	char jwt[80];
	/* parts of 21, 30 and 27 bytes: dots at 21 and 52, 80 bytes in all */
	for (size_t i = 0; i < sizeof(jwt); i++)
		jwt[i] = part_chars[(i * 7) % (sizeof(part_chars) - 1)];
	jwt[21] = '.';
	jwt[52] = '.';
	char h[7 + sizeof(jwt)];
	memcpy(h, "Bearer ", 7);
	size_t n_jwt = 0;
	for (size_t at = 0; at < sizeof(jwt); at++) {
		for (int b = 0; b < 256; b++) {
			memcpy(h + 7, jwt, sizeof(jwt));
			h[7 + at] = (char)b;
			bool is_dot_place = at == 21 || at == 52;
			bool is_part = b != 0 && strchr(part_chars, b) != NULL;
			bool is_blank = b == ' ' || b == '\t';
			bool is_end = at == 0 || at == sizeof(jwt) - 1;
			enum kg_cred_kind want = (is_dot_place ? b == '.' : is_part || (is_blank && is_end))
			                             ? KG_CRED_BEARER_JWT
			                             : KG_CRED_BEARER_BEE;
			struct kg_cred c = kg_cred_parse((kg_str){ h, sizeof(h) });
			KG_CHECK(c.kind == want, "byte 0x%02x at %zu of an 80-byte JWT: kind %d, want %d", b, at, c.kind,
			         want);
			n_jwt += c.kind == KG_CRED_BEARER_JWT;
		}
	}
	KG_CHECK(n_jwt == 78 * 65 + 2 + 2 + 2, "%zu JWTs among the variants, want %d", n_jwt, 78 * 65 + 2 + 2 + 2);
}

/* A stand-in scheme: token "good" is role 1, "expired" has expired, anything
 * else is invalid. */
static kg_err fake_authenticate(const struct kg_authenticator *a, const struct kg_auth_request *req,
                                kg_arena *arena, struct kg_principal *out, const char **message)
{
	if (kg_str_eq(req->cred.value, KG_STR("good"))) {
		out->scheme = "fake";
		out->id = KG_STR("t1");
		out->roles = kg_policy_role(req->policy, KG_STR("reader"));
		return KG_OK;
	}
	if (kg_str_eq(req->cred.value, KG_STR("expired"))) {
		*message = "Token expired";
		return KG_EEXPIRED;
	}
	return KG_EBADCRED;
}

static const char policy_yaml[] = "public: [\"/health\"]\n"
                                  "roles:\n"
                                  "  reader:\n"
                                  "    rules:\n"
                                  "      - { path: \"/read/*\", methods: [GET] }\n";

KG_TEST(test_decide_table)
{
	kg_policy *p = NULL;
	kg_config_errors errs = { 0 };
	kg_err err = kg_policy_load_yaml("t", policy_yaml, sizeof(policy_yaml) - 1, &p, &errs);
	KG_CHECK(err == KG_OK, "policy load: %s", errs.n ? errs.v[0] : kg_strerror(err));
	if (err)
		return;
	struct kg_authenticator fake = {
		.name = "fake",
		.dialect = KG_DIALECT_BEE,
		.kinds = 1u << KG_CRED_BEARER_BEE,
		.authenticate = fake_authenticate,
	};
	struct kg_auth_config ac = { .policy = p, .require_auth = true, .default_dialect = KG_DIALECT_KEYGATE };
	ac.by_kind[KG_CRED_BEARER_BEE] = &fake;
	static const struct {
		bool require;
		const char *method, *path, *auth;
		int status;
		kg_err err;
	} cases[] = {
		{ true, "GET", "/health", "", 200, KG_OK },
		{ true, "GET", "/read/x", "", 401, KG_ENOCRED },
		{ true, "GET", "/read/x", "Bearer good", 200, KG_OK },
		{ true, "POST", "/read/x", "Bearer good", 403, KG_EFORBIDDEN },
		{ true, "GET", "/other", "Bearer good", 403, KG_EFORBIDDEN },
		{ true, "GET", "/read/x", "Bearer expired", 401, KG_EEXPIRED },
		{ true, "GET", "/read/x", "Bearer junk", 401, KG_EBADCRED },
		{ true, "GET", "/read/x", "ApiKey abc", 401, KG_ESCHEME }, /* no ApiKey scheme enabled */
		{ false, "GET", "/other", "", 200, KG_OK },                /* pass-through: anonymous */
		{ false, "GET", "/read/x", "Bearer junk", 401, KG_EBADCRED }, /* presented: still verified */
		{ false, "GET", "/read/x", "Digest x", 200, KG_OK },
	};
	kg_arena arena;
	kg_arena_init(&arena, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kg_decision d;
		ac.require_auth = cases[i].require;
		kg_auth_decide(&ac, kg_str_c(cases[i].method), kg_str_c(cases[i].path), kg_str_c(cases[i].auth), 0,
		               &arena, &d);
		KG_CHECK(d.status == cases[i].status && d.err == cases[i].err, "%zu: %s %s [%s]: got %d %s, want %d %s", i,
		         cases[i].method, cases[i].path, cases[i].auth, d.status, kg_errname(d.err), cases[i].status,
		         kg_errname(cases[i].err));
	}
	kg_arena_destroy(&arena);
	kg_policy_free(&p);
}

KG_TEST(test_refusal_dialect_follows_the_credential)
{
	kg_policy *p = NULL;
	kg_config_errors errs = { 0 };
	if (kg_policy_load_yaml("t", policy_yaml, sizeof(policy_yaml) - 1, &p, &errs) != KG_OK) {
		KG_CHECK(0, "policy load");
		return;
	}
	struct kg_authenticator fake = { .name = "fake", .dialect = KG_DIALECT_BEE, .authenticate = fake_authenticate };
	struct kg_auth_config ac = { .policy = p, .require_auth = true, .default_dialect = KG_DIALECT_ES };
	ac.by_kind[KG_CRED_BEARER_BEE] = &fake;
	kg_arena arena;
	kg_arena_init(&arena, 0);
	struct kg_decision d;
	kg_auth_decide(&ac, KG_STR("GET"), KG_STR("/read/x"), KG_STR("Bearer expired"), 0, &arena, &d);
	KG_CHECK(d.dialect == KG_DIALECT_BEE, "presented credential: dialect %d", d.dialect);
	KG_CHECK(d.message && strcmp(d.message, "Token expired") == 0, "scheme message kept");
	kg_auth_decide(&ac, KG_STR("GET"), KG_STR("/read/x"), KG_STR_NULL, 0, &arena, &d);
	KG_CHECK(d.dialect == KG_DIALECT_ES, "missing credential: default dialect, got %d", d.dialect);
	kg_arena_destroy(&arena);
	kg_policy_free(&p);
}

KG_TEST(test_dialect_render_known_answers)
{
	static const struct {
		enum kg_dialect d;
		int status;
		const char *msg, *want;
	} cases[] = {
		{ KG_DIALECT_KEYGATE, 401, "missing \"x\"", "{\"code\":401,\"message\":\"missing \\\"x\\\"\"}" },
		{ KG_DIALECT_BEE, 403, "Provided security token does not grant access to the resource",
		  "{\"code\":403,\"message\":\"Provided security token does not grant access to the resource\"}" },
		/* ES repeats its challenges in a 401's body (reference: elasticsearch-api-keys.md) */
		{ KG_DIALECT_ES, 401, "m",
		  "{\"error\":{\"root_cause\":[{\"type\":\"security_exception\",\"reason\":\"m\",\"header\":"
		  "{\"WWW-Authenticate\":[\"Basic realm=\\\"security\\\", charset=\\\"UTF-8\\\"\",\"Bearer realm=\\\"security\\\"\","
		  "\"ApiKey\"]}}],\"type\":\"security_exception\",\"reason\":\"m\",\"header\":{\"WWW-Authenticate\":"
		  "[\"Basic realm=\\\"security\\\", charset=\\\"UTF-8\\\"\",\"Bearer realm=\\\"security\\\"\",\"ApiKey\"]}},"
		  "\"status\":401}" },
		{ KG_DIALECT_ES, 403, "no",
		  "{\"error\":{\"root_cause\":[{\"type\":\"security_exception\",\"reason\":\"no\"}],"
		  "\"type\":\"security_exception\",\"reason\":\"no\"},\"status\":403}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_buf b = { 0 };
		const char *ct = NULL;
		KG_CHECK(kg_dialect_render(cases[i].d, cases[i].status, KG_EBADCRED, cases[i].msg, &b, &ct) == KG_OK,
		         "render");
		KG_CHECK(b.p && strcmp(b.p, cases[i].want) == 0, "%zu: got %s", i, b.p);
		KG_CHECK(ct && strcmp(ct, "application/json") == 0, "content type");
		kg_buf_free(&b, false);
	}
}

/* An expired or invalidated API key (its secret matched) is told why, as
 * recent ES does; a wrong key is not. */
KG_TEST(test_dialect_es_401_says_why_an_api_key_failed)
{
	static const struct {
		kg_err err;
		const char *extra;
	} cases[] = {
		{ KG_EEXPIRED, "\"additional_unsuccessful_credentials\":\"API key: api key is expired\"," },
		{ KG_EREVOKED, "\"additional_unsuccessful_credentials\":\"API key: api key has been invalidated\"," },
		{ KG_EBADCRED, "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_buf b = { 0 }, want = { 0 };
		const char *ct = NULL;
		const char *h = "\"header\":{\"WWW-Authenticate\":[\"Basic realm=\\\"security\\\", charset=\\\"UTF-8\\\"\","
		                "\"Bearer realm=\\\"security\\\"\",\"ApiKey\"]}";
		KG_CHECK(kg_buf_printf(&want,
		                       "{\"error\":{\"root_cause\":[{\"type\":\"security_exception\",\"reason\":\"m\",%s%s}],"
		                       "\"type\":\"security_exception\",\"reason\":\"m\",%s%s},\"status\":401}",
		                       cases[i].extra, h, cases[i].extra, h) == KG_OK,
		         "want");
		KG_CHECK(kg_dialect_render(KG_DIALECT_ES, 401, cases[i].err, "m", &b, &ct) == KG_OK, "render");
		KG_CHECK(b.p && strcmp(b.p, want.p) == 0, "%zu: got %s\nwant %s", i, b.p, want.p);
		kg_buf_free(&b, false);
		kg_buf_free(&want, false);
	}
}

KG_TEST(test_dialect_challenges_known_answers)
{
	static const struct {
		enum kg_dialect d;
		bool is_login, is_basic, is_bearer;
		const char *want;
	} cases[] = {
		{ KG_DIALECT_KEYGATE, false, false, true, "WWW-Authenticate: Bearer realm=\"keygate\"\r\n" },
		{ KG_DIALECT_KEYGATE, false, true, false, "WWW-Authenticate: Basic realm=\"keygate\", charset=\"UTF-8\"\r\n" },
		{ KG_DIALECT_KEYGATE, false, true, true,
		  "WWW-Authenticate: Bearer realm=\"keygate\"\r\nWWW-Authenticate: Basic realm=\"keygate\", charset=\"UTF-8\"\r\n" },
		{ KG_DIALECT_BEE, false, false, true, "WWW-Authenticate: Bearer realm=\"keygate\"\r\n" },
		{ KG_DIALECT_BEE, true, true, false, "WWW-Authenticate: Basic realm=\"Restricted\"\r\n" },
		{ KG_DIALECT_AVALANCHE, false, false, true, "" },
		{ KG_DIALECT_ES, false, false, false,
		  "WWW-Authenticate: Basic realm=\"security\", charset=\"UTF-8\"\r\nWWW-Authenticate: Bearer "
		  "realm=\"security\"\r\nWWW-Authenticate: ApiKey\r\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = kg_dialect_challenge(cases[i].d, cases[i].is_login, cases[i].is_basic, cases[i].is_bearer);
		KG_CHECK(strcmp(got, cases[i].want) == 0, "case %zu: got '%s'", i, got);
	}
}

/* The wording each dialect's clients have always seen for a password check
 * not run (tests/integration/test_throttle.py, test_bee.py, test_basic.py
 * check them on the wire). */
KG_TEST(test_throttle_refusals_known_answers)
{
	static const struct {
		enum kg_dialect d;
		kg_err err;
		int64_t wait;
		int status;
		const char *want;
	} cases[] = {
		{ KG_DIALECT_KEYGATE, KG_ETHROTTLED, 42, 429, "too many failed attempts; retry in 42 seconds" },
		{ KG_DIALECT_BEE, KG_ETHROTTLED, 42, 429, "Too many failed attempts; retry in 42 seconds" },
		{ KG_DIALECT_AVALANCHE, KG_ETHROTTLED, 42, 429, "too many failed password attempts; retry in 42 seconds" },
		{ KG_DIALECT_ES, KG_ETHROTTLED, 1, 429, "too many failed attempts; retry in 1 seconds" },
		{ KG_DIALECT_KEYGATE, KG_EUNAVAILABLE, 1, 503, "too many password checks in progress; retry later" },
		{ KG_DIALECT_BEE, KG_EUNAVAILABLE, 1, 503, "Too many password checks in progress; retry later" },
		{ KG_DIALECT_AVALANCHE, KG_EUNAVAILABLE, 1, 503, "too many password checks in progress; retry later" },
		{ KG_DIALECT_ES, KG_EUNAVAILABLE, 1, 503, "too many password checks in progress; retry later" },
		{ KG_DIALECT_AVALANCHE, KG_ETHROTTLED, INT64_MAX, 429,
		  "too many failed password attempts; retry in 9223372036854775807 seconds" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[KG_THROTTLE_MESSAGE_MAX];
		int status = 0;
		kg_err err = kg_throttle_message(cases[i].d, cases[i].err, cases[i].wait, &status, msg, sizeof(msg));
		KG_CHECK(err == KG_OK, "case %zu: %s", i, kg_errname(err));
		KG_CHECK(status == cases[i].status, "case %zu: status %d, want %d", i, status, cases[i].status);
		KG_CHECK(strcmp(msg, cases[i].want) == 0, "case %zu: got '%s'", i, msg);
	}
	char small[8];
	int status;
	KG_CHECK(kg_throttle_message(KG_DIALECT_BEE, KG_ETHROTTLED, 5, &status, small, sizeof(small)) == KG_ETOOBIG,
	         "a message that does not fit is refused, not cut");
	KG_CHECK(kg_throttle_message(KG_DIALECT_BEE, KG_EBADCRED, 5, &status, small, sizeof(small)) == KG_EINVAL,
	         "only throttling and a full queue are worded here");

	static const struct {
		int64_t seconds;
		const char *want;
	} headers[] = {
		{ 1, "Retry-After: 1\r\n" },
		{ 60, "Retry-After: 60\r\n" },
		{ 0, "Retry-After: 1\r\n" },
		{ -5, "Retry-After: 1\r\n" },
		{ INT64_MAX, "Retry-After: 9223372036854775807\r\n" },
	};
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		char line[KG_RETRY_AFTER_MAX];
		KG_CHECK(kg_retry_after_header(headers[i].seconds, line, sizeof(line)) == KG_OK, "header %zu", i);
		KG_CHECK(strcmp(line, headers[i].want) == 0, "header %zu: got '%s'", i, line);
	}
	KG_CHECK(kg_retry_after_header(60, small, sizeof(small)) == KG_ETOOBIG, "a header that does not fit");
}

KG_TEST(test_dialect_names)
{
	KG_CHECK(kg_dialect_parse("bee") == KG_DIALECT_BEE, "bee");
	KG_CHECK(kg_dialect_parse("elasticsearch") == KG_DIALECT_ES, "es");
	KG_CHECK(kg_dialect_parse("nope") == -1, "unknown");
}

int main(void)
{
	return kg_test_main();
}
