/* test_es_realm.c - ES's file realm files and the native realm's request
 * bodies, with ES's exact messages as known answers. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "keygate/es_realm.h"
#include "keygate/password.h"
#include "kgtest.h"

static char *hash_of(const char *plain)
{
	kg_buf h = { 0 };
	KG_CHECK(kg_bcrypt_hash(kg_str_c(plain), 4, &h) == KG_OK, "bcrypt");
	return h.p;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	KG_CHECK(f != NULL, "cannot write %s", path);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void remove_dir(const char *dir)
{
	static const char *const names[] = { "users", "users_roles", "roles.yml" };
	char path[512];
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* The JSON text of v (sorted keys, compact), in a static buffer. */
static const char *dump(const json_t *v)
{
	static char buf[4096];
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
	snprintf(buf, sizeof(buf), "%s", s ? s : "(null)");
	free(s);
	return buf;
}

static bool has_error(const kg_config_errors *e, const char *want)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->v[i], want) == 0)
			return true;
	return false;
}

static void print_errors(const kg_config_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		printf("    got: %s\n", e->v[i]);
}

KG_TEST(test_es_file_realm_reads_the_files_as_es_writes_them)
{
	char dir[] = "/tmp/kg-es-realm-XXXXXX";
	KG_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	char *ha = hash_of("alice-pw"), *hb = hash_of("bob-pw");
	hb[2] = 'a'; /* elasticsearch-users writes $2a$ */
	char users[1024];
	snprintf(users, sizeof(users),
	         "# written by elasticsearch-users\n"
	         "alice:%s\r\n"
	         "\n"
	         "   \n"
	         "  bob:%s  \n"
	         "carol:%s\n",
	         ha, hb, ha);
	write_file(dir, "users", users);
	write_file(dir, "users_roles",
	           "#role:users\n"
	           "admin:alice\n"
	           "viewer_x: alice , bob,, ghost\n"
	           "admin:alice\n");
	write_file(dir, "roles.yml",
	           "# roles\n"
	           "admin:\n"
	           "  cluster: [ 'all' ]\n"
	           "  indices:\n"
	           "    - names: [ 'logs-*' ]\n"
	           "      privileges: [ read, \"write\" ]\n"
	           "      allow_restricted_indices: no\n"
	           "  metadata: { version: 1, ratio: 0.5, note: ~, tag: '1', big: 0x1F }\n"
	           "viewer_x:\n"
	           "  run_as: []\n");
	kg_config_errors errs = { 0 };
	kg_es_file_realm *r = NULL;
	kg_err err = kg_es_file_realm_load(dir, &r, &errs);
	KG_CHECK(err == KG_OK && r, "load: %s", kg_strerror(err));
	print_errors(&errs);
	if (r) {
		KG_CHECK(kg_es_file_realm_user_count(r) == 3, "users: %zu", kg_es_file_realm_user_count(r));
		const struct kg_es_file_user *a = kg_es_file_realm_user(r, KG_STR("alice"));
		KG_CHECK(a && strcmp(a->hash, ha) == 0 && a->line == 2, "alice, line 2, CRLF stripped");
		KG_CHECK(a && a->nroles == 2 && strcmp(a->roles[0], "admin") == 0 && strcmp(a->roles[1], "viewer_x") == 0,
		         "alice's roles in file order, admin once");
		const struct kg_es_file_user *b = kg_es_file_realm_user(r, KG_STR("bob"));
		KG_CHECK(b && strcmp(b->hash, hb) == 0 && b->line == 5, "bob trimmed, $2a$ read");
		KG_CHECK(b && b->nroles == 1 && strcmp(b->roles[0], "viewer_x") == 0, "bob's role");
		const struct kg_es_file_user *c = kg_es_file_realm_user(r, KG_STR("carol"));
		KG_CHECK(c && c->nroles == 0, "carol is in no role");
		KG_CHECK(!kg_es_file_realm_user(r, KG_STR("ghost")), "users_roles does not make users");
		KG_CHECK(!kg_es_file_realm_user(r, KG_STR("alic")), "a prefix is not a user");
		KG_CHECK(kg_es_file_realm_user_at(r, 2) == c && !kg_es_file_realm_user_at(r, 3), "iteration in file order");
		const char *want = "{\"cluster\":[\"all\"],\"indices\":[{\"allow_restricted_indices\":false,"
		                   "\"names\":[\"logs-*\"],\"privileges\":[\"read\",\"write\"]}],\"metadata\":{\"big\":31,"
		                   "\"note\":null,\"ratio\":0.5,\"tag\":\"1\",\"version\":1}}";
		KG_CHECK(strcmp(dump(kg_es_file_realm_role(r, KG_STR("admin"))), want) == 0, "admin: got %s, want %s",
		         dump(kg_es_file_realm_role(r, KG_STR("admin"))), want);
		KG_CHECK(strcmp(dump(kg_es_file_realm_role(r, KG_STR("viewer_x"))), "{\"run_as\":[]}") == 0, "viewer_x: %s",
		         dump(kg_es_file_realm_role(r, KG_STR("viewer_x"))));
		KG_CHECK(json_object_size(kg_es_file_realm_roles(r)) == 2, "two roles");
		KG_CHECK(!kg_es_file_realm_role(r, KG_STR("admi")), "no such role");
	}
	kg_es_file_realm_free(&r);
	kg_es_file_realm_free(&r); /* safe twice */
	kg_config_errors_free(&errs);
	free(ha);
	free(hb);
	remove_dir(dir);
}

