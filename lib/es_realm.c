/* es_realm.c - Elasticsearch's file realm files and native realm request
 * bodies (see es_realm.h). The messages are ES's own words: clients and
 * scripts match on them. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <openssl/crypto.h>
#include <yaml.h>

#include "keygate/es_realm.h"
#include "keygate/password.h"

struct kg_es_file_realm {
	struct kg_es_file_user *v;
	size_t n, cap;
	json_t *index; /* user name -> its number in v */
	json_t *roles; /* role name -> descriptor, from roles.yml */
};

/* ---- names, as ES's Validation judges them ---- */

/* 1..max printable ASCII characters (space included), no leading or
 * trailing space: ES's isValidUserOrRoleName. */
static bool is_valid_name(kg_str s, size_t max)
{
	if (s.n < 1 || s.n > max || s.p[0] == ' ' || s.p[s.n - 1] == ' ')
		return false;
	for (size_t i = 0; i < s.n; i++)
		if ((unsigned char)s.p[i] < 0x20 || (unsigned char)s.p[i] > 0x7e)
			return false;
	return true;
}

#define INVALID_NAME_FMT                                                                                          \
	"%s names must be at least 1 and no more than %zu characters. They can contain alphanumeric characters "    \
	"(a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the Basic Latin (ASCII) block. Leading or " \
	"trailing whitespace is not allowed."

static bool is_in(kg_str s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (kg_str_eq(s, kg_str_c(list[i])))
			return true;
	return false;
}

bool kg_es_user_is_reserved(kg_str name)
{
	/* ES's ClientReservedRealm ("kibana" is the deprecated name of kibana_system) */
	static const char *const names[] = { "elastic",      "kibana",     "kibana_system",         "logstash_system",
		                             "beats_system", "apm_system", "remote_monitoring_user" };
	return is_in(name, names, sizeof(names) / sizeof(names[0]));
}

bool kg_es_role_is_reserved(kg_str name)
{
	/* ES 8.x's ReservedRolesStore */
	static const char *const names[] = {
		"superuser",          "kibana_system",          "kibana_admin",
		"kibana_user",        "monitoring_user",        "remote_monitoring_agent",
		"remote_monitoring_collector", "ingest_admin",  "reporting_user",
		"logstash_system",    "logstash_admin",         "beats_admin",
		"beats_system",       "apm_system",             "apm_user",
		"machine_learning_user", "machine_learning_admin", "transform_user",
		"transform_admin",    "data_frame_transforms_user", "data_frame_transforms_admin",
		"watcher_admin",      "watcher_user",           "rollup_user",
		"rollup_admin",       "snapshot_user",          "enrich_user",
		"viewer",             "editor",                 "transport_client",
		"inference_admin",    "inference_user",
	};
	return is_in(name, names, sizeof(names) / sizeof(names[0]));
}

/* ---- the realm ---- */

kg_err kg_es_file_realm_new(kg_es_file_realm **out)
{
	kg_es_file_realm *r = calloc(1, sizeof(*r));
	if (!r || !(r->index = json_object()) || !(r->roles = json_object())) {
		kg_es_file_realm_free(&r);
		return KG_ENOMEM;
	}
	*out = r;
	return KG_OK;
}

void kg_es_file_realm_free(kg_es_file_realm **pr)
{
	kg_es_file_realm *r = *pr;
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		struct kg_es_file_user *u = &r->v[i];
		free((char *)u->name);
		if (u->hash) {
			OPENSSL_cleanse((char *)u->hash, strlen(u->hash));
			free((char *)u->hash);
		}
		for (size_t k = 0; k < u->nroles; k++)
			free((char *)u->roles[k]);
		free((void *)u->roles);
	}
	free(r->v);
	json_decref(r->index);
	json_decref(r->roles);
	free(r);
	*pr = NULL;
}

const struct kg_es_file_user *kg_es_file_realm_user(const kg_es_file_realm *r, kg_str name)
{
	json_t *i = json_object_getn(r->index, name.p ? name.p : "", name.n);
	return i ? &r->v[json_integer_value(i)] : NULL;
}

size_t kg_es_file_realm_user_count(const kg_es_file_realm *r)
{
	return r->n;
}

const struct kg_es_file_user *kg_es_file_realm_user_at(const kg_es_file_realm *r, size_t i)
{
	return i < r->n ? &r->v[i] : NULL;
}

const json_t *kg_es_file_realm_role(const kg_es_file_realm *r, kg_str name)
{
	return json_object_getn(r->roles, name.p ? name.p : "", name.n);
}

const json_t *kg_es_file_realm_roles(const kg_es_file_realm *r)
{
	return r->roles;
}

/* ---- users and users_roles: line files ---- */

