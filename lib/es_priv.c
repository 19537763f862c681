/* es_priv.c - Elasticsearch's privileges APIs: application privileges
 * (ApplicationPrivilegeDescriptor, PutPrivilegesRequest(Builder)),
 * has_privileges (RoleDescriptor.parsePrivilegesToCheck,
 * HasPrivilegesRequest.validate, HasPrivilegesResponse), the builtin list and
 * a user's privileges (GetUserPrivilegesResponse). The messages are ES's,
 * word for word, because clients match on them. */
#include <stdlib.h>
#include <string.h>

#include "keygate/es_priv.h"

/* ---- small helpers ------------------------------------------------------- */

static bool is_blank(kg_str s)
{
	for (size_t i = 0; i < s.n; i++)
		if (s.p[i] != ' ' && s.p[i] != '\t' && s.p[i] != '\r' && s.p[i] != '\n')
			return false;
	return true;
}

static bool is_ascii_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_ascii_alnum(char c)
{
	return is_ascii_lower(c) || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Java's [\v\h]: the ASCII ones and the Unicode spaces keygate sees as
 * UTF-8 (NBSP, U+1680, U+2000..200A, U+2028/2029, U+202F, U+205F, U+3000). */
static bool has_whitespace(kg_str s)
{
	for (size_t i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c == ' ' || c == '\t' || (c >= 0x0a && c <= 0x0d) || c == 0x85)
			return true;
		if (c == 0xc2 && i + 1 < s.n && ((unsigned char)s.p[i + 1] == 0xa0 || (unsigned char)s.p[i + 1] == 0x85))
			return true;
		if (c == 0xe1 && i + 2 < s.n && (unsigned char)s.p[i + 1] == 0x9a && (unsigned char)s.p[i + 2] == 0x80)
			return true;
		if (c == 0xe2 && i + 2 < s.n) {
			unsigned char b = (unsigned char)s.p[i + 1], d = (unsigned char)s.p[i + 2];
			if (b == 0x80 && ((d >= 0x80 && d <= 0x8a) || d == 0xa8 || d == 0xa9 || d == 0xaf))
				return true;
			if (b == 0x81 && d == 0x9f)
				return true;
		}
		if (c == 0xe3 && i + 2 < s.n && (unsigned char)s.p[i + 1] == 0x80 && (unsigned char)s.p[i + 2] == 0x80)
			return true;
	}
	return false;
}

/* ES's ApplicationPrivilege.validateApplicationName(OrWildcard): appends the
 * problem to msg and returns false, or true when the name is valid. */
static bool app_name_is_valid(kg_str app, bool allow_wildcard, kg_buf *msg, kg_err *err)
{
	*err = KG_OK;
	if (app.n == 0) {
		*err = kg_buf_printf(msg, "Application names cannot be blank");
		return false;
	}
	const char *star = memchr(app.p, '*', app.n);
	if (star) {
		if (!allow_wildcard) {
			*err = kg_buf_printf(msg, "Application names may not contain '*' (found '%.*s')", (int)app.n, app.p);
			return false;
		}
		if (app.n == 1)
			return true;
		if (star != app.p + app.n - 1) {
			*err = kg_buf_printf(msg, "Application name patterns only support trailing wildcards (found '%.*s')",
			                     (int)app.n, app.p);
			return false;
		}
	}
	if (has_whitespace(app)) {
		*err = kg_buf_printf(msg, "Application names may not contain whitespace (found '%.*s')", (int)app.n, app.p);
		return false;
	}
	size_t plen = 0;
	while (plen < app.n && app.p[plen] != '_' && app.p[plen] != '-')
		plen++;
	size_t pend = plen;
	if (pend > 0 && app.p[pend - 1] == '*')
		pend--;
	bool is_ok = pend > 0 && is_ascii_lower(app.p[0]);
	for (size_t i = 1; i < pend && is_ok; i++)
		is_ok = is_ascii_alnum(app.p[i]);
	if (!is_ok) {
		*err = kg_buf_printf(msg, "An application name prefix must match the pattern ^[a-z][A-Za-z0-9]*$ (found '%.*s')",
		                     (int)pend, app.p);
		return false;
	}
	if (pend < 3 && !star) {
		*err = kg_buf_printf(msg, "An application name prefix must be at least 3 characters long (found '%.*s')",
		                     (int)pend, app.p);
		return false;
	}
	if (plen < app.n) {
		const char *suffix = app.p + plen + 1;
		size_t slen = app.n - plen - 1;
		if (allow_wildcard && slen > 0 && suffix[slen - 1] == '*')
			slen--;
		/* Strings.INVALID_FILENAME_CHARS */
		for (size_t i = 0; i < slen; i++)
			if (strchr("\\/*?\"<>| ,", suffix[i]) && suffix[i] != '\0') {
				*err = kg_buf_printf(msg, "An application name suffix may not contain any of the characters '\\/*?\"<>| ,' (found '%.*s')",
				                     (int)slen, suffix);
				return false;
			}
	}
	return true;
}

