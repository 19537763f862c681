/* Bee's /auth and /refresh protocol (lib/bee.c): each validation message in
 * Bee's order, the Basic password, the refresh role rule, the bodies byte
 * for byte. */
#include <stdio.h>
#include <string.h>

#include "keygate/auth.h"
#include "keygate/b64.h"
#include "keygate/bee.h"
#include "keygate/policy.h"
#include "kgtest.h"

#define MAX_EXPIRY_S 86400

static kg_policy *bee_policy(void)
{
	kg_policy *p = NULL;
	if (kg_policy_load_preset("bee", &p) != KG_OK)
		return NULL;
	return p;
}

/* the bee preset's roles, in its order (auditor is keygate's addition) */
static const char ROLES[] = "consumer, creator, accountant, maintainer, auditor";

KG_TEST(test_parse_request_messages_in_bee_order)
{
	static const struct {
		const char *body;
		bool is_role_optional;
		const char *message; /* NULL: parsed */
		const char *role;
		long long expiry;
	} cases[] = {
		/* the body must be a JSON object, before anything in it counts */
		{ "", false, "Unmarshal json body", "", 0 },
		{ "{nope", false, "Unmarshal json body", "", 0 },
		{ "[]", false, "Unmarshal json body", "", 0 },
		{ "\"role\"", false, "Unmarshal json body", "", 0 },
		{ "{\"role\":\"consumer\",\"expiry\":1,\"expiry\":2}", false, "Unmarshal json body", "", 0 },
		/* then expiry: present, an integer, positive, then at most the maximum */
		{ "{\"role\":\"consumer\"}", false, "Expiry duration must be a positive number", "", 0 },
		{ "{\"role\":\"consumer\",\"expiry\":0}", false, "Expiry duration must be a positive number", "", 0 },
		{ "{\"role\":\"consumer\",\"expiry\":-5}", false, "Expiry duration must be a positive number", "", 0 },
		{ "{\"role\":\"consumer\",\"expiry\":\"10\"}", false, "Expiry duration must be a positive number", "", 0 },
		{ "{\"role\":\"consumer\",\"expiry\":1.5}", false, "Expiry duration must be a positive number", "", 0 },
		{ "{\"role\":\"consumer\",\"expiry\":null}", false, "Expiry duration must be a positive number", "", 0 },
		{ "{\"role\":\"consumer\",\"expiry\":86401}", false, "Expiry duration exceeds the maximum of 86400 seconds",
		  "", 0 },
		/* expiry is judged before the role */
		{ "{\"role\":\"nope\",\"expiry\":0}", false, "Expiry duration must be a positive number", "", 0 },
		{ "{\"role\":\"nope\",\"expiry\":86401}", false, "Expiry duration exceeds the maximum of 86400 seconds", "",
		  0 },
		{ "{\"expiry\":0}", false, "Expiry duration must be a positive number", "", 0 },
		/* then the role */
		{ "{\"role\":\"nope\",\"expiry\":10}", false, "Unknown role 'nope'; valid roles: consumer, creator, "
		                                            "accountant, maintainer, auditor", "", 0 },
		{ "{\"role\":\"nope\",\"expiry\":10}", true, "Unknown role 'nope'; valid roles: consumer, creator, "
		                                           "accountant, maintainer, auditor", "", 0 },
		{ "{\"role\":5,\"expiry\":10}", false, "Unknown role '(not a string)'; valid roles: consumer, creator, "
		                                      "accountant, maintainer, auditor", "", 0 },
		{ "{\"role\":\"\",\"expiry\":10}", true, "Unknown role ''; valid roles: consumer, creator, accountant, "
		                                        "maintainer, auditor", "", 0 },
		{ "{\"role\":\"Consumer\",\"expiry\":10}", false, "Unknown role 'Consumer'; valid roles: consumer, "
		                                                 "creator, accountant, maintainer, auditor", "", 0 },
		{ "{\"expiry\":10}", false, "A role is required", "", 0 },
		{ "{\"role\":null,\"expiry\":10}", false, "A role is required", "", 0 },
		/* accepted */
		{ "{\"expiry\":10}", true, NULL, "", 10 },
		{ "{\"role\":null,\"expiry\":10}", true, NULL, "", 10 },
		{ "{\"role\":\"creator\",\"expiry\":86400}", false, NULL, "creator", 86400 },
		{ " {\"expiry\":1,\"role\":\"maintainer\",\"other\":[1]} ", false, NULL, "maintainer", 1 },
	};
	kg_policy *p = bee_policy();
	KG_CHECK(p, "the bee preset does not load");
	if (!p)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kg_bee_request r;
		kg_err err = kg_bee_parse_request(kg_str_c(cases[i].body), p, MAX_EXPIRY_S, cases[i].is_role_optional, &r);
		if (cases[i].message) {
			KG_CHECK(err == KG_EINVAL && r.status == 400 && strcmp(r.message, cases[i].message) == 0,
			         "%s (role optional %d): %s %d '%s', want 400 '%s'", cases[i].body, cases[i].is_role_optional,
			         kg_errname(err), r.status, r.message, cases[i].message);
			KG_CHECK(r.role[0] == '\0' && r.expiry_s == 0, "%s: a refused request leaves role '%s' expiry %lld",
			         cases[i].body, r.role, (long long)r.expiry_s);
		} else {
			KG_CHECK(err == KG_OK && r.status == 0 && strcmp(r.role, cases[i].role) == 0 &&
			             r.expiry_s == cases[i].expiry,
			         "%s: %s role '%s' expiry %lld (%s), want role '%s' expiry %lld", cases[i].body,
			         kg_errname(err), r.role, (long long)r.expiry_s, r.message, cases[i].role, cases[i].expiry);
		}
	}
	kg_policy_free(&p);
}

