/* es_role.c - Elasticsearch role descriptors: ES 8.x's parsing, validation
 * and normal form (RoleDescriptor.parse/toXContent,
 * RoleDescriptorRequestValidator), and the permission they compile to
 * (ClusterPrivilegeResolver, IndexPrivilege, ApplicationPrivilege). The
 * messages are ES's, word for word, because clients match on them. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keygate/es_role.h"

/* ---- the privilege tables ------------------------------------------------ */

#define SEC "cluster:admin/xpack/security/"

/* A named cluster privilege: the actions it grants (exact names, or prefixes
 * ending in '*') minus those it excludes. The table is in ES's order for
 * messages: fewest implied privileges first, then by name
 * (ClusterPrivilegeResolver.sortByAccessLevel over ES 8.8's privileges). */
struct cluster_priv {
	const char *name;
	const char *grants[16]; /* NULL-terminated */
	const char *excludes[2];
};

#define L(...) { __VA_ARGS__ }
#define none_list { NULL }

static const struct cluster_priv cluster_privs[] = {
	{ "manage_own_api_key", none_list, none_list }, /* checked against the request: see own_actions */
	{ "none", none_list, none_list },
	{ "cancel_task", L("cluster:admin/tasks/cancel*"), none_list },
	{ "delegate_pki", L(SEC "delegate_pki", SEC "token/invalidate"), none_list },
	{ "grant_api_key", L(SEC "api_key/grant*"), none_list },
	{ "manage_autoscaling", L("cluster:admin/autoscaling/*"), none_list },
	{ "manage_enrich", L("cluster:admin/xpack/enrich/*"), none_list },
	{ "manage_index_templates",
	  L("indices:admin/template/*", "indices:admin/index_template/*", "cluster:admin/component_template/*"), none_list },
	{ "manage_logstash_pipelines", L("cluster:admin/logstash/pipeline/*"), none_list },
	{ "manage_oidc", L(SEC "oidc/*"), none_list },
	{ "manage_saml",
	  L(SEC "saml/*", SEC "token/invalidate", SEC "token/refresh", "cluster:monitor/xpack/security/saml/metadata"),
	  none_list },
	{ "manage_search_application", L("cluster:admin/xpack/application/search_application/*"), none_list },
	{ "manage_service_account", L(SEC "service_account/*"), none_list },
	{ "manage_token", L(SEC "token/*"), none_list },
	{ "manage_user_profile", L(SEC "profile/*"), none_list },
	{ "monitor_ml", L("cluster:monitor/xpack/ml/*"), none_list },
	{ "monitor_rollup", L("cluster:monitor/xpack/rollup/*"), none_list },
	{ "monitor_snapshot",
	  L("cluster:admin/snapshot/status*", "cluster:admin/snapshot/get", "cluster:admin/repository/get"), none_list },
	{ "monitor_text_structure", L("cluster:monitor/text_structure/*"), none_list },
	{ "monitor_watcher", L("cluster:monitor/xpack/watcher/*"), none_list },
	{ "read_ccr", L("cluster:monitor/state", SEC "user/has_privileges"), none_list },
	{ "read_ilm", L("cluster:admin/ilm/get", "cluster:admin/ilm/operation_mode/get"), none_list },
	{ "read_pipeline", L("cluster:admin/ingest/pipeline/get", "cluster:admin/ingest/pipeline/simulate"), none_list },
	{ "read_security",
	  L(SEC "api_key/get", SEC "api_key/query", SEC "privilege/builtin/get", SEC "privilege/get", SEC "profile/get",
	    SEC "profile/has_privileges", SEC "profile/suggest", SEC "role/get", SEC "role_mapping/get",
	    SEC "service_account/get", SEC "service_account/credential/get*", SEC "user/get", SEC "user/list_privileges",
	    SEC "user/has_privileges"),
	  none_list },
	{ "read_slm", L("cluster:admin/slm/get", "cluster:admin/ilm/operation_mode/get"), none_list },
	{ "send_behavioral_analytics_event", L("cluster:admin/xpack/application/analytics/post_event"), none_list },
	{ "transport_client", L("cluster:monitor/nodes/liveness", "cluster:monitor/state"), none_list },
	{ "create_snapshot",
	  L("cluster:admin/snapshot/create", "cluster:admin/snapshot/status*", "cluster:admin/snapshot/get",
	    "cluster:admin/repository/get"),
	  none_list },
	{ "manage_behavioral_analytics", L("cluster:admin/xpack/application/analytics/*"), none_list },
	{ "manage_ccr", L("cluster:admin/xpack/ccr/*", "cluster:monitor/state", SEC "user/has_privileges"), none_list },
	{ "manage_ilm", L("cluster:admin/ilm/*"), none_list },
	{ "manage_ml", L("cluster:admin/xpack/ml/*", "cluster:monitor/xpack/ml/*"), none_list },
	{ "manage_rollup", L("cluster:admin/xpack/rollup/*", "cluster:monitor/xpack/rollup/*"), none_list },
	{ "manage_slm",
	  L("cluster:admin/slm/*", "cluster:admin/ilm/start", "cluster:admin/ilm/stop", "cluster:admin/ilm/operation_mode/get"),
	  none_list },
	{ "manage_watcher", L("cluster:admin/xpack/watcher/*", "cluster:monitor/xpack/watcher/*"), none_list },
	{ "monitor_data_frame_transforms", L("cluster:monitor/data_frame/*", "cluster:monitor/transform/*"), none_list },
	{ "monitor_transform", L("cluster:monitor/data_frame/*", "cluster:monitor/transform/*"), none_list },
	{ "manage_api_key", L(SEC "api_key/*"), none_list },
	{ "manage_ingest_pipelines", L("cluster:admin/ingest/pipeline/*"), none_list },
	{ "manage_pipeline", L("cluster:admin/ingest/pipeline/*"), none_list },
	{ "manage_data_frame_transforms",
	  L("cluster:admin/data_frame/*", "cluster:monitor/data_frame/*", "cluster:monitor/transform/*",
	    "cluster:admin/transform/*"),
	  none_list },
	{ "manage_transform",
	  L("cluster:admin/data_frame/*", "cluster:monitor/data_frame/*", "cluster:monitor/transform/*",
	    "cluster:admin/transform/*"),
	  none_list },
	{ "monitor",
	  L("cluster:monitor/*", "indices:admin/template/get", "cluster:admin/component_template/get",
	    "indices:admin/index_template/get"),
	  none_list },
	/* manage_security is every security action but delegate_pki */
	{ "manage_security", L(SEC "*"), L(SEC "delegate_pki") },
	/* manage is every cluster action but the security ones */
	{ "manage", L("cluster:*", "indices:admin/template/*", "indices:admin/index_template/*"), L(SEC "*") },
	{ "all", L("cluster:*", "indices:admin/template/*", "indices:admin/index_template/*"), none_list },
};
#define NCLUSTER_PRIVS (sizeof(cluster_privs) / sizeof(cluster_privs[0]))
_Static_assert(NCLUSTER_PRIVS <= 64, "cluster privileges are a 64-bit set");
#define CLUSTER_MANAGE_OWN_API_KEY 0

/* What manage_own_api_key allows, on the caller's own keys (create is always
 * on the caller's own; the API layer filters or refuses the rest). */
static const char *const own_actions[] = {
	SEC "api_key/create", SEC "api_key/get",         SEC "api_key/invalidate",
	SEC "api_key/update", SEC "api_key/bulk_update", SEC "api_key/query",
	NULL,
};

/* Allowed to every authenticated caller, whatever its roles. */
static const char *const everyone_actions[] = {
	SEC "user/authenticate",
	SEC "user/has_privileges",
	NULL,
};

/* ES 8.x's index privilege names, sorted as ES's message lists them. */
static const char *const index_privs[] = {
	"all",    "auto_configure",      "create",       "create_doc",
	"create_index", "cross_cluster_replication", "cross_cluster_replication_internal", "delete",
	"delete_index", "index", "maintenance", "manage",
	"manage_data_stream_lifecycle", "manage_follow_index", "manage_ilm", "manage_leader_index",
	"monitor", "none", "read", "read_cross_cluster",
	"view_index_metadata", "write", NULL,
};

/* ES's workflows (WorkflowResolver). */
static const char *const workflows[] = { "search_application_query", "search_application_analytics", NULL };

/* ---- small helpers ------------------------------------------------------- */

static bool ascii_lower_eq(const char *a, const char *lit)
{
	for (; *a && *lit; a++, lit++) {
		char c = *a;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != *lit)
			return false;
	}
	return *a == '\0' && *lit == '\0';
}

/* Whether s starts with the literal prefix, ASCII case-insensitively (ES
 * lower-cases privilege names before it resolves them). */
static bool ascii_lower_prefix(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++) {
		char c = *s;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != *prefix)
			return false;
	}
	return true;
}

/* A table pattern: an exact action, or a prefix ending in '*'. */
static bool table_pattern_matches(const char *pat, const char *action)
{
	size_t n = strlen(pat);
	if (n > 0 && pat[n - 1] == '*')
		return strncmp(action, pat, n - 1) == 0;
	return strcmp(action, pat) == 0;
}