KG_TEST(test_es_file_realm_missing_files_are_empty_and_a_missing_dir_is_an_error)
{
	char dir[] = "/tmp/kg-es-realm-XXXXXX";
	KG_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	kg_config_errors errs = { 0 };
	kg_es_file_realm *r = NULL;
	KG_CHECK(kg_es_file_realm_load(dir, &r, &errs) == KG_OK && r, "an empty config dir loads");
	KG_CHECK(r && kg_es_file_realm_user_count(r) == 0 && json_object_size(kg_es_file_realm_roles(r)) == 0, "empty");
	kg_es_file_realm_free(&r);
	remove_dir(dir);
	KG_CHECK(kg_es_file_realm_load(dir, &r, &errs) == KG_ECONFIG && !r, "missing dir refused");
	KG_CHECK(errs.n == 1 && strstr(errs.v[0], "not an ES config directory"), "message: %s", errs.n ? errs.v[0] : "");
	kg_config_errors_free(&errs);
}

KG_TEST(test_es_file_realm_malformed_lines_are_refused_with_file_and_line)
{
	char dir[] = "/tmp/kg-es-realm-XXXXXX";
	KG_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	char *h = hash_of("pw1234");
	char users[2048];
	snprintf(users, sizeof(users),
	         "ok:%s\n"
	         "nocolon\n"
	         ":%s\n"
	         "trailing:\n"
	         "pb:{PBKDF2}10000$c2FsdHNhbHRzYWx0$aGFzaA==\n"
	         "plain:secret\n"
	         "elastic:%s\n"
	         " sp ace:%s\n"
	         "ok:%s\n"
	         "bad\x01name:%s\n"
	         "  # not a comment: ES only skips '#' in column 1\n",
	         h, h, h, h, h, h);
	write_file(dir, "users", users);
	write_file(dir, "users_roles", "admin:\nadmin:   \n:ok\nro\x02" "le:ok\nfine: ok\n");
	write_file(dir, "roles.yml",
	           "superuser:\n  cluster: [all]\n"
	           "listy: [a, b]\n"
	           "fine:\n  cluster: [all]\n"
	           "fine:\n  cluster: [none]\n"
	           "deep: {a: {b: {c: {d: {e: {f: {g: {h: {i: {j: {k: {l: {m: {n: {o: {p: {q: {r: {s: {t: {u: 1}}}}}}}}}}}}}}}}}}}}}\n");
	kg_config_errors errs = { 0 };
	kg_es_file_realm *r = (kg_es_file_realm *)"untouched";
	kg_es_file_realm *before = r;
	KG_CHECK(kg_es_file_realm_load(dir, &r, &errs) == KG_ECONFIG, "refused");
	KG_CHECK(r == before, "out is untouched on failure, so a reload keeps the old realm");
	char want[1024];
	const char *const wants[] = {
		"users:2: invalid entry: expected USERNAME:HASH as elasticsearch-users writes it",
		"users:3: invalid entry: expected USERNAME:HASH as elasticsearch-users writes it",
		"users:4: invalid entry: expected USERNAME:HASH as elasticsearch-users writes it",
		"users:5: user [pb]: the password hash is PBKDF2; keygate reads bcrypt hashes ($2a$, $2b$, $2y$) only: "
		"set xpack.security.authc.password_hashing.algorithm: bcrypt and the password again (elasticsearch-users "
		"passwd), or make a hash with keygate bcrypt",
		"users:6: user [plain]: the password hash is no hash format ES knows (a plain-text password?); keygate "
		"reads bcrypt hashes ($2a$, $2b$, $2y$) only: set xpack.security.authc.password_hashing.algorithm: bcrypt "
		"and the password again (elasticsearch-users passwd), or make a hash with keygate bcrypt",
		"users:7: invalid username [elastic]: Username [elastic] is reserved and may not be used.",
		"users:9: user [ok] appears twice (first on line 1)",
		"users:10: invalid username [bad\x01name]: User names must be at least 1 and no more than 1024 characters. "
		"They can contain alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the "
		"Basic Latin (ASCII) block. Leading or trailing whitespace is not allowed.",
		"users:11: user [# not a comment]: the password hash is no hash format ES knows (a plain-text "
		"password?); keygate reads bcrypt hashes ($2a$, $2b$, $2y$) only: set "
		"xpack.security.authc.password_hashing.algorithm: bcrypt and the password again (elasticsearch-users passwd), "
		"or make a hash with keygate bcrypt",
		"users_roles:1: invalid entry: expected ROLE:USER1,USER2 as elasticsearch-users writes it",
		"users_roles:2: role [admin] has no users",
		"users_roles:3: invalid entry: expected ROLE:USER1,USER2 as elasticsearch-users writes it",
		"users_roles:4: invalid role [ro\x02" "le]: Role names must be at least 1 and no more than 1024 characters. "
		"They can contain alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the "
		"Basic Latin (ASCII) block. Leading or trailing whitespace is not allowed.",
		"roles.yml:1: invalid role name [superuser]: Role [superuser] is reserved and may not be used.",
		"roles.yml:3: role [listy]: expected a mapping (a role descriptor), got a list",
		"roles.yml:6: role [fine] is defined twice",
		"roles.yml:8: nested deeper than 20 levels",
	};
	for (size_t i = 0; i < sizeof(wants) / sizeof(wants[0]); i++) {
		snprintf(want, sizeof(want), "%s/%s", dir, wants[i]);
		KG_CHECK(has_error(&errs, want), "missing: %s", want);
	}
	KG_CHECK(errs.n == sizeof(wants) / sizeof(wants[0]), "%zu problems, want %zu", errs.n,
	         sizeof(wants) / sizeof(wants[0]));
	if (kg__failed_here)
		print_errors(&errs);
	kg_config_errors_free(&errs);
	free(h);
	remove_dir(dir);
}