KG_TEST(test_unknown_role_is_quoted_at_most_64_bytes)
{
	char body[256], want[512];
	char name[101];
	memset(name, 'r', 100);
	name[100] = '\0';
	snprintf(body, sizeof(body), "{\"role\":\"%s\",\"expiry\":10}", name);
	snprintf(want, sizeof(want), "Unknown role '%.64s'; valid roles: %s", name, ROLES);
	kg_policy *p = bee_policy();
	struct kg_bee_request r;
	KG_CHECK(kg_bee_parse_request(kg_str_c(body), p, MAX_EXPIRY_S, false, &r) == KG_EINVAL &&
	             strcmp(r.message, want) == 0,
	         "message '%s', want '%s'", r.message, want);
	kg_policy_free(&p);
}

KG_TEST(test_maximum_expiry_is_the_configured_one)
{
	kg_policy *p = bee_policy();
	struct kg_bee_request r;
	KG_CHECK(kg_bee_parse_request(KG_STR("{\"role\":\"consumer\",\"expiry\":60}"), p, 60, false, &r) == KG_OK &&
	             r.expiry_s == 60,
	         "expiry 60 under a maximum of 60: %s", r.message);
	KG_CHECK(kg_bee_parse_request(KG_STR("{\"role\":\"consumer\",\"expiry\":61}"), p, 60, false, &r) == KG_EINVAL &&
	             strcmp(r.message, "Expiry duration exceeds the maximum of 60 seconds") == 0,
	         "expiry 61 under a maximum of 60: '%s'", r.message);
	kg_policy_free(&p);
}

KG_TEST(test_refusal_bodies_are_bees_byte_for_byte)
{
	static const struct {
		const char *body;
		const char *want;
	} cases[] = {
		{ "", "{\"code\":400,\"message\":\"Unmarshal json body\"}" },
		{ "{\"role\":\"consumer\"}", "{\"code\":400,\"message\":\"Expiry duration must be a positive number\"}" },
		{ "{\"role\":\"consumer\",\"expiry\":86401}",
		  "{\"code\":400,\"message\":\"Expiry duration exceeds the maximum of 86400 seconds\"}" },
		{ "{\"role\":\"a\\\"b\",\"expiry\":1}",
		  "{\"code\":400,\"message\":\"Unknown role 'a\\\"b'; valid roles: consumer, creator, accountant, "
		  "maintainer, auditor\"}" },
		{ "{\"expiry\":1}", "{\"code\":400,\"message\":\"A role is required\"}" },
	};
	kg_policy *p = bee_policy();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kg_bee_request r;
		kg_buf out = { 0 };
		KG_CHECK(kg_bee_parse_request(kg_str_c(cases[i].body), p, MAX_EXPIRY_S, false, &r) == KG_EINVAL,
		         "%s was accepted", cases[i].body);
		KG_CHECK(kg_error_json(r.status, r.message, &out) == KG_OK && out.p && strcmp(out.p, cases[i].want) == 0,
		         "%s: body %s, want %s", cases[i].body, out.p ? out.p : "(none)", cases[i].want);
		kg_buf_free(&out, false);
	}
	kg_policy_free(&p);
}

