/* Known answers for lib/es.c: ES's wire formats and exact messages. */
#include <jansson.h>

#include "keygate/b64.h"
#include "keygate/es.h"
#include "kgtest.h"

/* ---- time values ---- */

static int64_t time_ok(const char *s)
{
	struct kg_es_fail f = { 0 };
	int64_t ms = -42;
	kg_err err = kg_es_time_parse(kg_str_c(s), "expiration", &ms, &f);
	KG_CHECK(err == KG_OK, "'%s' refused: %s", s, f.reason.p);
	kg_es_fail_free(&f);
	return ms;
}

static void time_bad(const char *s, const char *want)
{
	struct kg_es_fail f = { 0 };
	int64_t ms;
	kg_err err = kg_es_time_parse(kg_str_c(s), "expiration", &ms, &f);
	KG_CHECK(err == KG_EINVAL && f.status == 400 && strcmp(f.type, "illegal_argument_exception") == 0 &&
	             strcmp(f.reason.p, want) == 0,
	         "'%s': got %d %s [%s], want [%s]", s, (int)err, f.type, f.reason.p, want);
	kg_es_fail_free(&f);
}

KG_TEST(test_time_units_convert_to_milliseconds)
{
	KG_CHECK(time_ok("1d") == 86400000, "1d");
	KG_CHECK(time_ok("2h") == 7200000, "2h");
	KG_CHECK(time_ok("3m") == 180000, "3m");
	KG_CHECK(time_ok("4s") == 4000, "4s");
	KG_CHECK(time_ok("5ms") == 5, "5ms");
	KG_CHECK(time_ok("1999999nanos") == 1, "nanos round down");
	KG_CHECK(time_ok("2999micros") == 2, "micros round down");
	KG_CHECK(time_ok("0") == 0 && time_ok("000") == 0, "bare zero");
	KG_CHECK(time_ok("7D") == 7 * 86400000LL && time_ok(" 1 h ") == 3600000 && time_ok("+5s") == 5000,
	         "case, spaces, sign as ES takes them");
	KG_CHECK(time_ok("106751991167d") == 106751991167LL * 86400000, "largest day count");
}

KG_TEST(test_time_refusals_say_what_es_says)
{
	time_bad("1x", "failed to parse setting [expiration] with value [1x] as a time value: unit is missing or "
	               "unrecognized");
	time_bad("", "failed to parse setting [expiration] with value [] as a time value: unit is missing or unrecognized");
	time_bad("5", "failed to parse setting [expiration] with value [5] as a time value: unit is missing or unrecognized");
	time_bad("5M", "failed to parse setting [expiration] with value [5M] as a time value: unit is missing or "
	               "unrecognized");
	time_bad("d", "failed to parse [d]");
	time_bad("1.5h", "failed to parse [1.5h], fractional time values are not supported");
	time_bad("-5d", "failed to parse setting [expiration] with value [-5d] as a time value: negative durations are "
	                "not supported");
	time_bad("-1d", "failed to parse setting [expiration] with value [-1d] as a time value: negative durations are "
	                "not supported");
	time_bad("-1", "failed to parse setting [expiration] with value [-1] as a time value: negative durations are "
	               "not supported");
	time_bad("99999999999999999999d", "failed to parse [99999999999999999999d], fractional time values are not "
	                                  "supported");
	time_bad("106751991168d", "failed to parse setting [expiration] with value [106751991168d] as a time value: the "
	                          "value is too large");
}

/* ---- error bodies ---- */