/* ApplicationPrivilege.VALID_NAME: ^[a-z][a-zA-Z0-9_.-]*$ */
static bool is_privilege_name(kg_str s)
{
	if (s.n == 0 || !is_ascii_lower(s.p[0]))
		return false;
	for (size_t i = 1; i < s.n; i++)
		if (!is_ascii_alnum(s.p[i]) && s.p[i] != '_' && s.p[i] != '.' && s.p[i] != '-')
			return false;
	return true;
}

/* \p{Graph}*: visible ASCII only. */
static bool is_graph(kg_str s)
{
	for (size_t i = 0; i < s.n; i++)
		if ((unsigned char)s.p[i] <= 0x20 || (unsigned char)s.p[i] >= 0x7f)
			return false;
	return true;
}

static kg_str jstr(const json_t *v)
{
	return (kg_str){ json_string_value(v), json_string_length(v) };
}

/* ---- PUT /_security/privilege ------------------------------------------- */

#define DESCRIPTOR_PARSER "application-privilege"

/* ApplicationPrivilegeDescriptor.parse of one value, under the keys app and
 * name of the body; checkPrivilegeName after it. */
static kg_err parse_descriptor(const char *app, const char *name, const json_t *v, json_t **out, struct kg_es_fail *f)
{
	json_t *application = NULL, *pname = NULL, *actions = NULL, *metadata = NULL;
	const char *k;
	json_t *x;

	*out = NULL;
	json_object_foreach ((json_t *)v, k, x) {
		if (strcmp(k, "application") == 0 || strcmp(k, "name") == 0) {
			if (!json_is_string(x))
				return kg_es_fail_set(f, 400, "x_content_parse_exception", "[" DESCRIPTOR_PARSER "] %s doesn't support values of type: %s",
				                      k, kg_es_token_name(x));
			if (json_string_length(x) > KG_ES_PRIV_STRING_MAX)
				return kg_es_fail_set(f, 400, "parse_exception", "[%s] may not be longer than [%d] bytes", k,
				                      KG_ES_PRIV_STRING_MAX);
			if (k[0] == 'a')
				application = x;
			else
				pname = x;
		} else if (strcmp(k, "actions") == 0) {
			/* declareStringArray: an array of strings, or one string */
			if (json_is_string(x)) {
				if (json_string_length(x) > KG_ES_PRIV_STRING_MAX)
					return kg_es_fail_set(f, 400, "parse_exception", "[actions] values may not be longer than [%d] bytes",
					                      KG_ES_PRIV_STRING_MAX);
			} else if (json_is_array(x)) {
				if (json_array_size(x) > KG_ES_PRIV_ACTIONS_MAX)
					return kg_es_fail_set(f, 400, "parse_exception", "[actions] may not hold more than [%d] entries",
					                      KG_ES_PRIV_ACTIONS_MAX);
				size_t i;
				json_t *y;
				json_array_foreach (x, i, y) {
					if (!json_is_string(y))
						return kg_es_fail_set(f, 400, "x_content_parse_exception",
						                      "[" DESCRIPTOR_PARSER "] failed to parse field [actions]");
					if (json_string_length(y) > KG_ES_PRIV_STRING_MAX)
						return kg_es_fail_set(f, 400, "parse_exception",
						                      "[actions] values may not be longer than [%d] bytes", KG_ES_PRIV_STRING_MAX);
				}
			} else {
				return kg_es_fail_set(f, 400, "x_content_parse_exception",
				                      "[" DESCRIPTOR_PARSER "] actions doesn't support values of type: %s", kg_es_token_name(x));
			}
			actions = x;
		} else if (strcmp(k, "metadata") == 0) {
			if (!json_is_object(x))
				return kg_es_fail_set(f, 400, "x_content_parse_exception",
				                      "[" DESCRIPTOR_PARSER "] metadata doesn't support values of type: %s", kg_es_token_name(x));
			if (kg_es_json_depth(x, KG_ES_JSON_DEPTH_MAX) > KG_ES_JSON_DEPTH_MAX)
				return kg_es_fail_set(f, 400, "parse_exception", "[metadata] is nested deeper than [%d] levels",
				                      KG_ES_JSON_DEPTH_MAX);
			metadata = x;
		} else if (strcmp(k, "type") == 0) {
			/* ES allows it only when reading its own index */
			return kg_es_fail_set(f, 400, "x_content_parse_exception", "[" DESCRIPTOR_PARSER "] failed to parse field [type]");
		} else {
			return kg_es_fail_set(f, 400, "x_content_parse_exception", "[" DESCRIPTOR_PARSER "] unknown field [%s]", k);
		}
	}
	const char *got_app = application ? json_string_value(application) : app;
	const char *got_name = pname ? json_string_value(pname) : name;
	if (application && (json_string_length(application) != strlen(app) || strcmp(got_app, app) != 0))
		return kg_es_fail_set(f, 400, "illegal_argument_exception",
		                      "privilege application [%s] in source does not match the provided application [%s]", got_app,
		                      app);
	if (pname && (json_string_length(pname) != strlen(name) || strcmp(got_name, name) != 0))
		return kg_es_fail_set(f, 400, "illegal_argument_exception",
		                      "privilege name [%s] in source does not match the provided name [%s]", got_name, name);

	json_t *doc = json_object(), *acts = json_array();
	if (!doc || !acts)
		goto nomem;
	if (json_object_set_new(doc, "application", json_string(app)) || json_object_set_new(doc, "name", json_string(name)))
		goto nomem;
	/* a LinkedHashSet: first occurrence wins, order kept */
	for (size_t i = 0; actions && i < (json_is_string(actions) ? 1 : json_array_size(actions)); i++) {
		json_t *a = json_is_string(actions) ? actions : json_array_get(actions, i);
		bool is_dup = false;
		for (size_t j = 0; j < json_array_size(acts) && !is_dup; j++)
			is_dup = json_equal(json_array_get(acts, j), a);
		if (!is_dup && json_array_append(acts, a))
			goto nomem;
	}
	if (json_object_set(doc, "actions", acts))
		goto nomem;
	json_decref(acts);
	acts = NULL;
	json_t *md = metadata ? json_deep_copy(metadata) : json_object();
	if (json_object_set_new(doc, "metadata", md) || !md)
		goto nomem;
	*out = doc;
	return KG_OK;
nomem:
	json_decref(doc);
	json_decref(acts);
	return KG_ENOMEM;
}

