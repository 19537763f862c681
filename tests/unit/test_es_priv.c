/* Elasticsearch's privileges APIs (lib/es_priv.c): application privileges
 * parsed, validated and shown as ES does, has_privileges asked and answered
 * in ES's words and shape, the builtin list and a user's privileges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keygate/es_priv.h"
#include "kgtest.h"

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (!j)
		printf("# bad test JSON: %s: %s\n", text, jerr.text);
	return j;
}

static char *dump(const json_t *j)
{
	return j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : strdup("(null)");
}

static void check_json(const json_t *got, const char *want, const char *what)
{
	char *g = dump(got);
	KG_CHECK(strcmp(g, want) == 0, "%s:\n   got  %s\n   want %s", what, g, want);
	free(g);
}

/* A PUT body refused: status, type and reason exactly. */
static void check_put_refused(const char *body, int status, const char *type, const char *reason)
{
	json_t *docs = NULL;
	struct kg_es_fail f = { 0 };
	kg_err err = kg_es_privileges_parse(kg_str_c(body), &docs, &f);
	KG_CHECK(err == KG_EINVAL, "%s: not refused (err %d)", body, err);
	KG_CHECK(f.status == status, "%s: status %d, want %d", body, f.status, status);
	KG_CHECK(f.type && strcmp(f.type, type) == 0, "%s: type %s, want %s", body, f.type ? f.type : "(none)", type);
	KG_CHECK(f.reason.p && strcmp(f.reason.p, reason) == 0, "%s:\n   reason %s\n   want   %s", body,
	         f.reason.p ? f.reason.p : "(none)", reason);
	KG_CHECK(docs == NULL, "%s: documents despite the refusal", body);
	kg_es_fail_free(&f);
}

static json_t *put_ok(const char *body)
{
	json_t *docs = NULL;
	struct kg_es_fail f = { 0 };
	kg_err err = kg_es_privileges_parse(kg_str_c(body), &docs, &f);
	KG_CHECK(err == KG_OK, "%s: refused (%d %s: %s)", body, f.status, f.type ? f.type : "", f.reason.p ? f.reason.p : "");
	kg_es_fail_free(&f);
	return docs;
}

/* ES's docs example: two privileges of myapp */
#define MYAPP_BODY                                                                                              \
	"{\"myapp\":{\"read\":{\"actions\":[\"data:read/*\",\"action:login\",\"data:read/*\"],"                 \
	"\"metadata\":{\"description\":\"Read access to myapp\"}},"                                             \
	"\"write\":{\"application\":\"myapp\",\"name\":\"write\",\"actions\":\"data:write/*\"}},"               \
	"\"other-app\":{\"admin\":{\"actions\":[\"*\"]}}}"

KG_TEST(test_put_privileges_normalises_documents)
{
	json_t *docs = put_ok(MYAPP_BODY);
	check_json(docs,
	           "[{\"application\":\"myapp\",\"name\":\"read\",\"actions\":[\"data:read/*\",\"action:login\"],"
	           "\"metadata\":{\"description\":\"Read access to myapp\"}},"
	           "{\"application\":\"myapp\",\"name\":\"write\",\"actions\":[\"data:write/*\"],\"metadata\":{}},"
	           "{\"application\":\"other-app\",\"name\":\"admin\",\"actions\":[\"*\"],\"metadata\":{}}]",
	           "normalised documents");
	bool existed[] = { false, true, false };
	json_t *ans = kg_es_privileges_put_answer(docs, existed);
	check_json(ans, "{\"myapp\":{\"read\":{\"created\":true},\"write\":{\"created\":false}},\"other-app\":{\"admin\":{\"created\":true}}}",
	           "PUT answer");
	json_decref(ans);
	json_decref(docs);
}