static bool list_matches(const char *const *list, const char *action)
{
	for (; *list; list++)
		if (table_pattern_matches(*list, action))
			return true;
	return false;
}

static bool cluster_priv_grants(size_t i, const char *action)
{
	return list_matches(cluster_privs[i].grants, action) && !list_matches(cluster_privs[i].excludes, action);
}

static int cluster_priv_index(const char *name)
{
	for (size_t i = 0; i < NCLUSTER_PRIVS; i++)
		if (ascii_lower_eq(name, cluster_privs[i].name))
			return (int)i;
	return -1;
}

/* ES's ClusterPrivilegeResolver.isClusterAction: a name that is an action
 * pattern rather than a privilege name. */
static bool is_cluster_action(const char *name)
{
	return ascii_lower_prefix(name, "cluster:") || ascii_lower_prefix(name, "indices:admin/template/") ||
	       ascii_lower_prefix(name, "indices:admin/index_template/");
}

static bool is_index_action(const char *name)
{
	return ascii_lower_prefix(name, "indices:") || ascii_lower_prefix(name, "internal:transport/proxy/indices:");
}

static bool is_index_priv_name(const char *name)
{
	for (const char *const *p = index_privs; *p; p++)
		if (ascii_lower_eq(name, *p))
			return true;
	return false;
}

/* ES's wildcard patterns (Automatons): '*' any run, '?' one character, '\'
 * the next character literally. Iterative with one backtrack point, so
 * O(len(pattern) * len(s)) at worst and no recursion. */
static bool glob_match(kg_str pat, kg_str s)
{
	size_t p = 0, i = 0, star_p = SIZE_MAX, star_i = 0;
	while (i < s.n) {
		if (p < pat.n && pat.p[p] == '*') {
			star_p = ++p;
			star_i = i;
			continue;
		}
		if (p < pat.n) {
			char c = pat.p[p];
			size_t adv = 1;
			bool is_any = c == '?';
			if (c == '\\' && p + 1 < pat.n) {
				c = pat.p[p + 1];
				adv = 2;
			}
			if (is_any || c == s.p[i]) {
				p += adv;
				i++;
				continue;
			}
		}
		if (star_p == SIZE_MAX)
			return false;
		p = star_p;
		i = ++star_i;
	}
	while (p < pat.n && pat.p[p] == '*')
		p++;
	return p == pat.n;
}

/* ES's ApplicationPrivilege.VALID_NAME: a privilege name (resolved through
 * stored application privileges); anything else is an action pattern. */
