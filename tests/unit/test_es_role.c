/* Elasticsearch role descriptors (lib/es_role.c): ES's normal form byte for
 * byte, each refusal in ES's words, and what each privilege grants. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keygate/es_role.h"
#include "kgtest.h"

#define SEC "cluster:admin/xpack/security/"

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
	return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

/* Normalises a map and compares the compact result. */
static void check_normal(const char *in, bool for_key, const char *want)
{
	json_t *j = parse(in), *out = NULL;
	struct kg_es_fail f = { 0 };
	kg_err err = kg_es_roles_normalise(j, for_key, &out, &f);
	KG_CHECK(err == KG_OK, "%s: refused (%d %s: %s)", in, f.status, f.type ? f.type : "", f.reason.p ? f.reason.p : "");
	if (out) {
		char *got = dump(out);
		KG_CHECK(strcmp(got, want) == 0, "%s:\n   got  %s\n   want %s", in, got, want);
		free(got);
	}
	json_decref(out);
	json_decref(j);
	kg_es_fail_free(&f);
}

static void check_refused(const char *in, bool for_key, int status, const char *type, const char *reason)
{
	json_t *j = parse(in), *out = NULL;
	struct kg_es_fail f = { 0 };
	kg_err err = kg_es_roles_normalise(j, for_key, &out, &f);
	KG_CHECK(err == KG_EINVAL && !out, "%s: accepted (err %d)", in, err);
	KG_CHECK(f.status == status, "%s: status %d, want %d", in, f.status, status);
	KG_CHECK(f.type && strcmp(f.type, type) == 0, "%s: type %s, want %s", in, f.type ? f.type : "(null)", type);
	KG_CHECK(f.reason.p && strcmp(f.reason.p, reason) == 0, "%s:\n   reason %s\n   want   %s", in,
	         f.reason.p ? f.reason.p : "(null)", reason);
	json_decref(out);
	json_decref(j);
	kg_es_fail_free(&f);
}

KG_TEST(test_normal_form_fills_es_defaults_in_es_order)
{
	/* the seed's create example */
	check_normal("{\"role-a\":{\"cluster\":[\"all\"],\"indices\":[{\"names\":[\"index-a*\"],\"privileges\":[\"read\"]}]}}",
	             true,
	             "{\"role-a\":{\"cluster\":[\"all\"],\"indices\":[{\"names\":[\"index-a*\"],\"privileges\":[\"read\"],"
	             "\"allow_restricted_indices\":false}],\"applications\":[],\"run_as\":[],\"metadata\":{},"
	             "\"transient_metadata\":{\"enabled\":true}}}");
	/* index is printed as indices, a string names becomes an array, fields come out in ES's order */
	check_normal("{\"r\":{\"metadata\":{\"m\":1},\"run_as\":[\"bob\"],\"index\":[{\"privileges\":[\"read\"],\"names\":\"logs\"}],"
	             "\"cluster\":[\"monitor\"]}}",
	             false,
	             "{\"r\":{\"cluster\":[\"monitor\"],\"indices\":[{\"names\":[\"logs\"],\"privileges\":[\"read\"],"
	             "\"allow_restricted_indices\":false}],\"applications\":[],\"run_as\":[\"bob\"],\"metadata\":{\"m\":1},"
	             "\"transient_metadata\":{\"enabled\":true}}}");
	/* an empty descriptor and an empty map */
	check_normal("{\"r\":{}}", true,
	             "{\"r\":{\"cluster\":[],\"indices\":[],\"applications\":[],\"run_as\":[],\"metadata\":{},"
	             "\"transient_metadata\":{\"enabled\":true}}}");
	check_normal("{}", true, "{}");
}

KG_TEST(test_normal_form_of_every_field)
{
	check_normal("{\"r\":{\"applications\":[{\"resources\":[\"/api/*\"],\"privileges\":[\"GET\"],\"application\":\"keygate\"}],"
	             "\"global\":{\"application\":{\"manage\":{\"applications\":[\"keygate*\"]}}},"
	             "\"indices\":[{\"names\":[\"a\",\"b\"],\"privileges\":[\"read\"],\"query\":{\"term\":{\"x\":1}},"
	             "\"field_security\":{\"except\":[\"ab\"],\"grant\":[\"a*\"]},\"allow_restricted_indices\":true}],"
	             "\"transient_metadata\":{\"enabled\":false},\"type\":\"role\"}}",
	             false,
	             "{\"r\":{\"cluster\":[],\"global\":{\"application\":{\"manage\":{\"applications\":[\"keygate*\"]}}},"
	             "\"indices\":[{\"names\":[\"a\",\"b\"],\"privileges\":[\"read\"],"
	             "\"field_security\":{\"grant\":[\"a*\"],\"except\":[\"ab\"]},\"query\":\"{\\\"term\\\":{\\\"x\\\":1}}\","
	             "\"allow_restricted_indices\":true}],"
	             "\"applications\":[{\"application\":\"keygate\",\"privileges\":[\"GET\"],\"resources\":[\"/api/*\"]}],"
	             "\"run_as\":[],\"metadata\":{},\"transient_metadata\":{\"enabled\":true}}}");
	/* the seed's restriction example; an empty restriction is no restriction; a string query stays */
	check_normal("{\"role-source1\":{\"indices\":[{\"names\":[\"test-*\"],\"privileges\":[\"read\"],\"query\":\"{}\"}],"
	             "\"restriction\":{\"workflows\":[\"search_application_query\"]}}}",
	             true,
	             "{\"role-source1\":{\"cluster\":[],\"indices\":[{\"names\":[\"test-*\"],\"privileges\":[\"read\"],"
	             "\"query\":\"{}\",\"allow_restricted_indices\":false}],\"applications\":[],\"run_as\":[],\"metadata\":{},"
	             "\"transient_metadata\":{\"enabled\":true},\"restriction\":{\"workflows\":[\"search_application_query\"]}}}");
	check_normal("{\"r\":{\"restriction\":{}}}", true,
	             "{\"r\":{\"cluster\":[],\"indices\":[],\"applications\":[],\"run_as\":[],\"metadata\":{},"
	             "\"transient_metadata\":{\"enabled\":true}}}");
}

