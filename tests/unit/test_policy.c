#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keygate/policy.h"
#include "kgtest.h"

static const char bee_like[] = "public: [\"/health\", \"/debug/*\"]\n"
                               "strip_prefix: /v1\n"
                               "roles:\n"
                               "  consumer:\n"
                               "    rules:\n"
                               "      - { path: \"/bytes/*\", methods: [GET, HEAD] }\n"
                               "      - { path: /chunks, methods: GET }\n"
                               "  creator:\n"
                               "    inherits: [consumer]\n"
                               "    rules:\n"
                               "      - { path: /bytes, methods: [POST] }\n"
                               "  accountant:\n"
                               "    inherits: [creator]\n"
                               "    rules:\n"
                               "      - { path: \"/chequebook/*\", methods: [GET] }\n"
                               "  maintainer:\n"
                               "    inherits: [accountant]\n"
                               "    rules:\n"
                               "      - { path: \"/pingpong/*\", methods: [POST] }\n"
                               "      - { path: \"/admin/*\" }\n"
                               "      - { path: /report, methods: [PROPFIND] }\n"
                               "  auditor:\n"
                               "    rules:\n"
                               "      - { path: \"/*\", methods: [GET, HEAD] }\n";

static kg_policy *load(const char *yaml, kg_config_errors *errs)
{
	kg_policy *p = NULL;
	kg_err err = kg_policy_load_yaml("t.yaml", yaml, strlen(yaml), &p, errs);
	return err ? NULL : p;
}

