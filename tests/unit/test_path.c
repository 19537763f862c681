#include <stdlib.h>

#include "keygate/path.h"
#include "kgtest.h"

#define KEEP KG_PATH_KEEP_ESCAPED_SLASHES
/* a literal with its length, so inputs may hold NUL bytes */
#define IN(s) s, sizeof(s) - 1

struct path_case {
	const char *in;
	size_t n;
	unsigned flags;
	const char *want;  /* NULL: refused */
	const char *why;   /* refused: a word the message must contain */
	bool restructured; /* accepted: the expected *is_restructured */
};

/* Normalises c->in and checks the result against the case; returns the
 * output (static buffer) or NULL. */
static const char *run_case(const struct path_case *c, size_t *len)
{
	static char out[512];
	char *in = malloc(c->n ? c->n : 1); /* exact size, so ASan sees any over-read */
	memcpy(in, c->in, c->n);
	memset(out, 'X', sizeof(out));
	bool re = !c->restructured;
	const char *why = NULL;
	kg_err err = kg_path_normalize((kg_str){ in, c->n }, c->flags, out, len, &re, &why);
	free(in);
	if (c->want == NULL) {
		KG_CHECK(err == KG_EINVAL, "'%.*s' (flags %u): got %s '%.*s', want refused (%s)", (int)c->n, c->in,
		         c->flags, kg_errname(err), err ? 0 : (int)*len, out, c->why);
		if (err == KG_EINVAL)
			KG_CHECK(why && strstr(why, c->why), "'%.*s': message '%s' does not name '%s'", (int)c->n,
			         c->in, why ? why : "(null)", c->why);
		return NULL;
	}
	KG_CHECK(err == KG_OK, "'%.*s' (flags %u): got %s (%s), want '%s'", (int)c->n, c->in, c->flags,
	         kg_errname(err), why ? why : "(null)", c->want);
	if (err)
		return NULL;
	KG_CHECK(*len == strlen(c->want) && memcmp(out, c->want, *len) == 0, "'%.*s' (flags %u): got '%.*s', want '%s'",
	         (int)c->n, c->in, c->flags, (int)*len, out, c->want);
	KG_CHECK(*len <= c->n, "'%.*s': output longer than input", (int)c->n, c->in);
	KG_CHECK(re == c->restructured, "'%.*s': is_restructured %d, want %d", (int)c->n, c->in, re, c->restructured);
	return out;
}

/* Every accepted output normalises to itself, unrestructured. */
static void check_idempotent(const struct path_case *c, const char *out, size_t len)
{
	char again[512];
	size_t len2 = 0;
	bool re = true;
	const char *why = NULL;
	kg_err err = kg_path_normalize((kg_str){ out, len }, c->flags, again, &len2, &re, &why);
	KG_CHECK(err == KG_OK, "'%.*s' -> '%.*s' is refused the second time: %s", (int)c->n, c->in, (int)len, out,
	         why ? why : "(null)");
	if (err)
		return;
	KG_CHECK(len2 == len && memcmp(again, out, len) == 0, "'%.*s' -> '%.*s' -> '%.*s': not idempotent", (int)c->n,
	         c->in, (int)len, out, (int)len2, again);
	KG_CHECK(!re, "'%.*s' -> '%.*s' is restructured again", (int)c->n, c->in, (int)len, out);
}

static void run_table(const struct path_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		const char *out = run_case(&cases[i], &len);
		if (out)
			check_idempotent(&cases[i], out, len);
	}
}

#define RUN(table) run_table(table, sizeof(table) / sizeof(table[0]))

/* RFC 3986 section 5.4's examples, as the merged paths section 5.2.4 hands
 * remove_dot_segments (base "http://a/b/c/d;p?q"). */