/* PutPrivilegesRequest.validate, in ES's order. */
static kg_err validate_docs(const json_t *docs, struct kg_es_fail *f)
{
	unsigned before = f->nvalidation;
	kg_err err = KG_OK;
	kg_buf msg = { 0 };
	size_t i, j;
	json_t *d, *a;

	if (json_array_size(docs) == 0)
		return kg_es_fail_validation_add(f, "At least one application privilege must be provided");
	json_array_foreach (docs, i, d) {
		kg_str app = jstr(json_object_get(d, "application")), name = jstr(json_object_get(d, "name"));
		kg_err e2;
		kg_buf_clear(&msg);
		if (!app_name_is_valid(app, false, &msg, &e2) && (err = e2 ? e2 : kg_es_fail_validation_add(f, "%s", msg.p)) == KG_ENOMEM)
			goto out;
		if (!is_privilege_name(name) &&
		    (err = kg_es_fail_validation_add(f, "Application privilege names must match the pattern ^[a-z][a-zA-Z0-9_.-]*$ (found '%s')",
		                                     name.p)) == KG_ENOMEM)
			goto out;
		json_t *actions = json_object_get(d, "actions");
		if (json_array_size(actions) == 0 &&
		    (err = kg_es_fail_validation_add(f, "Application privileges must have at least one action")) == KG_ENOMEM)
			goto out;
		json_array_foreach (actions, j, a) {
			kg_str s = jstr(a);
			if (!memchr(s.p, '/', s.n) && !memchr(s.p, '*', s.n) && !memchr(s.p, ':', s.n) &&
			    (err = kg_es_fail_validation_add(f, "action [%s] must contain one of [ '/' , '*' , ':' ]", s.p)) == KG_ENOMEM)
				goto out;
			if (!is_graph(s) &&
			    (err = kg_es_fail_validation_add(f, "Application privilege names and actions must match the pattern ^\\p{Graph}*$ (found '%s')",
			                                     s.p)) == KG_ENOMEM)
				goto out;
		}
		if (kg_es_has_reserved_key(json_object_get(d, "metadata")) &&
		    (err = kg_es_fail_validation_add(f, "metadata keys may not start with [_] (in privilege %s %s)", app.p, name.p)) ==
		        KG_ENOMEM)
			goto out;
	}
	err = f->nvalidation > before ? KG_EINVAL : KG_OK;
out:
	kg_buf_free(&msg, false);
	return err;
}