KG_TEST(test_es_roles_yml_types_plain_scalars_as_yaml_1_1)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
		{ "r: {m: {a: yes, b: Off, c: TRUE, d: 'yes'}}", "{\"m\":{\"a\":true,\"b\":false,\"c\":true,\"d\":\"yes\"}}" },
		{ "r: {m: {a: -12, b: 007, c: 1.5e3, d: .5, e: 99999999999999999999}}",
		  "{\"m\":{\"a\":-12,\"b\":\"007\",\"c\":1500.0,\"d\":0.5,\"e\":\"99999999999999999999\"}}" },
		{ "r: {m: {a: null, b: , c: \"~\", d: .inf, e: 1x}}",
		  "{\"m\":{\"a\":null,\"b\":null,\"c\":\"~\",\"d\":\".inf\",\"e\":\"1x\"}}" },
		{ "r: {m: &x [1, 2], n: *x}", "{\"m\":[1,2],\"n\":[1,2]}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_es_file_realm *r = NULL;
		kg_config_errors errs = { 0 };
		KG_CHECK(kg_es_file_realm_new(&r) == KG_OK, "new");
		kg_err err = kg_es_file_roles_parse(r, "roles.yml", cases[i].yaml, strlen(cases[i].yaml), &errs);
		KG_CHECK(err == KG_OK, "case %zu: %s", i, errs.n ? errs.v[0] : kg_strerror(err));
		const char *got = dump(kg_es_file_realm_role(r, KG_STR("r")));
		KG_CHECK(strcmp(got, cases[i].want) == 0, "case %zu: got %s, want %s", i, got, cases[i].want);
		kg_es_file_realm_free(&r);
		kg_config_errors_free(&errs);
	}
}