KG_TEST(test_basic_password_is_what_follows_the_first_colon)
{
	static const struct {
		const char *header;
		kg_err err;
		const char *password;
	} cases[] = {
		{ "Basic dXNlcjpzM2NyZXQ=", KG_OK, "s3cret" },   /* user:s3cret */
		{ "basic  OnMzY3JldA==  ", KG_OK, "s3cret" },    /* :s3cret, scheme in any case */
		{ "Basic YTpiOmM=", KG_OK, "b:c" },              /* a:b:c */
		{ "Basic dXNlcjo=", KG_OK, "" },                 /* user: */
		{ "Basic bm9jb2xvbg==", KG_EBADCRED, "" },       /* nocolon */
		{ "Basic ", KG_EBADCRED, "" },
		{ "Basic dXNlcjpzM2NyZXQ", KG_EBADCRED, "" },    /* unpadded: not canonical */
		{ "Basic dXNlcjpzM2NyZXR=", KG_EBADCRED, "" },   /* non-zero padding bits */
		{ "Basic dXNl cjpz", KG_EBADCRED, "" },
		{ "Bearer dXNlcjpzM2NyZXQ=", KG_EBADCRED, "" },
		{ "", KG_EBADCRED, "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_buf pw = { 0 };
		kg_err err = kg_bee_basic_password(kg_str_c(cases[i].header), &pw);
		KG_CHECK(err == cases[i].err && kg_str_eq(kg_buf_str(&pw), kg_str_c(cases[i].password)),
		         "'%s': %s '%.*s', want %s '%s'", cases[i].header, kg_errname(err), (int)pw.n, pw.p ? pw.p : "",
		         kg_errname(cases[i].err), cases[i].password);
		kg_buf_free(&pw, true);
	}
}

KG_TEST(test_basic_credential_is_capped)
{
	/* "u:" and 2046 'p' decode to exactly KG_BEE_MAX_BASIC bytes; one more is refused */
	for (size_t n = KG_BEE_MAX_BASIC; n <= KG_BEE_MAX_BASIC + 1; n++) {
		unsigned char raw[KG_BEE_MAX_BASIC + 1];
		kg_buf hdr = { 0 }, pw = { 0 };
		memset(raw, 'p', sizeof(raw));
		raw[0] = 'u';
		raw[1] = ':';
		KG_CHECK(kg_buf_appends(&hdr, KG_STR("Basic ")) == KG_OK && kg_b64_encode(KG_B64_STD, raw, n, &hdr) == KG_OK,
		         "cannot encode");
		kg_err err = kg_bee_basic_password(kg_buf_str(&hdr), &pw);
		if (n == KG_BEE_MAX_BASIC)
			KG_CHECK(err == KG_OK && pw.n == n - 2, "%zu decoded bytes: %s, %zu password bytes", n, kg_errname(err),
			         pw.n);
		else
			KG_CHECK(err == KG_EBADCRED, "%zu decoded bytes: %s, want EBADCRED", n, kg_errname(err));
		kg_buf_free(&hdr, false);
		kg_buf_free(&pw, true);
	}
}

KG_TEST(test_refresh_never_raises_role)
{
	static const struct {
		const char *held, *requested;
		kg_err err;
		const char *role;
	} cases[] = {
		{ "creator", "", KG_OK, "creator" },         /* no role asked: the presented token's */
		{ "creator", "creator", KG_OK, "creator" },
		{ "creator", "consumer", KG_OK, "consumer" }, /* lower: inherited */
		{ "maintainer", "consumer", KG_OK, "consumer" },
		{ "creator", "accountant", KG_EFORBIDDEN, "" },
		{ "consumer", "maintainer", KG_EFORBIDDEN, "" },
		{ "ghost", "consumer", KG_EFORBIDDEN, "" },  /* a role the policy no longer has holds nothing */
		{ "ghost", "", KG_OK, "ghost" },
	};
	kg_policy *p = bee_policy();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char role[KG_BEE_MAX_ROLE + 1] = "";
		const char *message = NULL;
		kg_err err = kg_bee_refresh_role(p, cases[i].held, cases[i].requested, role, &message);
		KG_CHECK(err == cases[i].err, "%s → '%s': %s, want %s", cases[i].held, cases[i].requested, kg_errname(err),
		         kg_errname(cases[i].err));
		if (err == KG_OK)
			KG_CHECK(strcmp(role, cases[i].role) == 0, "%s → '%s': role '%s', want '%s'", cases[i].held,
			         cases[i].requested, role, cases[i].role);
		else
			KG_CHECK(message && strcmp(message, "A refreshed token cannot have a higher role than the presented "
			                                    "one") == 0,
			         "%s → '%s': message '%s'", cases[i].held, cases[i].requested, message ? message : "(none)");
	}
	kg_policy_free(&p);
}

KG_TEST(test_key_body_byte_for_byte)
{
	static const struct {
		const char *token, *want;
	} cases[] = {
		{ "kg1.abc_DEF-123", "{\"key\":\"kg1.abc_DEF-123\"}" },
		{ "3q2+7w==", "{\"key\":\"3q2+7w==\"}" },
		{ "", "{\"key\":\"\"}" },
		{ "a\"b\\c", "{\"key\":\"a\\\"b\\\\c\"}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_buf out = { 0 };
		KG_CHECK(kg_bee_key_json(kg_str_c(cases[i].token), &out) == KG_OK && out.p &&
		             strcmp(out.p, cases[i].want) == 0,
		         "token '%s': %s, want %s", cases[i].token, out.p ? out.p : "(none)", cases[i].want);
		kg_buf_free(&out, false);
	}
}

int main(void)
{
	return kg_test_main();
}