kg_err kg_es_privileges_parse(kg_str body, json_t **docs, struct kg_es_fail *f)
{
	json_error_t jerr;
	json_t *root = NULL, *arr = NULL;
	kg_err err = KG_OK;
	const char *app, *name;
	json_t *v, *pv;

	*docs = NULL;
	if (body.n == 0 || is_blank(body))
		return kg_es_fail_set(f, 400, "parse_exception", "request body is required");
	root = json_loadb(body.p, body.n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root)
		return kg_es_fail_set(f, 400, "x_content_parse_exception", "[%d:%d] %s", jerr.line, jerr.column, jerr.text);
	if (!json_is_object(root)) {
		err = kg_es_fail_set(f, 400, "parse_exception", "expected object but found %s instead", kg_es_token_name(root));
		goto out;
	}
	if (!(arr = json_array())) {
		err = KG_ENOMEM;
		goto out;
	}
	json_object_foreach (root, app, v) {
		if (!json_is_object(v)) {
			err = kg_es_fail_set(f, 400, "parse_exception", "expected the value for %s to be an object, but found %s instead",
			                     app, kg_es_token_name(v));
			goto out;
		}
		json_object_foreach (v, name, pv) {
			json_t *doc;
			if (!json_is_object(pv)) {
				/* ES names the application here, not the privilege */
				err = kg_es_fail_set(f, 400, "parse_exception",
				                     "expected the value for %s to be an object, but found %s instead", app, kg_es_token_name(pv));
				goto out;
			}
			if (json_array_size(arr) >= KG_ES_PRIV_MAX) {
				err = kg_es_fail_set(f, 400, "parse_exception", "a request may not define more than [%d] privileges",
				                     KG_ES_PRIV_MAX);
				goto out;
			}
			if (strlen(app) > KG_ES_PRIV_STRING_MAX || strlen(name) > KG_ES_PRIV_STRING_MAX) {
				err = kg_es_fail_set(f, 400, "parse_exception", "application and privilege names may not be longer than [%d] bytes",
				                     KG_ES_PRIV_STRING_MAX);
				goto out;
			}
			if ((err = parse_descriptor(app, name, pv, &doc, f)))
				goto out;
			if (json_array_append_new(arr, doc)) {
				err = KG_ENOMEM;
				goto out;
			}
		}
	}
	if ((err = validate_docs(arr, f)))
		goto out;
	*docs = arr;
	arr = NULL;
out:
	json_decref(root);
	json_decref(arr);
	return err;
}

json_t *kg_es_privileges_put_answer(const json_t *docs, const bool *existed)
{
	json_t *ans = json_object();
	size_t i;
	json_t *d;
	if (!ans)
		return NULL;
	json_array_foreach (docs, i, d) {
		const char *app = json_string_value(json_object_get(d, "application"));
		const char *name = json_string_value(json_object_get(d, "name"));
		if (!app || !name)
			continue;
		json_t *per = json_object_get(ans, app);
		if (!per && json_object_set_new(ans, app, per = json_object()))
			goto nomem;
		if (json_object_set_new(per, name, json_pack("{s:b}", "created", !(existed && existed[i]))))
			goto nomem;
	}
	return ans;
nomem:
	json_decref(ans);
	return NULL;
}

/* ---- the stored set: views and the resolver ------------------------------ */

kg_err kg_es_privs_set_add(json_t *set, const json_t *doc)
{
	const char *app = json_string_value(json_object_get(doc, "application"));
	const char *name = json_string_value(json_object_get(doc, "name"));
	if (!json_is_object(set) || !app || !name || !json_is_array(json_object_get(doc, "actions")))
		return KG_EINVAL;
	json_t *per = json_object_get(set, app);
	if (!per) {
		per = json_object();
		if (!per || json_object_set_new(set, app, per))
			return KG_ENOMEM;
	}
	json_t *copy = json_deep_copy(doc);
	if (!copy || json_object_set_new(per, name, copy))
		return KG_ENOMEM;
	return KG_OK;
}

/* Whether s is an element of a comma list (empty elements skipped, as ES's
 * Strings.splitStringByCommaToArray), or matches one ending in '*' when
 * allow_trailing_star. */
static bool comma_has(kg_str list, kg_str s, bool allow_trailing_star)
{
	size_t i = 0;
	while (i <= list.n) {
		size_t j = i;
		while (j < list.n && list.p[j] != ',')
			j++;
		kg_str e = { list.p + i, j - i };
		if (e.n > 0) {
			if (kg_str_eq(e, s))
				return true;
			if (allow_trailing_star && e.p[e.n - 1] == '*' && s.n >= e.n - 1 && memcmp(s.p, e.p, e.n - 1) == 0)
				return true;
		}
		i = j + 1;
	}
	return false;
}