KG_TEST(test_error_body_has_es_shape)
{
	struct kg_es_fail f = { 0 };
	kg_buf out = { 0 };
	(void)kg_es_fail_validation_add(&f, "api key name is required");
	(void)kg_es_fail_validation_add(&f, "API key metadata keys may not start with [_]");
	KG_CHECK(kg_es_error_json(&out, &f, KG_STR_NULL) == KG_OK, "written");
	const char *want = "{\"error\":{\"root_cause\":[{\"type\":\"action_request_validation_exception\",\"reason\":"
	                   "\"Validation Failed: 1: api key name is required;2: API key metadata keys may not start with "
	                   "[_];\"}],\"type\":\"action_request_validation_exception\",\"reason\":\"Validation Failed: 1: "
	                   "api key name is required;2: API key metadata keys may not start with [_];\"},\"status\":400}";
	KG_CHECK(strcmp(out.p, want) == 0, "got %s", out.p);
	kg_buf_free(&out, false);
	kg_es_fail_free(&f);
}

KG_TEST(test_401_body_repeats_www_authenticate_in_both_places)
{
	kg_buf out = { 0 };
	KG_CHECK(kg_es_error_401(&out, KG_STR(KG_ES_REASON_BAD_CREDENTIALS), KG_STR("api key is expired")) == KG_OK, "ok");
	const char *cause = "\"type\":\"security_exception\",\"reason\":\"unable to authenticate with provided credentials "
	                    "and anonymous access is not allowed for this request\",\"additional_unsuccessful_credentials\":"
	                    "\"API key: api key is expired\",\"header\":{\"WWW-Authenticate\":[\"Basic realm=\\\"security\\\", "
	                    "charset=\\\"UTF-8\\\"\",\"Bearer realm=\\\"security\\\"\",\"ApiKey\"]}";
	char want[2048];
	snprintf(want, sizeof(want), "{\"error\":{\"root_cause\":[{%s}],%s},\"status\":401}", cause, cause);
	KG_CHECK(strcmp(out.p, want) == 0, "got  %s\nwant %s", out.p, want);
	json_error_t jerr;
	json_t *j = json_loadb(out.p, out.n, 0, &jerr);
	KG_CHECK(j != NULL, "not JSON: %s", jerr.text);
	json_decref(j);
	kg_buf_clear(&out);
	KG_CHECK(kg_es_error_401(&out, KG_STR("missing authentication credentials for REST request [/x]"), KG_STR_NULL) ==
	                 KG_OK &&
	             !strstr(out.p, "additional_unsuccessful_credentials"),
	         "no reason without why: %s", out.p);
	kg_buf_free(&out, false);
	KG_CHECK(strcmp(kg_es_www_authenticate_lines, "WWW-Authenticate: Basic realm=\"security\", charset=\"UTF-8\"\r\n"
	                                              "WWW-Authenticate: Bearer realm=\"security\"\r\n"
	                                              "WWW-Authenticate: ApiKey\r\n") == 0,
	         "header lines");
}

KG_TEST(test_error_body_stays_json_with_bytes_that_are_not_utf8)
{
	struct kg_es_fail f = { 0 };
	kg_buf out = { 0 };
	kg_str path = KG_STR("/a\xff\xc3(\"b");
	(void)kg_es_fail_set(&f, 401, "security_exception", KG_ES_REASON_MISSING, (int)path.n, path.p);
	KG_CHECK(kg_es_error_json(&out, &f, KG_STR_NULL) == KG_OK, "written");
	json_error_t jerr;
	json_t *j = json_loadb(out.p, out.n, 0, &jerr);
	KG_CHECK(j != NULL, "not JSON (%s): %s", jerr.text, out.p);
	const char *r = json_string_value(json_object_get(json_object_get(j, "error"), "reason"));
	KG_CHECK(r && strcmp(r, "missing authentication credentials for REST request [/a\xEF\xBF\xBD\xEF\xBF\xBD(\"b]") == 0,
	         "reason %s", r);
	json_decref(j);
	kg_buf_free(&out, false);
	kg_es_fail_free(&f);
}

/* ---- the ApiKey credential, keys and secrets ---- */