KG_TEST(test_normal_form_is_a_fixed_point)
{
	const char *in = "{\"r\":{\"index\":[{\"names\":\"x\",\"privileges\":[\"all\"],\"query\":{\"a\":[1]},"
	                 "\"field_security\":{\"grant\":[\"*\"]}}],\"global\":{\"profile\":{\"write\":{\"applications\":[\"k\"]}}},"
	                 "\"restriction\":{\"workflows\":[\"search_application_analytics\"]}}}";
	json_t *j = parse(in), *once = NULL, *twice = NULL;
	struct kg_es_fail f = { 0 };
	KG_CHECK(kg_es_roles_normalise(j, true, &once, &f) == KG_OK, "refused: %s", f.reason.p ? f.reason.p : "");
	KG_CHECK(once && kg_es_roles_normalise(once, true, &twice, &f) == KG_OK, "normal form refused: %s",
	         f.reason.p ? f.reason.p : "");
	if (once && twice) {
		char *a = dump(once), *b = dump(twice);
		KG_CHECK(strcmp(a, b) == 0, "changed:\n   %s\n   %s", a, b);
		free(a);
		free(b);
	}
	json_decref(j);
	json_decref(once);
	json_decref(twice);
	kg_es_fail_free(&f);
}

#define CLUSTER_NAMES                                                                                                  \
	"manage_own_api_key,none,cancel_task,delegate_pki,grant_api_key,manage_autoscaling,manage_enrich,"            \
	"manage_index_templates,manage_logstash_pipelines,manage_oidc,manage_saml,manage_search_application,"         \
	"manage_service_account,manage_token,manage_user_profile,monitor_ml,monitor_rollup,monitor_snapshot,"        \
	"monitor_text_structure,monitor_watcher,read_ccr,read_ilm,read_pipeline,read_security,read_slm,"             \
	"send_behavioral_analytics_event,transport_client,create_snapshot,manage_behavioral_analytics,manage_ccr,"   \
	"manage_ilm,manage_ml,manage_rollup,manage_slm,manage_watcher,monitor_data_frame_transforms,"               \
	"monitor_transform,manage_api_key,manage_ingest_pipelines,manage_pipeline,manage_data_frame_transforms,"   \
	"manage_transform,monitor,manage_security,manage,all"
#define INDEX_NAMES                                                                                                    \
	"all,auto_configure,create,create_doc,create_index,cross_cluster_replication,"                                 \
	"cross_cluster_replication_internal,delete,delete_index,index,maintenance,manage,manage_data_stream_lifecycle," \
	"manage_follow_index,manage_ilm,manage_leader_index,monitor,none,read,read_cross_cluster,view_index_metadata,write"

KG_TEST(test_unknown_privileges_are_numbered_validation_errors)
{
	check_refused("{\"r\":{\"cluster\":[\"foo\",\"all\",\"cluster:admin/xpack/security/api_key/*\"]}}", true, 400,
	              "action_request_validation_exception",
	              "Validation Failed: 1: unknown cluster privilege [foo]. a privilege must be either one of the predefined "
	              "cluster privilege names [" CLUSTER_NAMES "] or a pattern over one of the available cluster actions;");
	/* names are lower-cased as ES resolves them; one problem per index entry */
	check_refused("{\"r\":{\"cluster\":[\"ALL\",\"Bar\"],\"indices\":[{\"names\":\"i\",\"privileges\":[\"READ\",\"x\",\"y\"]},"
	              "{\"names\":\"j\",\"privileges\":[\"indices:data/read/*\",\"z\"]}]}}",
	              false, 400, "action_request_validation_exception",
	              "Validation Failed: 1: unknown cluster privilege [bar]. a privilege must be either one of the predefined "
	              "cluster privilege names [" CLUSTER_NAMES "] or a pattern over one of the available cluster actions;"
	              "2: unknown index privilege [x]. a privilege must be either one of the predefined fixed indices "
	              "privileges [" INDEX_NAMES "] or a pattern over one of the available index actions;"
	              "3: unknown index privilege [z]. a privilege must be either one of the predefined fixed indices "
	              "privileges [" INDEX_NAMES "] or a pattern over one of the available index actions;");
	check_refused("{\"r\":{\"metadata\":{\"_k\":1},\"applications\":[{\"application\":\"ab\",\"privileges\":[\"a b\"],"
	              "\"resources\":[\"*\"]},{\"application\":\"app*x\",\"privileges\":[\"*\"],\"resources\":[\"*\"]},"
	              "{\"application\":\"\",\"privileges\":[\"*\"],\"resources\":[\"*\"]}],"
	              "\"restriction\":{\"workflows\":[\"nope\",\" Search_Application_Query \"]}}}",
	              true, 400, "action_request_validation_exception",
	              "Validation Failed: 1: An application name prefix must be at least 3 characters long (found 'ab');"
	              "2: Application privilege names and actions must match the pattern ^\\p{Graph}*$ (found 'a b');"
	              "3: Application name patterns only support trailing wildcards (found 'app*x');"
	              "4: Application names cannot be blank;"
	              "5: role descriptor metadata keys may not start with [_];"
	              "6: Unknown workflow [nope]. A workflow must be one of the predefined workflow names "
	              "[search_application_query,search_application_analytics].;");
}