json_t *kg_es_privs_view(const json_t *set, kg_str applications, kg_str names)
{
	json_t *ans = json_object();
	const char *app, *name;
	json_t *per, *doc;
	if (!ans)
		return NULL;
	json_object_foreach ((json_t *)set, app, per) {
		if (applications.n > 0 && !comma_has(applications, kg_str_c(app), true))
			continue;
		json_object_foreach (per, name, doc) {
			if (names.n > 0 && !comma_has(names, kg_str_c(name), false))
				continue;
			json_t *out = json_pack("{s:O,s:O,s:O,s:O}", "application", json_object_get(doc, "application"), "name",
			                        json_object_get(doc, "name"), "actions", json_object_get(doc, "actions"), "metadata",
			                        json_object_get(doc, "metadata") ? json_object_get(doc, "metadata") : json_object());
			json_t *dst = json_object_get(ans, app);
			if (!out || (!dst && json_object_set_new(ans, app, dst = json_object())) || json_object_set_new(dst, name, out)) {
				json_decref(ans);
				return NULL;
			}
		}
	}
	return ans;
}

json_t *kg_es_privs_delete_answer(const json_t *set, kg_str application, kg_str names)
{
	json_t *ans = json_object(), *per = json_object();
	char *app = strndup(application.p ? application.p : "", application.n);
	if (!ans || !per || !app)
		goto nomem;
	json_t *stored = json_object_getn(set, application.p ? application.p : "", application.n);
	size_t i = 0;
	while (i <= names.n) {
		size_t j = i;
		while (j < names.n && names.p[j] != ',')
			j++;
		if (j > i) {
			json_t *found = json_object_getn(stored, names.p + i, j - i);
			json_t *v = json_pack("{s:b}", "found", found != NULL);
			if (!v || json_object_setn_new(per, names.p + i, j - i, v))
				goto nomem;
		}
		i = j + 1;
	}
	if (json_object_set_new(ans, app, per))
		goto nomem_ans;
	free(app);
	return ans;
nomem:
	json_decref(per);
nomem_ans:
	json_decref(ans);
	free(app);
	return NULL;
}

bool kg_es_privs_resolve(void *ctx, kg_str application, kg_str name, kg_str action)
{
	if (kg_str_eq(name, action))
		return true;
	const json_t *set = ctx;
	json_t *doc = json_object_getn(json_object_getn(set, application.p, application.n), name.p, name.n);
	size_t i;
	json_t *a;
	json_array_foreach (json_object_get(doc, "actions"), i, a)
		if (kg_es_pattern_covers(jstr(a), action))
			return true;
	return false;
}

/* ---- has_privileges ------------------------------------------------------ */

void kg_es_has_privileges_free(struct kg_es_has_privs *req)
{
	if (!req)
		return;
	json_decref(req->cluster);
	json_decref(req->index);
	json_decref(req->application);
	req->cluster = req->index = req->application = NULL;
}

/* isUsingFieldLevelSecurity: a grant other than ["*"], or any except. */
static bool uses_fls(const json_t *fs)
{
	if (!fs)
		return false;
	json_t *grant = json_object_get(fs, "grant"), *except = json_object_get(fs, "except");
	if (json_array_size(except) > 0)
		return true;
	if (!grant)
		return false;
	return !(json_array_size(grant) == 1 && strcmp(json_string_value(json_array_get(grant, 0)) ?: "", "*") == 0);
}