KG_TEST(test_apikey_credential_decodes_the_seed_example)
{
	char buf[512];
	kg_str id, secret;
	/* ES's create example: id VuaCfGcBCdbkQm-e5aOx, api_key ui2lp2axTNmsyakw9tvNnw */
	KG_CHECK(kg_es_apikey_decode(KG_STR("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="), buf, sizeof(buf),
	                             &id, &secret) == KG_OK &&
	             kg_str_eq(id, KG_STR("VuaCfGcBCdbkQm-e5aOx")) && kg_str_eq(secret, KG_STR("ui2lp2axTNmsyakw9tvNnw")),
	         "padded");
	KG_CHECK(kg_es_apikey_decode(KG_STR("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw"), buf, sizeof(buf),
	                             &id, &secret) == KG_OK &&
	             kg_str_eq(secret, KG_STR("ui2lp2axTNmsyakw9tvNnw")),
	         "without padding, as Java's decoder takes it");
	/* "a:b:c" splits at the first colon */
	KG_CHECK(kg_es_apikey_decode(KG_STR("YTpiOmM="), buf, sizeof(buf), &id, &secret) == KG_OK &&
	             kg_str_eq(id, KG_STR("a")) && kg_str_eq(secret, KG_STR("b:c")),
	         "first colon");
}

KG_TEST(test_apikey_credential_refusals_wipe_the_buffer)
{
	static const char *const bad[] = {
		"",          /* nothing */
		"YWJj",      /* "abc": no colon */
		"OmFiYw==",  /* ":abc": empty id */
		"YWJjOg==",  /* "abc:": empty secret */
		"YWJjOmRl=", /* broken padding */
		"YW Jj",     /* not base64 */
		"YWJjOmRlZg==x",
		"Y",
	};
	char buf[512];
	kg_str id, secret;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		kg_err err = kg_es_apikey_decode(kg_str_c(bad[i]), buf, sizeof(buf), &id, &secret);
		size_t dirty = 0;
		for (size_t k = 0; k < sizeof(buf); k++)
			dirty += buf[k] != 0;
		KG_CHECK(err == KG_EBADCRED && dirty == 0, "'%s': err %d, %zu bytes left", bad[i], (int)err, dirty);
	}
	/* an id of 65 bytes and a secret of 257 are over the caps */
	kg_buf plain = { 0 }, enc = { 0 };
	for (int i = 0; i < 65; i++)
		(void)kg_buf_append(&plain, "i", 1);
	(void)kg_buf_append(&plain, ":s", 2);
	KG_CHECK(kg_b64_encode(KG_B64_STD, plain.p, plain.n, &enc) == KG_OK, "encode");
	KG_CHECK(kg_es_apikey_decode(kg_buf_str(&enc), buf, sizeof(buf), &id, &secret) == KG_EBADCRED, "65-byte id");
	kg_buf_free(&plain, false);
	kg_buf_free(&enc, false);
}

KG_TEST(test_new_keys_have_es_formats_and_round_trip)
{
	char id[KG_ES_ID_LEN + 1], secret[KG_ES_SECRET_LEN + 1], id2[KG_ES_ID_LEN + 1], s2[KG_ES_SECRET_LEN + 1];
	KG_CHECK(kg_es_key_new(id, secret) == KG_OK && kg_es_key_new(id2, s2) == KG_OK, "made");
	KG_CHECK(strlen(id) == 20 && strlen(secret) == 22, "lengths %zu %zu", strlen(id), strlen(secret));
	KG_CHECK(strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 20 &&
	             strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 22,
	         "URL-safe alphabet: %s %s", id, secret);
	KG_CHECK(strcmp(id, id2) != 0 && strcmp(secret, s2) != 0, "random");
	kg_buf enc = { 0 };
	KG_CHECK(kg_es_encoded(kg_str_c(id), kg_str_c(secret), &enc) == KG_OK && enc.n == 60 && enc.p[58] == '=' &&
	             enc.p[59] == '=',
	         "encoded %s", enc.p);
	char buf[512];
	kg_str gid, gsecret;
	KG_CHECK(kg_es_apikey_decode(kg_buf_str(&enc), buf, sizeof(buf), &gid, &gsecret) == KG_OK &&
	             kg_str_eq(gid, kg_str_c(id)) && kg_str_eq(gsecret, kg_str_c(secret)),
	         "round trip");
	kg_buf_clear(&enc);
	KG_CHECK(kg_es_encoded(KG_STR("VuaCfGcBCdbkQm-e5aOx"), KG_STR("ui2lp2axTNmsyakw9tvNnw"), &enc) == KG_OK &&
	             strcmp(enc.p, "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==") == 0,
	         "the seed's encoded: %s", enc.p);
	kg_buf_free(&enc, false);
}