static void problem(kg_config_errors *errs, const char *file, size_t lineno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(kg_config_errors *errs, const char *file, size_t lineno, const char *fmt, ...)
{
	kg_buf msg = { 0 };
	va_list ap;
	va_start(ap, fmt);
	kg_err err = kg_buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	kg_config_errors_add(errs, "%s:%zu: %s", file, lineno, err ? "(out of memory)" : msg.p);
	kg_buf_free(&msg, false);
}

/* Names shown in messages: at most 64 bytes of them, so a 64 KiB line does
 * not become a 64 KiB log line. */
#define SHOW(s) (int)((s).n > 64 ? 64 : (s).n), (s).p

/* Java's String.trim(): every byte <= ' ' at either end. */
static kg_str trim_java(kg_str s)
{
	while (s.n && (unsigned char)s.p[0] <= ' ')
		s.p++, s.n--;
	while (s.n && (unsigned char)s.p[s.n - 1] <= ' ')
		s.n--;
	return s;
}

/* The next line of text at *pos ("\n", "\r\n" or "\r" ends it, as Java's
 * readAllLines); false at the end. */
static bool next_line(const char *text, size_t len, size_t *pos, kg_str *line)
{
	if (*pos >= len)
		return false;
	size_t i = *pos;
	while (i < len && text[i] != '\n' && text[i] != '\r')
		i++;
	*line = (kg_str){ text + *pos, i - *pos };
	if (i < len && text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
		i++;
	*pos = i + 1;
	return true;
}

static char *dup_str(kg_str s)
{
	char *p = malloc(s.n + 1);
	if (p) {
		memcpy(p, s.p, s.n);
		p[s.n] = '\0';
	}
	return p;
}

/* The name of a hash format ES's Hasher knows, for the message refusing it. */
static const char *hash_format(kg_str h)
{
	static const struct {
		const char *prefix, *name;
	} formats[] = {
		{ "{PBKDF2_STRETCH}", "PBKDF2_STRETCH" }, { "{PBKDF2}", "PBKDF2" }, { "{SSHA256}", "SSHA256" },
		{ "{SHA}", "SHA1" },                      { "{MD5}", "MD5" },
	};
	if (h.n >= 4 && h.p[0] == '$' && h.p[1] == '2' && h.p[3] == '$')
		return "a malformed bcrypt hash";
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (kg_str_has_prefix(h, kg_str_c(formats[i].prefix)))
			return formats[i].name;
	return "no hash format ES knows (a plain-text password?)";
}

static kg_err add_user(kg_es_file_realm *r, kg_str name, const char *hash, size_t lineno)
{
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 16;
		struct kg_es_file_user *nv = realloc(r->v, ncap * sizeof(*nv));
		if (!nv)
			return KG_ENOMEM;
		r->v = nv;
		r->cap = ncap;
	}
	char *n = dup_str(name);
	char *h = strdup(hash);
	json_t *i = json_integer((json_int_t)r->n);
	if (!n || !h || !i || json_object_setn_new(r->index, name.p, name.n, i)) {
		free(n);
		free(h);
		return KG_ENOMEM;
	}
	r->v[r->n++] = (struct kg_es_file_user){ .name = n, .hash = h, .line = lineno };
	return KG_OK;
}

/* One "name:hash" line (trimmed, not empty, not a comment). */
static kg_err users_line(kg_es_file_realm *r, const char *file, size_t lineno, kg_str l, kg_config_errors *errs)
{
	const char *colon = memchr(l.p, ':', l.n);
	if (!colon || colon == l.p || colon == l.p + l.n - 1) {
		problem(errs, file, lineno, "invalid entry: expected USERNAME:HASH as elasticsearch-users writes it");
		return KG_ECONFIG;
	}
	kg_str name = { l.p, (size_t)(colon - l.p) };
	kg_str hash = { colon + 1, (size_t)(l.p + l.n - colon - 1) };
	if (!is_valid_name(name, KG_ES_FILE_NAME_MAX)) {
		problem(errs, file, lineno, "invalid username [%.*s]: " INVALID_NAME_FMT, SHOW(name), "User",
		        (size_t)KG_ES_FILE_NAME_MAX);
		return KG_ECONFIG;
	}
	/* ES refuses these in the file while its reserved realm is on, as
	 * keygate's always is (it owns elastic) */
	if (kg_es_user_is_reserved(name)) {
		problem(errs, file, lineno, "invalid username [%.*s]: Username [%.*s] is reserved and may not be used.",
		        SHOW(name), SHOW(name));
		return KG_ECONFIG;
	}
	char *h = dup_str(hash);
	if (!h)
		return KG_ENOMEM;
	kg_err err = KG_OK;
	if (strlen(h) != hash.n || !kg_bcrypt_is_valid_hash(h)) {
		problem(errs, file, lineno,
		        "user [%.*s]: the password hash is %s; keygate reads bcrypt hashes ($2a$, $2b$, $2y$) only: "
		        "set xpack.security.authc.password_hashing.algorithm: bcrypt and the password again "
		        "(elasticsearch-users passwd), or make a hash with keygate bcrypt",
		        SHOW(name), hash_format(hash));
		err = KG_ECONFIG;
	} else if (kg_es_file_realm_user(r, name)) {
		problem(errs, file, lineno, "user [%.*s] appears twice (first on line %zu)", SHOW(name),
		        kg_es_file_realm_user(r, name)->line);
		err = KG_ECONFIG;
	} else {
		err = add_user(r, name, h, lineno);
	}
	OPENSSL_cleanse(h, hash.n);
	free(h);
	return err;
}

/* Runs fn over every line that is neither a comment ('#' in column 1, as
 * ES) nor blank; keeps going after a problem so all are reported. */
static kg_err each_line(kg_es_file_realm *r, const char *file, const char *text, size_t len, kg_config_errors *errs,
                        bool is_trimmed, kg_err (*fn)(kg_es_file_realm *, const char *, size_t, kg_str, kg_config_errors *))
{
	kg_err result = KG_OK;
	size_t pos = 0;
	kg_str line;
	for (size_t lineno = 1; next_line(text, len, &pos, &line); lineno++) {
		if (line.n && line.p[0] == '#')
			continue;
		kg_str t = trim_java(line);
		if (t.n == 0)
			continue;
		if (line.n > KG_ES_REALM_MAX_LINE) {
			problem(errs, file, lineno, "line longer than %d bytes", KG_ES_REALM_MAX_LINE);
			result = KG_ECONFIG;
			continue;
		}
		kg_err err = fn(r, file, lineno, is_trimmed ? t : line, errs);
		if (err == KG_ENOMEM)
			return err;
		if (err)
			result = err;
	}
	return result;
}

kg_err kg_es_file_users_parse(kg_es_file_realm *r, const char *file, const char *text, size_t len,
                              kg_config_errors *errs)
{
	return each_line(r, file, text, len, errs, true, users_line);
}

static bool is_java_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static kg_err user_add_role(struct kg_es_file_user *u, kg_str role)
{
	for (size_t k = 0; k < u->nroles; k++)
		if (kg_str_eq(kg_str_c(u->roles[k]), role))
			return KG_OK;
	const char **nr = realloc((void *)u->roles, (u->nroles + 1) * sizeof(*nr));
	if (!nr)
		return KG_ENOMEM;
	u->roles = nr;
	if (!(nr[u->nroles] = dup_str(role)))
		return KG_ENOMEM;
	u->nroles++;
	return KG_OK;
}

/* One "role:user1,user2" line (not trimmed: ES looks for the ':' first). */
static kg_err users_roles_line(kg_es_file_realm *r, const char *file, size_t lineno, kg_str l,
                               kg_config_errors *errs)
{
	const char *colon = memchr(l.p, ':', l.n);
	if (!colon || colon == l.p || colon == l.p + l.n - 1) {
		problem(errs, file, lineno, "invalid entry: expected ROLE:USER1,USER2 as elasticsearch-users writes it");
		return KG_ECONFIG;
	}
	kg_str role = trim_java((kg_str){ l.p, (size_t)(colon - l.p) });
	kg_str users = trim_java((kg_str){ colon + 1, (size_t)(l.p + l.n - colon - 1) });
	if (!is_valid_name(role, KG_ES_FILE_NAME_MAX)) {
		problem(errs, file, lineno, "invalid role [%.*s]: " INVALID_NAME_FMT, SHOW(role), "Role",
		        (size_t)KG_ES_FILE_NAME_MAX);
		return KG_ECONFIG;
	}
	if (users.n == 0) {
		problem(errs, file, lineno, "role [%.*s] has no users", SHOW(role));
		return KG_ECONFIG;
	}
	for (size_t i = 0; i < users.n;) {
		size_t j = i;
		while (j < users.n && users.p[j] != ',')
			j++;
		kg_str name = { users.p + i, j - i };
		while (name.n && is_java_space(name.p[0]))
			name.p++, name.n--;
		while (name.n && is_java_space(name.p[name.n - 1]))
			name.n--;
		/* a user the users file does not define gets nothing from the
		 * file realm: ES keeps the entry, to no effect; so does keygate */
		struct kg_es_file_user *u = (struct kg_es_file_user *)kg_es_file_realm_user(r, name);
		if (u && user_add_role(u, role))
			return KG_ENOMEM;
		i = j + 1;
	}
	return KG_OK;
}

kg_err kg_es_file_users_roles_parse(kg_es_file_realm *r, const char *file, const char *text, size_t len,
                                    kg_config_errors *errs)
{
	return each_line(r, file, text, len, errs, false, users_roles_line);
}

/* ---- roles.yml ---- */

/* Converting one YAML document. Aliases make the document a graph whose
 * expansion can be exponential: budget caps the nodes converted. */
struct yconv {
	yaml_document_t *doc;
	const char *file;
	kg_config_errors *errs;
	size_t budget;
	kg_err err; /* first problem: KG_ECONFIG, or KG_ENOMEM */
};

#define YAML_MAX_NODES 1000000

static size_t yline(const yaml_node_t *n)
{
	return (size_t)n->start_mark.line + 1;
}

static bool is_one_of(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* A plain scalar typed as YAML 1.1 types it: null, bool, int, float, else
 * a string. Quoted scalars are strings. */
static json_t *yscalar(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || strlen(s) != len)
		return json_stringn(s, len);
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	static const char *const trues[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
	static const char *const falses[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
	if (is_one_of(s, nulls, sizeof(nulls) / sizeof(nulls[0])))
		return json_null();
	if (is_one_of(s, trues, sizeof(trues) / sizeof(trues[0])))
		return json_true();
	if (is_one_of(s, falses, sizeof(falses) / sizeof(falses[0])))
		return json_false();
	const char *p = s + (s[0] == '-' || s[0] == '+');
	bool is_hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && p[2];
	size_t digits = strspn(p + (is_hex ? 2 : 0), is_hex ? "0123456789abcdefABCDEF" : "0123456789");
	if (digits && p[(is_hex ? 2 : 0) + digits] == '\0' && (is_hex || p[0] != '0' || digits == 1)) {
		char *end;
		errno = 0;
		long long v = strtoll(s, &end, is_hex ? 16 : 10);
		if (errno == 0 && *end == '\0')
			return json_integer(v);
		return json_stringn(s, len); /* beyond int64: keep the text */
	}
	/* floats: digits with a '.' or an exponent; .inf and .nan have no JSON form */
	size_t i = (size_t)(p - s), int_digits = strspn(s + i, "0123456789");
	i += int_digits;
	size_t frac_digits = 0;
	bool has_dot = s[i] == '.';
	if (has_dot) {
		frac_digits = strspn(s + i + 1, "0123456789");
		i += 1 + frac_digits;
	}
	bool has_exp = false;
	if ((int_digits || frac_digits) && (s[i] == 'e' || s[i] == 'E')) {
		size_t k = i + 1 + (s[i + 1] == '-' || s[i + 1] == '+');
		size_t exp_digits = strspn(s + k, "0123456789");
		if (exp_digits) {
			has_exp = true;
			i = k + exp_digits;
		}
	}
	if ((int_digits || frac_digits) && (has_dot || has_exp) && s[i] == '\0') {
		char *end;
		errno = 0;
		double d = strtod(s, &end);
		if (errno == 0 && *end == '\0')
			return json_real(d);
	}
	return json_stringn(s, len);
}

static void yproblem(struct yconv *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void yproblem(struct yconv *c, const yaml_node_t *n, const char *fmt, ...)
{
	kg_buf msg = { 0 };
	va_list ap;
	va_start(ap, fmt);
	kg_err err = kg_buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	kg_config_errors_add(c->errs, "%s:%zu: %s", c->file, yline(n), err ? "(out of memory)" : msg.p);
	kg_buf_free(&msg, false);
	if (!c->err)
		c->err = KG_ECONFIG;
}

static json_t *ynode(struct yconv *c, yaml_node_t *n, int depth)
{
	if (c->err)
		return NULL;
	if (depth > KG_ES_MAX_DEPTH) {
		yproblem(c, n, "nested deeper than %d levels", KG_ES_MAX_DEPTH);
		return NULL;
	}
	if (++c->budget > YAML_MAX_NODES) {
		yproblem(c, n, "more than %d values (aliases expand to too much)", YAML_MAX_NODES);
		return NULL;
	}
	json_t *out = NULL;
	switch (n->type) {
	case YAML_SCALAR_NODE:
		out = yscalar(n);
		if (!out)
			yproblem(c, n, "a value that is not UTF-8");
		return out;
	case YAML_SEQUENCE_NODE:
		if (!(out = json_array()))
			break;
		for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
			json_t *v = ynode(c, yaml_document_get_node(c->doc, *it), depth + 1);
			if (!v || json_array_append_new(out, v))
				goto fail;
		}
		return out;
	case YAML_MAPPING_NODE:
		if (!(out = json_object()))
			break;
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
			if (k->type != YAML_SCALAR_NODE) {
				yproblem(c, k, "a key must be a plain value, not a list or a mapping");
				goto fail;
			}
			const char *key = (const char *)k->data.scalar.value;
			size_t key_len = k->data.scalar.length;
			if (json_object_getn(out, key, key_len)) {
				yproblem(c, k, "key [%.*s] appears twice", (int)(key_len > 64 ? 64 : key_len), key);
				goto fail;
			}
			json_t *v = ynode(c, yaml_document_get_node(c->doc, p->value), depth + 1);
			if (!v)
				goto fail;
			if (json_object_setn_new(out, key, key_len, v)) {
				yproblem(c, k, "key [%.*s] is not UTF-8", (int)(key_len > 64 ? 64 : key_len), key);
				goto fail;
			}
		}
		return out;
	default:
		break;
	}
	if (!c->err)
		c->err = KG_ENOMEM;
fail:
	json_decref(out);
	if (!c->err)
		c->err = KG_ENOMEM;
	return NULL;
}

/* One top-level "name: descriptor" pair of roles.yml. */
static void roles_entry(kg_es_file_realm *r, struct yconv *c, yaml_node_t *k, yaml_node_t *v)
{
	if (k->type != YAML_SCALAR_NODE) {
		yproblem(c, k, "a role name must be a plain value, not a list or a mapping");
		return;
	}
	kg_str name = { (const char *)k->data.scalar.value, k->data.scalar.length };
	if (!is_valid_name(name, KG_ES_FILE_NAME_MAX)) {
		yproblem(c, k, "invalid role name [%.*s]: " INVALID_NAME_FMT, SHOW(name), "Role", (size_t)KG_ES_FILE_NAME_MAX);
		return;
	}
	if (kg_es_role_is_reserved(name)) {
		yproblem(c, k, "invalid role name [%.*s]: Role [%.*s] is reserved and may not be used.", SHOW(name),
		         SHOW(name));
		return;
	}
	if (json_object_getn(r->roles, name.p, name.n)) {
		yproblem(c, k, "role [%.*s] is defined twice", SHOW(name));
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		yproblem(c, v, "role [%.*s]: expected a mapping (a role descriptor), got %s", SHOW(name),
		         v->type == YAML_SEQUENCE_NODE ? "a list" : "a value");
		return;
	}
	json_t *d = ynode(c, v, 1);
	if (d && json_object_setn_new(r->roles, name.p, name.n, d) && !c->err)
		c->err = KG_ENOMEM;
}

kg_err kg_es_file_roles_parse(kg_es_file_realm *r, const char *file, const char *text, size_t len,
                              kg_config_errors *errs)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	bool has_doc = false;
	struct yconv c = { .doc = &doc, .file = file, .errs = errs };

	if (!yaml_parser_initialize(&parser))
		return KG_ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
	if (!yaml_parser_load(&parser, &doc))
		goto syntax;
	has_doc = true;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	              root->data.scalar.length == 0)) {
		if (root->type != YAML_MAPPING_NODE) {
			yproblem(&c, root, "expected a mapping of role names to role descriptors");
		} else {
			/* every role is looked at, so one run reports every problem */
			for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
			     p < root->data.mapping.pairs.top && c.err != KG_ENOMEM; p++) {
				kg_err before = c.err;
				c.err = KG_OK;
				roles_entry(r, &c, yaml_document_get_node(&doc, p->key),
				            yaml_document_get_node(&doc, p->value));
				if (!c.err)
					c.err = before;
			}
		}
	}
	yaml_document_delete(&doc);
	has_doc = false;
	/* a second document would be silently ignored: refuse it */
	if (!yaml_parser_load(&parser, &doc))
		goto syntax;
	has_doc = true;
	if ((root = yaml_document_get_root_node(&doc)))
		yproblem(&c, root, "only one YAML document is allowed");
	goto out;