KG_TEST(test_put_privileges_refusals_in_es_words)
{
	check_put_refused("", 400, "parse_exception", "request body is required");
	check_put_refused("[]", 400, "parse_exception", "expected object but found START_ARRAY instead");
	check_put_refused("{\"myapp\":[]}", 400, "parse_exception",
	                  "expected the value for myapp to be an object, but found START_ARRAY instead");
	check_put_refused("{\"myapp\":{\"read\":\"x\"}}", 400, "parse_exception",
	                  "expected the value for myapp to be an object, but found VALUE_STRING instead");
	check_put_refused("{\"myapp\":{\"read\":{\"actions\":[\"a/b\"],\"foo\":1}}}", 400, "x_content_parse_exception",
	                  "[application-privilege] unknown field [foo]");
	check_put_refused("{\"myapp\":{\"read\":{\"actions\":[1]}}}", 400, "x_content_parse_exception",
	                  "[application-privilege] failed to parse field [actions]");
	check_put_refused("{\"myapp\":{\"read\":{\"actions\":[\"a/b\"],\"metadata\":[]}}}", 400, "x_content_parse_exception",
	                  "[application-privilege] metadata doesn't support values of type: START_ARRAY");
	check_put_refused("{\"myapp\":{\"read\":{\"application\":\"other\",\"actions\":[\"a/b\"]}}}", 400,
	                  "illegal_argument_exception",
	                  "privilege application [other] in source does not match the provided application [myapp]");
	check_put_refused("{\"myapp\":{\"read\":{\"name\":\"write\",\"actions\":[\"a/b\"]}}}", 400, "illegal_argument_exception",
	                  "privilege name [write] in source does not match the provided name [read]");
	check_put_refused("{}", 400, "action_request_validation_exception",
	                  "Validation Failed: 1: At least one application privilege must be provided;");
	/* every problem numbered, in ES's order */
	check_put_refused("{\"ab\":{\"Read\":{\"actions\":[\"login\",\"a b/c\"],\"metadata\":{\"_x\":1}}},"
	                  "\"app*\":{\"ok\":{\"actions\":[]}}}",
	                  400, "action_request_validation_exception",
	                  "Validation Failed: 1: An application name prefix must be at least 3 characters long (found 'ab');"
	                  "2: Application privilege names must match the pattern ^[a-z][a-zA-Z0-9_.-]*$ (found 'Read');"
	                  "3: action [login] must contain one of [ '/' , '*' , ':' ];"
	                  "4: Application privilege names and actions must match the pattern ^\\p{Graph}*$ (found 'a b/c');"
	                  "5: metadata keys may not start with [_] (in privilege ab Read);"
	                  "6: Application names may not contain '*' (found 'app*');"
	                  "7: Application privileges must have at least one action;");
	check_put_refused("{\"1app\":{\"r\":{\"actions\":[\"a:b\"]}}}", 400, "action_request_validation_exception",
	                  "Validation Failed: 1: An application name prefix must match the pattern ^[a-z][A-Za-z0-9]*$ (found '1app');");
	check_put_refused("{\"app-a|b\":{\"r\":{\"actions\":[\"a:b\"]}}}", 400, "action_request_validation_exception",
	                  "Validation Failed: 1: An application name suffix may not contain any of the characters '\\/*?\"<>| ,' (found 'a|b');");
	check_put_refused("{\"my app\":{\"r\":{\"actions\":[\"a:b\"]}}}", 400, "action_request_validation_exception",
	                  "Validation Failed: 1: Application names may not contain whitespace (found 'my app');");
}

static json_t *myapp_set(void)
{
	json_t *docs = put_ok(MYAPP_BODY), *set = json_object();
	size_t i;
	json_t *d;
	json_array_foreach (docs, i, d)
		KG_CHECK(kg_es_privs_set_add(set, d) == KG_OK, "document %zu not added", i);
	json_decref(docs);
	return set;
}

KG_TEST(test_get_and_delete_privileges_views)
{
	json_t *set = myapp_set(), *v;
	v = kg_es_privs_view(set, KG_STR(""), KG_STR(""));
	check_json(v,
	           "{\"myapp\":{\"read\":{\"application\":\"myapp\",\"name\":\"read\",\"actions\":[\"data:read/*\",\"action:login\"],"
	           "\"metadata\":{\"description\":\"Read access to myapp\"}},"
	           "\"write\":{\"application\":\"myapp\",\"name\":\"write\",\"actions\":[\"data:write/*\"],\"metadata\":{}}},"
	           "\"other-app\":{\"admin\":{\"application\":\"other-app\",\"name\":\"admin\",\"actions\":[\"*\"],\"metadata\":{}}}}",
	           "GET all");
	json_decref(v);
	v = kg_es_privs_view(set, KG_STR("myapp"), KG_STR("write,nope"));
	check_json(v, "{\"myapp\":{\"write\":{\"application\":\"myapp\",\"name\":\"write\",\"actions\":[\"data:write/*\"],\"metadata\":{}}}}",
	           "GET one by a comma list");
	json_decref(v);
	v = kg_es_privs_view(set, KG_STR("other*"), KG_STR(""));
	KG_CHECK(json_object_size(v) == 1 && json_object_get(v, "other-app"), "GET by a trailing wildcard");
	json_decref(v);
	v = kg_es_privs_view(set, KG_STR("nope"), KG_STR(""));
	check_json(v, "{}", "GET of an unknown application (the caller's 404)");
	json_decref(v);
	v = kg_es_privs_delete_answer(set, KG_STR("myapp"), KG_STR("read,nope"));
	check_json(v, "{\"myapp\":{\"read\":{\"found\":true},\"nope\":{\"found\":false}}}", "DELETE answer");
	json_decref(v);
	json_decref(set);
}