KG_TEST(test_secret_hash_known_answer_and_verify)
{
	unsigned char salt[16];
	for (int i = 0; i < 16; i++)
		salt[i] = (unsigned char)i;
	kg_buf h = { 0 };
	/* python3: hmac.new(bytes(range(16)), b"ui2lp2axTNmsyakw9tvNnw", "sha256"), URL-safe base64 */
	KG_CHECK(kg__es_secret_hash_salted(KG_STR("ui2lp2axTNmsyakw9tvNnw"), salt, &h) == KG_OK &&
	             strcmp(h.p, "s1$AAECAwQFBgcICQoLDA0ODw$tlPYtBGhvfo0Yzb-yLXIICHU_TMMxTdzi2UE8rhdUKM") == 0,
	         "got %s", h.p);
	KG_CHECK(kg_es_secret_verify(kg_buf_str(&h), KG_STR("ui2lp2axTNmsyakw9tvNnw")), "right secret");
	KG_CHECK(!kg_es_secret_verify(kg_buf_str(&h), KG_STR("ui2lp2axTNmsyakw9tvNnx")), "wrong secret");
	KG_CHECK(!kg_es_secret_verify(kg_buf_str(&h), KG_STR("")), "empty secret");
	kg_buf r = { 0 };
	KG_CHECK(kg_es_secret_hash(KG_STR("abc"), &r) == KG_OK && r.n == 69 && kg_es_secret_verify(kg_buf_str(&r), KG_STR("abc")),
	         "random salt %s", r.p);
	kg_buf r2 = { 0 };
	KG_CHECK(kg_es_secret_hash(KG_STR("abc"), &r2) == KG_OK && strcmp(r.p, r2.p) != 0, "salted: two hashes differ");
	static const char *const malformed[] = {
		"",
		"s1$AAECAwQFBgcICQoLDA0ODw$tlPYtBGhvfo0Yzb-yLXIICHU_TMMxTdzi2UE8rhdUK",   /* short */
		"s2$AAECAwQFBgcICQoLDA0ODw$tlPYtBGhvfo0Yzb-yLXIICHU_TMMxTdzi2UE8rhdUKM",  /* version */
		"s1$AAECAwQFBgcICQoLDA0ODw:tlPYtBGhvfo0Yzb-yLXIICHU_TMMxTdzi2UE8rhdUKM",  /* separator */
		"s1$AAECAwQFBgcICQoLDA0OD*$tlPYtBGhvfo0Yzb-yLXIICHU_TMMxTdzi2UE8rhdUKM",  /* salt alphabet */
		"s1$AAECAwQFBgcICQoLDA0ODw$tlPYtBGhvfo0Yzb-yLXIICHU_TMMxTdzi2UE8rhdUKN",  /* non-canonical */
		"$2y$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz012345678",       /* bcrypt */
	};
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		KG_CHECK(!kg_es_secret_verify(kg_str_c(malformed[i]), KG_STR("ui2lp2axTNmsyakw9tvNnw")), "accepted '%s'",
		         malformed[i]);
	kg_buf_free(&h, false);
	kg_buf_free(&r, false);
	kg_buf_free(&r2, false);
}

/* ---- request bodies ---- */

#define NOW 1767225600000LL

/* Runs the parser named by which on body; checks the refusal's status,
 * type and reason. */