KG_TEST(test_rfc3986_examples_as_paths)
{
	static const struct path_case cases[] = {
		/* 5.2.4's own examples */
		{ IN("/a/b/c/./../../g"), 0, "/a/g", NULL, true },
		{ IN("/mid/content=5/../6"), 0, "/mid/6", NULL, true },
		/* 5.4.1 normal: merged with base path /b/c/d;p */
		{ IN("/b/c/g"), 0, "/b/c/g", NULL, false },
		{ IN("/b/c/./g"), 0, "/b/c/g", NULL, true },
		{ IN("/b/c/g/"), 0, "/b/c/g/", NULL, false },
		{ IN("/g"), 0, "/g", NULL, false },
		{ IN("/b/c/d;p"), 0, "/b/c/d;p", NULL, false },
		{ IN("/b/c/g;x"), 0, "/b/c/g;x", NULL, false },
		{ IN("/b/c/."), 0, "/b/c/", NULL, true },
		{ IN("/b/c/./"), 0, "/b/c/", NULL, true },
		{ IN("/b/c/.."), 0, "/b/", NULL, true },
		{ IN("/b/c/../"), 0, "/b/", NULL, true },
		{ IN("/b/c/../g"), 0, "/b/g", NULL, true },
		{ IN("/b/c/../.."), 0, "/", NULL, true },
		{ IN("/b/c/../../"), 0, "/", NULL, true },
		{ IN("/b/c/../../g"), 0, "/g", NULL, true },
		/* 5.4.2 abnormal */
		{ IN("/b/c/../../../g"), 0, "/g", NULL, true },
		{ IN("/b/c/../../../../g"), 0, "/g", NULL, true },
		{ IN("/../g"), 0, "/g", NULL, true },
		{ IN("/../../g"), 0, "/g", NULL, true },
		{ IN("/./g"), 0, "/g", NULL, true },
		{ IN("/b/c/g."), 0, "/b/c/g.", NULL, false },
		{ IN("/g."), 0, "/g.", NULL, false },
		{ IN("/.g"), 0, "/.g", NULL, false },
		{ IN("/g.."), 0, "/g..", NULL, false },
		{ IN("/..g"), 0, "/..g", NULL, false },
		{ IN("/./../g"), 0, "/g", NULL, true },
		{ IN("/b/c/./../g"), 0, "/b/g", NULL, true },
		{ IN("/./g/."), 0, "/g/", NULL, true },
		{ IN("/b/c/./g/."), 0, "/b/c/g/", NULL, true },
		{ IN("/g/./h"), 0, "/g/h", NULL, true },
		{ IN("/g/../h"), 0, "/h", NULL, true },
		{ IN("/b/c/g;x=1/./y"), 0, "/b/c/g;x=1/y", NULL, true },
		{ IN("/b/c/g;x=1/../y"), 0, "/b/c/y", NULL, true },
		{ IN("/a/b/.."), 0, "/a/", NULL, true },
		{ IN("/a/b/."), 0, "/a/b/", NULL, true },
		{ IN("/."), 0, "/", NULL, true },
		{ IN("/.."), 0, "/", NULL, true },
		{ IN("/"), 0, "/", NULL, false },
		{ IN("/..."), 0, "/...", NULL, false },
	};
	RUN(cases);
}

/* The bypasses of a public "/debug/" prefix rule that the normaliser closes. */
KG_TEST(test_traversal_attacks_resolve_or_are_refused)
{
	static const struct path_case cases[] = {
		{ IN("/debug/../stamps"), 0, "/stamps", NULL, true },
		{ IN("/debug/%2e%2e/stamps"), 0, "/stamps", NULL, true },
		{ IN("/debug/%2E%2E/stamps"), 0, "/stamps", NULL, true },
		{ IN("/debug/.%2e/stamps"), 0, "/stamps", NULL, true },
		{ IN("/debug/%2e/stamps"), 0, "/debug/stamps", NULL, true },
		{ IN("/v1/debug/../../v1/stamps"), 0, "/v1/stamps", NULL, true },
		/* nginx and Go merge first: "/debug//.." is "/", not "/debug" */
		{ IN("/debug//../stamps"), 0, "/stamps", NULL, true },
		{ IN("/debug/..//stamps"), 0, "/stamps", NULL, true },
		{ IN("/debug/..%2fstamps"), 0, NULL, "encoded '/'", false },
		{ IN("/debug/..%2Fstamps"), 0, NULL, "encoded '/'", false },
		{ IN("/debug/..%2fstamps"), KEEP, "/debug/..%2Fstamps", NULL, false },
		{ IN("/debug/%5c../stamps"), 0, NULL, "encoded '/' or '\\'", false },
		{ IN("/debug/%5c../stamps"), KEEP, "/debug/%5C../stamps", NULL, false },
		{ IN("/debug\\..\\stamps"), 0, NULL, "backslash", false },
		{ IN("/debug\\..\\stamps"), KEEP, NULL, "backslash", false },
		/* Tomcat/Jetty path parameters on a dot segment */
		{ IN("/..;/stamps"), 0, NULL, "'..;'", false },
		{ IN("/debug/..;/stamps"), 0, NULL, "'..;'", false },
		{ IN("/debug/..;jsessionid=1/stamps"), 0, NULL, "'..;'", false },
		{ IN("/.;/x"), 0, NULL, "'..;'", false },
		{ IN("/debug/%2e%2e;/stamps"), 0, NULL, "'..;'", false },
		{ IN("/debug/..%3b/stamps"), 0, NULL, "'..;'", false },
		{ IN("/debug/%2E%3B/stamps"), 0, NULL, "'..;'", false },
		{ IN("/debug/.."), 0, "/", NULL, true },
	};
	RUN(cases);
}