KG_TEST(test_resolver_expands_privilege_names)
{
	json_t *set = myapp_set();
	KG_CHECK(kg_es_privs_resolve(set, KG_STR("myapp"), KG_STR("read"), KG_STR("data:read/docs")), "read covers data:read/docs");
	KG_CHECK(kg_es_privs_resolve(set, KG_STR("myapp"), KG_STR("read"), KG_STR("action:login")), "read covers action:login");
	KG_CHECK(!kg_es_privs_resolve(set, KG_STR("myapp"), KG_STR("read"), KG_STR("data:write/docs")), "read covers a write");
	KG_CHECK(!kg_es_privs_resolve(set, KG_STR("other-app"), KG_STR("read"), KG_STR("data:read/docs")),
	         "another application's read used");
	KG_CHECK(kg_es_privs_resolve(set, KG_STR("myapp"), KG_STR("undefined"), KG_STR("undefined")), "a name is itself");

	/* a role saying privileges ["read"] grants what read is defined as */
	json_t *map = parse("{\"r\":{\"applications\":[{\"application\":\"myapp\",\"privileges\":[\"read\"],\"resources\":[\"*\"]}]}}");
	kg_es_perm *p = NULL;
	KG_CHECK(kg_es_perm_compile(map, &p) == KG_OK, "not compiled");
	KG_CHECK(kg_es_perm_app_resolved(p, KG_STR("myapp"), KG_STR("data:read/x"), KG_STR("res"), kg_es_privs_resolve, set),
	         "data:read/x through read");
	KG_CHECK(!kg_es_perm_app_resolved(p, KG_STR("myapp"), KG_STR("data:write/x"), KG_STR("res"), kg_es_privs_resolve, set),
	         "data:write/x through read");
	kg_es_perm_free(&p);
	json_decref(map);
	json_decref(set);
}

static void check_has_refused(const char *body, const char *type, const char *reason)
{
	struct kg_es_has_privs req;
	struct kg_es_fail f = { 0 };
	kg_err err = kg_es_has_privileges_parse(kg_str_c(body), "joe", &req, &f);
	KG_CHECK(err == KG_EINVAL, "%s: not refused", body);
	KG_CHECK(f.status == 400 && f.type && strcmp(f.type, type) == 0, "%s: %d %s, want 400 %s", body, f.status,
	         f.type ? f.type : "", type);
	KG_CHECK(f.reason.p && strcmp(f.reason.p, reason) == 0, "%s:\n   reason %s\n   want   %s", body,
	         f.reason.p ? f.reason.p : "(none)", reason);
	kg_es_has_privileges_free(&req);
	kg_es_fail_free(&f);
}

KG_TEST(test_has_privileges_refusals_in_es_words)
{
	check_has_refused("", "parse_exception", "request body or source parameter is required");
	check_has_refused("[]", "parse_exception", "failed to parse privileges check [joe]. expected an object but found [START_ARRAY] instead");
	check_has_refused("{\"cluster\":[\"monitor\"],\"indices\":[]}", "parse_exception",
	                  "failed to parse privileges check [joe]. unexpected field [indices]");
	check_has_refused("{}", "parse_exception",
	                  "failed to parse privileges check [joe]. All privilege fields [cluster,index,applications] are missing");
	check_has_refused("{\"cluster\":[],\"index\":[],\"application\":[]}", "action_request_validation_exception",
	                  "Validation Failed: 1: must specify at least one privilege;");
	check_has_refused("{\"index\":[{\"names\":[\"a\"],\"privileges\":[\"read\"],\"query\":{\"match_all\":{}}}]}",
	                  "parse_exception", "Field [query] is not supported in a has_privileges request");
	check_has_refused("{\"index\":[{\"names\":[\"a\"],\"privileges\":[\"read\"],\"field_security\":{\"grant\":[\"f\"]}}]}",
	                  "parse_exception", "Field [field_security] is not supported in a has_privileges request");
	check_has_refused("{\"index\":[{\"names\":[\"a\"]}]}", "parse_exception",
	                  "failed to parse indices privileges for role [joe]. missing required [privileges] field");
	check_has_refused("{\"application\":[{\"application\":\"ab\",\"privileges\":[\"read\"],\"resources\":[\"*\"]},"
	                  "{\"application\":\"app*\",\"privileges\":[\"read\"],\"resources\":[\"*\"]}]}",
	                  "action_request_validation_exception",
	                  "Validation Failed: 1: An application name prefix must be at least 3 characters long (found 'ab');"
	                  "2: Application names may not contain '*' (found 'app*');");
}

