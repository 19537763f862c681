/* policy.c - roles, rules and the route trie.
 *
 * Patterns go into one byte trie. A node that ends a pattern points at an
 * entry holding, per method slot, the mask of roles allowed (inheritance
 * already folded in), separately for "exact" and "prefix" patterns. A
 * decision walks the request path once, OR-ing the prefix entries it passes
 * and the exact entry where it ends: O(length of the path), whatever the
 * number of rules. Children are kept as sibling lists (at most 256 per node). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <yaml.h>

#include "keygate/policy.h"
#include "keygate/presets.h"

#define KG_POLICY_MAX_METHODS 32 /* known methods plus names seen in rules */
#define KG_POLICY_MAX_NODES (1u << 24)
#define KG_POLICY_MAX_RULES 100000

static const char *const known_methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE",
	                                     "PATCH", "OPTIONS", "CONNECT", "TRACE" };
#define KG_NKNOWN (sizeof(known_methods) / sizeof(known_methods[0]))

struct entry {
	kg_rolemask any;                             /* rules without a method list */
	kg_rolemask by_method[KG_POLICY_MAX_METHODS];
};

struct node {
	uint32_t child;   /* first child, 0: none (node 0 is the root) */
	uint32_t sibling; /* next sibling, 0: none */
	uint32_t exact;   /* entry index + 1, 0: none */
	uint32_t prefix;  /* entry index + 1, 0: none */
	unsigned char byte;
	unsigned char is_public; /* 1: exact public, 2: prefix public */
};

struct kg_policy {
	struct node *nodes;
	uint32_t nnodes, capnodes;
	struct entry *entries;
	uint32_t nentries, capentries;
	char *roles[KG_POLICY_MAX_ROLES];
	size_t role_n[KG_POLICY_MAX_ROLES]; /* their lengths: kg_policy_role runs per request */
	size_t nroles;
	char *methods[KG_POLICY_MAX_METHODS]; /* slot names beyond the known ones */
	size_t method_n[KG_POLICY_MAX_METHODS];    /* their lengths: method_slot runs per request */
	size_t nmethods;
	char *strip_prefix;
	size_t strip_prefix_n; /* its length: decide() runs per request */
	kg_rolemask includes[KG_POLICY_MAX_ROLES]; /* role i and every role it inherits */
};

kg_err kg_policy_new(kg_policy **out)
{
	kg_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return KG_ENOMEM;
	p->capnodes = 64;
	p->nodes = calloc(p->capnodes, sizeof(*p->nodes));
	if (!p->nodes) {
		free(p);
		return KG_ENOMEM;
	}
	p->nnodes = 1;
	for (size_t i = 0; i < KG_NKNOWN; i++) {
		p->methods[i] = (char *)known_methods[i];
		p->method_n[i] = strlen(known_methods[i]);
	}
	p->nmethods = KG_NKNOWN;
	*out = p;
	return KG_OK;
}

void kg_policy_free(kg_policy **pp)
{
	kg_policy *p = pp ? *pp : NULL;
	if (!p)
		return;
	for (size_t i = 0; i < p->nroles; i++)
		free(p->roles[i]);
	for (size_t i = KG_NKNOWN; i < p->nmethods; i++)
		free(p->methods[i]);
	free(p->strip_prefix);
	free(p->nodes);
	free(p->entries);
	free(p);
	*pp = NULL;
}

static int method_slot(const kg_policy *p, kg_str m)
{
	for (size_t i = 0; i < p->nmethods; i++)
		if (m.n == p->method_n[i] && memcmp(m.p, p->methods[i], m.n) == 0)
			return (int)i;
	return -1;
}

static uint32_t child_of(const kg_policy *p, uint32_t n, unsigned char b)
{
	for (uint32_t c = p->nodes[n].child; c; c = p->nodes[c].sibling)
		if (p->nodes[c].byte == b)
			return c;
	return 0;
}