syntax:
	if (parser.error == YAML_MEMORY_ERROR) {
		c.err = KG_ENOMEM;
		goto out;
	}
	size_t line = (size_t)parser.problem_mark.line + 1;
	if (parser.error == YAML_READER_ERROR) {
		line = 1; /* the reader reports a byte offset, not a mark */
		for (size_t i = 0; i < parser.problem_offset && i < len; i++)
			line += text[i] == '\n';
	}
	problem(errs, file, line, "syntax error: %s%s%s", parser.problem ? parser.problem : "invalid YAML",
	        parser.context ? " " : "", parser.context ? parser.context : "");
	c.err = KG_ECONFIG;
out:
	if (has_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return c.err;
}

/* ---- the directory ---- */

/* Reads dir/name into b (empty when the file does not exist). */
static kg_err read_one(const char *dir, const char *name, kg_buf *path, kg_buf *b, kg_config_errors *errs)
{
	kg_buf_clear(path);
	if (kg_buf_printf(path, "%s/%s", dir, name))
		return KG_ENOMEM;
	kg_err err = kg_buf_read_file(b, path->p, KG_ES_REALM_MAX_FILE);
	if (err == KG_ENOMEM)
		return err;
	if (err == KG_ETOOBIG) {
		kg_config_errors_add(errs, "%s: too large (16 MiB at most)", path->p);
		return KG_ECONFIG;
	}
	if (err && errno == ENOENT) {
		kg_buf_clear(b);
		return KG_OK;
	}
	if (err) {
		kg_config_errors_add(errs, "%s: cannot read: %s", path->p, strerror(errno));
		return KG_ECONFIG;
	}
	return KG_OK;
}