KG_TEST(test_escapes_decode_unreserved_only_and_stay_put)
{
	static const struct path_case cases[] = {
		{ IN("/%41%42c"), 0, "/ABc", NULL, false },
		{ IN("/%7e"), 0, "/~", NULL, false },
		{ IN("/%2d%2E%5f%7E"), 0, "/-._~", NULL, false },
		{ IN("/%61%7A%30%39"), 0, "/az09", NULL, false },
		{ IN("/%2f"), KEEP, "/%2F", NULL, false },
		{ IN("/a%3fb%23c%3bd"), 0, "/a%3Fb%23c%3Bd", NULL, false },
		/* '%' itself is reserved: "%25" stays, so nothing decodes twice */
		{ IN("/%252e%252e/x"), 0, "/%252e%252e/x", NULL, false },
		{ IN("/%2541"), 0, "/%2541", NULL, false },
		{ IN("/%25"), 0, "/%25", NULL, false },
		{ IN("/%252f"), 0, "/%252f", NULL, false },
		/* escaped controls other than NUL are not structure: kept */
		{ IN("/a%0ab"), 0, "/a%0Ab", NULL, false },
		{ IN("/a%7f"), 0, "/a%7F", NULL, false },
		{ IN("/%c3%a9"), 0, "/%C3%A9", NULL, false },
		{ IN("/a%00b"), 0, NULL, "encoded NUL", false },
		{ IN("/a%2"), 0, NULL, "malformed percent-escape", false },
		{ IN("/a%"), 0, NULL, "malformed percent-escape", false },
		{ IN("/a%zz"), 0, NULL, "malformed percent-escape", false },
		{ IN("/a%4g"), 0, NULL, "malformed percent-escape", false },
		{ IN("/a%g4"), 0, NULL, "malformed percent-escape", false },
	};
	RUN(cases);
}

KG_TEST(test_raw_bytes_refused_or_kept)
{
	static const struct path_case cases[] = {
		{ IN("/a\tb"), 0, NULL, "control character", false },
		{ IN("/a\rb"), 0, NULL, "control character", false },
		{ IN("/a\nb"), 0, NULL, "control character", false },
		{ IN("/a\0b"), 0, NULL, "control character", false },
		{ IN("/a\x7f"), 0, NULL, "control character", false },
		{ IN("/a#b"), 0, NULL, "'#'", false },
		{ IN("/a?b"), 0, NULL, "'?'", false },
		{ IN("/a b"), 0, "/a b", NULL, false },
		{ IN("/\x80\xff/\xc3\xa9"), 0, "/\x80\xff/\xc3\xa9", NULL, false },
		{ IN("/a;b/c"), 0, "/a;b/c", NULL, false },
		{ IN("/a:b@c!$&'()*+,="), 0, "/a:b@c!$&'()*+,=", NULL, false },
		{ IN(""), 0, NULL, "must start with '/'", false },
		{ IN("*"), 0, NULL, "must start with '/'", false },
		{ IN("a/b"), 0, NULL, "must start with '/'", false },
		{ IN("%2fa"), 0, NULL, "must start with '/'", false },
		{ IN("http://h/a"), 0, NULL, "must start with '/'", false },
	};
	RUN(cases);
}

KG_TEST(test_slash_runs_merge)
{
	static const struct path_case cases[] = {
		{ IN("//"), 0, "/", NULL, true },
		{ IN("///"), 0, "/", NULL, true },
		{ IN("/a///b"), 0, "/a/b", NULL, true },
		{ IN("//a/b//"), 0, "/a/b/", NULL, true },
		{ IN("/a/b/"), 0, "/a/b/", NULL, false },
		{ IN("/a//./b"), 0, "/a/b", NULL, true },
		{ IN("/a/.//b"), 0, "/a/b", NULL, true },
		{ IN("/a/..//"), 0, "/", NULL, true },
	};
	RUN(cases);
}

KG_TEST(test_null_out_params_are_allowed)
{
	char out[16];
	size_t len = 0;
	KG_CHECK(kg_path_normalize(KG_STR("/a/../b"), 0, out, &len, NULL, NULL) == KG_OK, "NULL is_restructured/why");
	KG_CHECK(len == 2 && memcmp(out, "/b", 2) == 0, "got '%.*s'", (int)len, out);
	KG_CHECK(kg_path_normalize(KG_STR("/a#"), 0, out, &len, NULL, NULL) == KG_EINVAL, "refusal with NULL why");
}

int main(void)
{
	return kg_test_main();
}