/* Finds or creates the node that ends pattern s; 0 on exhaustion. */
static uint32_t insert_path(kg_policy *p, kg_str s)
{
	uint32_t n = 0;
	for (size_t i = 0; i < s.n; i++) {
		unsigned char b = (unsigned char)s.p[i];
		uint32_t c = child_of(p, n, b);
		if (!c) {
			if (p->nnodes == p->capnodes) {
				if (p->capnodes >= KG_POLICY_MAX_NODES)
					return 0;
				struct node *nn = realloc(p->nodes, sizeof(*nn) * p->capnodes * 2);
				if (!nn)
					return 0;
				p->nodes = nn;
				p->capnodes *= 2;
			}
			c = p->nnodes++;
			p->nodes[c] = (struct node){ .byte = b, .sibling = p->nodes[n].child };
			p->nodes[n].child = c;
		}
		n = c;
	}
	return n;
}

static struct entry *entry_for(kg_policy *p, uint32_t *slot)
{
	if (!*slot) {
		if (p->nentries == p->capentries) {
			uint32_t cap = p->capentries ? p->capentries * 2 : 16;
			struct entry *ne = realloc(p->entries, sizeof(*ne) * cap);
			if (!ne)
				return NULL;
			p->entries = ne;
			p->capentries = cap;
		}
		memset(&p->entries[p->nentries], 0, sizeof(struct entry));
		*slot = ++p->nentries;
	}
	return &p->entries[*slot - 1];
}

/* A pattern: starts with '/', '*' only as its last byte. */
static bool split_pattern(const char *pattern, kg_str *stem, bool *is_prefix)
{
	size_t n = strlen(pattern);
	if (n == 0 || pattern[0] != '/')
		return false;
	const char *star = memchr(pattern, '*', n);
	if (star && star != pattern + n - 1)
		return false;
	*is_prefix = star != NULL;
	*stem = (kg_str){ pattern, star ? n - 1 : n };
	return true;
}

/* The trie node of a pattern ("/path", or "/path/" then "*"), made if new. */
static kg_err pattern_node(kg_policy *p, const char *pattern, uint32_t *node, bool *is_prefix)
{
	kg_str stem;
	if (!split_pattern(pattern, &stem, is_prefix))
		return KG_EINVAL;
	*node = insert_path(p, stem);
	return !*node && stem.n ? KG_ENOMEM : KG_OK;
}

kg_err kg_policy_add_public(kg_policy *p, const char *pattern)
{
	uint32_t n;
	bool is_prefix;
	kg_err err = pattern_node(p, pattern, &n, &is_prefix);
	if (err)
		return err;
	p->nodes[n].is_public |= is_prefix ? 2 : 1;
	return KG_OK;
}

/* methods: slots to grant, or NULL for every method. */
static kg_err add_rule(kg_policy *p, const char *pattern, const int *slots, size_t nslots, kg_rolemask mask)
{
	uint32_t n;
	bool is_prefix;
	kg_err err = pattern_node(p, pattern, &n, &is_prefix);
	if (err)
		return err;
	struct entry *e = entry_for(p, is_prefix ? &p->nodes[n].prefix : &p->nodes[n].exact);
	if (!e)
		return KG_ENOMEM;
	if (!slots)
		e->any |= mask;
	for (size_t i = 0; slots && i < nslots; i++)
		e->by_method[slots[i]] |= mask;
	return KG_OK;
}

static kg_rolemask entry_mask(const kg_policy *p, uint32_t idx, int slot)
{
	if (!idx)
		return 0;
	const struct entry *e = &p->entries[idx - 1];
	return e->any | (slot >= 0 ? e->by_method[slot] : 0);
}

/* Walks path; returns the OR of matching masks (slot -2: any rule at all). */
static kg_rolemask walk(const kg_policy *p, int slot, kg_str path, bool *is_public)
{
	kg_rolemask m = 0;
	uint32_t n = 0;
	for (size_t i = 0;; i++) {
		const struct node *nd = &p->nodes[n];
		if (nd->prefix)
			m |= slot == -2 ? ~(kg_rolemask)0 : entry_mask(p, nd->prefix, slot);
		if (nd->is_public & 2)
			*is_public = true;
		if (i == path.n) {
			if (nd->exact)
				m |= slot == -2 ? ~(kg_rolemask)0 : entry_mask(p, nd->exact, slot);
			if (nd->is_public & 1)
				*is_public = true;
			break;
		}
		n = child_of(p, n, (unsigned char)path.p[i]);
		if (!n)
			break;
	}
	return m;
}