static bool is_app_privilege_name(kg_str s)
{
	if (s.n == 0 || s.p[0] < 'a' || s.p[0] > 'z')
		return false;
	for (size_t i = 1; i < s.n; i++) {
		char c = s.p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* ---- parsing ------------------------------------------------------------- */

static kg_err parse_fail(struct kg_es_fail *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kg_err parse_fail(struct kg_es_fail *f, const char *fmt, ...)
{
	va_list ap;
	kg_buf_clear(&f->reason);
	f->status = 400;
	f->type = "parse_exception";
	f->nvalidation = 0;
	va_start(ap, fmt);
	kg_err err = kg_buf_vprintf(&f->reason, fmt, ap);
	va_end(ap);
	return err ? err : KG_EINVAL;
}

/* XContentUtils.readStringArray: an array of strings, or null when allowed
 * (*out stays NULL). Errors are ES's inner messages; ES's outer message
 * (the client's "reason") is `outer` when given. */
static kg_err read_string_array(const char *role, const char *field, const json_t *v, bool allow_null,
                                const char *outer, json_t **out, struct kg_es_fail *f)
{
	*out = NULL;
	if (json_is_null(v)) {
		if (allow_null)
			return KG_OK;
		if (outer)
			return parse_fail(f, "%s", outer);
		return parse_fail(f, "could not parse [%s] field. expected a string array but found null value instead", field);
	}
	if (!json_is_array(v)) {
		if (outer)
			return parse_fail(f, "%s", outer);
		return parse_fail(f, "could not parse [%s] field. expected a string array but found [%s] value instead", field,
		                  kg_es_token_name(v));
	}
	if (json_array_size(v) > KG_ES_ROLE_MAX_ENTRIES)
		return parse_fail(f, "failed to parse role [%s]. [%s] may not hold more than [%d] entries", role, field,
		                  KG_ES_ROLE_MAX_ENTRIES);
	json_t *arr = json_array();
	if (!arr)
		return KG_ENOMEM;
	size_t i;
	json_t *x;
	json_array_foreach (v, i, x) {
		if (!json_is_string(x)) {
			json_decref(arr);
			if (outer)
				return parse_fail(f, "%s", outer);
			return parse_fail(f, "could not parse [%s] field. expected a string value but found [%s] instead", field,
			                  kg_es_token_name(x));
		}
		if (json_string_length(x) > KG_ES_ROLE_MAX_STRING) {
			json_decref(arr);
			return parse_fail(f, "failed to parse role [%s]. a value of [%s] is longer than [%d] bytes", role, field,
			                  KG_ES_ROLE_MAX_STRING);
		}
		if (json_array_append(arr, x) != 0) {
			json_decref(arr);
			return KG_ENOMEM;
		}
	}
	*out = arr;
	return KG_OK;
}

/* The same, re-wrapped as RoleDescriptor.readStringArray does: the client's
 * reason is "failed to parse role [r]". */
static kg_err role_string_array(const char *role, const char *field, const json_t *v, bool allow_null, json_t **out,
                                struct kg_es_fail *f, kg_buf *outer)
{
	kg_buf_clear(outer);
	if (kg_buf_printf(outer, "failed to parse role [%s]", role) != KG_OK)
		return KG_ENOMEM;
	return read_string_array(role, field, v, allow_null, outer->p, out, f);
}

static kg_err check_depth(const char *role, const char *field, const json_t *v, struct kg_es_fail *f)
{
	if (kg_es_json_depth(v, KG_ES_ROLE_MAX_DEPTH) > KG_ES_ROLE_MAX_DEPTH)
		return parse_fail(f, "failed to parse role [%s]. [%s] is nested deeper than [%d] levels", role, field,
		                  KG_ES_ROLE_MAX_DEPTH);
	return KG_OK;
}

static kg_err set_new(json_t *obj, const char *key, json_t *v)
{
	if (!v)
		return KG_ENOMEM;
	return json_object_set_new(obj, key, v) == 0 ? KG_OK : KG_ENOMEM;
}

static kg_err parse_field_security(const char *role, const json_t *v, json_t **grant, json_t **except,
                                   struct kg_es_fail *f, kg_buf *outer)
{
	if (!json_is_object(v))
		return parse_fail(f, "failed to parse indices privileges for role [%s]. expected START_OBJECT but got %s in \"field_security\".",
		                  role, kg_es_token_name(v));
	if (json_object_size(v) == 0)
		return parse_fail(f, "failed to parse indices privileges for role [%s]. \"field_security\" must not be empty.", role);
	const char *k;
	json_t *x;
	json_object_foreach ((json_t *)v, k, x) {
		json_t **slot;
		if (strcmp(k, "grant") == 0)
			slot = grant;
		else if (strcmp(k, "except") == 0)
			slot = except;
		else
			return parse_fail(f, "failed to parse indices privileges for role [%s]. \"field_security\" only accepts options grant and except, but got: %s",
			                  role, k);
		json_decref(*slot);
		*slot = NULL;
		kg_err err = role_string_array(role, k, x, true, slot, f, outer);
		if (err)
			return err;
		if (!*slot)
			return parse_fail(f, "failed to parse indices privileges for role [%s]. %s must not be null.", role, k);
	}
	return KG_OK;
}

/* One entry of `indices`, normalised: names, privileges, field_security?,
 * query?, allow_restricted_indices. */
static kg_err parse_index_entry(const char *role, const char *field, const json_t *v, json_t **out,
                                struct kg_es_fail *f, kg_buf *outer)
{
	json_t *names = NULL, *privileges = NULL, *grant = NULL, *except = NULL, *query = NULL, *entry = NULL;
	bool allow_restricted = false;
	kg_err err = KG_OK;

	*out = NULL;
	if (!json_is_object(v))
		return parse_fail(f, "failed to parse indices privileges for role [%s]. expected field [%s] value to be an array of objects, but found an array element of type [%s]",
		                  role, field, kg_es_token_name(v));
	const char *k;
	json_t *x;
	json_object_foreach ((json_t *)v, k, x) {
		if (strcmp(k, "names") == 0) {
			json_decref(names);
			names = NULL;
			if (json_is_string(x)) {
				if (json_string_length(x) > KG_ES_ROLE_MAX_STRING) {
					err = parse_fail(f, "failed to parse role [%s]. a value of [names] is longer than [%d] bytes", role,
					                 KG_ES_ROLE_MAX_STRING);
					goto out;
				}
				names = json_array();
				if (!names || json_array_append(names, x) != 0) {
					err = KG_ENOMEM;
					goto out;
				}
			} else if (json_is_array(x)) {
				if ((err = role_string_array(role, k, x, false, &names, f, outer)))
					goto out;
				if (json_array_size(names) == 0) {
					err = parse_fail(f, "failed to parse indices privileges for role [%s]. [%s] cannot be an empty array",
					                 role, k);
					goto out;
				}
			} else {
				err = parse_fail(f, "failed to parse indices privileges for role [%s]. expected field [%s] value to be a string or an array of strings, but found [%s] instead",
				                 role, k, kg_es_token_name(x));
				goto out;
			}
		} else if (strcmp(k, "allow_restricted_indices") == 0) {
			if (!json_is_boolean(x)) {
				err = parse_fail(f, "failed to parse indices privileges for role [%s]. expected field [%s] value to be a boolean, but found [%s] instead",
				                 role, k, kg_es_token_name(x));
				goto out;
			}
			allow_restricted = json_is_true(x);
		} else if (strcmp(k, "query") == 0) {
			json_decref(query);
			query = NULL;
			if (json_is_object(x)) {
				/* ES keeps the query as its JSON text and prints it as a string */
				if ((err = check_depth(role, k, x, f)))
					goto out;
				char *text = json_dumps(x, JSON_COMPACT | JSON_PRESERVE_ORDER);
				query = text ? json_string(text) : NULL;
				free(text);
				if (!query) {
					err = KG_ENOMEM;
					goto out;
				}
			} else if (json_is_string(x)) {
				if (json_string_length(x) > 0 && !(query = json_copy(x))) {
					err = KG_ENOMEM;
					goto out;
				}
			} else if (!json_is_null(x)) {
				err = parse_fail(f, "failed to parse indices privileges for role [%s]. expected field [%s] value to be null, a string, an array, or an object, but found [%s] instead",
				                 role, k, kg_es_token_name(x));
				goto out;
			}
		} else if (strcmp(k, "field_security") == 0) {
			if ((err = parse_field_security(role, x, &grant, &except, f, outer)))
				goto out;
		} else if (strcmp(k, "privileges") == 0) {
			json_decref(privileges);
			privileges = NULL;
			if ((err = role_string_array(role, k, x, true, &privileges, f, outer)))
				goto out;
		} else if (strcmp(k, "fields") == 0) {
			err = parse_fail(f, "[\"fields\": [...]] format has changed for field permissions in role [%s], use [\"field_security\": {\"grant\":[...],\"except\":[...]}] instead",
			                 role);
			goto out;
		} else if (strcmp(k, "transient_metadata") == 0) {
			if (!json_is_object(x)) {
				err = parse_fail(f, "failed to parse transient metadata for role [%s]. expected START_OBJECT but got %s in \"transient_metadata\".",
				                 role, kg_es_token_name(x));
				goto out;
			}
		} else {
			err = parse_fail(f, "failed to parse indices privileges for role [%s]. unexpected field [%s]", role, k);
			goto out;
		}
	}
	if (!names) {
		err = parse_fail(f, "failed to parse indices privileges for role [%s]. missing required [names] field", role);
		goto out;
	}
	if (!privileges) {
		err = parse_fail(f, "failed to parse indices privileges for role [%s]. missing required [privileges] field", role);
		goto out;
	}
	if (except && !grant) {
		err = parse_fail(f, "failed to parse indices privileges for role [%s]. field_security requires grant if except is given",
		                 role);
		goto out;
	}
	if (json_array_size(privileges) == 0) {
		err = kg_es_fail_set(f, 400, "illegal_argument_exception", "indices privileges must define at least one privilege");
		goto out;
	}
	entry = json_object();
	if (!entry) {
		err = KG_ENOMEM;
		goto out;
	}
	if ((err = set_new(entry, "names", json_incref(names))) || (err = set_new(entry, "privileges", json_incref(privileges))))
		goto out;
	if (grant || except) {
		json_t *fs = json_object();
		if ((err = set_new(entry, "field_security", fs)))
			goto out;
		if (grant && (err = set_new(fs, "grant", json_incref(grant))))
			goto out;
		if (except && (err = set_new(fs, "except", json_incref(except))))
			goto out;
	}
	if (query && (err = set_new(entry, "query", json_incref(query))))
		goto out;
	if ((err = set_new(entry, "allow_restricted_indices", json_boolean(allow_restricted))))
		goto out;
	*out = entry;
	entry = NULL;
out:
	json_decref(names);
	json_decref(privileges);
	json_decref(grant);
	json_decref(except);
	json_decref(query);
	json_decref(entry);
	return err;
}

static kg_err parse_app_entry(const char *role, const char *field, const json_t *v, json_t **out, struct kg_es_fail *f)
{
	json_t *app = NULL, *privileges = NULL, *resources = NULL, *entry = NULL;
	kg_err err = KG_OK;

	*out = NULL;
	if (!json_is_object(v))
		return parse_fail(f, "failed to parse application privileges for role [%s]. expected field [%s] value to be an array of objects, but found an array element of type [%s]",
		                  role, field, kg_es_token_name(v));
	const char *k;
	json_t *x;
	json_object_foreach ((json_t *)v, k, x) {
		json_t **slot;
		if (strcmp(k, "application") == 0) {
			if (!json_is_string(x)) {
				/* ObjectParser's refusal of a value of the wrong type */
				err = kg_es_fail_set(f, 400, "x_content_parse_exception",
				                     "[application] application doesn't support values of type: %s", kg_es_token_name(x));
				goto out;
			}
			if (json_string_length(x) > KG_ES_ROLE_MAX_STRING) {
				err = parse_fail(f, "failed to parse role [%s]. a value of [application] is longer than [%d] bytes",
				                 role, KG_ES_ROLE_MAX_STRING);
				goto out;
			}
			json_decref(app);
			app = json_copy(x);
			if (!app) {
				err = KG_ENOMEM;
				goto out;
			}
			continue;
		}
		if (strcmp(k, "privileges") == 0)
			slot = &privileges;
		else if (strcmp(k, "resources") == 0)
			slot = &resources;
		else {
			err = kg_es_fail_set(f, 400, "x_content_parse_exception", "[application] unknown field [%s]", k);
			goto out;
		}
		json_decref(*slot);
		*slot = NULL;
		if (!json_is_array(x)) {
			err = kg_es_fail_set(f, 400, "x_content_parse_exception", "[application] %s doesn't support values of type: %s",
			                     k, kg_es_token_name(x));
			goto out;
		}
		if ((err = read_string_array(role, k, x, false, NULL, slot, f))) {
			if (err == KG_EINVAL)
				kg_es_fail_set(f, 400, "x_content_parse_exception", "[application] failed to parse field [%s]", k);
			goto out;
		}
	}
	if (!resources) {
		err = parse_fail(f, "failed to parse application privileges for role [%s]. missing required [resources] field", role);
		goto out;
	}
	if (!privileges) {
		err = parse_fail(f, "failed to parse application privileges for role [%s]. missing required [privileges] field", role);
		goto out;
	}
	if (!app) {
		/* ES fails later without a message of its own; keygate names the field as for the others */
		err = parse_fail(f, "failed to parse application privileges for role [%s]. missing required [application] field", role);
		goto out;
	}
	entry = json_object();
	if (!entry || (err = set_new(entry, "application", json_incref(app))) ||
	    (err = set_new(entry, "privileges", json_incref(privileges))) ||
	    (err = set_new(entry, "resources", json_incref(resources)))) {
		err = err ? err : KG_ENOMEM;
		goto out;
	}
	*out = entry;
	entry = NULL;
out:
	json_decref(app);
	json_decref(privileges);
	json_decref(resources);
	json_decref(entry);
	return err;
}

/* An array of objects (`indices` or `applications`), each normalised. */
static kg_err parse_entries(const char *role, const char *field, const char *what, const json_t *v, bool is_index,
                            json_t **out, struct kg_es_fail *f, kg_buf *outer)
{
	*out = NULL;
	if (!json_is_array(v))
		return parse_fail(f, "failed to parse %s privileges for role [%s]. expected field [%s] value to be an array, but found [%s] instead",
		                  what, role, field, kg_es_token_name(v));
	if (json_array_size(v) > KG_ES_ROLE_MAX_ENTRIES)
		return parse_fail(f, "failed to parse role [%s]. [%s] may not hold more than [%d] entries", role, field,
		                  KG_ES_ROLE_MAX_ENTRIES);
	json_t *arr = json_array();
	if (!arr)
		return KG_ENOMEM;
	size_t i;
	json_t *x;
	json_array_foreach (v, i, x) {
		json_t *entry;
		kg_err err = is_index ? parse_index_entry(role, field, x, &entry, f, outer) : parse_app_entry(role, field, x, &entry, f);
		if (!err && json_array_append_new(arr, entry) != 0)
			err = KG_ENOMEM;
		if (err) {
			json_decref(arr);
			return err;
		}
	}
	*out = arr;
	return KG_OK;
}

/* `global`: ES's configurable cluster privileges, of which it knows
 * {"application":{"manage":{"applications":[...]}}} and
 * {"profile":{"write":{"applications":[...]}}}. */
static kg_err parse_global(const char *role, const json_t *v, json_t **out, struct kg_es_fail *f)
{
	static const struct {
		const char *category, *op;
	} known[] = { { "application", "manage" }, { "profile", "write" } };
	json_t *g = NULL;
	kg_err err = KG_OK;

	*out = NULL;
	if (!json_is_object(v))
		return parse_fail(f, "failed to parse privilege. expected an object but found [%s] instead", kg_es_token_name(v));
	g = json_object();
	if (!g)
		return KG_ENOMEM;
	const char *cat;
	json_t *cv;
	json_object_foreach ((json_t *)v, cat, cv) {
		size_t ki;
		for (ki = 0; ki < sizeof(known) / sizeof(known[0]); ki++)
			if (strcmp(cat, known[ki].category) == 0)
				break;
		if (ki == sizeof(known) / sizeof(known[0])) {
			err = parse_fail(f, "failed to parse privilege. expected one of [application, profile] but found [%s] instead", cat);
			goto out;
		}
		if (!json_is_object(cv) || json_object_size(cv) != 1 || !json_object_get(cv, known[ki].op)) {
			err = parse_fail(f, "failed to parse privilege. expected [%s] to be an object holding [%s]", cat, known[ki].op);
			goto out;
		}
		const json_t *opv = json_object_get(cv, known[ki].op);
		const json_t *apps = json_is_object(opv) ? json_object_get(opv, "applications") : NULL;
		if (!apps || json_object_size(opv) != 1) {
			err = parse_fail(f, "failed to parse privilege. expected [%s.%s] to be an object holding [applications]", cat,
			                 known[ki].op);
			goto out;
		}
		json_t *list;
		if ((err = read_string_array(role, "applications", apps, false, NULL, &list, f)))
			goto out;
		json_t *inner = json_object(), *wrap = json_object();
		if (!inner || !wrap || json_object_set_new(inner, "applications", list) != 0 ||
		    json_object_set_new(wrap, known[ki].op, inner) != 0 || json_object_set_new(g, cat, wrap) != 0) {
			json_decref(inner);
			json_decref(wrap);
			err = KG_ENOMEM;
			goto out;
		}
	}
	if (json_object_size(g) > 0) {
		*out = g;
		g = NULL;
	}
out:
	json_decref(g);
	return err;
}

static kg_err parse_restriction(const char *role, const json_t *v, json_t **out, struct kg_es_fail *f)
{
	json_t *wf = NULL;
	*out = NULL;
	if (!json_is_object(v))
		return parse_fail(f, "failed to parse restriction for role [%s]. expected an object but found [%s] instead", role,
		                  kg_es_token_name(v));
	const char *k;
	json_t *x;
	json_object_foreach ((json_t *)v, k, x) {
		if (strcmp(k, "workflows") != 0) {
			json_decref(wf);
			return parse_fail(f, "failed to parse restriction for role [%s]. unexpected field [%s]", role, k);
		}
		json_decref(wf);
		wf = NULL;
		if (json_is_null(x))
			return parse_fail(f, "failed to parse restriction for role [%s]. could not parse [workflows] field. expected a string array but found null value instead",
			                  role);
		if (!json_is_array(x))
			return parse_fail(f, "failed to parse restriction for role [%s]. could not parse [workflows] field. expected a string array but found [%s] value instead",
			                  role, kg_es_token_name(x));
		kg_err err = read_string_array(role, "workflows", x, false, NULL, &wf, f);
		if (err) {
			if (err == KG_EINVAL)
				parse_fail(f, "failed to parse restriction for role [%s]. could not parse [workflows] field. expected a string value",
				           role);
			return err;
		}
		if (json_array_size(wf) == 0) {
			json_decref(wf);
			return parse_fail(f, "failed to parse restriction for role [%s]. [workflows] cannot be an empty array", role);
		}
	}
	if (wf) {
		json_t *r = json_object();
		if (!r || json_object_set_new(r, "workflows", wf) != 0) {
			json_decref(r);
			return KG_ENOMEM;
		}
		*out = r;
	}
	return KG_OK;
}

/* Validation.Roles.validateRoleName: 1..507 printable ASCII characters, no
 * leading or trailing space. */
static bool is_valid_role_name(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > KG_ES_ROLE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
			return false;
	return name[0] != ' ' && name[n - 1] != ' ';
}

kg_err kg_es_role_parse(const char *name, const json_t *in, bool for_api_key, json_t **out, struct kg_es_fail *f)
{
	json_t *cluster = NULL, *indices = NULL, *apps = NULL, *run_as = NULL, *metadata = NULL, *global = NULL,
	       *restriction = NULL, *rd = NULL;
	kg_buf outer = { 0 };
	kg_err err = KG_OK;

	*out = NULL;
	if (!is_valid_role_name(name))
		return kg_es_fail_set(f, 400, "validation_exception",
		                      "Validation Failed: 1: Role names must be at least 1 and no more than %d characters. They can contain alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the Basic Latin (ASCII) block. Leading or trailing whitespace is not allowed.;",
		                      KG_ES_ROLE_NAME_MAX);
	if (!json_is_object(in))
		return parse_fail(f, "failed to parse role [%s]. expected an object but found [%s] instead", name, kg_es_token_name(in));
	const char *k;
	json_t *x;
	json_object_foreach ((json_t *)in, k, x) {
		json_t **slot = NULL;
		if (strcmp(k, "indices") == 0 || strcmp(k, "index") == 0) {
			json_decref(indices);
			err = parse_entries(name, k, "indices", x, true, &indices, f, &outer);
		} else if (strcmp(k, "run_as") == 0) {
			slot = &run_as;
		} else if (strcmp(k, "cluster") == 0) {
			slot = &cluster;
		} else if (strcmp(k, "applications") == 0 || strcmp(k, "application") == 0) {
			json_decref(apps);
			err = parse_entries(name, k, "application", x, false, &apps, f, &outer);
		} else if (strcmp(k, "global") == 0) {
			json_decref(global);
			err = parse_global(name, x, &global, f);
		} else if (strcmp(k, "metadata") == 0) {
			if (!json_is_object(x)) {
				err = parse_fail(f, "expected field [%s] to be of type object, but found [%s] instead", k, kg_es_token_name(x));
			} else if (!(err = check_depth(name, k, x, f))) {
				json_decref(metadata);
				metadata = json_deep_copy(x);
				err = metadata ? KG_OK : KG_ENOMEM;
			}
		} else if (strcmp(k, "transient_metadata") == 0) {
			/* ES drops what the client sends and prints {"enabled":true} */
			if (!json_is_object(x))
				err = parse_fail(f, "failed to parse role [%s]. unexpected field [%s]", name, k);
		} else if (strcmp(k, "restriction") == 0 && for_api_key) {
			json_decref(restriction);
			err = parse_restriction(name, x, &restriction, f);
		} else if (strcmp(k, "type") == 0) {
			/* ES's stored documents carry "type":"role"; ES ignores it */
		} else {
			err = parse_fail(f, "failed to parse role [%s]. unexpected field [%s]", name, k);
		}
		if (!err && slot) {
			json_decref(*slot);
			*slot = NULL;
			err = role_string_array(name, k, x, true, slot, f, &outer);
		}
		if (err)
			goto out;
	}

	rd = json_object();
	if (!rd) {
		err = KG_ENOMEM;
		goto out;
	}
	if ((err = set_new(rd, "cluster", cluster ? json_incref(cluster) : json_array())))
		goto out;
	if (global && (err = set_new(rd, "global", json_incref(global))))
		goto out;
	if ((err = set_new(rd, "indices", indices ? json_incref(indices) : json_array())) ||
	    (err = set_new(rd, "applications", apps ? json_incref(apps) : json_array())) ||
	    (err = set_new(rd, "run_as", run_as ? json_incref(run_as) : json_array())) ||
	    (err = set_new(rd, "metadata", metadata ? json_incref(metadata) : json_object())) ||
	    (err = set_new(rd, "transient_metadata", json_pack("{s:b}", "enabled", 1))))
		goto out;
	if (restriction && (err = set_new(rd, "restriction", json_incref(restriction))))
		goto out;
	*out = rd;
	rd = NULL;
out:
	json_decref(cluster);
	json_decref(indices);
	json_decref(apps);
	json_decref(run_as);
	json_decref(metadata);
	json_decref(global);
	json_decref(restriction);
	json_decref(rd);
	kg_buf_free(&outer, false);
	return err;
}

/* ---- validation ---------------------------------------------------------- */

static kg_err append_names(kg_buf *b, const char *const *names, size_t n)
{
	kg_err err = KG_OK;
	for (size_t i = 0; i < n && !err; i++)
		err = kg_buf_printf(b, "%s%s", i ? "," : "", names[i]);
	return err;
}

/* The text of ES's IllegalArgumentException for an unknown privilege (priv as
 * ES prints it: lower-cased). */
static kg_err unknown_message(bool is_index, const char *priv, kg_buf *out)
{
	kg_buf list = { 0 };
	kg_err err;
	if (is_index) {
		size_t n = 0;
		while (index_privs[n])
			n++;
		err = append_names(&list, index_privs, n);
	} else {
		const char *names[NCLUSTER_PRIVS];
		for (size_t i = 0; i < NCLUSTER_PRIVS; i++)
			names[i] = cluster_privs[i].name;
		err = append_names(&list, names, NCLUSTER_PRIVS);
	}
	if (!err && is_index)
		err = kg_buf_printf(out, "unknown index privilege [%s]. a privilege must be either one of the predefined fixed indices privileges [%s] or a pattern over one of the available index actions",
		                    priv, list.p);
	else if (!err)
		err = kg_buf_printf(out, "unknown cluster privilege [%s]. a privilege must be either one of the predefined cluster privilege names [%s] or a pattern over one of the available cluster actions",
		                    priv, list.p);
	kg_buf_free(&list, false);
	return err;
}

static kg_err add_unknown(struct kg_es_fail *f, bool is_index, const char *priv)
{
	kg_buf msg = { 0 };
	kg_err err = unknown_message(is_index, priv, &msg);
	if (!err)
		err = kg_es_fail_validation_add(f, "%s", msg.p);
	kg_buf_free(&msg, false);
	return err;
}

static kg_err add_unknown_cluster(struct kg_es_fail *f, const char *priv)
{
	return add_unknown(f, false, priv);
}

static kg_err add_unknown_index(struct kg_es_fail *f, const char *priv)
{
	return add_unknown(f, true, priv);
}

/* ES's message names the privilege lower-cased, as its resolver sees it. */
static char *lowered(const char *s)
{
	char *l = strdup(s);
	if (l)
		for (char *c = l; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
	return l;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* ApplicationPrivilege.validateApplicationNameOrWildcard; NULL when valid,
 * else ES's message written into msg. */
static const char *app_name_problem(const char *app, kg_buf *msg)
{
	size_t n = strlen(app);
	if (n == 0)
		return "Application names cannot be blank";
	const char *star = strchr(app, '*');
	if (star) {
		if (strcmp(app, "*") == 0)
			return NULL;
		if (star != app + n - 1)
			return kg_buf_printf(msg, "Application name patterns only support trailing wildcards (found '%s')", app)
			           ? "out of memory"
			           : msg->p;
	}
	for (size_t i = 0; i < n; i++)
		if (is_space(app[i]))
			return kg_buf_printf(msg, "Application names may not contain whitespace (found '%s')", app) ? "out of memory"
			                                                                                              : msg->p;
	size_t plen = strcspn(app, "_-");
	size_t pend = plen;
	if (pend > 0 && app[pend - 1] == '*')
		pend--;
	bool is_ok = pend > 0 && app[0] >= 'a' && app[0] <= 'z';
	for (size_t i = 1; i < pend && is_ok; i++)
		is_ok = (app[i] >= 'a' && app[i] <= 'z') || (app[i] >= 'A' && app[i] <= 'Z') || (app[i] >= '0' && app[i] <= '9');
	if (!is_ok)
		return kg_buf_printf(msg, "An application name prefix must match the pattern ^[a-z][A-Za-z0-9]*$ (found '%.*s')",
		                     (int)pend, app)
		           ? "out of memory"
		           : msg->p;
	if (pend < 3 && !star)
		return kg_buf_printf(msg, "An application name prefix must be at least 3 characters long (found '%.*s')", (int)pend,
		                     app)
		           ? "out of memory"
		           : msg->p;
	if (plen < n) {
		const char *suffix = app + plen + 1;
		size_t slen = strlen(suffix);
		if (star && slen > 0 && suffix[slen - 1] == '*')
			slen--;
		/* Strings.INVALID_FILENAME_CHARS */
		for (size_t i = 0; i < slen; i++)
			if (strchr("\\/*?\"<>| ,", suffix[i]))
				return kg_buf_printf(msg, "An application name suffix may not contain any of the characters '\\/*?\"<>| ,' (found '%.*s')",
				                     (int)slen, suffix)
				           ? "out of memory"
				           : msg->p;
	}
	return NULL;
}

/* \p{Graph}: visible ASCII, no space. */
static bool is_graph(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

kg_err kg_es_role_validate(const json_t *rd, struct kg_es_fail *f)
{
	unsigned before = f->nvalidation;
	kg_err err = KG_OK;
	size_t i, j;
	json_t *x, *y;

	if (!json_is_object(rd))
		return kg_es_fail_validation_add(f, "role descriptor is not an object");
	json_array_foreach (json_object_get(rd, "cluster"), i, x) {
		const char *cp = json_string_value(x);
		if (!cp || is_cluster_action(cp) || cluster_priv_index(cp) >= 0)
			continue;
		char *l = lowered(cp);
		err = l ? add_unknown_cluster(f, l) : KG_ENOMEM;
		free(l);
		if (err == KG_ENOMEM)
			return err;
	}
	json_array_foreach (json_object_get(rd, "indices"), i, x) {
		/* ES stops at the first unknown name of an entry */
		json_array_foreach (json_object_get(x, "privileges"), j, y) {
			const char *ip = json_string_value(y);
			if (!ip || is_index_action(ip) || is_index_priv_name(ip))
				continue;
			char *l = lowered(ip);
			err = l ? add_unknown_index(f, l) : KG_ENOMEM;
			free(l);
			if (err == KG_ENOMEM)
				return err;
			break;
		}
	}
	json_array_foreach (json_object_get(rd, "applications"), i, x) {
		const char *app = json_string_value(json_object_get(x, "application"));
		kg_buf msg = { 0 };
		const char *problem = app ? app_name_problem(app, &msg) : NULL;
		if (problem)
			err = kg_es_fail_validation_add(f, "%s", problem);
		kg_buf_free(&msg, false);
		if (err == KG_ENOMEM)
			return err;
		json_array_foreach (json_object_get(x, "privileges"), j, y) {
			const char *p = json_string_value(y);
			if (p && !is_graph(p) &&
			    kg_es_fail_validation_add(f, "Application privilege names and actions must match the pattern ^\\p{Graph}*$ (found '%s')",
			                              p) == KG_ENOMEM)
				return KG_ENOMEM;
		}
	}
	json_t *md = json_object_get(rd, "metadata");
	if (json_is_object(md) && kg_es_has_reserved_key(md) &&
	    kg_es_fail_validation_add(f, "role descriptor metadata keys may not start with [_]") == KG_ENOMEM)
		return KG_ENOMEM;
	json_array_foreach (json_object_get(json_object_get(rd, "restriction"), "workflows"), i, x) {
		const char *w = json_string_value(x);
		if (!w)
			continue;
		/* ES compares lower-cased and trimmed */
		size_t n = strlen(w), b = 0;
		while (b < n && is_space(w[b]))
			b++;
		while (n > b && is_space(w[n - 1]))
			n--;
		bool is_known = false;
		for (const char *const *k = workflows; *k && !is_known; k++) {
			char *l = lowered(w);
			if (!l)
				return KG_ENOMEM;
			is_known = n - b == strlen(*k) && memcmp(l + b, *k, n - b) == 0;
			free(l);
		}
		if (!is_known &&
		    kg_es_fail_validation_add(f, "Unknown workflow [%s]. A workflow must be one of the predefined workflow names [search_application_query,search_application_analytics].",
		                              w) == KG_ENOMEM)
			return KG_ENOMEM;
	}
	return f->nvalidation > before ? KG_EINVAL : KG_OK;
}

kg_err kg_es_role_normalise(const char *name, const json_t *in, bool for_api_key, json_t **out, struct kg_es_fail *f)
{
	kg_err err = kg_es_role_parse(name, in, for_api_key, out, f);
	if (err)
		return err;
	err = kg_es_role_validate(*out, f);
	if (err) {
		json_decref(*out);
		*out = NULL;
	}
	return err;
}

kg_err kg_es_roles_parse(const json_t *map, bool for_api_key, json_t **out, struct kg_es_fail *f)
{
	size_t nrestricted = 0;
	*out = NULL;
	if (!json_is_object(map))
		return parse_fail(f, "failed to parse role descriptors. expected an object but found [%s] instead", kg_es_token_name(map));
	if (json_object_size(map) > KG_ES_ROLE_MAX_DESCRIPTORS)
		return parse_fail(f, "failed to parse role descriptors. no more than [%d] may be given", KG_ES_ROLE_MAX_DESCRIPTORS);
	json_t *res = json_object();
	if (!res)
		return KG_ENOMEM;
	const char *k;
	json_t *x;
	json_object_foreach ((json_t *)map, k, x) {
		json_t *rd;
		kg_err err = kg_es_role_parse(k, x, for_api_key, &rd, f);
		if (!err && json_object_set_new(res, k, rd) != 0)
			err = KG_ENOMEM;
		if (err) {
			json_decref(res);
			return err;
		}
		if (json_object_get(rd, "restriction"))
			nrestricted++;
	}
	/* ApiKeyService's rule: a restricted descriptor stands alone */
	if (nrestricted > 0 && nrestricted != 1) {
		json_decref(res);
		return kg_es_fail_set(f, 400, "illegal_argument_exception", "more than one role descriptor with restriction is not supported");
	}
	if (nrestricted > 0 && nrestricted != json_object_size(res)) {
		json_decref(res);
		return kg_es_fail_set(f, 400, "illegal_argument_exception",
		                      "combining role descriptors with and without restriction is not supported");
	}
	*out = res;
	return KG_OK;
}

kg_err kg_es_roles_validate(const json_t *map, struct kg_es_fail *f)
{
	unsigned before = f->nvalidation;
	const char *k;
	json_t *x;
	json_object_foreach ((json_t *)map, k, x)
		if (kg_es_role_validate(x, f) == KG_ENOMEM)
			return KG_ENOMEM;
	return f->nvalidation > before ? KG_EINVAL : KG_OK;
}

kg_err kg_es_roles_normalise(const json_t *map, bool for_api_key, json_t **out, struct kg_es_fail *f)
{
	kg_err err = kg_es_roles_parse(map, for_api_key, out, f);
	if (err)
		return err;
	err = kg_es_roles_validate(*out, f);
	if (err) {
		json_decref(*out);
		*out = NULL;
	}
	return err;
}

json_t *kg_es_role_superuser(void)
{
	return json_pack("{s:[s],s:[{s:[s],s:[s],s:b}],s:[{s:s,s:[s],s:[s]}],s:[s],s:{s:b},s:{s:b}}", "cluster", "all",
	                 "indices", "names", "*", "privileges", "all", "allow_restricted_indices", 1, "applications",
	                 "application", "*", "privileges", "*", "resources", "*", "run_as", "*", "metadata", "_reserved", 1,
	                 "transient_metadata", "enabled", 1);
}

/* ---- the compiled permission --------------------------------------------- */

struct pat_list {
	kg_str *v; /* each p points into the perm's string pool */
	size_t n;
};

struct index_grant {
	struct pat_list names;
	uint32_t privs;       /* bit i: index_privs[i] */
	struct pat_list actions; /* "indices:..." privileges, as patterns */
	bool allow_restricted;
};

struct app_grant {
	kg_str application;
	struct pat_list actions; /* privileges that are action patterns */
	struct pat_list names;   /* privileges that are privilege names */
	struct pat_list resources;
};

struct kg_es_perm {
	uint64_t cluster;               /* bit i: cluster_privs[i] */
	struct pat_list cluster_actions; /* "cluster:..." privileges, as patterns (name + '*') */
	struct index_grant *indices;
	size_t nindices;
	struct app_grant *apps;
	size_t napps;
	char **pool; /* every string the lists point into */
	size_t npool, cappool;
	struct kg_es_perm *limit; /* an API key's owner snapshot: the result is the intersection */
};

static kg_err pool_str(kg_es_perm *p, const char *s, size_t n, bool add_star, kg_str *out)
{
	if (p->npool == p->cappool) {
		size_t cap = p->cappool ? 2 * p->cappool : 16;
		char **np = realloc(p->pool, cap * sizeof(*np));
		if (!np)
			return KG_ENOMEM;
		p->pool = np;
		p->cappool = cap;
	}
	char *c = malloc(n + 2);
	if (!c)
		return KG_ENOMEM;
	memcpy(c, s, n);
	if (add_star)
		c[n++] = '*';
	c[n] = '\0';
	p->pool[p->npool++] = c;
	*out = (kg_str){ c, n };
	return KG_OK;
}

static kg_err list_push(kg_es_perm *p, struct pat_list *l, const char *s, size_t n, bool add_star)
{
	kg_str *nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv)
		return KG_ENOMEM;
	l->v = nv;
	kg_err err = pool_str(p, s, n, add_star, &l->v[l->n]);
	if (!err)
		l->n++;
	return err;
}

static void list_free(struct pat_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void kg_es_perm_free(kg_es_perm **pp)
{
	kg_es_perm *p = pp ? *pp : NULL;
	if (!p)
		return;
	list_free(&p->cluster_actions);
	for (size_t i = 0; i < p->nindices; i++) {
		list_free(&p->indices[i].names);
		list_free(&p->indices[i].actions);
	}
	free(p->indices);
	for (size_t i = 0; i < p->napps; i++) {
		list_free(&p->apps[i].actions);
		list_free(&p->apps[i].names);
		list_free(&p->apps[i].resources);
	}
	free(p->apps);
	for (size_t i = 0; i < p->npool; i++)
		free(p->pool[i]);
	free(p->pool);
	kg_es_perm_free(&p->limit);
	free(p);
	*pp = NULL;
}

static int index_priv_bit(const char *name)
{
	for (int i = 0; index_privs[i]; i++)
		if (ascii_lower_eq(name, index_privs[i]))
			return i;
	return -1;
}

static kg_err compile_lower(kg_es_perm *p, struct pat_list *l, const char *s, bool add_star)
{
	char *low = lowered(s);
	if (!low)
		return KG_ENOMEM;
	kg_err err = list_push(p, l, low, strlen(low), add_star);
	free(low);
	return err;
}

/* Appends every string of arr to *list; a member that is not a string is
 * KG_EINVAL (an absent arr is empty). */
static kg_err push_strings(kg_es_perm *p, struct pat_list *list, const json_t *arr)
{
	size_t i;
	json_t *y;
	kg_err err;
	json_array_foreach (arr, i, y) {
		if (!json_is_string(y))
			return KG_EINVAL;
		if ((err = list_push(p, list, json_string_value(y), json_string_length(y), false)))
			return err;
	}
	return KG_OK;
}

static kg_err compile_cluster(kg_es_perm *p, const json_t *cluster)
{
	size_t i;
	json_t *x;
	kg_err err;
	json_array_foreach (cluster, i, x) {
		const char *cp = json_string_value(x);
		if (!cp)
			return KG_EINVAL;
		int bit = cluster_priv_index(cp);
		if (bit >= 0)
			p->cluster |= (uint64_t)1 << bit;
		else if (is_cluster_action(cp) && (err = compile_lower(p, &p->cluster_actions, cp, true)))
			return err;
	}
	return KG_OK;
}

static kg_err compile_indices(kg_es_perm *p, const json_t *indices)
{
	size_t i, j;
	json_t *x, *y;
	kg_err err;
	if (json_array_size(indices) > 0) {
		struct index_grant *ni = realloc(p->indices, (p->nindices + json_array_size(indices)) * sizeof(*ni));
		if (!ni)
			return KG_ENOMEM;
		p->indices = ni;
	}
	json_array_foreach (indices, i, x) {
		struct index_grant *g = &p->indices[p->nindices++];
		memset(g, 0, sizeof(*g));
		g->allow_restricted = json_is_true(json_object_get(x, "allow_restricted_indices"));
		json_t *names = json_object_get(x, "names");
		if (json_is_string(names) && (err = list_push(p, &g->names, json_string_value(names), json_string_length(names), false)))
			return err; /* ES's input form: one name as a string */
		if ((err = push_strings(p, &g->names, names)))
			return err;
		json_array_foreach (json_object_get(x, "privileges"), j, y) {
			const char *ip = json_string_value(y);
			if (!ip)
				return KG_EINVAL;
			int bit = index_priv_bit(ip);
			if (bit >= 0)
				g->privs |= (uint32_t)1 << bit;
			else if (is_index_action(ip) && (err = compile_lower(p, &g->actions, ip, true)))
				return err;
		}
	}
	return KG_OK;
}

static kg_err compile_applications(kg_es_perm *p, const json_t *apps)
{
	size_t i, j;
	json_t *x, *y;
	kg_err err;
	if (json_array_size(apps) > 0) {
		struct app_grant *na = realloc(p->apps, (p->napps + json_array_size(apps)) * sizeof(*na));
		if (!na)
			return KG_ENOMEM;
		p->apps = na;
	}
	json_array_foreach (apps, i, x) {
		struct app_grant *g = &p->apps[p->napps++];
		memset(g, 0, sizeof(*g));
		json_t *app = json_object_get(x, "application");
		if (!json_is_string(app))
			return KG_EINVAL;
		if ((err = pool_str(p, json_string_value(app), json_string_length(app), false, &g->application)))
			return err;
		json_array_foreach (json_object_get(x, "privileges"), j, y) {
			if (!json_is_string(y))
				return KG_EINVAL;
			kg_str s = { json_string_value(y), json_string_length(y) };
			if ((err = list_push(p, is_app_privilege_name(s) ? &g->names : &g->actions, s.p, s.n, false)))
				return err;
		}
		if ((err = push_strings(p, &g->resources, json_object_get(x, "resources"))))
			return err;
	}
	return KG_OK;
}

static kg_err compile_descriptor(kg_es_perm *p, const json_t *rd)
{
	kg_err err;
	if (!json_is_object(rd))
		return KG_EINVAL;
	if ((err = compile_cluster(p, json_object_get(rd, "cluster"))) ||
	    (err = compile_indices(p, json_object_get(rd, "indices"))))
		return err;
	return compile_applications(p, json_object_get(rd, "applications"));
}

kg_err kg_es_perm_compile(const json_t *map, kg_es_perm **out)
{
	*out = NULL;
	if (!json_is_object(map))
		return KG_EINVAL;
	kg_es_perm *p = calloc(1, sizeof(*p));
	if (!p)
		return KG_ENOMEM;
	const char *k;
	json_t *x;
	json_object_foreach ((json_t *)map, k, x) {
		kg_err err = compile_descriptor(p, x);
		if (err) {
			kg_es_perm_free(&p);
			return err;
		}
	}
	*out = p;
	return KG_OK;
}

kg_err kg_es_perm_compile_key(const json_t *key_descriptors, const json_t *limited_by, kg_es_perm **out)
{
	kg_es_perm *key = NULL, *owner = NULL;
	*out = NULL;
	kg_err err = kg_es_perm_compile(limited_by, &owner);
	if (err)
		return err;
	if (!key_descriptors || (json_is_object(key_descriptors) && json_object_size(key_descriptors) == 0)) {
		*out = owner;
		return KG_OK;
	}
	if ((err = kg_es_perm_compile(key_descriptors, &key))) {
		kg_es_perm_free(&owner);
		return err;
	}
	key->limit = owner;
	*out = key;
	return KG_OK;
}

static bool str_in(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

static enum kg_es_grant cluster_one(const kg_es_perm *p, const char *action)
{
	kg_str a = kg_str_c(action);
	for (size_t i = 0; i < p->cluster_actions.n; i++)
		if (glob_match(p->cluster_actions.v[i], a))
			return KG_ES_ALLOW;
	for (size_t i = 0; i < NCLUSTER_PRIVS; i++)
		if ((p->cluster >> i & 1) && cluster_priv_grants(i, action))
			return KG_ES_ALLOW;
	if ((p->cluster >> CLUSTER_MANAGE_OWN_API_KEY & 1) && str_in(own_actions, action))
		return KG_ES_OWN;
	return KG_ES_DENY;
}

enum kg_es_grant kg_es_perm_cluster(const kg_es_perm *p, const char *action)
{
	if (!p || !action)
		return KG_ES_DENY;
	if (str_in(everyone_actions, action))
		return KG_ES_ALLOW;
	enum kg_es_grant g = KG_ES_ALLOW;
	for (; p; p = p->limit) {
		enum kg_es_grant one = cluster_one(p, action);
		if (one < g)
			g = one;
	}
	return g;
}

kg_err kg_es_cluster_privileges_granting(const char *action, bool is_own_request, kg_buf *out)
{
	bool is_first = true;
	for (size_t i = 0; i < NCLUSTER_PRIVS; i++) {
		bool grants = i == CLUSTER_MANAGE_OWN_API_KEY ? is_own_request && str_in(own_actions, action)
		                                              : cluster_priv_grants(i, action);
		if (!grants)
			continue;
		if (kg_buf_printf(out, "%s%s", is_first ? "" : ",", cluster_privs[i].name) != KG_OK)
			return KG_ENOMEM;
		is_first = false;
	}
	return KG_OK;
}

static bool list_glob(const struct pat_list *l, kg_str s)
{
	for (size_t i = 0; i < l->n; i++)
		if (glob_match(l->v[i], s))
			return true;
	return false;
}

static bool app_one(const kg_es_perm *p, kg_str application, kg_str privilege, kg_str resource,
                    kg_es_app_resolve_fn resolve, void *ctx)
{
	for (size_t i = 0; i < p->napps; i++) {
		const struct app_grant *g = &p->apps[i];
		if (!glob_match(g->application, application) || !list_glob(&g->resources, resource))
			continue;
		if (list_glob(&g->actions, privilege))
			return true;
		for (size_t j = 0; j < g->names.n; j++)
			if (resolve ? resolve(ctx, application, g->names.v[j], privilege) : kg_str_eq(g->names.v[j], privilege))
				return true;
	}
	return false;
}

bool kg_es_perm_app_resolved(const kg_es_perm *p, kg_str application, kg_str privilege, kg_str resource,
                             kg_es_app_resolve_fn resolve, void *ctx)
{
	if (!p)
		return false;
	for (; p; p = p->limit)
		if (!app_one(p, application, privilege, resource, resolve, ctx))
			return false;
	return true;
}

bool kg_es_perm_app(const kg_es_perm *p, kg_str application, kg_str privilege, kg_str resource)
{
	return kg_es_perm_app_resolved(p, application, privilege, resource, NULL, NULL);
}

/* The named index privileges that cover the one asked for (besides itself
 * and all). */
static bool index_priv_covers(uint32_t privs, const char *want)
{
	static const struct {
		const char *holder;
		const char *covered[5];
	} implied[] = {
		{ "write", L("index", "create", "create_doc", "delete") },
		{ "index", L("create", "create_doc") },
		{ "create", L("create_doc") },
		{ "manage", L("monitor", "view_index_metadata") },
	};
	int want_bit = index_priv_bit(want);
	if (want_bit >= 0 && (privs >> want_bit & 1))
		return true;
	if (privs >> index_priv_bit("all") & 1)
		return true;
	for (size_t i = 0; i < sizeof(implied) / sizeof(implied[0]); i++)
		if ((privs >> index_priv_bit(implied[i].holder) & 1) && want_bit >= 0 && str_in(implied[i].covered, index_privs[want_bit]))
			return true;
	return false;
}

static bool index_one(const kg_es_perm *p, kg_str index, const char *privilege)
{
	bool is_restricted = kg_str_has_prefix(index, KG_STR(".security"));
	for (size_t i = 0; i < p->nindices; i++) {
		const struct index_grant *g = &p->indices[i];
		if ((is_restricted && !g->allow_restricted) || !list_glob(&g->names, index))
			continue;
		if (index_priv_covers(g->privs, privilege) || list_glob(&g->actions, kg_str_c(privilege)))
			return true;
	}
	return false;
}

bool kg_es_perm_index(const kg_es_perm *p, kg_str index, const char *privilege)
{
	if (!p || !privilege)
		return false;
	for (; p; p = p->limit)
		if (!index_one(p, index, privilege))
			return false;
	return true;
}

/* ---- the 403 message ------------------------------------------------------ */

kg_err kg_es_unauthorized_message(kg_buf *out, kg_str action, kg_str principal, bool is_api_key,
                                  const char *const *roles, size_t nroles, const char *granted_by)
{
	kg_err err = kg_buf_printf(out, "action [%.*s] is unauthorized for %.*s", (int)action.n, action.p ? action.p : "",
	                           (int)principal.n, principal.p ? principal.p : "");
	if (!err && !is_api_key) {
		if (nroles == 0) {
			err = kg_buf_printf(out, " with no roles");
		} else {
			err = kg_buf_printf(out, " with effective roles [");
			for (size_t i = 0; i < nroles && !err; i++)
				err = kg_buf_printf(out, "%s%s", i ? "," : "", roles[i]);
			if (!err)
				err = kg_buf_append(out, "]", 1);
		}
	}
	if (!err && granted_by)
		err = kg_buf_printf(out, ", this action is granted by the cluster privileges [%s]", granted_by);
	return err;
}

/* ---- privilege names: what exists, and what a permission implies ---------- */

const char *kg_es_cluster_privilege_name(size_t i)
{
	return i < NCLUSTER_PRIVS ? cluster_privs[i].name : NULL;
}

const char *kg_es_index_privilege_name(size_t i)
{
	size_t n = 0;
	while (index_privs[n])
		n++;
	return i < n ? index_privs[i] : NULL;
}

bool kg_es_cluster_privilege_is_known(const char *privilege)
{
	return privilege && (is_cluster_action(privilege) || cluster_priv_index(privilege) >= 0);
}

bool kg_es_index_privilege_is_known(const char *privilege)
{
	return privilege && (is_index_action(privilege) || is_index_priv_name(privilege));
}

kg_err kg_es_unknown_privilege_message(bool is_index, const char *privilege, kg_buf *out)
{
	char *l = lowered(privilege ? privilege : "");
	if (!l)
		return KG_ENOMEM;
	kg_err err = unknown_message(is_index, l, out);
	free(l);
	return err;
}

/* One element of a pattern that is itself the thing matched: a literal
 * character, '?' (exactly one of anything) or '*' (any run). */
enum tok_kind { TOK_CHAR, TOK_ONE, TOK_ANY };

static size_t next_tok(kg_str s, size_t i, enum tok_kind *kind, char *c)
{
	if (s.p[i] == '*') {
		*kind = TOK_ANY;
		return i + 1;
	}
	if (s.p[i] == '?') {
		*kind = TOK_ONE;
		return i + 1;
	}
	*kind = TOK_CHAR;
	if (s.p[i] == '\\' && i + 1 < s.n) {
		*c = s.p[i + 1];
		return i + 2;
	}
	*c = s.p[i];
	return i + 1;
}

/* glob_match with a pattern on both sides: held's '*' takes any run of want's
 * elements, held's '?' one literal or '?' of want (never a '*', which may be
 * longer), held's literal only the same literal. Every string want matches
 * is then matched by held (sound; it may miss a cover that only a union of
 * patterns gives, which makes the answer "no", never a wrong "yes"). */
bool kg_es_pattern_covers(kg_str held, kg_str want)
{
	size_t p = 0, i = 0, star_p = SIZE_MAX, star_i = 0;
	while (i < want.n) {
		if (p < held.n && held.p[p] == '*') {
			star_p = ++p;
			star_i = i;
			continue;
		}
		enum tok_kind wk;
		char wc = 0;
		size_t wnext = next_tok(want, i, &wk, &wc);
		if (p < held.n) {
			enum tok_kind hk;
			char hc = 0;
			size_t hnext = next_tok(held, p, &hk, &hc);
			bool is_ok = (hk == TOK_ONE && wk != TOK_ANY) || (hk == TOK_CHAR && wk == TOK_CHAR && hc == wc);
			if (is_ok) {
				p = hnext;
				i = wnext;
				continue;
			}
		}
		if (star_p == SIZE_MAX)
			return false;
		p = star_p;
		/* the star takes one more element of want */
		enum tok_kind sk;
		char sc;
		i = star_i = next_tok(want, star_i, &sk, &sc);
	}
	while (p < held.n && held.p[p] == '*')
		p++;
	return p == held.n;
}

/* The literal text before a pattern's first wildcard (escapes count as
 * wildcards here: conservative). */
static size_t literal_prefix(kg_str s, bool *is_exact)
{
	size_t i = 0;
	while (i < s.n && s.p[i] != '*' && s.p[i] != '?' && s.p[i] != '\\')
		i++;
	*is_exact = i == s.n;
	return i;
}

/* Whether two patterns may match a common string (conservative: true when
 * unsure, so an exclusion is assumed to cut). */
static bool patterns_overlap(kg_str a, kg_str b)
{
	bool a_exact, b_exact;
	size_t na = literal_prefix(a, &a_exact), nb = literal_prefix(b, &b_exact);
	if (a_exact && b_exact)
		return kg_str_eq(a, b);
	if (a_exact)
		return glob_match(b, a);
	if (b_exact)
		return glob_match(a, b);
	size_t n = na < nb ? na : nb;
	return memcmp(a.p, b.p, n) == 0;
}

static bool table_covers(const char *const *list, kg_str want)
{
	for (; *list; list++)
		if (kg_es_pattern_covers(kg_str_c(*list), want))
			return true;
	return false;
}

/* Whether one level of p (no limit) grants every action of the pattern g.
 * except: the excludes of the privilege being asked about (its actions do
 * not include them, so a holder's exclusion inside them does not cut). */
static bool cluster_level_covers(const kg_es_perm *p, kg_str g, const char *const *except)
{
	for (size_t i = 0; i < p->cluster_actions.n; i++)
		if (kg_es_pattern_covers(p->cluster_actions.v[i], g))
			return true;
	for (size_t i = 0; i < NCLUSTER_PRIVS; i++) {
		if (!(p->cluster >> i & 1) || !table_covers(cluster_privs[i].grants, g))
			continue;
		bool is_cut = false;
		for (const char *const *e = cluster_privs[i].excludes; *e && !is_cut; e++)
			is_cut = patterns_overlap(kg_str_c(*e), g) && !(except && table_covers(except, kg_str_c(*e)));
		if (!is_cut)
			return true;
	}
	return false;
}

static bool cluster_level_privilege(const kg_es_perm *p, const char *privilege)
{
	int x = cluster_priv_index(privilege);
	if (x >= 0) {
		if (p->cluster >> x & 1)
			return true;
		if (x == CLUSTER_MANAGE_OWN_API_KEY) {
			/* implied by whatever grants the actions it allows on any key */
			for (const char *const *a = own_actions; *a; a++)
				if (!cluster_level_covers(p, kg_str_c(*a), NULL))
					return false;
			return true;
		}
		/* none grants nothing, so everything implies it */
		for (const char *const *g = cluster_privs[x].grants; *g; g++)
			if (!cluster_level_covers(p, kg_str_c(*g), cluster_privs[x].excludes))
				return false;
		return true;
	}
	if (!is_cluster_action(privilege))
		return false;
	char *l = lowered(privilege);
	if (!l)
		return false;
	bool is_granted = str_in(everyone_actions, l) || cluster_level_covers(p, kg_str_c(l), NULL);
	free(l);
	return is_granted;
}

bool kg_es_perm_cluster_privilege(const kg_es_perm *p, const char *privilege)
{
	if (!p || !privilege || !kg_es_cluster_privilege_is_known(privilege))
		return false;
	for (; p; p = p->limit)
		if (!cluster_level_privilege(p, privilege))
			return false;
	return true;
}

/* The actions behind ES's named index privileges (IndexPrivilege), for a
 * has_privileges question about an action ("indices:data/read/search"). */
static const struct {
	const char *name;
	const char *actions[8];
} index_priv_actions[] = {
	{ "read", L("indices:data/read/*", "indices:admin/resolve/index*") },
	{ "write", L("indices:data/write/*", "indices:admin/mapping/auto_put*") },
	{ "index", L("indices:data/write/index*", "indices:data/write/update*", "indices:data/write/bulk*",
	             "indices:admin/mapping/auto_put*") },
	{ "create", L("indices:data/write/index*", "indices:data/write/bulk*", "indices:admin/mapping/auto_put*") },
	{ "delete", L("indices:data/write/delete*", "indices:data/write/bulk*") },
	{ "monitor", L("indices:monitor/*") },
	{ "manage", L("indices:monitor/*", "indices:admin/*") },
	{ "create_index", L("indices:admin/create*", "indices:admin/auto_create*", "indices:admin/data_stream/create*") },
	{ "delete_index", L("indices:admin/delete*", "indices:admin/data_stream/delete*") },
	{ "view_index_metadata",
	  L("indices:admin/aliases/get*", "indices:admin/get*", "indices:admin/mappings/get*",
	    "indices:admin/mappings/fields/get*", "indices:admin/settings/get*", "indices:admin/resolve/index*",
	    "indices:monitor/settings/get*") },
};

static bool entry_grants_privilege(const struct index_grant *g, const char *privilege)
{
	if (index_priv_covers(g->privs, privilege))
		return true;
	if (!is_index_action(privilege))
		return false;
	char *l = lowered(privilege);
	if (!l)
		return false;
	kg_str want = kg_str_c(l);
	bool is_granted = false;
	for (size_t i = 0; i < g->actions.n && !is_granted; i++)
		is_granted = kg_es_pattern_covers(g->actions.v[i], want);
	for (size_t i = 0; i < sizeof(index_priv_actions) / sizeof(index_priv_actions[0]) && !is_granted; i++)
		is_granted = (g->privs >> index_priv_bit(index_priv_actions[i].name) & 1) &&
		             table_covers(index_priv_actions[i].actions, want);
	free(l);
	return is_granted;
}

/* Whether a pattern may name a restricted index (.security*). */
static bool may_be_restricted(kg_str pattern)
{
	bool is_exact;
	size_t n = literal_prefix(pattern, &is_exact);
	kg_str sec = KG_STR(".security");
	if (is_exact)
		return kg_str_has_prefix(pattern, sec);
	size_t m = n < sec.n ? n : sec.n;
	return memcmp(pattern.p, sec.p, m) == 0;
}

static bool index_level_pattern(const kg_es_perm *p, kg_str pattern, const char *privilege, bool allow_restricted)
{
	bool is_exact;
	(void)literal_prefix(pattern, &is_exact);
	/* ES takes the restricted indices out of a pattern unless asked (a
	 * concrete restricted name is checked as it is) */
	bool needs_restricted = is_exact ? kg_str_has_prefix(pattern, KG_STR(".security"))
	                                 : allow_restricted && may_be_restricted(pattern);
	for (size_t i = 0; i < p->nindices; i++) {
		const struct index_grant *g = &p->indices[i];
		if (needs_restricted && !g->allow_restricted)
			continue;
		bool is_covered = false;
		for (size_t j = 0; j < g->names.n && !is_covered; j++)
			is_covered = kg_es_pattern_covers(g->names.v[j], pattern);
		if (is_covered && entry_grants_privilege(g, privilege))
			return true;
	}
	return false;
}

bool kg_es_perm_index_pattern(const kg_es_perm *p, kg_str pattern, const char *privilege, bool allow_restricted)
{
	if (!p || !privilege || !kg_es_index_privilege_is_known(privilege))
		return false;
	for (; p; p = p->limit)
		if (!index_level_pattern(p, pattern, privilege, allow_restricted))
			return false;
	return true;
}
