/* es_priv.h - Elasticsearch's privileges APIs, the pure part: application
 * privileges (PUT|POST|GET|DELETE /_security/privilege), has_privileges
 * (/_security/user/_has_privileges), the builtin list
 * (/_security/privilege/_builtin) and a user's privileges
 * (/_security/user/_privileges), each in ES 8.x's words and shapes.
 *
 * Pure: no sockets, no store. Documents are jansson json_t. The caller (the
 * API layer) loads and stores; this file says what to store and what to
 * answer.
 *
 * A stored application privilege (namespace es.privilege, key
 * "<application>/<name>": neither may contain '/') is
 *   {"application":A,"name":N,"actions":[...],"metadata":{...}}
 * and a "set" of them, the form the views and the resolver read, is an
 * object {"<application>":{"<name>":doc}} (kg_es_privs_set_add builds it). */
#ifndef KEYGATE_ES_PRIV_H
#define KEYGATE_ES_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "keygate/err.h"
#include "keygate/es.h"
#include "keygate/es_role.h"
#include "keygate/str.h"

/* Caps on what a client controls (a refusal beyond them is a 400). */
#define KG_ES_PRIV_MAX 1000        /* privileges in one PUT body */
#define KG_ES_PRIV_STRING_MAX 1024 /* bytes of an application, name or action */
#define KG_ES_PRIV_ACTIONS_MAX 1000 /* actions of one privilege */

/* ---- application privileges ---- */

/* PUT|POST /_security/privilege: body {"<app>":{"<name>":{"application"?,
 * "name"?,"actions":[...],"metadata"?:{}}}}, as ES's PutPrivilegesRequest
 * parses and validates it: a structural problem is a 400 parse_exception,
 * x_content_parse_exception or illegal_argument_exception (the first one);
 * then every problem is numbered into one 400
 * action_request_validation_exception (application names, privilege names,
 * actions, metadata keys). On success *docs (owned by the caller) is an array
 * of normalised documents in request order, actions without duplicates.
 * KG_EINVAL with f filled, or KG_ENOMEM. */
kg_err kg_es_privileges_parse(kg_str body, json_t **docs, struct kg_es_fail *f) KG_MUST_CHECK;

/* The PUT answer {"<app>":{"<name>":{"created":bool}}}: created is
 * !existed[i] for docs[i] (existed: borrowed, one per document; the caller
 * looked them up). Returns owned, NULL on no memory. */
json_t *kg_es_privileges_put_answer(const json_t *docs, const bool *existed);

/* Adds a stored document (borrowed; a malformed one is KG_EINVAL and left
 * out) to set (an object, see above), replacing one of the same
 * application and name. KG_ENOMEM. */
kg_err kg_es_privs_set_add(json_t *set, const json_t *doc) KG_MUST_CHECK;

/* GET /_security/privilege[/{application}[/{names}]]: ES's
 * {"<app>":{"<name>":doc}} for what set holds. applications (borrowed) is
 * empty for all, else a comma list of names or trailing-wildcard patterns;
 * names is empty for all, else a comma list. An empty answer ({}) for a
 * request that named something is ES's 404 (the caller sends it with {}).
 * Returns owned, NULL on no memory. */
json_t *kg_es_privs_view(const json_t *set, kg_str applications, kg_str names);

/* DELETE /_security/privilege/{application}/{names}: the answer
 * {"<app>":{"<name>":{"found":bool}}} for each name of the comma list, found
 * when set (the privileges before the delete) holds it. The caller deletes
 * the found ones. Returns owned, NULL on no memory. */
json_t *kg_es_privs_delete_answer(const json_t *set, kg_str application, kg_str names);

/* The resolver es_role.h's kg_es_perm_app_resolved takes (ctx: a set, as
 * const json_t *): true when the stored privilege `name` of application
 * has an action pattern covering action, or when name is action itself (a
 * role and a request speaking of the same name). */
bool kg_es_privs_resolve(void *ctx, kg_str application, kg_str name, kg_str action);

/* ---- has_privileges ---- */

struct kg_es_has_privs {
	json_t *cluster;     /* array of strings */
	json_t *index;       /* array of {"names":[...],"privileges":[...],"allow_restricted_indices":bool} */
	json_t *application; /* array of {"application","privileges":[...],"resources":[...]} */
};

/* GET|POST /_security/user/_has_privileges: the body as ES's
 * RoleDescriptor.parsePrivilegesToCheck and HasPrivilegesRequest.validate
 * take it; username (borrowed, the caller's or the key owner's name) appears
 * in ES's parse messages. The caller frees out with
 * kg_es_has_privileges_free whatever the result. KG_EINVAL (f) or KG_ENOMEM. */
kg_err kg_es_has_privileges_parse(kg_str body, const char *username, struct kg_es_has_privs *out,
                                  struct kg_es_fail *f) KG_MUST_CHECK;
void kg_es_has_privileges_free(struct kg_es_has_privs *req);

/* Evaluates a parsed request against p (a user's roles, or an API key's
 * kg_es_perm_compile_key) with application privilege names resolved through
 * privs_set (borrowed, may be NULL), and builds ES's answer
 *   {"username","has_all_requested","cluster":{priv:bool},
 *    "index":{name:{priv:bool}},"application":{app:{resource:{priv:bool}}}}
 * An unknown cluster or index privilege is ES's 400
 * illegal_argument_exception. *answer is owned by the caller. KG_EINVAL (f)
 * or KG_ENOMEM. */
kg_err kg_es_has_privileges_eval(const struct kg_es_has_privs *req, const kg_es_perm *p, const json_t *privs_set,
                                 const char *username, json_t **answer, struct kg_es_fail *f) KG_MUST_CHECK;

/* ---- what exists, and what a user holds ---- */

/* GET /_security/privilege/_builtin: {"cluster":[...],"index":[...],
 * "remote_cluster":[...]}, each sorted as ES's TreeSet. NULL on no memory. */
json_t *kg_es_builtin_privileges(void);

/* GET /_security/user/_privileges for a map role name -> normalised
 * descriptor (borrowed): {"cluster":[...],"global":[...],"indices":[...],
 * "applications":[...],"run_as":[...]} as ES's GetUserPrivilegesResponse
 * writes it: names sorted and unique; index entries with the same names,
 * field security, query and allow_restricted_indices merged, field_security
 * and query as arrays; application entries with the same application and
 * resources merged. KG_EINVAL for a value that is not such a map, KG_ENOMEM. */
kg_err kg_es_user_privileges(const json_t *descriptors, json_t **out) KG_MUST_CHECK;

#endif