/* Calls walk on path and, when the policy strips a prefix, on the rest. */
static kg_rolemask decide(const kg_policy *p, int slot, kg_str path, bool *is_public)
{
	kg_rolemask m = walk(p, slot, path, is_public);
	if (p->strip_prefix) {
		kg_str pre = { p->strip_prefix, p->strip_prefix_n };
		if (kg_str_has_prefix(path, pre) && path.n > pre.n && path.p[pre.n] == '/')
			m |= walk(p, slot, (kg_str){ path.p + pre.n, path.n - pre.n }, is_public);
	}
	return m;
}

kg_rolemask kg_policy_allowed(const kg_policy *p, kg_str method, kg_str path)
{
	bool pub = false;
	return decide(p, method_slot(p, method), path, &pub);
}

kg_rolemask kg_policy_decide(const kg_policy *p, kg_str method, kg_str path, bool *is_public)
{
	/* whether a node is public does not depend on the method slot: the one
	 * walk that ORs the method's masks meets the same public marks */
	*is_public = false;
	return decide(p, method_slot(p, method), path, is_public);
}

bool kg_policy_is_public(const kg_policy *p, kg_str path)
{
	bool pub = false;
	decide(p, -1, path, &pub);
	return pub;
}

bool kg_policy_knows_path(const kg_policy *p, kg_str path)
{
	bool pub = false;
	return decide(p, -2, path, &pub) != 0;
}

kg_rolemask kg_policy_role(const kg_policy *p, kg_str name)
{
	for (size_t i = 0; i < p->nroles; i++)
		if (name.n == p->role_n[i] && memcmp(name.p, p->roles[i], name.n) == 0)
			return (kg_rolemask)1 << i;
	return 0;
}

kg_rolemask kg_policy_role_closure(const kg_policy *p, kg_rolemask roles)
{
	kg_rolemask out = roles;
	for (size_t i = 0; i < p->nroles; i++)
		if (roles & ((kg_rolemask)1 << i))
			out |= p->includes[i];
	return out;
}

size_t kg_policy_role_count(const kg_policy *p)
{
	return p->nroles;
}

const char *kg_policy_role_name(const kg_policy *p, size_t i)
{
	return i < p->nroles ? p->roles[i] : NULL;
}

/* ---- YAML ---- */

struct loader {
	kg_policy *p;
	const char *name;
	yaml_document_t doc;
	kg_config_errors *errs;
	size_t nerr;
	/* per role: parents' node ids and the rules node, resolved after all roles are known */
	yaml_node_t *inherits[KG_POLICY_MAX_ROLES];
	yaml_node_t *rules[KG_POLICY_MAX_ROLES];
	size_t inherits_line[KG_POLICY_MAX_ROLES];
};