kg_err kg_es_file_realm_load(const char *dir, kg_es_file_realm **out, kg_config_errors *errs)
{
	static const char *const files[] = { "users", "users_roles", "roles.yml" };
	kg_err (*const parse[])(kg_es_file_realm *, const char *, const char *, size_t, kg_config_errors *) = {
		kg_es_file_users_parse, kg_es_file_users_roles_parse, kg_es_file_roles_parse
	};
	kg_es_file_realm *r = NULL;
	kg_buf path = { 0 }, text = { 0 };
	kg_err result = KG_OK;

	struct stat st;
	errno = 0;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		kg_config_errors_add(errs, "%s: not an ES config directory: %s", dir,
		                     strerror(errno ? errno : ENOTDIR));
		return KG_ECONFIG;
	}
	if ((result = kg_es_file_realm_new(&r)))
		return result;
	for (size_t i = 0; i < 3; i++) {
		kg_err err = read_one(dir, files[i], &path, &text, errs);
		if (!err)
			err = parse[i](r, path.p, text.p ? text.p : "", text.n, errs);
		kg_buf_free(&text, true); /* users holds password hashes */
		if (err == KG_ENOMEM) {
			result = err;
			break;
		}
		if (err)
			result = err;
	}
	kg_buf_free(&path, false);
	if (result) {
		kg_es_file_realm_free(&r);
		return result;
	}
	*out = r;
	return KG_OK;
}