static void refused(int which, const char *body, int status, const char *type, const char *reason)
{
	struct kg_es_fail f = { 0 };
	kg_err err;
	struct kg_es_create c;
	struct kg_es_update u;
	struct kg_es_invalidate inv;
	struct kg_es_get g;
	switch (which) {
	case 0: err = kg_es_create_parse(kg_str_c(body), NOW, &c, &f), kg_es_create_free(&c); break;
	case 1: err = kg_es_update_parse(kg_str_c(body), false, NOW, &u, &f), kg_es_update_free(&u); break;
	case 2: err = kg_es_update_parse(kg_str_c(body), true, NOW, &u, &f), kg_es_update_free(&u); break;
	case 3: err = kg_es_invalidate_parse(kg_str_c(body), &inv, &f), kg_es_invalidate_free(&inv); break;
	default: err = kg_es_get_params(kg_str_c(body), &g, &f), kg_es_get_free(&g); break;
	}
	KG_CHECK(err == KG_EINVAL && f.status == status && f.type && strcmp(f.type, type) == 0 && f.reason.p &&
	             strcmp(f.reason.p, reason) == 0,
	         "%d '%s':\n  got  %d %d %s [%s]\n  want %d %s [%s]", which, body, (int)err, f.status, f.type, f.reason.p,
	         status, type, reason);
	kg_es_fail_free(&f);
}

#define VALIDATION(...) 400, "action_request_validation_exception", "Validation Failed: " __VA_ARGS__

KG_TEST(test_create_parses_the_seed_example)
{
	const char *body = "{\"name\": \"my-api-key\", \"expiration\": \"1d\", \"role_descriptors\": {\"role-a\": "
	                   "{\"cluster\": [\"all\"], \"indices\": [{\"names\": [\"index-a*\"], \"privileges\": [\"read\"]}]}},"
	                   " \"metadata\": {\"application\": \"my-application\", \"environment\": {\"level\": 1}}}";
	struct kg_es_create c;
	struct kg_es_fail f = { 0 };
	KG_CHECK(kg_es_create_parse(kg_str_c(body), NOW, &c, &f) == KG_OK, "refused: %s", f.reason.p);
	KG_CHECK(strcmp(c.name.p, "my-api-key") == 0 && c.expiration_ms == NOW + 86400000 &&
	             json_is_object(json_object_get(c.role_descriptors, "role-a")) &&
	             json_is_object(json_object_get(c.metadata, "environment")),
	         "fields");
	kg_es_create_free(&c);
	KG_CHECK(kg_es_create_parse(KG_STR("{\"name\":\"k\"}"), NOW, &c, &f) == KG_OK && c.expiration_ms == 0 &&
	             !c.role_descriptors && !c.metadata,
	         "name only");
	kg_es_create_free(&c);
	kg_es_fail_free(&f);
}