static void lerr(struct loader *l, const yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void lerr(struct loader *l, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->nerr++;
	if (l->errs)
		kg_config_errors_add(l->errs, "%s:%zu: %s: %s", l->name, n ? n->start_mark.line + 1 : 0, key, msg);
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *node(struct loader *l, int id)
{
	return yaml_document_get_node(&l->doc, id);
}

static void load_public(struct loader *l, yaml_node_t *v)
{
	if (v->type == YAML_SCALAR_NODE) {
		if (kg_policy_add_public(l->p, scalar(v)) != KG_OK)
			lerr(l, v, "public", "invalid pattern '%s' (must start with '/', '*' only at the end)", scalar(v));
		return;
	}
	if (v->type != YAML_SEQUENCE_NODE) {
		lerr(l, v, "public", "expected a list of path patterns");
		return;
	}
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		yaml_node_t *item = node(l, *it);
		const char *s = scalar(item);
		if (!s || kg_policy_add_public(l->p, s) != KG_OK)
			lerr(l, item, "public", "invalid pattern '%s' (must start with '/', '*' only at the end)",
			     s ? s : "(not a string)");
	}
}

static int role_index(const kg_policy *p, const char *name)
{
	for (size_t i = 0; i < p->nroles; i++)
		if (strcmp(p->roles[i], name) == 0)
			return (int)i;
	return -1;
}

static void load_role(struct loader *l, const char *name, yaml_node_t *key, yaml_node_t *v)
{
	kg_policy *p = l->p;
	if (role_index(p, name) >= 0) {
		lerr(l, key, "roles", "role '%s' is defined twice", name);
		return;
	}
	if (p->nroles == KG_POLICY_MAX_ROLES) {
		lerr(l, key, "roles", "too many roles (at most %d)", KG_POLICY_MAX_ROLES);
		return;
	}
	size_t i = p->nroles;
	p->roles[i] = strdup(name);
	if (!p->roles[i])
		return;
	p->role_n[i] = strlen(name);
	p->nroles++;
	if (v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0)
		return; /* a role with nothing of its own */
	if (v->type != YAML_MAPPING_NODE) {
		lerr(l, v, "roles", "role '%s': expected a mapping with rules and inherits", name);
		return;
	}
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node(l, pr->key), *val = node(l, pr->value);
		const char *ks = scalar(k);
		if (ks && strcmp(ks, "rules") == 0)
			l->rules[i] = val;
		else if (ks && strcmp(ks, "inherits") == 0)
			l->inherits[i] = val;
		else
			lerr(l, k, "roles", "role '%s': unknown key '%s' (expected rules, inherits)", name, ks ? ks : "?");
	}
}

/* Resolves inherits into ancestor sets; reports unknown parents and cycles. */
static void resolve_inheritance(struct loader *l, kg_rolemask anc[])
{
	kg_policy *p = l->p;
	kg_rolemask parents[KG_POLICY_MAX_ROLES] = { 0 };
	for (size_t i = 0; i < p->nroles; i++) {
		yaml_node_t *v = l->inherits[i];
		anc[i] = (kg_rolemask)1 << i;
		if (!v)
			continue;
		yaml_node_item_t *start = NULL, *top = NULL;
		if (v->type == YAML_SEQUENCE_NODE) {
			start = v->data.sequence.items.start;
			top = v->data.sequence.items.top;
		}
		if (v->type == YAML_SCALAR_NODE) {
			int j = role_index(p, scalar(v));
			if (j < 0)
				lerr(l, v, "roles", "role '%s' inherits unknown role '%s'", p->roles[i], scalar(v));
			else
				parents[i] |= (kg_rolemask)1 << j;
			continue;
		}
		if (!start && v->type != YAML_SEQUENCE_NODE) {
			lerr(l, v, "roles", "role '%s': inherits must be a list of role names", p->roles[i]);
			continue;
		}
		for (yaml_node_item_t *it = start; it < top; it++) {
			const char *s = scalar(node(l, *it));
			int j = s ? role_index(p, s) : -1;
			if (j < 0)
				lerr(l, node(l, *it), "roles", "role '%s' inherits unknown role '%s'", p->roles[i],
				     s ? s : "?");
			else
				parents[i] |= (kg_rolemask)1 << j;
		}
	}
	/* transitive closure: at most nroles rounds */
	for (size_t round = 0; round <= p->nroles; round++) {
		bool changed = false;
		for (size_t i = 0; i < p->nroles; i++) {
			kg_rolemask a = anc[i] | parents[i];
			for (size_t j = 0; j < p->nroles; j++)
				if (parents[i] & ((kg_rolemask)1 << j))
					a |= anc[j];
			if (a != anc[i]) {
				anc[i] = a;
				changed = true;
			}
		}
		if (!changed)
			break;
	}
	for (size_t i = 0; i < p->nroles; i++) {
		for (size_t j = 0; j < p->nroles; j++) {
			if (parents[i] & ((kg_rolemask)1 << j) && anc[j] & ((kg_rolemask)1 << i)) {
				lerr(l, l->inherits[i], "roles", "role '%s' inherits itself through '%s' (a cycle)",
				     p->roles[i], p->roles[j]);
				break;
			}
		}
	}
}