/* Parses and evaluates body for the map of descriptors (a user) or a key
 * (key_map limited by map), and compares ES's answer. */
static void check_has(const char *map, const char *key_map, const json_t *set, const char *body, const char *want)
{
	json_t *m = parse(map), *k = key_map ? parse(key_map) : NULL, *ans = NULL;
	kg_es_perm *p = NULL;
	KG_CHECK((key_map ? kg_es_perm_compile_key(k, m, &p) : kg_es_perm_compile(m, &p)) == KG_OK, "%s: not compiled", map);
	struct kg_es_has_privs req;
	struct kg_es_fail f = { 0 };
	kg_err err = kg_es_has_privileges_parse(kg_str_c(body), "joe", &req, &f);
	if (!err)
		err = kg_es_has_privileges_eval(&req, p, set, "joe", &ans, &f);
	KG_CHECK(err == KG_OK, "%s: refused (%s)", body, f.reason.p ? f.reason.p : "");
	check_json(ans, want, body);
	json_decref(ans);
	kg_es_has_privileges_free(&req);
	kg_es_fail_free(&f);
	kg_es_perm_free(&p);
	json_decref(m);
	json_decref(k);
}

#define TWO_ROLES                                                                                                      \
	"{\"ops\":{\"cluster\":[\"monitor\",\"manage_api_key\"],"                                                        \
	"\"indices\":[{\"names\":[\"logs-*\"],\"privileges\":[\"read\"]}]},"                                             \
	"\"writer\":{\"indices\":[{\"names\":[\"logs-app\",\"metrics\"],\"privileges\":[\"write\"]}],"                    \
	"\"applications\":[{\"application\":\"myapp\",\"privileges\":[\"read\"],\"resources\":[\"docs/*\"]}]}}"

KG_TEST(test_has_privileges_multi_role_answer)
{
	json_t *set = myapp_set();
	check_has(TWO_ROLES, NULL, set,
	          "{\"cluster\":[\"monitor\",\"manage_own_api_key\",\"manage_security\",\"cluster:monitor/health\"],"
	          "\"index\":[{\"names\":[\"logs-app\",\"logs-*\",\"*\"],\"privileges\":[\"read\",\"index\"]}],"
	          "\"application\":[{\"application\":\"myapp\",\"privileges\":[\"read\",\"data:read/x\",\"data:write/x\"],"
	          "\"resources\":[\"docs/1\",\"other\"]}]}",
	          "{\"username\":\"joe\",\"has_all_requested\":false,"
	          "\"cluster\":{\"monitor\":true,\"manage_own_api_key\":true,\"manage_security\":false,\"cluster:monitor/health\":true},"
	          "\"index\":{\"logs-app\":{\"read\":true,\"index\":true},\"logs-*\":{\"read\":true,\"index\":false},"
	          "\"*\":{\"read\":false,\"index\":false}},"
	          "\"application\":{\"myapp\":{\"docs/1\":{\"read\":true,\"data:read/x\":true,\"data:write/x\":false},"
	          "\"other\":{\"read\":false,\"data:read/x\":false,\"data:write/x\":false}}}}");
	check_has(TWO_ROLES, NULL, set, "{\"cluster\":[\"monitor\"],\"index\":[{\"names\":\"metrics\",\"privileges\":[\"write\"]}]}",
	          "{\"username\":\"joe\",\"has_all_requested\":true,\"cluster\":{\"monitor\":true},"
	          "\"index\":{\"metrics\":{\"write\":true}},\"application\":{}}");
	json_decref(set);
}