/* ---- request bodies ---- */

/* Parses body as a JSON value (duplicate keys refused, as ES's strict
 * parser does); the nesting cap keeps a hostile body from costing more. */
static kg_err body_load(kg_str body, json_t **out, struct kg_es_fail *f)
{
	json_error_t je;
	if (body.n == 0)
		return kg_es_fail_set(f, 400, "parse_exception", "request body is required");
	json_t *v = json_loadb(body.p, body.n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (!v)
		return kg_es_fail_set(f, 400, "x_content_parse_exception", "[%d:%d] %s", je.line, je.column, je.text);
	/* counted with the leaf: a body of KG_ES_MAX_DEPTH - 1 nested containers at most */
	if (kg_es_json_depth(v, KG_ES_MAX_DEPTH - 1) > KG_ES_MAX_DEPTH - 1) {
		json_decref(v);
		return kg_es_fail_set(f, 400, "x_content_parse_exception", "the body is nested deeper than [%d] levels",
		                      KG_ES_MAX_DEPTH);
	}
	*out = v;
	return KG_OK;
}

/* body_load for the bodies that must be one JSON object (a user, a password
 * change); *out is set either way, for the caller to release. */
static kg_err body_object(kg_str body, json_t **out, struct kg_es_fail *f)
{
	kg_err err = body_load(body, out, f);
	if (!err && !json_is_object(*out))
		err = kg_es_fail_set(f, 400, "parse_exception", "expected an object, but found token [%s]",
		                     kg_es_token_name(*out));
	return err;
}

static bool key_is(const char *key, size_t key_len, const char *name)
{
	return kg_str_eq((kg_str){ key, key_len }, kg_str_c(name));
}

/* A builder's ValidationException: "validation_exception", not the
 * action_request_ one. */
static kg_err validation(struct kg_es_fail *f, const char *msg)
{
	kg_err err = kg_es_fail_validation_add(f, "%s", msg);
	f->type = "validation_exception";
	return err;
}

static kg_err take_password(const json_t *v, struct kg_es_user_req *out, struct kg_es_fail *f)
{
	kg_str pw = { json_string_value(v), json_string_length(v) };
	if (kg_es_utf16_length(pw) < KG_ES_PASSWORD_MIN)
		return validation(f, "passwords must be at least [6] characters long");
	if (pw.n > KG_ES_PASSWORD_MAX)
		return validation(f, "passwords must be at most [1024] bytes long");
	if (memchr(pw.p, '\0', pw.n))
		return validation(f, "passwords may not contain a NUL character");
	if (out->has_password || out->password_hash)
		return validation(f, "password_hash has already been set");
	if (kg_buf_appends(&out->password, pw))
		return KG_ENOMEM;
	out->has_password = true;
	return KG_OK;
}

static kg_err take_password_hash(const json_t *v, struct kg_es_user_req *out, struct kg_es_fail *f)
{
	const char *h = json_string_value(v);
	if (strlen(h) != json_string_length(v) || !kg_bcrypt_is_valid_hash(h))
		return kg_es_fail_set(f, 400, "illegal_argument_exception",
		                      "The provided password hash is not a hash or it could not be resolved to a supported "
		                      "hash algorithm. The supported password hash algorithms are [bcrypt, bcrypt4, "
		                      "bcrypt5, bcrypt6, bcrypt7, bcrypt8, bcrypt9, bcrypt11, bcrypt12, bcrypt13, bcrypt14]");
	if (out->has_password || out->password_hash)
		return validation(f, "password_hash has already been set");
	if (!(out->password_hash = strdup(h)))
		return KG_ENOMEM;
	return KG_OK;
}

static kg_err expected(struct kg_es_fail *f, const char *field, const char *type, const json_t *v)
{
	return kg_es_fail_set(f, 400, "parse_exception", "expected field [%s] to be of type %s, but found [%s] instead",
	                      field, type, kg_es_token_name(v));
}

/* "roles": a string is a comma-separated list (ES's
 * commaDelimitedListToStringArray: no trimming, "" is no role). */
static kg_err take_roles(const json_t *v, json_t **roles, struct kg_es_fail *f)
{
	json_t *a = json_array();
	if (!a)
		return KG_ENOMEM;
	kg_err err = KG_OK;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		for (size_t i = 0; n && i <= n;) {
			const char *c = memchr(s + i, ',', n - i);
			size_t j = c ? (size_t)(c - s) : n;
			if (json_array_append_new(a, json_stringn(s + i, j - i))) {
				err = KG_ENOMEM;
				break;
			}
			i = j + 1;
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			if (!json_is_string(x)) {
				err = kg_es_fail_set(f, 400, "parse_exception",
				                     "could not parse [roles] field. expected a string array but one of the value "
				                     "in the array is [%s]",
				                     kg_es_token_name(x));
				break;
			}
			if (json_array_append(a, x)) {
				err = KG_ENOMEM;
				break;
			}
		}
	} else if (json_is_null(v)) {
		err = kg_es_fail_set(f, 400, "parse_exception",
		                     "could not parse [roles] field. expected a string array but found null value instead");
	} else {
		err = kg_es_fail_set(f, 400, "parse_exception",
		                     "could not parse [roles] field. expected a string array but found [%s] value instead",
		                     kg_es_token_name(v));
	}
	if (err) {
		json_decref(a);
		return err;
	}
	json_decref(*roles);
	*roles = a;
	return KG_OK;
}