static int slot_for_name(kg_policy *p, const char *m)
{
	int s = method_slot(p, kg_str_c(m));
	if (s >= 0)
		return s;
	if (p->nmethods == KG_POLICY_MAX_METHODS)
		return -1;
	for (const char *c = m; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || *c == '-' || *c == '_'))
			return -1;
	p->methods[p->nmethods] = strdup(m);
	p->method_n[p->nmethods] = strlen(m);
	return p->methods[p->nmethods] ? (int)p->nmethods++ : -1;
}

static void load_rule(struct loader *l, size_t role, yaml_node_t *r, kg_rolemask grant)
{
	kg_policy *p = l->p;
	const char *path = NULL;
	yaml_node_t *methods = NULL;
	int slots[KG_POLICY_MAX_METHODS];
	size_t nslots = 0;
	bool all = true;

	if (r->type != YAML_MAPPING_NODE) {
		lerr(l, r, "roles", "role '%s': a rule is a mapping {path, methods}", p->roles[role]);
		return;
	}
	for (yaml_node_pair_t *pr = r->data.mapping.pairs.start; pr < r->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node(l, pr->key), *v = node(l, pr->value);
		const char *ks = scalar(k);
		if (ks && strcmp(ks, "path") == 0 && scalar(v))
			path = scalar(v);
		else if (ks && strcmp(ks, "methods") == 0)
			methods = v;
		else
			lerr(l, k, "roles", "role '%s': unknown rule key '%s' (expected path, methods)", p->roles[role],
			     ks ? ks : "?");
	}
	if (!path) {
		lerr(l, r, "roles", "role '%s': rule without a path", p->roles[role]);
		return;
	}
	if (methods) {
		if (methods->type == YAML_SCALAR_NODE) {
			const char *m = scalar(methods);
			if (strcmp(m, "*") != 0) {
				all = false;
				int s = slot_for_name(p, m);
				if (s < 0)
					lerr(l, methods, "roles", "role '%s': invalid method '%s'", p->roles[role], m);
				else
					slots[nslots++] = s;
			}
		} else if (methods->type == YAML_SEQUENCE_NODE) {
			all = false;
			for (yaml_node_item_t *it = methods->data.sequence.items.start;
			     it < methods->data.sequence.items.top; it++) {
				const char *m = scalar(node(l, *it));
				if (m && strcmp(m, "*") == 0) {
					all = true;
					continue;
				}
				int s = m ? slot_for_name(p, m) : -1;
				if (s < 0)
					lerr(l, node(l, *it), "roles", "role '%s': invalid method '%s'", p->roles[role],
					     m ? m : "?");
				else if (nslots < KG_POLICY_MAX_METHODS)
					slots[nslots++] = s;
			}
		} else {
			lerr(l, methods, "roles", "role '%s': methods must be a list", p->roles[role]);
		}
	}
	kg_err err = add_rule(p, path, all ? NULL : slots, nslots, grant);
	if (err == KG_EINVAL)
		lerr(l, r, "roles", "role '%s': invalid path pattern '%s' (must start with '/', '*' only at the end)",
		     p->roles[role], path);
	else if (err)
		lerr(l, r, "roles", "role '%s': %s", p->roles[role], kg_strerror(err));
}