KG_TEST(test_create_refusals_are_es_words_in_es_order)
{
	char long_name[300], json[400];
	memset(long_name, 'a', 257);
	long_name[257] = 0;
	snprintf(json, sizeof(json), "{\"name\":\"_%s \",\"metadata\":{\"_x\":1}}", long_name);
	refused(0, json, VALIDATION("1: api key name may not be more than [256] characters long;2: api key name may not "
	                            "begin or end with whitespace;3: api key name may not begin with an underscore;4: API "
	                            "key metadata keys may not start with [_];"));
	refused(0, "{\"name\":\"\"}", VALIDATION("1: api key name is required;"));
	refused(0, "{\"name\":\" k\"}", VALIDATION("1: api key name may not begin or end with whitespace;"));
	refused(0, "{}", 400, "illegal_argument_exception", "Required [name]");
	refused(0, "", 400, "parse_exception", "request body is required");
	refused(0, "[1]", 400, "x_content_parse_exception", "[1:1] [api_key_request] Expected START_OBJECT but was: START_ARRAY");
	refused(0, "{\"name\":\"k\",\n  \"foo\":1}", 400, "x_content_parse_exception",
	        "[2:3] [api_key_request] unknown field [foo]");
	refused(0, "{\"name\":5}", 400, "x_content_parse_exception",
	        "[1:9] [api_key_request] name doesn't support values of type: VALUE_NUMBER");
	refused(0, "{\"name\":\"k\",\"metadata\":[]}", 400, "x_content_parse_exception",
	        "[1:24] [api_key_request] metadata doesn't support values of type: START_ARRAY");
	refused(0, "{\"name\":\"k\",\"expiration\":\"1x\"}", 400, "illegal_argument_exception",
	        "failed to parse setting [expiration] with value [1x] as a time value: unit is missing or unrecognized");
	/* 256 characters is the limit, counted as ES counts (UTF-16 units) */
	memset(long_name, 'a', 256);
	long_name[256] = 0;
	snprintf(json, sizeof(json), "{\"name\":\"%s\"}", long_name);
	struct kg_es_create c;
	struct kg_es_fail f = { 0 };
	KG_CHECK(kg_es_create_parse(kg_str_c(json), NOW, &c, &f) == KG_OK, "256 characters: %s", f.reason.p);
	kg_es_create_free(&c);
	kg_es_fail_free(&f);
	/* nesting over the cap */
	kg_buf deep = { 0 };
	(void)kg_buf_appends(&deep, KG_STR("{\"name\":\"k\",\"metadata\":"));
	for (int i = 0; i < 22; i++)
		(void)kg_buf_appends(&deep, KG_STR("{\"a\":"));
	(void)kg_buf_appends(&deep, KG_STR("1"));
	for (int i = 0; i < 23; i++)
		(void)kg_buf_appends(&deep, KG_STR("}"));
	refused(0, deep.p, 400, "x_content_parse_exception",
	        "[api_key_request] [metadata] is nested more than [20] levels deep");
	/* 20 levels of metadata are fine, 21 are not */
	for (int levels = 20; levels <= 21; levels++) {
		kg_buf_clear(&deep);
		(void)kg_buf_appends(&deep, KG_STR("{\"name\":\"k\",\"metadata\":"));
		for (int i = 0; i < levels; i++)
			(void)kg_buf_appends(&deep, KG_STR("{\"a\":"));
		(void)kg_buf_appends(&deep, KG_STR("1"));
		for (int i = 0; i <= levels; i++)
			(void)kg_buf_appends(&deep, KG_STR("}"));
		struct kg_es_create dc;
		struct kg_es_fail df = { 0 };
		kg_err derr = kg_es_create_parse(kg_buf_str(&deep), NOW, &dc, &df);
		KG_CHECK((levels == 20) == (derr == KG_OK), "%d levels: %d %s", levels, (int)derr, df.reason.p);
		kg_es_create_free(&dc);
		kg_es_fail_free(&df);
	}
	kg_buf_free(&deep, false);
}

KG_TEST(test_update_and_bulk_update_bodies)
{
	struct kg_es_update u;
	struct kg_es_fail f = { 0 };
	KG_CHECK(kg_es_update_parse(KG_STR_NULL, false, NOW, &u, &f) == KG_OK && !u.metadata && !u.has_expiration,
	         "empty update body");
	kg_es_update_free(&u);
	KG_CHECK(kg_es_update_parse(KG_STR("{\"metadata\":{},\"expiration\":\"2h\"}"), false, NOW, &u, &f) == KG_OK &&
	             json_object_size(u.metadata) == 0 && u.has_expiration && u.expiration_ms == NOW + 7200000,
	         "metadata {} and expiration");
	kg_es_update_free(&u);
	KG_CHECK(kg_es_update_parse(KG_STR("{\"ids\":\"one\"}"), true, NOW, &u, &f) == KG_OK && json_array_size(u.ids) == 1,
	         "one id as a string");
	kg_es_update_free(&u);
	refused(1, "{\"ids\":[\"a\"]}", 400, "x_content_parse_exception",
	        "[1:2] [update_api_key_request_payload] unknown field [ids]");
	refused(1, "{\"metadata\":{\"_r\":true}}", VALIDATION("1: API key metadata keys may not start with [_];"));
	refused(2, "{}", 400, "illegal_argument_exception", "Required [ids]");
	refused(2, "{\"ids\":[],\"metadata\":{\"_r\":1}}",
	        VALIDATION("1: API key metadata keys may not start with [_];2: Field [ids] cannot be empty;"));
	refused(2, "{\"ids\":[1]}", 400, "x_content_parse_exception",
	        "[1:8] [bulk_update_api_key_request] ids doesn't support values of type: START_ARRAY");
	kg_es_fail_free(&f);
}