kg_err kg_es_user_parse(kg_str name, kg_str body, bool is_create, struct kg_es_user_req *out, struct kg_es_fail *f)
{
	json_t *obj = NULL, *roles = NULL, *metadata = NULL, *full_name = NULL, *email = NULL;
	bool is_enabled = true;
	const char *key;
	size_t key_len;
	json_t *v;
	kg_err err;

	memset(out, 0, sizeof(*out));
	if ((err = body_object(body, &obj, f)))
		goto out;
	/* the body, field by field, as ES's PutUserRequestBuilder reads it */
	json_object_keylen_foreach(obj, key, key_len, v) {
		if (key_is(key, key_len, "password")) {
			err = json_is_string(v) ? take_password(v, out, f) : expected(f, "password", "string", v);
		} else if (key_is(key, key_len, "password_hash")) {
			err = json_is_string(v) ? take_password_hash(v, out, f) : expected(f, "password_hash", "string", v);
		} else if (key_is(key, key_len, "roles")) {
			err = take_roles(v, &roles, f);
		} else if (key_is(key, key_len, "full_name") || key_is(key, key_len, "email")) {
			json_t **slot = key[0] == 'f' ? &full_name : &email;
			if (!json_is_string(v) && !json_is_null(v)) {
				err = expected(f, key, "string", v);
			} else {
				json_decref(*slot);
				*slot = json_incref(v);
			}
		} else if (key_is(key, key_len, "metadata")) {
			if (!json_is_object(v)) {
				err = expected(f, "metadata", "object", v);
			} else {
				json_decref(metadata);
				metadata = json_incref(v);
			}
		} else if (key_is(key, key_len, "enabled")) {
			if (!json_is_boolean(v))
				err = expected(f, "enabled", "boolean", v);
			else
				is_enabled = json_is_true(v);
		} else if (key_is(key, key_len, "username")) {
			if (!json_is_string(v))
				err = expected(f, "username", "string", v);
			else if (!kg_str_eq((kg_str){ json_string_value(v), json_string_length(v) }, name))
				err = kg_es_fail_set(f, 400, "illegal_argument_exception",
				                     "[username] in source does not match the username provided [%.*s]",
				                     (int)name.n, name.p);
		} else {
			err = kg_es_fail_set(f, 400, "parse_exception",
			                     "failed to parse add user request. unexpected field [%.*s]", (int)key_len, key);
		}
		if (err)
			goto out;
	}

	/* PutUserRequest.validate() */
	if (!roles)
		err = kg_es_fail_validation_add(f, "roles are missing");
	if (err != KG_ENOMEM && metadata && kg_es_has_reserved_key(metadata))
		err = kg_es_fail_validation_add(f, "metadata keys may not start with [_]");
	if (err)
		goto out;

	/* the transport action's checks of the names */
	if (kg_es_user_is_reserved(name))
		err = kg_es_fail_validation_add(f, "user [%.*s] is reserved and only the password can be changed",
		                                (int)name.n, name.p);
	else if (!is_valid_name(name, KG_ES_NATIVE_NAME_MAX))
		err = kg_es_fail_validation_add(f, INVALID_NAME_FMT, "User", (size_t)KG_ES_NATIVE_NAME_MAX);
	size_t i;
	json_array_foreach(roles, i, v) {
		if (err == KG_ENOMEM)
			break;
		if (!is_valid_name((kg_str){ json_string_value(v), json_string_length(v) }, KG_ES_NATIVE_NAME_MAX))
			err = kg_es_fail_validation_add(f, INVALID_NAME_FMT, "Role", (size_t)KG_ES_NATIVE_NAME_MAX);
	}
	if (err)
		goto out;

	/* the store's: a new user needs a password */
	if (is_create && !out->has_password && !out->password_hash) {
		err = validation(f, "password must be specified unless you are updating an existing user");
		goto out;
	}

	/* "o" steals: each value passed holds a reference of its own */
	out->doc = json_pack("{s:s%, s:O, s:o, s:o, s:o, s:b}", "username", name.p ? name.p : "", name.n, "roles", roles,
	                     "full_name", full_name ? json_incref(full_name) : json_null(), "email",
	                     email ? json_incref(email) : json_null(), "metadata",
	                     metadata ? json_incref(metadata) : json_object(), "enabled", is_enabled);
	if (!out->doc)
		err = KG_ENOMEM;
out:
	json_decref(obj);
	json_decref(roles);
	json_decref(metadata);
	json_decref(full_name);
	json_decref(email);
	if (err)
		kg_es_user_req_free(out);
	return err;
}