KG_TEST(test_decision_table)
{
	kg_config_errors errs = { 0 };
	kg_policy *p = load(bee_like, &errs);
	KG_CHECK(p != NULL, "load: %s", errs.n ? errs.v[0] : "?");
	kg_config_errors_free(&errs);
	if (!p)
		return;
	static const struct {
		const char *role, *method, *path;
		bool want;
	} cases[] = {
		{ "consumer", "GET", "/bytes/abc", true },
		{ "consumer", "HEAD", "/bytes/abc", true },
		{ "consumer", "POST", "/bytes/abc", false },
		{ "consumer", "GET", "/bytes", false },          /* prefix "/bytes/" does not cover "/bytes" */
		{ "consumer", "GET", "/chunks", true },          /* exact */
		{ "consumer", "GET", "/chunks/x", false },
		{ "consumer", "POST", "/bytes", false },
		{ "creator", "POST", "/bytes", true },
		{ "creator", "GET", "/bytes/abc", true },        /* inherited */
		{ "creator", "GET", "/chequebook/balance", false },
		{ "accountant", "GET", "/chequebook/balance", true },
		{ "accountant", "POST", "/bytes", true },        /* transitive */
		{ "maintainer", "POST", "/pingpong/someone", true },
		{ "maintainer", "DELETE", "/pingpong/someone", false },
		{ "maintainer", "POST", "/i-dont-exist", false },
		{ "maintainer", "DELETE", "/admin/x", true },    /* no methods: all */
		{ "maintainer", "BREW", "/admin/x", true },      /* even unknown ones */
		{ "maintainer", "PROPFIND", "/report", true },   /* extension method named */
		{ "maintainer", "MKCOL", "/report", false },
		{ "maintainer", "GET", "/v1/bytes/abc", true },  /* optional /v1 */
		{ "maintainer", "GET", "/v1", false },
		{ "maintainer", "GET", "/v1bytes/abc", false },
		{ "consumer", "GET", "/v2/bytes/abc", false },
		{ "auditor", "GET", "/chequebook/balance", true },
		{ "auditor", "POST", "/bytes", false },
		{ "consumer", "GET", "", false },
		{ "nobody", "GET", "/bytes/abc", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_rolemask r = kg_policy_role(p, kg_str_c(cases[i].role));
		bool got = kg_policy_allows(p, r, kg_str_c(cases[i].method), kg_str_c(cases[i].path));
		KG_CHECK(got == cases[i].want, "%s %s %s: got %s", cases[i].role, cases[i].method, cases[i].path,
		         got ? "allowed" : "denied");
	}
	kg_policy_free(&p);
	KG_CHECK(p == NULL, "free must clear the pointer");
}

KG_TEST(test_public_paths)
{
	kg_policy *p = load(bee_like, NULL);
	if (!p) {
		KG_CHECK(0, "load");
		return;
	}
	KG_CHECK(kg_policy_add_public(p, "/pub/*") == KG_OK, "add public");
	KG_CHECK(kg_policy_add_public(p, "pub") == KG_EINVAL, "a public pattern must start with /");
	KG_CHECK(kg_policy_add_public(p, "/a*b") == KG_EINVAL, "* only at the end");
	static const struct {
		const char *path;
		bool want;
	} cases[] = {
		{ "/health", true }, { "/health/x", false }, { "/debug/pprof", true }, { "/debug", false },
		{ "/v1/health", true }, { "/pub/x", true }, { "/pub", false }, { "/bytes/x", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		KG_CHECK(kg_policy_is_public(p, kg_str_c(cases[i].path)) == cases[i].want, "%s", cases[i].path);
	kg_policy_free(&p);
}

KG_TEST(test_knows_path)
{
	kg_policy *p = load(bee_like, NULL);
	if (!p) {
		KG_CHECK(0, "load");
		return;
	}
	KG_CHECK(kg_policy_knows_path(p, KG_STR("/pingpong/x")), "pingpong known");
	KG_CHECK(kg_policy_knows_path(p, KG_STR("/anything")), "auditor's /* names everything");
	kg_policy_free(&p);
	p = load("roles: {a: {rules: [{path: /x}]}}", NULL);
	KG_CHECK(p && kg_policy_knows_path(p, KG_STR("/x")), "/x known");
	KG_CHECK(p && !kg_policy_knows_path(p, KG_STR("/y")), "/y unknown");
	kg_policy_free(&p);
}

KG_TEST(test_role_closure_follows_inheritance)
{
	kg_policy *p = load(bee_like, NULL);
	if (!p) {
		KG_CHECK(0, "load");
		return;
	}
	kg_rolemask consumer = kg_policy_role(p, KG_STR("consumer")), creator = kg_policy_role(p, KG_STR("creator"));
	kg_rolemask maintainer = kg_policy_role(p, KG_STR("maintainer")), auditor = kg_policy_role(p, KG_STR("auditor"));
	kg_rolemask m = kg_policy_role_closure(p, maintainer);
	KG_CHECK((m & consumer) && (m & creator) && (m & maintainer), "maintainer includes consumer and creator");
	KG_CHECK(!(m & auditor), "maintainer does not include auditor");
	KG_CHECK(kg_policy_role_closure(p, consumer) == consumer, "consumer includes only itself");
	kg_policy_free(&p);
}

KG_TEST(test_roles_are_listed)
{
	kg_policy *p = load(bee_like, NULL);
	KG_CHECK(p && kg_policy_role_count(p) == 5, "5 roles");
	KG_CHECK(p && strcmp(kg_policy_role_name(p, 3), "maintainer") == 0, "role order kept");
	KG_CHECK(p && kg_policy_role_name(p, 99) == NULL, "out of range");
	kg_policy_free(&p);
}

KG_TEST(test_load_errors_name_file_line_and_problem)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
		{ "roles:\n  a:\n    inherits: [b]\n  b:\n    inherits: [a]\n", "t.yaml:3: roles: role 'a' inherits itself" },
		{ "roles:\n  a:\n    inherits: [ghost]\n", "t.yaml:3: roles: role 'a' inherits unknown role 'ghost'" },
		{ "roles:\n  a:\n    rules:\n      - { path: \"/a*b\" }\n", "t.yaml:4: roles: role 'a': invalid path pattern" },
		{ "roles:\n  a:\n    rules:\n      - { path: nope }\n", "t.yaml:4: roles: role 'a': invalid path pattern" },
		{ "bogus: 1\n", "t.yaml:1: bogus: unknown key" },
		{ "roles:\n  a:\n    colour: red\n", "t.yaml:3: roles: role 'a': unknown key 'colour'" },
		{ "roles:\n  a:\n    rules:\n      - { methods: [GET] }\n", "t.yaml:4: roles: role 'a': rule without a path" },
		{ "roles:\n  a:\n    rules:\n      - { path: /x, methods: [get] }\n", "t.yaml:4: roles: role 'a': invalid method 'get'" },
		{ "public: [\"x\"]\n", "t.yaml:1: public: invalid pattern 'x'" },
		{ "roles: [\n", "t.yaml:2: policy: YAML syntax error" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_config_errors errs = { 0 };
		kg_policy *p = load(cases[i].yaml, &errs);
		KG_CHECK(p == NULL, "case %zu: loaded despite an error", i);
		KG_CHECK(errs.n >= 1 && strncmp(errs.v[0], cases[i].want, strlen(cases[i].want)) == 0,
		         "case %zu: got '%s', want prefix '%s'", i, errs.n ? errs.v[0] : "(none)", cases[i].want);
		kg_config_errors_free(&errs);
		kg_policy_free(&p);
	}
}

KG_TEST(test_every_error_is_reported)
{
	kg_config_errors errs = { 0 };
	kg_policy *p = load("bogus: 1\nroles:\n  a:\n    inherits: [x]\n    rules:\n      - { path: y }\n", &errs);
	KG_CHECK(p == NULL, "must fail");
	KG_CHECK(errs.n == 3, "want 3 errors, got %zu", errs.n);
	kg_config_errors_free(&errs);
}

KG_TEST(test_more_than_64_roles_is_an_error)
{
	kg_buf b = { 0 };
	KG_CHECK(kg_buf_printf(&b, "roles:\n") == KG_OK, "buf");
	for (int i = 0; i < 65; i++)
		KG_CHECK(kg_buf_printf(&b, "  r%d: {rules: [{path: /r%d}]}\n", i, i) == KG_OK, "buf");
	kg_config_errors errs = { 0 };
	kg_policy *p = load(b.p, &errs);
	KG_CHECK(p == NULL && errs.n == 1 && strstr(errs.v[0], "too many roles"), "got %s", errs.n ? errs.v[0] : "-");
	kg_config_errors_free(&errs);
	kg_buf_free(&b, false);
}

KG_TEST(test_ten_thousand_rules_stay_correct_and_fast)
{
	kg_buf b = { 0 };
	KG_CHECK(kg_buf_printf(&b, "roles:\n  r:\n    rules:\n") == KG_OK, "buf");
	for (int i = 0; i < 10000; i++)
		KG_CHECK(kg_buf_printf(&b, "      - { path: \"/svc%d/*\", methods: [GET] }\n", i) == KG_OK, "buf");
	kg_config_errors errs = { 0 };
	kg_policy *p = load(b.p, &errs);
	kg_buf_free(&b, false);
	KG_CHECK(p != NULL, "load: %s", errs.n ? errs.v[0] : "?");
	kg_config_errors_free(&errs);
	if (!p)
		return;
	kg_rolemask r = kg_policy_role(p, KG_STR("r"));
	KG_CHECK(kg_policy_allows(p, r, KG_STR("GET"), KG_STR("/svc9999/x")), "last rule");
	KG_CHECK(kg_policy_allows(p, r, KG_STR("GET"), KG_STR("/svc0/x")), "first rule");
	KG_CHECK(!kg_policy_allows(p, r, KG_STR("GET"), KG_STR("/svc10000/x")), "no such rule");
	KG_CHECK(!kg_policy_allows(p, r, KG_STR("POST"), KG_STR("/svc5/x")), "method");
	/* informational only: speed is measured by benchmarks, never asserted */
	struct timespec t0, t1;
	volatile kg_rolemask sink = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 200000; i++)
		sink |= kg_policy_allowed(p, KG_STR("GET"), KG_STR("/svc4242/bytes/abcdef"));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 200000;
	printf("# policy decision with 10000 rules: %.0f ns\n", ns);
	(void)sink;
	kg_policy_free(&p);
}

KG_TEST(test_empty_policy_and_presets)
{
	kg_policy *p = NULL;
	KG_CHECK(kg_policy_new(&p) == KG_OK, "new");
	KG_CHECK(!kg_policy_is_public(p, KG_STR("/x")), "nothing public");
	KG_CHECK(kg_policy_allowed(p, KG_STR("GET"), KG_STR("/x")) == 0, "nothing allowed");
	kg_policy_free(&p);
	KG_CHECK(kg_policy_load_preset("no-such-preset", &p) == KG_ENOENT, "unknown preset");
	p = load("", NULL);
	KG_CHECK(p != NULL, "an empty document is an empty policy");
	kg_policy_free(&p);
}

/* A path made of pieces of the policies' patterns (so walks go deep and
 * end on every kind of node), with the strip prefix now and then. */
static size_t random_path(char *out, size_t cap, unsigned *seed)
{
	static const char *const pieces[] = { "/", "bytes", "/bytes", "/bytes/", "chunks", "/chunks", "stream",
		                              "/health", "/debug", "/debug/", "/pub", "/pub/", "/v1", "/admin/",
		                              "/pingpong", "/report", "/tags", "/stamps/", "topup/", "/bzz",
		                              "/chequebook/", "/x", "a", "*", "%2F", "" };
	size_t n = 0, k = (size_t)(rand_r(seed) % 5);
	for (size_t i = 0; i < k; i++) {
		const char *pc = pieces[(size_t)rand_r(seed) % (sizeof(pieces) / sizeof(pieces[0]))];
		size_t m = strlen(pc);
		if (n + m >= cap)
			break;
		memcpy(out + n, pc, m);
		n += m;
	}
	if (rand_r(seed) % 8 == 0 && n + 1 < cap)
		out[n++] = (char)(rand_r(seed) % 256); /* any byte at all */
	return n;
}

KG_TEST(test_decide_is_allowed_and_is_public_in_one_walk)
{
	/* kg_policy_decide replaced two walks per request (kg_policy_is_public,
	 * then kg_policy_allowed): it must answer exactly as they do */
	static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "PROPFIND", "get", "" };
	kg_policy *pols[2] = { load(bee_like, NULL), NULL };
	KG_CHECK(pols[0] && kg_policy_add_public(pols[0], "/pub/*") == KG_OK, "load bee_like");
	KG_CHECK(kg_policy_load_preset("bee", &pols[1]) == KG_OK, "load the bee preset");
	unsigned seed = 16;
	size_t n_public = 0, n_allowed = 0;
	for (size_t k = 0; k < 2; k++) {
		if (!pols[k])
			continue;
		for (int i = 0; i < 20000; i++) {
			char path[256];
			kg_str ps = { path, random_path(path, sizeof(path), &seed) };
			kg_str m = kg_str_c(methods[(size_t)rand_r(&seed) % (sizeof(methods) / sizeof(methods[0]))]);
			bool is_public = !kg_policy_is_public(pols[k], ps); /* the wrong answer, to be overwritten */
			kg_rolemask got = kg_policy_decide(pols[k], m, ps, &is_public);
			kg_rolemask want = kg_policy_allowed(pols[k], m, ps);
			bool want_public = kg_policy_is_public(pols[k], ps);
			KG_CHECK(got == want && is_public == want_public,
			         "policy %zu, %.*s %.*s: decide gave %016llx public %d, allowed/is_public %016llx %d", k,
			         (int)m.n, m.p, (int)ps.n, ps.p, (unsigned long long)got, is_public,
			         (unsigned long long)want, want_public);
			n_public += want_public;
			n_allowed += want != 0;
		}
	}
	/* the paths must have met both kinds of answer, or the check says little */
	KG_CHECK(n_public > 100 && n_allowed > 1000, "public %zu, allowed %zu of 40000", n_public, n_allowed);
	kg_policy_free(&pols[0]);
	kg_policy_free(&pols[1]);
}

int main(void)
{
	return kg_test_main();
}