KG_TEST(test_invalidate_bodies)
{
	struct kg_es_invalidate inv;
	struct kg_es_fail f = { 0 };
	KG_CHECK(kg_es_invalidate_parse(KG_STR("{\"id\":\"abc\"}"), &inv, &f) == KG_OK && json_array_size(inv.ids) == 1 &&
	             strcmp(json_string_value(json_array_get(inv.ids, 0)), "abc") == 0,
	         "the older id");
	kg_es_invalidate_free(&inv);
	KG_CHECK(kg_es_invalidate_parse(KG_STR("{\"owner\":\"true\",\"name\":\"k*\"}"), &inv, &f) == KG_OK && inv.is_owner &&
	             strcmp(inv.name.p, "k*") == 0,
	         "owner as a string, name");
	kg_es_invalidate_free(&inv);
	refused(3, "{}", VALIDATION("1: One of [api key id(s), api key name, username, realm name] must be specified if "
	                            "[owner] flag is false;"));
	refused(3, "{\"owner\":false,\"name\":\"  \"}",
	        VALIDATION("1: One of [api key id(s), api key name, username, realm name] must be specified if [owner] flag "
	                   "is false;"));
	refused(3, "{\"ids\":[\"a\"],\"username\":\"u\",\"owner\":true,\"name\":\"n\"}",
	        VALIDATION("1: username or realm name must not be specified when the api key id(s) or api key name are "
	                   "specified;2: neither username nor realm-name may be specified when invalidating owned API "
	                   "keys;3: only one of [api key id(s), api key name] can be specified;"));
	refused(3, "{\"ids\":[]}", VALIDATION("1: Field [ids] cannot be an empty array;"));
	refused(3, "{\"ids\":[\"a\",\" \",\"\"]}",
	        VALIDATION("1: Field [ids] must not contain blank id, but got blank ids at index positions: [1, 2];"));
	refused(3, "{\"ids\":[\"\"]}",
	        VALIDATION("1: Field [ids] must not contain blank id, but got blank id at index position: [0];"));
	refused(3, "{\"id\":\"a\",\"ids\":[\"b\"]}", 400, "illegal_argument_exception",
	        "Must use either [id] or [ids], not both at the same time");
	refused(3, "{\"owner\":\"yes\"}", 400, "illegal_argument_exception",
	        "Failed to parse value [yes] as only [true] or [false] are allowed.");
	kg_es_fail_free(&f);
}

KG_TEST(test_get_query_parameters)
{
	struct kg_es_get g;
	struct kg_es_fail f = { 0 };
	KG_CHECK(kg_es_get_params(KG_STR("name=my%2Dkey*&owner&with_limited_by=true&active_only=false"), &g, &f) ==
	                     KG_OK &&
	                 strcmp(g.name.p, "my-key*") == 0 && g.is_owner && g.with_limited_by && !g.is_active_only,
	         "parsed: %s", f.reason.p);
	kg_es_get_free(&g);
	KG_CHECK(kg_es_get_params(KG_STR("username=a+b&realm_name=default_native&pretty"), &g, &f) == KG_OK &&
	             strcmp(g.username.p, "a b") == 0,
	         "plus is space");
	kg_es_get_free(&g);
	KG_CHECK(kg_es_get_params(KG_STR_NULL, &g, &f) == KG_OK && !g.id.n && !g.is_owner, "no query");
	kg_es_get_free(&g);
	refused(4, "id=a&username=u&owner=true&name=n",
	        VALIDATION("1: username or realm name must not be specified when the api key id or api key name is "
	                   "specified;2: neither username nor realm-name may be specified when retrieving owned API "
	                   "keys;3: only one of [api key id, api key name] can be specified;"));
	refused(4, "foo=1", 400, "illegal_argument_exception",
	        "request [/_security/api_key] contains unrecognized parameter: [foo]");
	refused(4, "owner=yes", 400, "illegal_argument_exception",
	        "Failed to parse value [yes] as only [true] or [false] are allowed.");
	refused(4, "id=%zz", 400, "illegal_argument_exception",
	        "invalid percent-encoding in the query string of request [/_security/api_key]");
	refused(4, "id=a&id=b", 400, "illegal_argument_exception",
	        "request [/_security/api_key] contains parameter [id] more than once");
	kg_es_fail_free(&f);
}