KG_TEST(test_has_privileges_application_names_resolve)
{
	json_t *set = myapp_set();
	/* the role holds the action patterns; asking for the NAME read means all of read's actions */
	const char *actions_role = "{\"r\":{\"applications\":[{\"application\":\"myapp\",\"privileges\":[\"data:read/*\"],\"resources\":[\"*\"]}]}}";
	check_has(actions_role, NULL, set,
	          "{\"application\":[{\"application\":\"myapp\",\"privileges\":[\"read\"],\"resources\":[\"r1\"]}]}",
	          "{\"username\":\"joe\",\"has_all_requested\":false,\"cluster\":{},\"index\":{},"
	          "\"application\":{\"myapp\":{\"r1\":{\"read\":false}}}}"); /* action:login is missing */
	const char *both_role = "{\"r\":{\"applications\":[{\"application\":\"myapp\",\"privileges\":[\"data:read/*\",\"action:*\"],\"resources\":[\"*\"]}]}}";
	check_has(both_role, NULL, set,
	          "{\"application\":[{\"application\":\"myapp\",\"privileges\":[\"read\"],\"resources\":[\"r1\"]}]}",
	          "{\"username\":\"joe\",\"has_all_requested\":true,\"cluster\":{},\"index\":{},"
	          "\"application\":{\"myapp\":{\"r1\":{\"read\":true}}}}");
	/* without the stored definitions, only the same name answers */
	check_has(TWO_ROLES, NULL, NULL,
	          "{\"application\":[{\"application\":\"myapp\",\"privileges\":[\"read\",\"data:read/x\"],\"resources\":[\"docs/1\"]}]}",
	          "{\"username\":\"joe\",\"has_all_requested\":false,\"cluster\":{},\"index\":{},"
	          "\"application\":{\"myapp\":{\"docs/1\":{\"read\":true,\"data:read/x\":false}}}}");
	json_decref(set);
}

KG_TEST(test_has_privileges_of_a_key_is_the_intersection)
{
	/* the key asks for all, its owner holds manage_own_api_key and read on logs-* */
	check_has("{\"o\":{\"cluster\":[\"manage_own_api_key\"],\"indices\":[{\"names\":[\"logs-*\"],\"privileges\":[\"read\"]}]}}",
	          "{\"k\":{\"cluster\":[\"all\"],\"indices\":[{\"names\":[\"*\"],\"privileges\":[\"all\"]}]}}", NULL,
	          "{\"cluster\":[\"manage_own_api_key\",\"manage_api_key\"],"
	          "\"index\":[{\"names\":[\"logs-1\",\"other\"],\"privileges\":[\"read\",\"write\"]}]}",
	          "{\"username\":\"joe\",\"has_all_requested\":false,"
	          "\"cluster\":{\"manage_own_api_key\":true,\"manage_api_key\":false},"
	          "\"index\":{\"logs-1\":{\"read\":true,\"write\":false},\"other\":{\"read\":false,\"write\":false}},"
	          "\"application\":{}}");
}

KG_TEST(test_has_privileges_unknown_privilege_is_400)
{
	json_t *m = parse("{\"r\":{\"cluster\":[\"all\"]}}"), *ans = NULL;
	kg_es_perm *p = NULL;
	KG_CHECK(kg_es_perm_compile(m, &p) == KG_OK, "not compiled");
	static const char *const bodies[] = { "{\"cluster\":[\"Bogus\"]}", "{\"index\":[{\"names\":[\"a\"],\"privileges\":[\"monitor_ml\"]}]}" };
	static const char *const prefixes[] = { "unknown cluster privilege [bogus]. a privilege must be either one of the predefined cluster privilege names [",
		                                "unknown index privilege [monitor_ml]. a privilege must be either one of the predefined fixed indices privileges [" };
	for (size_t i = 0; i < 2; i++) {
		struct kg_es_has_privs req;
		struct kg_es_fail f = { 0 };
		KG_CHECK(kg_es_has_privileges_parse(kg_str_c(bodies[i]), "joe", &req, &f) == KG_OK, "%s: refused at parse", bodies[i]);
		KG_CHECK(kg_es_has_privileges_eval(&req, p, NULL, "joe", &ans, &f) == KG_EINVAL, "%s: evaluated", bodies[i]);
		KG_CHECK(f.status == 400 && f.type && strcmp(f.type, "illegal_argument_exception") == 0, "%s: type", bodies[i]);
		KG_CHECK(f.reason.p && strncmp(f.reason.p, prefixes[i], strlen(prefixes[i])) == 0, "%s: reason %s", bodies[i],
		         f.reason.p ? f.reason.p : "");
		KG_CHECK(ans == NULL, "an answer despite the refusal");
		kg_es_has_privileges_free(&req);
		kg_es_fail_free(&f);
	}
	kg_es_perm_free(&p);
	json_decref(m);
}

