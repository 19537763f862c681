/* es_role.h - Elasticsearch role descriptors: validated and normalised as
 * ES 8.x does, and compiled into what they grant.
 *
 * Pure: no sockets, no store. Documents are jansson json_t.
 *
 * Two steps, as ES takes them: parsing (the structure; the first problem is a
 * 400 parse_exception, validation_exception or illegal_argument_exception in
 * ES's words) and validation (privilege names, application names, metadata
 * keys, workflows; every problem is numbered into one 400
 * action_request_validation_exception). kg_es_roles_normalise does both; a
 * caller that has its own validation problems to number first (an API key's
 * name) calls kg_es_roles_parse, then its own checks, then
 * kg_es_roles_validate into the same kg_es_fail.
 *
 * A normalised descriptor has exactly ES's output fields in ES's order:
 *   cluster, global (only when given), indices, applications, run_as,
 *   metadata, transient_metadata ({"enabled":true}), restriction (API keys,
 *   only when it names workflows).
 * Index entries: names, privileges, field_security (when given), query (a
 * string: an object query is kept as its compact JSON text, as ES prints it),
 * allow_restricted_indices. Normalising a normalised descriptor changes
 * nothing. */
#ifndef KEYGATE_ES_ROLE_H
#define KEYGATE_ES_ROLE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "keygate/err.h"
#include "keygate/es.h"
#include "keygate/str.h"

/* Caps on what a client controls (a refusal beyond them is a 400). */
#define KG_ES_ROLE_NAME_MAX 507       /* ES's role name limit, in bytes */
#define KG_ES_ROLE_MAX_ENTRIES 1000   /* entries per array (privileges, names, resources, ...) */
#define KG_ES_ROLE_MAX_STRING 1024    /* bytes per privilege, index name, resource or user name */
#define KG_ES_ROLE_MAX_DEPTH 20       /* nesting of metadata and query objects */
#define KG_ES_ROLE_MAX_DESCRIPTORS 1000

/* Parses and normalises one descriptor named name (borrowed, NUL-terminated).
 * for_api_key allows `restriction`. On success *out is a new reference (the
 * caller owns it). On a refusal returns KG_EINVAL with f set (parse errors
 * replace what f held; validation problems are numbered after those already
 * in f); KG_ENOMEM. */
kg_err kg_es_role_normalise(const char *name, const json_t *in, bool for_api_key, json_t **out,
                            struct kg_es_fail *f) KG_MUST_CHECK;

/* The same for a map name -> descriptor (role_descriptors of an API key, or
 * roles). With for_api_key, a restriction is allowed only when the map holds
 * exactly one descriptor (ES's two illegal_argument_exceptions otherwise). */
kg_err kg_es_roles_normalise(const json_t *map, bool for_api_key, json_t **out, struct kg_es_fail *f) KG_MUST_CHECK;

/* Step one alone: the structure. *out is normalised but its names are not
 * checked yet. KG_EINVAL with f set, or KG_ENOMEM. */
kg_err kg_es_role_parse(const char *name, const json_t *in, bool for_api_key, json_t **out,
                        struct kg_es_fail *f) KG_MUST_CHECK;
kg_err kg_es_roles_parse(const json_t *map, bool for_api_key, json_t **out, struct kg_es_fail *f) KG_MUST_CHECK;

/* Step two alone, on a parsed (normalised) descriptor or map: every unknown
 * cluster or index privilege, bad application name or privilege, reserved
 * metadata key and unknown workflow is numbered into f (continuing the
 * numbering f holds). KG_OK when there was none, else KG_EINVAL (or KG_ENOMEM). */
kg_err kg_es_role_validate(const json_t *descriptor, struct kg_es_fail *f) KG_MUST_CHECK;
kg_err kg_es_roles_validate(const json_t *map, struct kg_es_fail *f) KG_MUST_CHECK;

/* The built-in `superuser` role's normalised descriptor (new reference, NULL
 * when out of memory). */
json_t *kg_es_role_superuser(void);

/* What a set of descriptors grants, compiled for cheap checks: no JSON walk
 * and no allocation when evaluated. Opaque; immutable once compiled, so one
 * compiled permission may be read from several threads. */
typedef struct kg_es_perm kg_es_perm;

/* Compiles a map name -> normalised descriptor (borrowed; an arbitrary JSON
 * value is refused with KG_EINVAL, never crashes). An empty map grants
 * nothing. *out is owned by the caller (kg_es_perm_free). */
kg_err kg_es_perm_compile(const json_t *descriptors_map, kg_es_perm **out) KG_MUST_CHECK;

/* An API key's effective permission: its descriptors intersected with its
 * owner's snapshot (limited_by). An empty (or NULL) key map means the owner's
 * snapshot alone; an explicitly empty descriptor ({"r":{}}) grants nothing. */
kg_err kg_es_perm_compile_key(const json_t *key_descriptors, const json_t *limited_by, kg_es_perm **out) KG_MUST_CHECK;

void kg_es_perm_free(kg_es_perm **p);

/* A cluster action as ES names it (cluster:admin/xpack/security/api_key/create,
 * .../user/get, ...): denied, allowed on the caller's own API keys only
 * (manage_own_api_key), or allowed. _authenticate and has_privileges are
 * allowed to everyone. action is borrowed and NUL-terminated. */
enum kg_es_grant { KG_ES_DENY, KG_ES_OWN, KG_ES_ALLOW };
enum kg_es_grant kg_es_perm_cluster(const kg_es_perm *p, const char *action);