KG_TEST(test_es_roles_yml_refuses_syntax_errors_alias_bombs_and_second_documents)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
		{ "r: [unclosed\n", "roles.yml:2: syntax error: did not find expected ',' or ']' while parsing a flow sequence" },
		{ "a: {x: 1}\n---\nb: {x: 2}\n", "roles.yml:3: only one YAML document is allowed" },
		{ "- a\n- b\n", "roles.yml:1: expected a mapping of role names to role descriptors" },
		{ "r: {[k]: 1}\n", "roles.yml:1: a key must be a plain value, not a list or a mapping" },
		{ "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
		  "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
		  "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\nr: {m: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]}\n",
		  NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_es_file_realm *r = NULL;
		kg_config_errors errs = { 0 };
		KG_CHECK(kg_es_file_realm_new(&r) == KG_OK, "new");
		kg_err err = kg_es_file_roles_parse(r, "roles.yml", cases[i].yaml, strlen(cases[i].yaml), &errs);
		KG_CHECK(err == KG_ECONFIG, "case %zu refused: %s", i, kg_strerror(err));
		if (cases[i].want)
			KG_CHECK(has_error(&errs, cases[i].want), "case %zu: want %s, got %s", i, cases[i].want,
			         errs.n ? errs.v[0] : "nothing");
		else
			KG_CHECK(errs.n >= 1 && strstr(errs.v[errs.n - 1], "aliases expand to too much"), "bomb: %s",
			         errs.n ? errs.v[errs.n - 1] : "nothing");
		kg_es_file_realm_free(&r);
		kg_config_errors_free(&errs);
	}
}

struct body_case {
	const char *name, *body;
	bool is_create;
	const char *type, *reason; /* NULL: accepted */
};

