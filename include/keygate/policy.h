// policy.h - roles, rules and the compiled route trie.
//
// A policy has named roles (at most KG_POLICY_MAX_ROLES). Each role has rules
// (a path pattern and a set of methods) and may inherit other roles: a role
// is granted everything its ancestors are granted. A pattern is either an
// exact path ("/pingpong") or a prefix ending in '*' ("/bytes/*" matches every
// path that starts with "/bytes/"). Public paths (same pattern syntax, any
// method) need no credential at all.
//
// Patterns compile into a byte trie whose nodes carry, per method, the
// bitmask of roles allowed, so a decision costs one walk over the request
// path, whatever the number of rules.
//
// Policy YAML:
//   public: ["/health", "/debug/*"]
//   strip_prefix: "/v1"          # optional: also match paths with this prefix removed
//   roles:
//     consumer:
//       rules:
//         - { path: "/bytes/*", methods: [GET, HEAD] }
//     creator:
//       inherits: [consumer]
//       rules:
//         - { path: "/bytes", methods: [POST] }
// "methods: ['*']" (or omitting methods) allows every method.
#ifndef KEYGATE_POLICY_H
#define KEYGATE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "keygate/config.h"
#include "keygate/err.h"
#include "keygate/str.h"

#define KG_POLICY_MAX_ROLES 64

typedef struct kg_policy kg_policy;
typedef uint64_t kg_rolemask; /* bit i: role with id i */

/* Builds an empty policy (no roles, no public paths). Returns owned. */
kg_err kg_policy_new(kg_policy **out) KG_MUST_CHECK;

/* Loads a policy YAML file. Every problem is appended to errs as
 * "file:line: key: problem"; returns KG_OK only when there was none. */
kg_err kg_policy_load_file(const char *path, kg_policy **out, kg_config_errors *errs) KG_MUST_CHECK;

/* Same, from a YAML document in memory; name is used in error messages. */
kg_err kg_policy_load_yaml(const char *name, const char *yaml, size_t len, kg_policy **out,
                           kg_config_errors *errs) KG_MUST_CHECK;

/* Adds public paths (patterns) to p. */
kg_err kg_policy_add_public(kg_policy *p, const char *pattern) KG_MUST_CHECK;

/* Frees p and sets *p to NULL. Safe on NULL. */
void kg_policy_free(kg_policy **p);

/* Looks a role up by name; returns its single-bit mask, or 0 if unknown. */
kg_rolemask kg_policy_role(const kg_policy *p, kg_str name);

/* roles plus every role they inherit, directly or not: a refreshed token may
 * carry any role in the closure of the presented one, never more. */
kg_rolemask kg_policy_role_closure(const kg_policy *p, kg_rolemask roles);

/* Number of roles and the name of role i (borrowed). */
size_t kg_policy_role_count(const kg_policy *p);
const char *kg_policy_role_name(const kg_policy *p, size_t i);

/* True when path needs no credential (public pattern). */
bool kg_policy_is_public(const kg_policy *p, kg_str path);

/* The roles allowed to call method on path (0: nobody). path is the URL path
 * without the query string. */
kg_rolemask kg_policy_allowed(const kg_policy *p, kg_str method, kg_str path);

/* Both of the above in one walk of path: returns kg_policy_allowed(p,
 * method, path) and sets *is_public to kg_policy_is_public(p, path). For the
 * per-request decision, which needs the one before the credential is read
 * and the other after. */
kg_rolemask kg_policy_decide(const kg_policy *p, kg_str method, kg_str path, bool *is_public);

/* True when any of the roles in held may call method on path. */
static inline bool kg_policy_allows(const kg_policy *p, kg_rolemask held, kg_str method, kg_str path)
{
	return (kg_policy_allowed(p, method, path) & held) != 0;
}

kg_err kg_policy_load_preset(const char *name, kg_policy **out) KG_MUST_CHECK;

/* True when some rule names path at all (any method, any role). */
bool kg_policy_knows_path(const kg_policy *p, kg_str path);

#endif