/* Appends to out the comma list of cluster privileges that grant action, in
 * ES's order (least to most privileged), as ES's 403 names them:
 * "manage_own_api_key,manage_api_key,manage_security,all" for create.
 * manage_own_api_key is listed only when is_own_request (the request is on the
 * caller's own keys), as ES checks it against the request. KG_ENOMEM. */
kg_err kg_es_cluster_privileges_granting(const char *action, bool is_own_request, kg_buf *out) KG_MUST_CHECK;

/* Application privileges: does p grant privilege (an action, e.g. an HTTP
 * method) on resource (e.g. a normalised path) of application? Descriptor
 * privileges that are not privilege names (anything but ^[a-z][a-zA-Z0-9_.-]*$,
 * so "GET", "*", "data:read/x") are action patterns matched against privilege,
 * case-sensitively. Privilege names ("read") would resolve through ES's stored
 * application privileges (PUT /_security/privilege): resolve says whether the
 * stored privilege `name` of application grants action; with resolve NULL a
 * name matches the requested privilege literally.
 * Patterns (application, action, resource): `*` any run of characters
 * (including '/'), `?` one character, `\` takes the next character literally.
 * ES's /regex/ form is not supported. */
typedef bool (*kg_es_app_resolve_fn)(void *ctx, kg_str application, kg_str name, kg_str action);
bool kg_es_perm_app(const kg_es_perm *p, kg_str application, kg_str privilege, kg_str resource);
bool kg_es_perm_app_resolved(const kg_es_perm *p, kg_str application, kg_str privilege, kg_str resource,
                             kg_es_app_resolve_fn resolve, void *ctx);

/* Index privileges: does p grant privilege (a name: read, write, index, ...,
 * or an "indices:..." action) on index? `all` covers every privilege, `write`
 * covers index, create, create_doc, delete; `index` covers create and
 * create_doc; `create` covers create_doc; `manage` covers monitor and
 * view_index_metadata. Index names starting with ".security" are restricted:
 * granted only by entries with allow_restricted_indices. */
bool kg_es_perm_index(const kg_es_perm *p, kg_str index, const char *privilege);

/* The 403 reason ES writes (AuthorizationService.actionDenied):
 *   action [A] is unauthorized for user [u] with effective roles [r1,r2]
 *   action [A] is unauthorized for user [u] with no roles
 *   action [A] is unauthorized for API key id [X] of user [u]
 * followed by ", this action is granted by the cluster privileges [P]" when
 * granted_by is given (kg_es_cluster_privileges_granting). principal is
 * "user [u]" or "API key id [X] of user [u]"; is_api_key leaves the roles
 * out as ES does. For upstream routes keygate uses the same text with the
 * action "METHOD /path" and no granted_by. Appends to out; KG_ENOMEM. */
kg_err kg_es_unauthorized_message(kg_buf *out, kg_str action, kg_str principal, bool is_api_key,
                                  const char *const *roles, size_t nroles, const char *granted_by) KG_MUST_CHECK;

/* ---- has_privileges and the builtin list (es_priv.c uses these) ---- */

/* ES's named privileges, by index i from 0 until NULL: cluster in keygate's
 * table order (least to most privileged), index alphabetical. Static strings. */
const char *kg_es_cluster_privilege_name(size_t i);
const char *kg_es_index_privilege_name(size_t i);

/* Whether ES would resolve privilege (a name, any case, or an action
 * pattern: "cluster:..." / "indices:..."), as role validation accepts it. */
bool kg_es_cluster_privilege_is_known(const char *privilege);
bool kg_es_index_privilege_is_known(const char *privilege);

/* Appends ES's "unknown cluster privilege [x]. a privilege must be either one
 * of the predefined cluster privilege names [...] or a pattern over one of the
 * available cluster actions" (or the index one), privilege lower-cased as ES
 * prints it. KG_ENOMEM. */
kg_err kg_es_unknown_privilege_message(bool is_index, const char *privilege, kg_buf *out) KG_MUST_CHECK;

/* Whether every string the pattern want matches is matched by the pattern
 * held (both in the syntax above: '*', '?', '\'). Sound, not complete: a
 * "no" may come where only a union of patterns would cover want. */
bool kg_es_pattern_covers(kg_str held, kg_str want);

/* has_privileges for a cluster privilege: true when what p holds implies
 * privilege, a NAME (all ⊇ manage_security ⊇ manage_api_key ⊇
 * manage_own_api_key, manage ⊇ monitor, ...: p's actions cover the named
 * privilege's actions; `none` is implied by anything) or an action pattern
 * ("cluster:monitor/health", any "cluster:" action pattern). Through an API key's limit
 * too. False for an unknown privilege. */
bool kg_es_perm_cluster_privilege(const kg_es_perm *p, const char *privilege);

/* has_privileges for an index privilege (a name or an "indices:..." action)
 * on an index name or pattern ("logs-*"): true when one entry of p (at each
 * level of an API key) covers the whole pattern and grants the privilege.
 * As ES, a pattern leaves the restricted indices (.security*) out unless
 * allow_restricted; a concrete restricted name needs an entry with
 * allow_restricted_indices. False for an unknown privilege. */
bool kg_es_perm_index_pattern(const kg_es_perm *p, kg_str pattern, const char *privilege, bool allow_restricted);

#endif