KG_TEST(test_es_user_parse_answers_with_es_messages)
{
	static const struct body_case cases[] = {
		{ "u", "", true, "parse_exception", "request body is required" },
		{ "u", "[1]", true, "parse_exception", "expected an object, but found token [START_ARRAY]" },
		{ "u", "{\"password\":123456}", true, "parse_exception",
		  "expected field [password] to be of type string, but found [VALUE_NUMBER] instead" },
		{ "u", "{\"password\":\"12345\",\"roles\":[]}", true, "validation_exception",
		  "Validation Failed: 1: passwords must be at least [6] characters long;" },
		{ "u", "{\"password\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"roles\":[]}", true, "validation_exception",
		  "Validation Failed: 1: passwords must be at least [6] characters long;" },
		{ "u", "{\"password\":\"123456\",\"password_hash\":\"$2a$04$abcdefghijklmnopqrstuu5Jt7pYn9Rjx1oC4xDwIhR3DmHA4Ayqa\"}",
		  true, "validation_exception", "Validation Failed: 1: password_hash has already been set;" },
		{ "u", "{\"password_hash\":\"{PBKDF2}10000$abc$def\",\"roles\":[]}", true, "illegal_argument_exception",
		  "The provided password hash is not a hash or it could not be resolved to a supported hash algorithm. The "
		  "supported password hash algorithms are [bcrypt, bcrypt4, bcrypt5, bcrypt6, bcrypt7, bcrypt8, bcrypt9, "
		  "bcrypt11, bcrypt12, bcrypt13, bcrypt14]" },
		{ "u", "{\"roles\":null}", true, "parse_exception",
		  "could not parse [roles] field. expected a string array but found null value instead" },
		{ "u", "{\"roles\":{}}", true, "parse_exception",
		  "could not parse [roles] field. expected a string array but found [START_OBJECT] value instead" },
		{ "u", "{\"roles\":[\"a\",1]}", true, "parse_exception",
		  "could not parse [roles] field. expected a string array but one of the value in the array is [VALUE_NUMBER]" },
		{ "u", "{\"full_name\":1}", true, "parse_exception",
		  "expected field [full_name] to be of type string, but found [VALUE_NUMBER] instead" },
		{ "u", "{\"metadata\":[]}", true, "parse_exception",
		  "expected field [metadata] to be of type object, but found [START_ARRAY] instead" },
		{ "u", "{\"enabled\":\"true\"}", true, "parse_exception",
		  "expected field [enabled] to be of type boolean, but found [VALUE_STRING] instead" },
		{ "u", "{\"username\":\"v\"}", true, "illegal_argument_exception",
		  "[username] in source does not match the username provided [u]" },
		{ "u", "{\"nope\":1}", true, "parse_exception", "failed to parse add user request. unexpected field [nope]" },
		{ "u", "{\"password\":\"123456\"}", true, "action_request_validation_exception",
		  "Validation Failed: 1: roles are missing;" },
		{ "u", "{\"password\":\"123456\",\"metadata\":{\"_x\":1}}", true, "action_request_validation_exception",
		  "Validation Failed: 1: roles are missing;2: metadata keys may not start with [_];" },
		{ "elastic", "{\"password\":\"123456\",\"roles\":[]}", true, "action_request_validation_exception",
		  "Validation Failed: 1: user [elastic] is reserved and only the password can be changed;" },
		{ " u", "{\"roles\":[\"ok\",\"\"]}", false, "action_request_validation_exception",
		  "Validation Failed: 1: User names must be at least 1 and no more than 507 characters. They can contain "
		  "alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the Basic Latin "
		  "(ASCII) block. Leading or trailing whitespace is not allowed.;2: Role names must be at least 1 and no more "
		  "than 507 characters. They can contain alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and "
		  "printable symbols in the Basic Latin (ASCII) block. Leading or trailing whitespace is not allowed.;" },
		{ "u", "{\"roles\":[]}", true, "validation_exception",
		  "Validation Failed: 1: password must be specified unless you are updating an existing user;" },
		{ "u", "{\"roles\":[],\"roles\":[]}", true, "x_content_parse_exception",
		  "[1:19] duplicate object key near '\"roles\"'" },
		{ "u", "{\"roles\":[]}", false, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kg_es_user_req req;
		struct kg_es_fail f = { 0 };
		kg_err err = kg_es_user_parse(kg_str_c(cases[i].name), kg_str_c(cases[i].body), cases[i].is_create, &req, &f);
		if (!cases[i].type) {
			KG_CHECK(err == KG_OK, "case %zu accepted: %s", i, f.reason.p ? f.reason.p : kg_strerror(err));
		} else {
			KG_CHECK(err == KG_EINVAL && f.status == 400, "case %zu refused with 400: %s %d", i, kg_strerror(err),
			         f.status);
			KG_CHECK(f.type && strcmp(f.type, cases[i].type) == 0, "case %zu type: got %s, want %s", i,
			         f.type ? f.type : "(none)", cases[i].type);
			KG_CHECK(f.reason.p && strcmp(f.reason.p, cases[i].reason) == 0, "case %zu reason:\n  got  %s\n  want %s",
			         i, f.reason.p ? f.reason.p : "(none)", cases[i].reason);
			KG_CHECK(!req.doc && !req.has_password && !req.password_hash, "case %zu: nothing left in req", i);
		}
		kg_es_user_req_free(&req);
		kg_es_fail_free(&f);
	}
}

KG_TEST(test_es_user_parse_builds_the_stored_document_without_hashing)
{
	struct kg_es_user_req req;
	struct kg_es_fail f = { 0 };
	const char *body = "{\"password\":\"l0ng-enough\",\"roles\":\"a,b\",\"full_name\":\"Jack\",\"email\":null,"
	                   "\"metadata\":{\"intelligence\":7},\"enabled\":false,\"username\":\"jacknich\"}";
	kg_err err = kg_es_user_parse(KG_STR("jacknich"), kg_str_c(body), true, &req, &f);
	KG_CHECK(err == KG_OK, "accepted: %s", f.reason.p ? f.reason.p : kg_strerror(err));
	const char *want = "{\"email\":null,\"enabled\":false,\"full_name\":\"Jack\",\"metadata\":{\"intelligence\":7},"
	                   "\"roles\":[\"a\",\"b\"],\"username\":\"jacknich\"}";
	KG_CHECK(strcmp(dump(req.doc), want) == 0, "doc: got %s, want %s", dump(req.doc), want);
	KG_CHECK(req.has_password && strcmp(req.password.p, "l0ng-enough") == 0 && !req.password_hash, "the plain password");
	kg_es_user_req_free(&req);
	KG_CHECK(!req.doc && !req.password.p, "freed");

	/* every field is there on update (ES replaces them all), password kept by the caller */
	char *h = hash_of("whatever");
	char b2[256];
	snprintf(b2, sizeof(b2), "{\"roles\":[],\"password_hash\":\"%s\"}", h);
	err = kg_es_user_parse(KG_STR("u"), kg_str_c(b2), false, &req, &f);
	KG_CHECK(err == KG_OK, "accepted");
	want = "{\"email\":null,\"enabled\":true,\"full_name\":null,\"metadata\":{},\"roles\":[],\"username\":\"u\"}";
	KG_CHECK(strcmp(dump(req.doc), want) == 0, "doc: got %s, want %s", dump(req.doc), want);
	KG_CHECK(req.password_hash && strcmp(req.password_hash, h) == 0 && !req.has_password, "the hash as given");
	kg_es_user_req_free(&req);
	kg_es_fail_free(&f);
	free(h);
}

KG_TEST(test_es_password_parse_answers_with_es_messages)
{
	static const struct body_case cases[] = {
		{ "", "{}", false, "action_request_validation_exception", "Validation Failed: 1: password must be specified;" },
		{ "", "{\"password\":\"short\"}", false, "validation_exception",
		  "Validation Failed: 1: passwords must be at least [6] characters long;" },
		{ "", "{\"password\":true}", false, "parse_exception",
		  "expected field [password] to be of type string, but found [VALUE_BOOLEAN] instead" },
		{ "", "{\"roles\":[]}", false, "parse_exception",
		  "failed to parse change password request. unexpected field [roles]" },
		{ "", "{\"password_hash\":\"plain\"}", false, "illegal_argument_exception",
		  "The provided password hash is not a hash or it could not be resolved to a supported hash algorithm. The "
		  "supported password hash algorithms are [bcrypt, bcrypt4, bcrypt5, bcrypt6, bcrypt7, bcrypt8, bcrypt9, "
		  "bcrypt11, bcrypt12, bcrypt13, bcrypt14]" },
		{ "", "{\"password\":\"a\\u0000bcdefg\"}", false, "x_content_parse_exception",
		  "[1:27] \\u0000 is not allowed without JSON_ALLOW_NUL near '\"a\\u0000bcdefg\"'" },
		{ "", "{\"password\":\"123456\"}", false, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kg_es_user_req req;
		struct kg_es_fail f = { 0 };
		kg_err err = kg_es_password_parse(kg_str_c(cases[i].body), &req, &f);
		if (!cases[i].type) {
			KG_CHECK(err == KG_OK && req.has_password && !req.doc, "case %zu accepted", i);
		} else {
			KG_CHECK(err == KG_EINVAL && f.status == 400, "case %zu refused", i);
			KG_CHECK(f.type && strcmp(f.type, cases[i].type) == 0, "case %zu type: got %s", i, f.type);
			KG_CHECK(f.reason.p && strcmp(f.reason.p, cases[i].reason) == 0, "case %zu reason:\n  got  %s\n  want %s",
			         i, f.reason.p ? f.reason.p : "(none)", cases[i].reason);
		}
		kg_es_user_req_free(&req);
		kg_es_fail_free(&f);
	}
}

KG_TEST(test_es_role_name_and_body_answer_with_es_messages)
{
	struct kg_es_fail f = { 0 };
	KG_CHECK(kg_es_role_name_check(KG_STR("my_admin role"), &f) == KG_OK, "a valid name");
	KG_CHECK(kg_es_role_name_check(KG_STR("superuser"), &f) == KG_EINVAL, "reserved");
	KG_CHECK(strcmp(f.type, "action_request_validation_exception") == 0 && f.status == 400, "type %s", f.type);
	KG_CHECK(strcmp(f.reason.p, "Validation Failed: 1: Role [superuser] is reserved and may not be used.;") == 0,
	         "reason %s", f.reason.p);
	kg_es_fail_free(&f);
	char long_name[509];
	memset(long_name, 'r', 508);
	long_name[508] = '\0';
	KG_CHECK(kg_es_role_name_check(kg_str_c(long_name), &f) == KG_EINVAL, "508 characters");
	KG_CHECK(strstr(f.reason.p, "Role names must be at least 1 and no more than 507 characters.") != NULL, "reason %s",
	         f.reason.p);
	kg_es_fail_free(&f);
	long_name[507] = '\0';
	KG_CHECK(kg_es_role_name_check(kg_str_c(long_name), &f) == KG_OK, "507 characters are fine");

	json_t *d = NULL;
	KG_CHECK(kg_es_role_body_parse(KG_STR("r1"), KG_STR("{\"cluster\":[\"all\"]}"), &d, &f) == KG_OK && json_is_object(d),
	         "an object");
	json_decref(d);
	d = NULL;
	KG_CHECK(kg_es_role_body_parse(KG_STR("r1"), KG_STR("\"x\""), &d, &f) == KG_EINVAL && !d, "a string");
	KG_CHECK(strcmp(f.reason.p, "failed to parse role [r1]. expected an object but found [VALUE_STRING] instead") == 0,
	         "reason %s", f.reason.p);
	kg_es_fail_free(&f);
	kg_buf deep = { 0 };
	for (int i = 0; i < 21; i++)
		KG_CHECK(kg_buf_appends(&deep, KG_STR("{\"a\":")) == KG_OK, "no memory");
	KG_CHECK(kg_buf_appends(&deep, KG_STR("1")) == KG_OK, "no memory");
	for (int i = 0; i < 21; i++)
		KG_CHECK(kg_buf_appends(&deep, KG_STR("}")) == KG_OK, "no memory");
	KG_CHECK(kg_es_role_body_parse(KG_STR("r1"), kg_buf_str(&deep), &d, &f) == KG_EINVAL && !d, "21 levels refused");
	kg_buf_free(&deep, false);
	KG_CHECK(f.type && strcmp(f.type, "x_content_parse_exception") == 0, "type %s", f.type);
	kg_es_fail_free(&f);
}

KG_TEST(test_es_user_view_never_shows_the_hash)
{
	json_t *doc = json_pack("{s:s, s:[s], s:s, s:n, s:{s:i}, s:b, s:s}", "username", "jack", "roles", "admin",
	                        "full_name", "Jack", "email", "metadata", "k", 1, "enabled", 1, "password_hash",
	                        "$2y$10$secret");
	json_t *v = kg_es_user_view(doc);
	const char *want = "{\"email\":null,\"enabled\":true,\"full_name\":\"Jack\",\"metadata\":{\"k\":1},"
	                   "\"roles\":[\"admin\"],\"username\":\"jack\"}";
	KG_CHECK(strcmp(dump(v), want) == 0, "view: got %s, want %s", dump(v), want);
	json_decref(v);
	json_decref(doc);
	KG_CHECK(kg_es_user_view(NULL) == NULL, "not a document");

	v = kg_es_reserved_user_view("elastic", true);
	want = "{\"email\":null,\"enabled\":true,\"full_name\":null,\"metadata\":{\"_reserved\":true},"
	       "\"roles\":[\"superuser\"],\"username\":\"elastic\"}";
	KG_CHECK(strcmp(dump(v), want) == 0, "elastic: got %s, want %s", dump(v), want);
	json_decref(v);
	KG_CHECK(kg_es_user_is_reserved(KG_STR("kibana_system")) && !kg_es_user_is_reserved(KG_STR("elastic2")),
	         "reserved users");
}

int main(void)
{
	return kg_test_main();
}