static void load_doc(struct loader *l)
{
	yaml_node_t *root = yaml_document_get_root_node(&l->doc);
	yaml_node_t *roles = NULL;
	if (!root)
		return; /* empty document: an empty policy */
	if (root->type != YAML_MAPPING_NODE) {
		lerr(l, root, "policy", "expected a mapping with public, strip_prefix and roles");
		return;
	}
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node(l, pr->key), *v = node(l, pr->value);
		const char *ks = scalar(k);
		if (ks && strcmp(ks, "public") == 0) {
			load_public(l, v);
		} else if (ks && (strcmp(ks, "strip_prefix") == 0 || strcmp(ks, "strip-prefix") == 0)) {
			const char *s = scalar(v);
			if (!s || s[0] != '/' || s[strlen(s) - 1] == '/') {
				lerr(l, v, "strip_prefix", "must start with '/' and not end with '/'");
			} else {
				free(l->p->strip_prefix);
				l->p->strip_prefix = strdup(s);
				l->p->strip_prefix_n = l->p->strip_prefix ? strlen(s) : 0;
			}
		} else if (ks && strcmp(ks, "roles") == 0) {
			if (v->type != YAML_MAPPING_NODE)
				lerr(l, v, "roles", "expected a mapping of role names");
			else
				roles = v;
		} else {
			lerr(l, k, ks ? ks : "?", "unknown key (expected public, strip_prefix, roles)");
		}
	}
	if (!roles)
		return;
	for (yaml_node_pair_t *pr = roles->data.mapping.pairs.start; pr < roles->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node(l, pr->key);
		const char *ks = scalar(k);
		if (!ks || !ks[0])
			lerr(l, k, "roles", "a role name must be a non-empty string");
		else
			load_role(l, ks, k, node(l, pr->value));
	}
	kg_rolemask anc[KG_POLICY_MAX_ROLES];
	resolve_inheritance(l, anc);
	memcpy(l->p->includes, anc, sizeof(anc[0]) * l->p->nroles);
	size_t nrules = 0;
	for (size_t i = 0; i < l->p->nroles; i++) {
		yaml_node_t *rules = l->rules[i];
		if (!rules)
			continue;
		if (rules->type != YAML_SEQUENCE_NODE) {
			lerr(l, rules, "roles", "role '%s': rules must be a list", l->p->roles[i]);
			continue;
		}
		/* a rule of role i is granted to i and to every role that inherits i */
		kg_rolemask grant = 0;
		for (size_t j = 0; j < l->p->nroles; j++)
			if (anc[j] & ((kg_rolemask)1 << i))
				grant |= (kg_rolemask)1 << j;
		for (yaml_node_item_t *it = rules->data.sequence.items.start; it < rules->data.sequence.items.top;
		     it++) {
			if (++nrules > KG_POLICY_MAX_RULES) {
				lerr(l, node(l, *it), "roles", "too many rules (at most %d)", KG_POLICY_MAX_RULES);
				return;
			}
			load_rule(l, i, node(l, *it), grant);
		}
	}
}

kg_err kg_policy_load_yaml(const char *name, const char *yaml, size_t len, kg_policy **out, kg_config_errors *errs)
{
	yaml_parser_t parser;
	struct loader l = { .name = name, .errs = errs };
	kg_err err = kg_policy_new(&l.p);
	if (err)
		return err;
	if (!yaml_parser_initialize(&parser)) {
		kg_policy_free(&l.p);
		return KG_ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &l.doc)) {
		l.nerr++;
		if (errs)
			kg_config_errors_add(errs, "%s:%zu: policy: YAML syntax error: %s", name,
			                     parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
		yaml_parser_delete(&parser);
		kg_policy_free(&l.p);
		return KG_ESYNTAX;
	}
	load_doc(&l);
	yaml_document_delete(&l.doc);
	yaml_parser_delete(&parser);
	if (l.nerr) {
		kg_policy_free(&l.p);
		return KG_ECONFIG;
	}
	*out = l.p;
	return KG_OK;
}

kg_err kg_policy_load_file(const char *path, kg_policy **out, kg_config_errors *errs)
{
	kg_buf b = { 0 };
	kg_err err = kg_buf_read_file(&b, path, 16u * 1024 * 1024);
	if (err == KG_ETOOBIG && errs)
		kg_config_errors_add(errs, "%s: policy file too large (16 MiB at most)", path);
	else if (err && errs)
		kg_config_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
	if (!err)
		err = kg_policy_load_yaml(path, b.p ? b.p : "", b.n, out, errs);
	kg_buf_free(&b, false);
	return err;
}

/* Built-in presets: name → policy YAML. Later issues register theirs here. */
static const struct {
	const char *name;
	const char *yaml;
} presets[] = {
	{ "none", "{}" },
	{ "bee", kg__preset_bee_yaml },
};

kg_err kg_policy_load_preset(const char *name, kg_policy **out)
{
	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
		if (strcmp(name, presets[i].name) == 0)
			return kg_policy_load_yaml(presets[i].name, presets[i].yaml, strlen(presets[i].yaml), out, NULL);
	return KG_ENOENT;
}