kg_err kg_es_password_parse(kg_str body, struct kg_es_user_req *out, struct kg_es_fail *f)
{
	json_t *obj = NULL, *v;
	const char *key;
	size_t key_len;
	kg_err err;

	memset(out, 0, sizeof(*out));
	if ((err = body_object(body, &obj, f)))
		goto out;
	json_object_keylen_foreach(obj, key, key_len, v) {
		if (key_is(key, key_len, "password"))
			err = json_is_string(v) ? take_password(v, out, f) : expected(f, "password", "string", v);
		else if (key_is(key, key_len, "password_hash"))
			err = json_is_string(v) ? take_password_hash(v, out, f) : expected(f, "password_hash", "string", v);
		else
			err = kg_es_fail_set(f, 400, "parse_exception",
			                     "failed to parse change password request. unexpected field [%.*s]", (int)key_len,
			                     key);
		if (err)
			goto out;
	}
	if (!out->has_password && !out->password_hash)
		err = kg_es_fail_validation_add(f, "password must be specified");
out:
	json_decref(obj);
	if (err)
		kg_es_user_req_free(out);
	return err;
}

void kg_es_user_req_free(struct kg_es_user_req *out)
{
	json_decref(out->doc);
	kg_buf_free(&out->password, true);
	if (out->password_hash) {
		OPENSSL_cleanse(out->password_hash, strlen(out->password_hash));
		free(out->password_hash);
	}
	memset(out, 0, sizeof(*out));
}