KG_TEST(test_builtin_privileges)
{
	json_t *b = kg_es_builtin_privileges();
	json_t *c = json_object_get(b, "cluster"), *i = json_object_get(b, "index");
	KG_CHECK(json_array_size(c) > 40, "%zu cluster privileges", json_array_size(c));
	KG_CHECK(strcmp(json_string_value(json_array_get(c, 0)), "all") == 0, "cluster not sorted: %s first",
	         json_string_value(json_array_get(c, 0)));
	for (size_t k = 1; k < json_array_size(c); k++)
		KG_CHECK(strcmp(json_string_value(json_array_get(c, k - 1)), json_string_value(json_array_get(c, k))) < 0,
		         "cluster not sorted at %zu", k);
	static const char *const must[] = { "none", "monitor", "manage", "manage_api_key", "manage_own_api_key",
		                            "manage_security", "read_security", "all" };
	for (size_t k = 0; k < sizeof(must) / sizeof(must[0]); k++) {
		bool is_there = false;
		for (size_t n = 0; n < json_array_size(c); n++)
			is_there = is_there || strcmp(json_string_value(json_array_get(c, n)), must[k]) == 0;
		KG_CHECK(is_there, "cluster privilege %s missing", must[k]);
	}
	KG_CHECK(json_array_size(i) == 22 && strcmp(json_string_value(json_array_get(i, 0)), "all") == 0, "index list");
	check_json(json_object_get(b, "remote_cluster"), "[\"monitor_enrich\"]", "remote_cluster");
	json_decref(b);
}

KG_TEST(test_user_privileges_merges_as_es)
{
	json_t *m = parse("{\"a\":{\"cluster\":[\"monitor\",\"all\"],\"indices\":[{\"names\":[\"b\",\"a\"],\"privileges\":[\"write\"],"
	                  "\"allow_restricted_indices\":false}],\"applications\":[{\"application\":\"myapp\",\"privileges\":[\"read\"],"
	                  "\"resources\":[\"*\"]}],\"run_as\":[\"z\"],\"metadata\":{}},"
	                  "\"b\":{\"cluster\":[\"monitor\"],\"global\":[{\"application\":{\"manage\":{\"applications\":[\"x\"]}}}],"
	                  "\"indices\":[{\"names\":[\"a\",\"b\"],\"privileges\":[\"read\"],\"allow_restricted_indices\":false},"
	                  "{\"names\":[\"c\"],\"privileges\":[\"read\"],\"field_security\":{\"grant\":[\"f\"]},\"query\":\"{\\\"match_all\\\":{}}\","
	                  "\"allow_restricted_indices\":true}],"
	                  "\"applications\":[{\"application\":\"myapp\",\"privileges\":[\"write\"],\"resources\":[\"*\"]}],\"run_as\":[\"y\",\"z\"]}}"),
	       *out = NULL;
	KG_CHECK(kg_es_user_privileges(m, &out) == KG_OK, "refused");
	check_json(out,
	           "{\"cluster\":[\"all\",\"monitor\"],\"global\":[{\"application\":{\"manage\":{\"applications\":[\"x\"]}}}],"
	           "\"indices\":[{\"names\":[\"a\",\"b\"],\"privileges\":[\"read\",\"write\"],\"allow_restricted_indices\":false},"
	           "{\"names\":[\"c\"],\"privileges\":[\"read\"],\"field_security\":[{\"grant\":[\"f\"]}],\"query\":[\"{\\\"match_all\\\":{}}\"],"
	           "\"allow_restricted_indices\":true}],"
	           "\"applications\":[{\"application\":\"myapp\",\"privileges\":[\"read\",\"write\"],\"resources\":[\"*\"]}],"
	           "\"run_as\":[\"y\",\"z\"]}",
	           "_privileges");
	json_decref(out);
	json_decref(m);
	json_t *bad = parse("[1]");
	KG_CHECK(kg_es_user_privileges(bad, &out) == KG_EINVAL && out == NULL, "a non-map accepted");
	json_decref(bad);
}

int main(void)
{
	return kg_test_main();
}