KG_TEST(test_percent_decoding_is_strict)
{
	kg_buf out = { 0 };
	KG_CHECK(kg_es_percent_decode(KG_STR("a%20b%C3%A9+"), true, &out) == KG_OK && strcmp(out.p, "a b\xC3\xA9 ") == 0,
	         "got %s", out.p);
	KG_CHECK(kg_es_percent_decode(KG_STR("a+b"), false, &out) == KG_OK && strcmp(out.p, "a+b") == 0, "plus kept");
	static const char *const bad[] = { "%", "%4", "%G0", "a%0", "%FF", "%C3", "a%00b" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		KG_CHECK(kg_es_percent_decode(kg_str_c(bad[i]), true, &out) == KG_EINVAL, "accepted '%s'", bad[i]);
	kg_buf_free(&out, false);
}

/* ---- key views ---- */

KG_TEST(test_key_view_shows_es_fields_and_never_the_hash)
{
	json_error_t jerr;
	json_t *doc = json_loads("{\"id\":\"i\",\"name\":\"n\",\"type\":\"rest\",\"creation\":1,\"expiration\":5,"
	                         "\"invalidated\":false,\"username\":\"u\",\"realm\":\"r\",\"realm_type\":\"native\","
	                         "\"metadata\":{\"a\":1},\"role_descriptors\":{},\"limited_by\":{\"x\":{}},\"hash\":\"s1$h\"}",
	                         0, &jerr);
	json_t *v = kg_es_key_view(doc, false);
	char *s = json_dumps(v, JSON_COMPACT);
	KG_CHECK(s && strcmp(s, "{\"id\":\"i\",\"name\":\"n\",\"type\":\"rest\",\"creation\":1,\"expiration\":5,"
	                        "\"invalidated\":false,\"username\":\"u\",\"realm\":\"r\",\"realm_type\":\"native\","
	                        "\"metadata\":{\"a\":1},\"role_descriptors\":{}}") == 0,
	         "got %s", s);
	free(s);
	json_decref(v);
	v = kg_es_key_view(doc, true);
	s = json_dumps(json_object_get(v, "limited_by"), JSON_COMPACT);
	KG_CHECK(s && strcmp(s, "[{\"x\":{}}]") == 0 && !json_object_get(v, "hash"), "limited_by %s", s);
	free(s);
	json_decref(v);
	KG_CHECK(kg_es_key_is_active(doc, 4) && !kg_es_key_is_active(doc, 5), "expiration instant");
	json_object_set_new(doc, "invalidated", json_true());
	json_object_set_new(doc, "invalidation", json_integer(3));
	json_object_del(doc, "expiration");
	KG_CHECK(!kg_es_key_is_active(doc, 0), "invalidated");
	v = kg_es_key_view(doc, false);
	KG_CHECK(json_integer_value(json_object_get(v, "invalidation")) == 3 && !json_object_get(v, "expiration"),
	         "invalidation shown, no expiration");
	json_decref(v);
	json_decref(doc);
}

int main(void)
{
	return kg_test_main();
}