kg_err kg_es_has_privileges_parse(kg_str body, const char *username, struct kg_es_has_privs *out, struct kg_es_fail *f)
{
	json_error_t jerr;
	json_t *root = NULL, *synth = NULL, *rd = NULL;
	const char *unexpected = NULL;
	bool has_cluster = false, has_index = false, has_app = false;
	kg_err err = KG_OK;
	const char *k;
	json_t *x;

	memset(out, 0, sizeof(*out));
	if (!username)
		username = "";
	if (body.n == 0 || is_blank(body))
		return kg_es_fail_set(f, 400, "parse_exception", "request body or source parameter is required");
	root = json_loadb(body.p, body.n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root)
		return kg_es_fail_set(f, 400, "x_content_parse_exception", "[%d:%d] %s", jerr.line, jerr.column, jerr.text);
	if (!json_is_object(root)) {
		err = kg_es_fail_set(f, 400, "parse_exception",
		                     "failed to parse privileges check [%s]. expected an object but found [%s] instead", username,
		                     kg_es_token_name(root));
		goto out;
	}
	/* The same field parsers as a role descriptor's, as ES uses them: the
	 * fields up to the first one ES does not know, in the client's order,
	 * parsed as a descriptor named after the user. */
	if (!(synth = json_object())) {
		err = KG_ENOMEM;
		goto out;
	}
	json_object_foreach (root, k, x) {
		if (strcmp(k, "index") == 0) {
			has_index = true;
		} else if (strcmp(k, "cluster") == 0) {
			has_cluster = has_cluster || !json_is_null(x);
		} else if (strcmp(k, "application") == 0 || strcmp(k, "applications") == 0) {
			has_app = true;
		} else {
			unexpected = k;
			break;
		}
		if (json_object_set(synth, k, x)) {
			err = KG_ENOMEM;
			goto out;
		}
	}
	if ((err = kg_es_role_parse(username, synth, false, &rd, f)))
		goto out;
	if (unexpected) {
		err = kg_es_fail_set(f, 400, "parse_exception", "failed to parse privileges check [%s]. unexpected field [%s]",
		                     username, unexpected);
		goto out;
	}
	if (!has_cluster && !has_index && !has_app) {
		err = kg_es_fail_set(f, 400, "parse_exception",
		                     "failed to parse privileges check [%s]. All privilege fields [cluster,index,applications] are missing",
		                     username);
		goto out;
	}
	size_t i;
	json_array_foreach (json_object_get(rd, "indices"), i, x) {
		if (uses_fls(json_object_get(x, "field_security"))) {
			err = kg_es_fail_set(f, 400, "parse_exception", "Field [field_security] is not supported in a has_privileges request");
			goto out;
		}
	}
	json_array_foreach (json_object_get(rd, "indices"), i, x) {
		if (json_object_get(x, "query")) {
			err = kg_es_fail_set(f, 400, "parse_exception", "Field [query] is not supported in a has_privileges request");
			goto out;
		}
		json_object_del(x, "field_security");
	}
	out->cluster = json_incref(json_object_get(rd, "cluster"));
	out->index = json_incref(json_object_get(rd, "indices"));
	out->application = json_incref(json_object_get(rd, "applications"));

	/* HasPrivilegesRequest.validate */
	kg_buf msg = { 0 };
	json_array_foreach (out->application, i, x) {
		kg_err e2;
		kg_buf_clear(&msg);
		if (!app_name_is_valid(jstr(json_object_get(x, "application")), false, &msg, &e2) &&
		    (e2 || kg_es_fail_validation_add(f, "%s", msg.p) == KG_ENOMEM)) {
			kg_buf_free(&msg, false);
			err = KG_ENOMEM;
			goto out;
		}
	}
	kg_buf_free(&msg, false);
	if (json_array_size(out->cluster) == 0 && json_array_size(out->index) == 0 && json_array_size(out->application) == 0 &&
	    kg_es_fail_validation_add(f, "must specify at least one privilege") == KG_ENOMEM) {
		err = KG_ENOMEM;
		goto out;
	}
	err = f->nvalidation > 0 ? KG_EINVAL : KG_OK;
out:
	json_decref(root);
	json_decref(synth);
	json_decref(rd);
	return err;
}

/* Sets obj[key][sub] = value, making obj[key] (an object) when absent. A
 * privilege asked twice for the same resource keeps one answer: ES's map. */
static kg_err put2(json_t *obj, const char *key, const char *sub, bool value)
{
	json_t *o = json_object_get(obj, key);
	if (!o && (!(o = json_object()) || json_object_set_new(obj, key, o)))
		return KG_ENOMEM;
	return json_object_set_new(o, sub, json_boolean(value)) ? KG_ENOMEM : KG_OK;
}

static kg_err unknown(struct kg_es_fail *f, bool is_index, const char *priv)
{
	kg_buf msg = { 0 };
	kg_err err = kg_es_unknown_privilege_message(is_index, priv, &msg);
	if (!err)
		err = kg_es_fail_set(f, 400, "illegal_argument_exception", "%s", msg.p);
	kg_buf_free(&msg, false);
	return err;
}

/* An application privilege asked for: a name defined in set stands for its
 * actions (all of them must be granted; ES's automaton subset), anything
 * else (an action, or a name with no definition) for itself. */
static bool app_granted(const kg_es_perm *p, const json_t *set, kg_str app, kg_str priv, kg_str resource)
{
	json_t *doc = json_object_getn(json_object_getn(set, app.p, app.n), priv.p, priv.n);
	json_t *actions = json_object_get(doc, "actions");
	if (!doc || json_array_size(actions) == 0)
		return kg_es_perm_app_resolved(p, app, priv, resource, kg_es_privs_resolve, (void *)set);
	size_t i;
	json_t *a;
	json_array_foreach (actions, i, a)
		if (!kg_es_perm_app_resolved(p, app, jstr(a), resource, kg_es_privs_resolve, (void *)set))
			return false;
	return true;
}