kg_err kg_es_role_name_check(kg_str name, struct kg_es_fail *f)
{
	if (!is_valid_name(name, KG_ES_NATIVE_NAME_MAX))
		return kg_es_fail_validation_add(f, INVALID_NAME_FMT, "Role", (size_t)KG_ES_NATIVE_NAME_MAX);
	if (kg_es_role_is_reserved(name))
		return kg_es_fail_validation_add(f, "Role [%.*s] is reserved and may not be used.", (int)name.n, name.p);
	return KG_OK;
}

kg_err kg_es_role_body_parse(kg_str name, kg_str body, json_t **out, struct kg_es_fail *f)
{
	json_t *v = NULL;
	kg_err err = body_load(body, &v, f);
	if (err)
		return err;
	if (!json_is_object(v)) {
		err = kg_es_fail_set(f, 400, "parse_exception", "failed to parse role [%.*s]. expected an object but found [%s] instead",
		                     (int)name.n, name.p, kg_es_token_name(v));
		json_decref(v);
		return err;
	}
	*out = v;
	return KG_OK;
}

/* ---- output ---- */

static json_t *field_or(const json_t *doc, const char *key, json_t *dflt)
{
	json_t *v = json_object_get(doc, key);
	if (v) {
		json_decref(dflt);
		return json_deep_copy(v);
	}
	return dflt;
}

json_t *kg_es_user_view(const json_t *doc)
{
	if (!json_is_object(doc))
		return NULL;
	json_t *view = json_object();
	if (!view)
		return NULL;
	static const char *const keys[] = { "username", "roles", "full_name", "email", "metadata", "enabled" };
	json_t *dflts[] = { json_string(""), json_array(), json_null(), json_null(), json_object(), json_true() };
	bool is_ok = true;
	for (size_t i = 0; i < 6; i++) {
		json_t *v = field_or(doc, keys[i], dflts[i]);
		if (!v || json_object_set_new(view, keys[i], v))
			is_ok = false;
	}
	if (!is_ok) {
		json_decref(view);
		return NULL;
	}
	return view;
}

json_t *kg_es_reserved_user_view(const char *name, bool is_enabled)
{
	bool is_elastic = strcmp(name, "elastic") == 0;
	return json_pack("{s:s, s:[s*], s:n, s:n, s:{s:b}, s:b}", "username", name, "roles",
	                 is_elastic ? "superuser" : NULL, "full_name", "email", "metadata", "_reserved", 1, "enabled",
	                 is_enabled);
}