KG_TEST(test_validation_continues_the_callers_numbering)
{
	struct kg_es_fail f = { 0 };
	json_t *j = parse("{\"r\":{\"cluster\":[\"nope\"]}}"), *out = NULL;
	KG_CHECK(kg_es_fail_validation_add(&f, "api key name is required") == KG_EINVAL, "first problem not added");
	KG_CHECK(kg_es_roles_parse(j, true, &out, &f) == KG_OK, "parse refused a well-formed descriptor");
	KG_CHECK(kg_es_roles_validate(out, &f) == KG_EINVAL, "unknown privilege accepted");
	KG_CHECK(f.nvalidation == 2 && strncmp(f.reason.p, "Validation Failed: 1: api key name is required;2: unknown cluster privilege [nope]", 82) == 0,
	         "reason %s", f.reason.p);
	json_decref(j);
	json_decref(out);
	kg_es_fail_free(&f);
}

KG_TEST(test_structure_errors_are_es_parse_exceptions)
{
	static const struct {
		const char *in;
		const char *type;
		const char *reason;
	} cases[] = {
		{ "{\"r\":[]}", "parse_exception", "failed to parse role [r]. expected an object but found [START_ARRAY] instead" },
		{ "{\"r\":{\"foo\":1}}", "parse_exception", "failed to parse role [r]. unexpected field [foo]" },
		{ "{\"r\":{\"cluster\":\"all\"}}", "parse_exception", "failed to parse role [r]" },
		{ "{\"r\":{\"cluster\":[1]}}", "parse_exception", "failed to parse role [r]" },
		{ "{\"r\":{\"metadata\":[]}}", "parse_exception",
		  "expected field [metadata] to be of type object, but found [START_ARRAY] instead" },
		{ "{\"r\":{\"transient_metadata\":1}}", "parse_exception", "failed to parse role [r]. unexpected field [transient_metadata]" },
		{ "{\"r\":{\"indices\":{}}}", "parse_exception",
		  "failed to parse indices privileges for role [r]. expected field [indices] value to be an array, but found [START_OBJECT] instead" },
		{ "{\"r\":{\"index\":[\"x\"]}}", "parse_exception",
		  "failed to parse indices privileges for role [r]. expected field [index] value to be an array of objects, but found an array element of type [VALUE_STRING]" },
		{ "{\"r\":{\"indices\":[{\"privileges\":[\"read\"]}]}}", "parse_exception",
		  "failed to parse indices privileges for role [r]. missing required [names] field" },
		{ "{\"r\":{\"indices\":[{\"names\":\"a\"}]}}", "parse_exception",
		  "failed to parse indices privileges for role [r]. missing required [privileges] field" },
		{ "{\"r\":{\"indices\":[{\"names\":[],\"privileges\":[\"read\"]}]}}", "parse_exception",
		  "failed to parse indices privileges for role [r]. [names] cannot be an empty array" },
		{ "{\"r\":{\"indices\":[{\"names\":5,\"privileges\":[\"read\"]}]}}", "parse_exception",
		  "failed to parse indices privileges for role [r]. expected field [names] value to be a string or an array of strings, but found [VALUE_NUMBER] instead" },
		{ "{\"r\":{\"indices\":[{\"names\":\"a\",\"privileges\":[]}]}}", "illegal_argument_exception",
		  "indices privileges must define at least one privilege" },
		{ "{\"r\":{\"indices\":[{\"names\":\"a\",\"privileges\":[\"read\"],\"allow_restricted_indices\":\"yes\"}]}}",
		  "parse_exception",
		  "failed to parse indices privileges for role [r]. expected field [allow_restricted_indices] value to be a boolean, but found [VALUE_STRING] instead" },
		{ "{\"r\":{\"indices\":[{\"names\":\"a\",\"privileges\":[\"read\"],\"query\":[]}]}}", "parse_exception",
		  "failed to parse indices privileges for role [r]. expected field [query] value to be null, a string, an array, or an object, but found [START_ARRAY] instead" },
		{ "{\"r\":{\"indices\":[{\"names\":\"a\",\"privileges\":[\"read\"],\"field_security\":{}}]}}", "parse_exception",
		  "failed to parse indices privileges for role [r]. \"field_security\" must not be empty." },
		{ "{\"r\":{\"indices\":[{\"names\":\"a\",\"privileges\":[\"read\"],\"field_security\":{\"deny\":[]}}]}}",
		  "parse_exception",
		  "failed to parse indices privileges for role [r]. \"field_security\" only accepts options grant and except, but got: deny" },
		{ "{\"r\":{\"indices\":[{\"names\":\"a\",\"privileges\":[\"read\"],\"field_security\":{\"except\":[\"b\"]}}]}}",
		  "parse_exception",
		  "failed to parse indices privileges for role [r]. field_security requires grant if except is given" },
		{ "{\"r\":{\"indices\":[{\"names\":\"a\",\"privileges\":[\"read\"],\"field_security\":{\"grant\":null}}]}}",
		  "parse_exception", "failed to parse indices privileges for role [r]. grant must not be null." },
		{ "{\"r\":{\"indices\":[{\"names\":\"a\",\"privileges\":[\"read\"],\"fields\":[\"a\"]}]}}", "parse_exception",
		  "[\"fields\": [...]] format has changed for field permissions in role [r], use [\"field_security\": {\"grant\":[...],\"except\":[...]}] instead" },
		{ "{\"r\":{\"indices\":[{\"names\":\"a\",\"privileges\":[\"read\"],\"x\":1}]}}", "parse_exception",
		  "failed to parse indices privileges for role [r]. unexpected field [x]" },
		{ "{\"r\":{\"applications\":[{\"application\":\"app\",\"privileges\":[\"*\"]}]}}", "parse_exception",
		  "failed to parse application privileges for role [r]. missing required [resources] field" },
		{ "{\"r\":{\"applications\":[{\"application\":\"app\",\"resources\":[\"*\"]}]}}", "parse_exception",
		  "failed to parse application privileges for role [r]. missing required [privileges] field" },
		{ "{\"r\":{\"applications\":[{\"application\":\"app\",\"resources\":[\"*\"],\"privileges\":[\"*\"],\"x\":1}]}}",
		  "x_content_parse_exception", "[application] unknown field [x]" },
		{ "{\"r\":{\"applications\":{}}}", "parse_exception",
		  "failed to parse application privileges for role [r]. expected field [applications] value to be an array, but found [START_OBJECT] instead" },
		{ "{\"r\":{\"restriction\":{\"workflows\":[]}}}", "parse_exception",
		  "failed to parse restriction for role [r]. [workflows] cannot be an empty array" },
		{ "{\"r\":{\"restriction\":{\"workflows\":null}}}", "parse_exception",
		  "failed to parse restriction for role [r]. could not parse [workflows] field. expected a string array but found null value instead" },
		{ "{\"r\":{\"restriction\":{\"x\":[]}}}", "parse_exception", "failed to parse restriction for role [r]. unexpected field [x]" },
		{ "{\"a\":{\"restriction\":{\"workflows\":[\"search_application_query\"]}},\"b\":{}}", "illegal_argument_exception",
		  "combining role descriptors with and without restriction is not supported" },
		{ "{\"a\":{\"restriction\":{\"workflows\":[\"search_application_query\"]}},\"b\":{\"restriction\":{\"workflows\":[\"search_application_query\"]}}}",
		  "illegal_argument_exception", "more than one role descriptor with restriction is not supported" },
		{ "{\" r\":{}}", "validation_exception",
		  "Validation Failed: 1: Role names must be at least 1 and no more than 507 characters. They can contain alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the Basic Latin (ASCII) block. Leading or trailing whitespace is not allowed.;" },
		{ "[]", "parse_exception", "failed to parse role descriptors. expected an object but found [START_ARRAY] instead" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_refused(cases[i].in, true, 400, cases[i].type, cases[i].reason);
	/* a restriction only in an API key's descriptors */
	check_refused("{\"r\":{\"restriction\":{}}}", false, 400, "parse_exception",
	              "failed to parse role [r]. unexpected field [restriction]");
}

KG_TEST(test_caps_refuse_deep_and_long_input)
{
	kg_buf nest = { 0 };
	KG_CHECK(kg_buf_printf(&nest, "{\"r\":{\"metadata\":") == KG_OK, "no memory");
	for (int i = 0; i < 21; i++)
		KG_CHECK(kg_buf_appends(&nest, KG_STR("{\"a\":")) == KG_OK, "no memory");
	KG_CHECK(kg_buf_appends(&nest, KG_STR("1")) == KG_OK, "no memory");
	for (int i = 0; i < 21; i++)
		KG_CHECK(kg_buf_appends(&nest, KG_STR("}")) == KG_OK, "no memory");
	KG_CHECK(kg_buf_appends(&nest, KG_STR("}}")) == KG_OK, "no memory");
	check_refused(nest.p, false, 400, "parse_exception", "failed to parse role [r]. [metadata] is nested deeper than [20] levels");
	kg_buf_free(&nest, false);

	kg_buf b = { 0 };
	KG_CHECK(kg_buf_printf(&b, "{\"r\":{\"run_as\":[") == KG_OK, "no memory");
	for (int i = 0; i <= KG_ES_ROLE_MAX_ENTRIES; i++)
		KG_CHECK(kg_buf_printf(&b, "%s\"u\"", i ? "," : "") == KG_OK, "no memory");
	KG_CHECK(kg_buf_printf(&b, "]}}") == KG_OK, "no memory");
	check_refused(b.p, false, 400, "parse_exception", "failed to parse role [r]. [run_as] may not hold more than [1000] entries");
	kg_buf_free(&b, false);

	char name[600];
	memset(name, 'n', sizeof(name));
	name[508] = '\0';
	json_t *rd = json_object(), *out = NULL;
	struct kg_es_fail f = { 0 };
	KG_CHECK(kg_es_role_normalise(name, rd, false, &out, &f) == KG_EINVAL && f.status == 400, "508-byte role name accepted");
	kg_es_fail_free(&f);
	name[507] = '\0';
	KG_CHECK(kg_es_role_normalise(name, rd, false, &out, &f) == KG_OK, "507-byte role name refused");
	json_decref(out);
	json_decref(rd);
	kg_es_fail_free(&f);
}

static kg_es_perm *compile(const char *map)
{
	json_t *j = parse(map);
	kg_es_perm *p = NULL;
	KG_CHECK(j && kg_es_perm_compile(j, &p) == KG_OK, "%s: not compiled", map);
	json_decref(j);
	return p;
}

static const char *grant_name(enum kg_es_grant g)
{
	return g == KG_ES_ALLOW ? "ALLOW" : g == KG_ES_OWN ? "OWN" : "DENY";
}

KG_TEST(test_cluster_grants_per_privilege_per_action)
{
	static const char *const actions[] = {
		SEC "api_key/create",  SEC "api_key/get",    SEC "api_key/invalidate", SEC "api_key/update",
		SEC "api_key/query",   SEC "user/put",       SEC "user/get",           SEC "role/get",
		SEC "user/authenticate", "cluster:monitor/health", "cluster:admin/settings/update",
	};
	/* one row per privilege: A allow, O own keys only, - deny; columns as actions */
	static const struct {
		const char *priv;
		const char *row;
	} rows[] = {
		{ "all", "AAAAAAAAAAA" },
		{ "manage_security", "AAAAAAAAA--" },
		{ "manage_api_key", "AAAAA---A--" },
		{ "manage_own_api_key", "OOOOO---A--" },
		{ "read_security", "-A--A-AAA--" },
		{ "manage", "--------AAA" },
		{ "monitor", "--------AA-" },
		{ "none", "--------A--" },
		{ "cluster:admin/xpack/security/api_key/*", "AAAAA---A--" },
		{ "cluster:admin/xpack/security/user/get", "------A-A--" },
	};
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		char map[256];
		snprintf(map, sizeof(map), "{\"r\":{\"cluster\":[\"%s\"]}}", rows[r].priv);
		kg_es_perm *p = compile(map);
		for (size_t a = 0; p && a < sizeof(actions) / sizeof(actions[0]); a++) {
			char c = rows[r].row[a];
			enum kg_es_grant want = c == 'A' ? KG_ES_ALLOW : c == 'O' ? KG_ES_OWN : KG_ES_DENY;
			enum kg_es_grant got = kg_es_perm_cluster(p, actions[a]);
			KG_CHECK(got == want, "%s on %s: %s, want %s", rows[r].priv, actions[a], grant_name(got), grant_name(want));
		}
		kg_es_perm_free(&p);
		KG_CHECK(p == NULL, "free left the pointer set");
	}
}

KG_TEST(test_privileges_granting_lists_es_names_in_es_order)
{
	static const struct {
		const char *action;
		bool is_own;
		const char *want;
	} cases[] = {
		{ SEC "api_key/create", true, "manage_own_api_key,manage_api_key,manage_security,all" },
		{ SEC "api_key/invalidate", false, "manage_api_key,manage_security,all" },
		{ SEC "api_key/get", false, "read_security,manage_api_key,manage_security,all" },
		{ SEC "user/put", false, "manage_security,all" },
		{ "cluster:monitor/health", false, "monitor,manage,all" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_buf b = { 0 };
		KG_CHECK(kg_es_cluster_privileges_granting(cases[i].action, cases[i].is_own, &b) == KG_OK, "no memory");
		KG_CHECK(b.p && strcmp(b.p, cases[i].want) == 0, "%s: [%s], want [%s]", cases[i].action, b.p ? b.p : "",
		         cases[i].want);
		kg_buf_free(&b, false);
	}
}

KG_TEST(test_key_permission_is_intersection_with_owner)
{
	json_t *owner = parse("{\"o\":{\"cluster\":[\"manage_own_api_key\",\"monitor\"],"
	                      "\"applications\":[{\"application\":\"keygate\",\"privileges\":[\"GET\",\"POST\"],\"resources\":[\"/api/*\"]}]}}");
	json_t *key = parse("{\"k\":{\"cluster\":[\"all\"],"
	                    "\"applications\":[{\"application\":\"keygate\",\"privileges\":[\"GET\"],\"resources\":[\"*\"]}]}}");
	json_t *empty_map = parse("{}"), *empty_rd = parse("{\"r\":{}}");
	kg_es_perm *p = NULL;

	KG_CHECK(kg_es_perm_compile_key(key, owner, &p) == KG_OK, "key not compiled");
	KG_CHECK(kg_es_perm_cluster(p, SEC "api_key/create") == KG_ES_OWN, "all limited by manage_own_api_key is not own-only");
	KG_CHECK(kg_es_perm_cluster(p, SEC "user/put") == KG_ES_DENY, "the key got what its owner lacks");
	KG_CHECK(kg_es_perm_cluster(p, "cluster:monitor/health") == KG_ES_ALLOW, "monitor lost");
	KG_CHECK(kg_es_perm_app(p, KG_STR("keygate"), KG_STR("GET"), KG_STR("/api/x")), "GET /api/x refused");
	KG_CHECK(!kg_es_perm_app(p, KG_STR("keygate"), KG_STR("POST"), KG_STR("/api/x")), "POST allowed: the key has only GET");
	KG_CHECK(!kg_es_perm_app(p, KG_STR("keygate"), KG_STR("GET"), KG_STR("/other")), "/other allowed: the owner has only /api/*");
	kg_es_perm_free(&p);

	/* no key descriptors: the owner's snapshot alone */
	KG_CHECK(kg_es_perm_compile_key(empty_map, owner, &p) == KG_OK, "key not compiled");
	KG_CHECK(kg_es_perm_app(p, KG_STR("keygate"), KG_STR("POST"), KG_STR("/api/x")), "owner's POST lost");
	kg_es_perm_free(&p);
	KG_CHECK(kg_es_perm_compile_key(NULL, owner, &p) == KG_OK, "key not compiled");
	KG_CHECK(kg_es_perm_cluster(p, SEC "api_key/get") == KG_ES_OWN, "owner's manage_own_api_key lost");
	kg_es_perm_free(&p);

	/* an explicitly empty descriptor grants nothing but what everyone has */
	KG_CHECK(kg_es_perm_compile_key(empty_rd, owner, &p) == KG_OK, "key not compiled");
	KG_CHECK(kg_es_perm_cluster(p, SEC "api_key/create") == KG_ES_DENY, "an empty descriptor may create keys");
	KG_CHECK(kg_es_perm_cluster(p, SEC "user/authenticate") == KG_ES_ALLOW, "_authenticate refused");
	KG_CHECK(!kg_es_perm_app(p, KG_STR("keygate"), KG_STR("GET"), KG_STR("/api/x")), "an empty descriptor reaches upstream");
	kg_es_perm_free(&p);

	json_decref(owner);
	json_decref(key);
	json_decref(empty_map);
	json_decref(empty_rd);
}

static bool resolve_read(void *ctx, kg_str application, kg_str name, kg_str action)
{
	(void)ctx;
	/* a stored privilege "read" of keygate holding GET and HEAD */
	return kg_str_eq(application, KG_STR("keygate")) && kg_str_eq(name, KG_STR("read")) &&
	       (kg_str_eq(action, KG_STR("GET")) || kg_str_eq(action, KG_STR("HEAD")));
}

KG_TEST(test_application_patterns)
{
	kg_es_perm *p = compile("{\"r\":{\"applications\":["
	                        "{\"application\":\"keygate\",\"privileges\":[\"GET\"],\"resources\":[\"/api/*\",\"/h?alth\",\"/lit\\\\*\"]},"
	                        "{\"application\":\"key*\",\"privileges\":[\"DELETE\"],\"resources\":[\"/admin/*/x\"]},"
	                        "{\"application\":\"other\",\"privileges\":[\"*\"],\"resources\":[\"*\"]},"
	                        "{\"application\":\"keygate\",\"privileges\":[\"read\"],\"resources\":[\"/docs/*\"]}]}}");
	static const struct {
		const char *app, *priv, *res;
		bool want;
	} cases[] = {
		{ "keygate", "GET", "/api/a/b", true },   /* * crosses '/' */
		{ "keygate", "GET", "/api/", true },
		{ "keygate", "GET", "/api", false },
		{ "keygate", "get", "/api/a", false },    /* methods are case-sensitive */
		{ "keygate", "POST", "/api/a", false },
		{ "keygate", "GET", "/health", true },    /* ? is one character */
		{ "keygate", "GET", "/hxalth", true },
		{ "keygate", "GET", "/heaalth", false },
		{ "keygate", "GET", "/lit*", true },      /* \* is a literal star */
		{ "keygate", "GET", "/litx", false },
		{ "keygate", "DELETE", "/admin/u/x", true }, /* application pattern key* */
		{ "keygate2", "DELETE", "/admin/u/v/x", true },
		{ "keygate", "DELETE", "/admin/u/y", false },
		{ "other", "PATCH", "/anything", true },
		{ "other2", "GET", "/api/a", false },
		{ "keygate", "read", "/docs/a", true },   /* without a resolver a name matches literally */
		{ "keygate", "GET", "/docs/a", false },
	};
	for (size_t i = 0; p && i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = kg_es_perm_app(p, kg_str_c(cases[i].app), kg_str_c(cases[i].priv), kg_str_c(cases[i].res));
		KG_CHECK(got == cases[i].want, "%s %s %s: %d, want %d", cases[i].app, cases[i].priv, cases[i].res, got,
		         cases[i].want);
	}
	/* with a resolver, the name resolves through the stored privilege */
	KG_CHECK(kg_es_perm_app_resolved(p, KG_STR("keygate"), KG_STR("GET"), KG_STR("/docs/a"), resolve_read, NULL),
	         "stored privilege read does not grant GET");
	KG_CHECK(!kg_es_perm_app_resolved(p, KG_STR("keygate"), KG_STR("PUT"), KG_STR("/docs/a"), resolve_read, NULL),
	         "stored privilege read grants PUT");
	KG_CHECK(!kg_es_perm_app(NULL, KG_STR("keygate"), KG_STR("GET"), KG_STR("/api/a")), "a NULL permission grants");
	kg_es_perm_free(&p);
}

KG_TEST(test_index_privileges)
{
	kg_es_perm *p = compile("{\"r\":{\"indices\":[{\"names\":[\"logs-*\"],\"privileges\":[\"write\"]},"
	                        "{\"names\":\"*\",\"privileges\":[\"read\"]},"
	                        "{\"names\":\"metrics\",\"privileges\":[\"indices:data/write/bulk*\"]}]},"
	                        "\"s\":{\"indices\":[{\"names\":[\".security-7\"],\"privileges\":[\"all\"],\"allow_restricted_indices\":true}]}}");
	KG_CHECK(kg_es_perm_index(p, KG_STR("logs-1"), "index"), "write does not cover index");
	KG_CHECK(kg_es_perm_index(p, KG_STR("logs-1"), "create_doc"), "write does not cover create_doc");
	KG_CHECK(!kg_es_perm_index(p, KG_STR("logs-1"), "manage"), "write covers manage");
	KG_CHECK(kg_es_perm_index(p, KG_STR("anything"), "read"), "* read refused");
	KG_CHECK(!kg_es_perm_index(p, KG_STR("anything"), "write"), "* write allowed");
	KG_CHECK(kg_es_perm_index(p, KG_STR("metrics"), "indices:data/write/bulk[s]"), "action pattern refused");
	KG_CHECK(!kg_es_perm_index(p, KG_STR(".security-6"), "read"), "a restricted index read through *");
	KG_CHECK(kg_es_perm_index(p, KG_STR(".security-7"), "delete"), "allow_restricted_indices with all refused");
	kg_es_perm_free(&p);

	json_t *su = json_pack("{s:o}", "superuser", kg_es_role_superuser());
	KG_CHECK(su && kg_es_perm_compile(su, &p) == KG_OK, "superuser not compiled");
	KG_CHECK(kg_es_perm_index(p, KG_STR(".security-7"), "write"), "superuser refused a restricted index");
	KG_CHECK(kg_es_perm_cluster(p, SEC "user/put") == KG_ES_ALLOW, "superuser refused user/put");
	KG_CHECK(kg_es_perm_app(p, KG_STR("keygate"), KG_STR("DELETE"), KG_STR("/x")), "superuser refused upstream");
	kg_es_perm_free(&p);
	json_decref(su);
}

KG_TEST(test_compile_refuses_non_maps)
{
	static const char *const bad[] = { "[]", "{\"r\":5}", "{\"r\":{\"cluster\":[1]}}",
		                           "{\"r\":{\"applications\":[{\"application\":1}]}}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = parse(bad[i]);
		kg_es_perm *p = (kg_es_perm *)1;
		KG_CHECK(kg_es_perm_compile(j, &p) == KG_EINVAL && p == NULL, "%s compiled", bad[i]);
		json_decref(j);
	}
}

KG_TEST(test_unauthorized_messages)
{
	static const char *const roles[] = { "a", "b" };
	kg_buf b = { 0 };
	KG_CHECK(kg_es_unauthorized_message(&b, KG_STR(SEC "api_key/invalidate"), KG_STR("user [bob]"), false, roles, 2,
	                                    "manage_api_key,manage_security,all") == KG_OK,
	         "no memory");
	KG_CHECK(strcmp(b.p, "action [" SEC "api_key/invalidate] is unauthorized for user [bob] with effective roles [a,b], "
	                     "this action is granted by the cluster privileges [manage_api_key,manage_security,all]") == 0,
	         "got %s", b.p);
	kg_buf_clear(&b);
	KG_CHECK(kg_es_unauthorized_message(&b, KG_STR(SEC "user/put"), KG_STR("user [bob]"), false, NULL, 0, NULL) == KG_OK,
	         "no memory");
	KG_CHECK(strcmp(b.p, "action [" SEC "user/put] is unauthorized for user [bob] with no roles") == 0, "got %s", b.p);
	kg_buf_clear(&b);
	KG_CHECK(kg_es_unauthorized_message(&b, KG_STR("GET /admin"), KG_STR("API key id [abc] of user [bob]"), true, roles, 2,
	                                    NULL) == KG_OK,
	         "no memory");
	KG_CHECK(strcmp(b.p, "action [GET /admin] is unauthorized for API key id [abc] of user [bob]") == 0, "got %s", b.p);
	kg_buf_free(&b, false);
}

KG_TEST(test_cluster_privilege_names_imply_as_es)
{
	static const struct {
		const char *held;  /* a map */
		const char *asked;
		bool want;
	} cases[] = {
		{ "{\"r\":{\"cluster\":[\"all\"]}}", "manage_security", true },
		{ "{\"r\":{\"cluster\":[\"all\"]}}", "manage_own_api_key", true },
		{ "{\"r\":{\"cluster\":[\"manage_security\"]}}", "manage_api_key", true },
		{ "{\"r\":{\"cluster\":[\"manage_security\"]}}", "read_security", true },
		{ "{\"r\":{\"cluster\":[\"manage_security\"]}}", "delegate_pki", false },
		{ "{\"r\":{\"cluster\":[\"manage_security\"]}}", "all", false },
		{ "{\"r\":{\"cluster\":[\"manage_api_key\"]}}", "manage_own_api_key", true },
		{ "{\"r\":{\"cluster\":[\"manage_api_key\"]}}", "manage_security", false },
		{ "{\"r\":{\"cluster\":[\"manage_own_api_key\"]}}", "manage_own_api_key", true },
		{ "{\"r\":{\"cluster\":[\"manage_own_api_key\"]}}", "manage_api_key", false },
		{ "{\"r\":{\"cluster\":[\"manage\"]}}", "monitor", true },
		{ "{\"r\":{\"cluster\":[\"manage\"]}}", "manage_ilm", true },
		{ "{\"r\":{\"cluster\":[\"manage\"]}}", "manage_api_key", false },
		{ "{\"r\":{\"cluster\":[\"manage\"]}}", "read_security", false },
		{ "{\"r\":{\"cluster\":[\"monitor\"]}}", "manage", false },
		{ "{\"r\":{\"cluster\":[\"monitor\"]}}", "MONITOR", true },
		{ "{\"r\":{\"cluster\":[]}}", "none", true },
		{ "{\"r\":{\"cluster\":[]}}", "monitor", false },
		/* a union of two roles */
		{ "{\"a\":{\"cluster\":[\"manage_ml\"]},\"b\":{\"cluster\":[\"manage_watcher\"]}}", "monitor_ml", true },
		{ "{\"a\":{\"cluster\":[\"manage_ml\"]},\"b\":{\"cluster\":[\"manage_watcher\"]}}", "monitor_watcher", true },
		/* action names and patterns */
		{ "{\"r\":{\"cluster\":[\"monitor\"]}}", "cluster:monitor/health", true },
		{ "{\"r\":{\"cluster\":[\"monitor\"]}}", "cluster:monitor/*", true },
		{ "{\"r\":{\"cluster\":[\"monitor\"]}}", "cluster:admin/*", false },
		{ "{\"r\":{\"cluster\":[\"manage\"]}}", "cluster:admin/xpack/security/user/put", false },
		{ "{\"r\":{\"cluster\":[\"cluster:monitor/*\"]}}", "monitor_ml", true },
		{ "{\"r\":{\"cluster\":[]}}", "cluster:admin/xpack/security/user/authenticate", true },
		{ "{\"r\":{\"cluster\":[\"all\"]}}", "no_such_privilege", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_es_perm *p = compile(cases[i].held);
		bool got = kg_es_perm_cluster_privilege(p, cases[i].asked);
		KG_CHECK(got == cases[i].want, "%s asked %s: got %d, want %d", cases[i].held, cases[i].asked, got, cases[i].want);
		kg_es_perm_free(&p);
	}
	/* a key: its descriptors and its owner's both must imply it */
	json_t *key = parse("{\"k\":{\"cluster\":[\"all\"]}}"), *owner = parse("{\"o\":{\"cluster\":[\"manage_own_api_key\"]}}");
	kg_es_perm *p = NULL;
	KG_CHECK(kg_es_perm_compile_key(key, owner, &p) == KG_OK, "key not compiled");
	KG_CHECK(kg_es_perm_cluster_privilege(p, "manage_own_api_key"), "own lost through the limit");
	KG_CHECK(!kg_es_perm_cluster_privilege(p, "manage_api_key"), "the key implies more than its owner");
	kg_es_perm_free(&p);
	json_decref(key);
	json_decref(owner);
}

KG_TEST(test_pattern_covers)
{
	static const struct {
		const char *held, *want;
		bool is_covered;
	} cases[] = {
		{ "logs-*", "logs-2024", true },  { "logs-*", "logs-2024-*", true }, { "logs-2024-*", "logs-*", false },
		{ "*", "*", true },               { "logs-?", "logs-*", false },     { "logs-?", "logs-?", true },
		{ "logs-?", "logs-a", true },     { "a*b", "a*b", true },            { "a*b", "a*c", false },
		{ "a\\*", "a*", false },          { "a\\*", "a\\*", true },          { "*x*", "axbxc", true },
		{ "", "", true },                 { "", "a", false },                { "abc", "ab", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = kg_es_pattern_covers(kg_str_c(cases[i].held), kg_str_c(cases[i].want));
		KG_CHECK(got == cases[i].is_covered, "%s covers %s: got %d", cases[i].held, cases[i].want, got);
	}
}

KG_TEST(test_index_privilege_on_patterns)
{
	kg_es_perm *p = compile("{\"a\":{\"indices\":[{\"names\":[\"logs-*\"],\"privileges\":[\"read\"]}]},"
	                        "\"b\":{\"indices\":[{\"names\":[\"*\"],\"privileges\":[\"monitor\"]},"
	                        "{\"names\":[\".security*\"],\"privileges\":[\"read\"],\"allow_restricted_indices\":true}]}}");
	KG_CHECK(kg_es_perm_index_pattern(p, KG_STR("logs-1"), "read", false), "read on logs-1");
	KG_CHECK(kg_es_perm_index_pattern(p, KG_STR("logs-2024-*"), "read", false), "read on logs-2024-*");
	KG_CHECK(!kg_es_perm_index_pattern(p, KG_STR("*"), "read", false), "read on * granted by logs-*");
	KG_CHECK(kg_es_perm_index_pattern(p, KG_STR("logs-1"), "indices:data/read/search", false), "search under read");
	KG_CHECK(!kg_es_perm_index_pattern(p, KG_STR("logs-1"), "write", false), "write granted");
	KG_CHECK(kg_es_perm_index_pattern(p, KG_STR("anything"), "monitor", false), "monitor on * (role b)");
	KG_CHECK(kg_es_perm_index_pattern(p, KG_STR("*"), "monitor", false), "monitor on the pattern *");
	KG_CHECK(!kg_es_perm_index_pattern(p, KG_STR("*"), "monitor", true), "* with restricted indices granted by a plain entry");
	KG_CHECK(!kg_es_perm_index_pattern(p, KG_STR(".security-7"), "monitor", false), "a restricted name without allow");
	KG_CHECK(kg_es_perm_index_pattern(p, KG_STR(".security-7"), "read", false), "the allow_restricted entry");
	KG_CHECK(!kg_es_perm_index_pattern(p, KG_STR("logs-1"), "no_such", false), "unknown privilege granted");
	kg_es_perm_free(&p);
}

KG_TEST(test_privilege_lists_and_unknown_message)
{
	KG_CHECK(kg_es_cluster_privilege_name(0) && strcmp(kg_es_cluster_privilege_name(0), "manage_own_api_key") == 0,
	         "first cluster privilege");
	size_t n = 0;
	while (kg_es_index_privilege_name(n))
		n++;
	KG_CHECK(n == 22, "%zu index privileges", n);
	KG_CHECK(kg_es_cluster_privilege_is_known("Monitor") && kg_es_cluster_privilege_is_known("cluster:x") &&
	             !kg_es_cluster_privilege_is_known("read"),
	         "cluster names");
	KG_CHECK(kg_es_index_privilege_is_known("read") && !kg_es_index_privilege_is_known("monitor_ml"), "index names");
	kg_buf b = { 0 };
	KG_CHECK(kg_es_unknown_privilege_message(true, "Foo", &b) == KG_OK, "no memory");
	KG_CHECK(b.p && strncmp(b.p, "unknown index privilege [foo]. a privilege must be either one of the predefined fixed indices privileges [all,auto_configure,",
	                        strlen("unknown index privilege [foo]. a privilege must be either one of the predefined fixed indices privileges [all,auto_configure,")) == 0,
	         "got %s", b.p ? b.p : "");
	kg_buf_free(&b, false);
}

int main(void)
{
	return kg_test_main();
}