kg_err kg_es_has_privileges_eval(const struct kg_es_has_privs *req, const kg_es_perm *p, const json_t *privs_set,
                                 const char *username, json_t **answer, struct kg_es_fail *f)
{
	json_t *cluster = json_object(), *index = json_object(), *apps = json_object(), *ans = NULL;
	bool has_all = true;
	kg_err err = KG_OK;
	size_t i, j, r;
	json_t *x, *y, *z;
	json_t *empty_set = NULL;

	*answer = NULL;
	if (!cluster || !index || !apps) {
		err = KG_ENOMEM;
		goto out;
	}
	if (!privs_set)
		privs_set = empty_set = json_object();
	/* unknown privileges first: ES refuses the whole request */
	json_array_foreach (req->cluster, i, x)
		if (!kg_es_cluster_privilege_is_known(json_string_value(x))) {
			err = unknown(f, false, json_string_value(x));
			goto out;
		}
	json_array_foreach (req->index, i, x)
		json_array_foreach (json_object_get(x, "privileges"), j, y)
			if (!kg_es_index_privilege_is_known(json_string_value(y))) {
				err = unknown(f, true, json_string_value(y));
				goto out;
			}

	json_array_foreach (req->cluster, i, x) {
		bool is_granted = kg_es_perm_cluster_privilege(p, json_string_value(x));
		has_all = has_all && is_granted;
		if (json_object_set_new(cluster, json_string_value(x), json_boolean(is_granted))) {
			err = KG_ENOMEM;
			goto out;
		}
	}
	json_array_foreach (req->index, i, x) {
		bool allow_restricted = json_is_true(json_object_get(x, "allow_restricted_indices"));
		json_array_foreach (json_object_get(x, "names"), j, y) {
			json_array_foreach (json_object_get(x, "privileges"), r, z) {
				bool is_granted = kg_es_perm_index_pattern(p, jstr(y), json_string_value(z), allow_restricted);
				has_all = has_all && is_granted;
				if ((err = put2(index, json_string_value(y), json_string_value(z), is_granted)))
					goto out;
			}
		}
	}
	json_array_foreach (req->application, i, x) {
		const char *app = json_string_value(json_object_get(x, "application"));
		json_t *per = json_object_get(apps, app);
		if (!per && (!(per = json_object()) || json_object_set_new(apps, app, per))) {
			err = KG_ENOMEM;
			goto out;
		}
		json_array_foreach (json_object_get(x, "resources"), j, y) {
			json_array_foreach (json_object_get(x, "privileges"), r, z) {
				bool is_granted = app_granted(p, privs_set, kg_str_c(app), jstr(z), jstr(y));
				has_all = has_all && is_granted;
				if ((err = put2(per, json_string_value(y), json_string_value(z), is_granted)))
					goto out;
			}
		}
	}
	ans = json_pack("{s:s,s:b,s:O,s:O,s:O}", "username", username ? username : "", "has_all_requested", has_all,
	                "cluster", cluster, "index", index, "application", apps);
	if (!ans)
		err = KG_ENOMEM;
	*answer = ans;
out:
	json_decref(cluster);
	json_decref(index);
	json_decref(apps);
	json_decref(empty_set);
	return err;
}

/* ---- the builtin list and a user's privileges ----------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *kg_es_builtin_privileges(void)
{
	const char *names[64];
	size_t n = 0;
	while (n < 64 && kg_es_cluster_privilege_name(n)) {
		names[n] = kg_es_cluster_privilege_name(n);
		n++;
	}
	qsort(names, n, sizeof(names[0]), cmp_str);
	json_t *ans = json_object(), *cluster = json_array(), *index = json_array();
	if (!ans || json_object_set_new(ans, "cluster", cluster) || json_object_set_new(ans, "index", index))
		goto nomem;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(cluster, json_string(names[i])))
			goto nomem;
	for (size_t i = 0; kg_es_index_privilege_name(i); i++)
		if (json_array_append_new(index, json_string(kg_es_index_privilege_name(i))))
			goto nomem;
	/* ES 8.x's privileges of a remote cluster (RemoteClusterPermissions) */
	if (json_object_set_new(ans, "remote_cluster", json_pack("[s]", "monitor_enrich")))
		goto nomem;
	return ans;
nomem:
	json_decref(ans);
	return NULL;
}

/* Adds the strings of src to the sorted, unique array dst. */
static kg_err add_sorted(json_t *dst, const json_t *src)
{
	size_t i;
	json_t *x;
	json_array_foreach (src, i, x) {
		const char *s = json_string_value(x);
		if (!s)
			return KG_EINVAL;
		size_t at = 0, n = json_array_size(dst);
		int c = 1;
		while (at < n && (c = strcmp(json_string_value(json_array_get(dst, at)), s)) < 0)
			at++;
		if (at < n && c == 0)
			continue;
		if (json_array_insert_new(dst, at, json_string(s)))
			return KG_ENOMEM;
	}
	return KG_OK;
}

static json_t *sorted_copy(const json_t *src)
{
	json_t *a = json_array();
	if (a && add_sorted(a, src)) {
		json_decref(a);
		return NULL;
	}
	return a;
}

kg_err kg_es_user_privileges(const json_t *descriptors, json_t **out)
{
	json_t *cluster = json_array(), *global = json_array(), *indices = json_array(), *apps = json_array(),
	       *run_as = json_array(), *ans = NULL;
	kg_err err = KG_OK;
	const char *k;
	json_t *rd;
	size_t i, j;
	json_t *x, *y;

	*out = NULL;
	if (!cluster || !global || !indices || !apps || !run_as) {
		err = KG_ENOMEM;
		goto out;
	}
	if (!json_is_object(descriptors)) {
		err = KG_EINVAL;
		goto out;
	}
	json_object_foreach ((json_t *)descriptors, k, rd) {
		if (!json_is_object(rd)) {
			err = KG_EINVAL;
			goto out;
		}
		if ((err = add_sorted(cluster, json_object_get(rd, "cluster"))) || (err = add_sorted(run_as, json_object_get(rd, "run_as"))))
			goto out;
		json_t *g = json_object_get(rd, "global");
		if (json_is_array(g) && json_array_extend(global, g)) {
			err = KG_ENOMEM;
			goto out;
		}
		json_array_foreach (json_object_get(rd, "indices"), i, x) {
			json_t *names = sorted_copy(json_object_get(x, "names"));
			json_t *fs = json_object_get(x, "field_security");
			json_t *query = json_object_get(x, "query");
			bool allow = json_is_true(json_object_get(x, "allow_restricted_indices"));
			if (!names) {
				err = KG_ENOMEM;
				goto out;
			}
			json_t *same = NULL;
			json_array_foreach (indices, j, y) {
				json_t *yfs = json_object_get(y, "field_security"), *yq = json_object_get(y, "query");
				if (json_equal(json_object_get(y, "names"), names) &&
				    json_is_true(json_object_get(y, "allow_restricted_indices")) == allow &&
				    ((!fs && !yfs) || (fs && yfs && json_equal(json_array_get(yfs, 0), fs))) &&
				    ((!query && !yq) || (query && yq && json_equal(json_array_get(yq, 0), query)))) {
					same = y;
					break;
				}
			}
			if (!same) {
				same = json_object();
				if (!same || json_object_set_new(same, "names", names) ||
				    json_object_set_new(same, "privileges", json_array()) ||
				    (fs && json_object_set_new(same, "field_security", json_pack("[O]", fs))) ||
				    (query && json_object_set_new(same, "query", json_pack("[O]", query))) ||
				    json_object_set_new(same, "allow_restricted_indices", json_boolean(allow)) ||
				    json_array_append_new(indices, same)) {
					err = KG_ENOMEM;
					goto out;
				}
			} else {
				json_decref(names);
			}
			if ((err = add_sorted(json_object_get(same, "privileges"), json_object_get(x, "privileges"))))
				goto out;
		}
		json_array_foreach (json_object_get(rd, "applications"), i, x) {
			json_t *resources = sorted_copy(json_object_get(x, "resources"));
			json_t *app = json_object_get(x, "application");
			if (!resources || !json_is_string(app)) {
				json_decref(resources);
				err = resources ? KG_EINVAL : KG_ENOMEM;
				goto out;
			}
			json_t *same = NULL;
			json_array_foreach (apps, j, y)
				if (json_equal(json_object_get(y, "application"), app) && json_equal(json_object_get(y, "resources"), resources)) {
					same = y;
					break;
				}
			if (!same) {
				same = json_pack("{s:O,s:[],s:o}", "application", app, "privileges", "resources", resources);
				if (!same || json_array_append_new(apps, same)) {
					err = KG_ENOMEM;
					goto out;
				}
			} else {
				json_decref(resources);
			}
			if ((err = add_sorted(json_object_get(same, "privileges"), json_object_get(x, "privileges"))))
				goto out;
		}
	}
	ans = json_pack("{s:O,s:O,s:O,s:O,s:O}", "cluster", cluster, "global", global, "indices", indices, "applications",
	                apps, "run_as", run_as);
	if (!ans)
		err = KG_ENOMEM;
	*out = ans;
out:
	json_decref(cluster);
	json_decref(global);
	json_decref(indices);
	json_decref(apps);
	json_decref(run_as);
	return err;
}
