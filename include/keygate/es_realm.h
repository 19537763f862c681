/* es_realm.h - Elasticsearch's users and roles: the file realm's files as ES
 * writes them, and the native realm's request bodies with ES's messages.
 * Pure: no sockets, no store, no bcrypt (the caller hashes and verifies
 * passwords off the event loop, with lib/password.c).
 *
 * The file realm is an ES config directory's three files:
 *   users        "name:hash" lines (elasticsearch-users writes them); keygate
 *                reads bcrypt hashes ($2a$, $2b$, $2y$) and refuses the other
 *                formats ES knows ({PBKDF2}, {SSHA256}, ...) by name
 *   users_roles  "role:user1,user2" lines
 *   roles.yml    a YAML map: role name -> role descriptor
 * '#' at the very start of a line makes a comment in users and users_roles,
 * as in ES; blank lines are ignored. Where ES logs a malformed line and skips
 * it, keygate reports "file:line: problem" and refuses the whole realm: the
 * caller refuses to start, or on reload keeps the realm it has. */
#ifndef KEYGATE_ES_REALM_H
#define KEYGATE_ES_REALM_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "keygate/config.h"
#include "keygate/es.h"
#include "keygate/str.h"

#define KG_ES_REALM_MAX_FILE (16 * 1024 * 1024) /* each of the three files */
#define KG_ES_REALM_MAX_LINE 65536              /* users, users_roles */
#define KG_ES_FILE_NAME_MAX 1024                /* file realm names (ES's Validation) */
#define KG_ES_NATIVE_NAME_MAX 507               /* native user and role names (ES's) */
#define KG_ES_PASSWORD_MIN 6                    /* ES's, in characters */
#define KG_ES_PASSWORD_MAX 1024                 /* keygate's cap, in bytes (bcrypt reads 72) */
#define KG_ES_MAX_DEPTH 20                      /* metadata and descriptor nesting */

typedef struct kg_es_file_realm kg_es_file_realm;

struct kg_es_file_user {
	const char *name;         /* NUL-terminated; owned by the realm */
	const char *hash;         /* a valid bcrypt hash */
	const char *const *roles; /* from users_roles, in file order; nroles of them */
	size_t nroles;
	size_t line;              /* where users defines it */
};

/* An empty realm, to fill with the *_parse calls below (returns owned). */
kg_err kg_es_file_realm_new(kg_es_file_realm **out) KG_MUST_CHECK;
void kg_es_file_realm_free(kg_es_file_realm **r);

/* Reads dir/users, dir/users_roles and dir/roles.yml into a new realm. A
 * missing file counts as empty (as in ES); an unreadable or oversized one,
 * and every problem in any file, is appended to errs as "path:line: problem".
 * KG_OK only when there was none; otherwise *out is untouched (so a reload
 * that fails keeps the caller's old realm) and the result is KG_ECONFIG, or
 * KG_ENOMEM. */
kg_err kg_es_file_realm_load(const char *dir, kg_es_file_realm **out, kg_config_errors *errs) KG_MUST_CHECK;

/* The three parsers, from memory (file names only appear in messages).
 * Parse users before users_roles: roles attach to the users already read.
 * Each returns KG_OK, KG_ECONFIG (problems appended to errs) or KG_ENOMEM. */
kg_err kg_es_file_users_parse(kg_es_file_realm *r, const char *file, const char *text, size_t len,
                              kg_config_errors *errs) KG_MUST_CHECK;
kg_err kg_es_file_users_roles_parse(kg_es_file_realm *r, const char *file, const char *text, size_t len,
                                    kg_config_errors *errs) KG_MUST_CHECK;
kg_err kg_es_file_roles_parse(kg_es_file_realm *r, const char *file, const char *text, size_t len,
                              kg_config_errors *errs) KG_MUST_CHECK;

/* The user called name, or NULL; borrowed from r. */
const struct kg_es_file_user *kg_es_file_realm_user(const kg_es_file_realm *r, kg_str name);
size_t kg_es_file_realm_user_count(const kg_es_file_realm *r);
/* User number i (< count) in users file order, or NULL; borrowed. */
const struct kg_es_file_user *kg_es_file_realm_user_at(const kg_es_file_realm *r, size_t i);

/* The descriptor roles.yml gives role name, or NULL: the YAML converted
 * faithfully (plain scalars typed as YAML 1.1 does), not yet normalised -
 * es_role.c's normaliser judges it. Borrowed from r. */
const json_t *kg_es_file_realm_role(const kg_es_file_realm *r, kg_str name);
/* Every role: {name: descriptor, ...} in file order; borrowed from r. */
const json_t *kg_es_file_realm_roles(const kg_es_file_realm *r);

/* ---- the native realm's request bodies ---- */

/* A parsed PUT|POST /_security/user/{name} or POST .../{name}/_password. */
struct kg_es_user_req {
	/* PUT user: the stored user document without "password_hash":
	 * {"username","roles","full_name","email","metadata","enabled"}, every
	 * field present (ES replaces them all on update). NULL for _password. */
	json_t *doc;
	bool has_password;   /* password holds the plain text: the caller hashes it */
	kg_buf password;     /* a secret: kg_es_user_req_free wipes it */
	char *password_hash; /* or the bcrypt hash the body gave (owned), else NULL */
};

/* Parses the body of PUT|POST /_security/user/{name}; name is the path's
 * (decoded). is_create: no user of that name exists yet, so a password (or
 * password_hash) is required. On refusal returns KG_EINVAL with f set to ES's
 * error (parse_exception, validation_exception, illegal_argument_exception,
 * action_request_validation_exception - in ES's order), or KG_ENOMEM.
 * Either way free out with kg_es_user_req_free. */
kg_err kg_es_user_parse(kg_str name, kg_str body, bool is_create, struct kg_es_user_req *out,
                        struct kg_es_fail *f) KG_MUST_CHECK;

/* Parses the body of POST /_security/user/{name}/_password: {"password"} or
 * {"password_hash"}. Same errors as kg_es_user_parse. */
kg_err kg_es_password_parse(kg_str body, struct kg_es_user_req *out, struct kg_es_fail *f) KG_MUST_CHECK;

/* Wipes the password and frees everything out holds; safe twice. */
void kg_es_user_req_free(struct kg_es_user_req *out);

/* True for the names ES reserves for its built-in users (elastic, kibana,
 * kibana_system, logstash_system, beats_system, apm_system,
 * remote_monitoring_user). */
bool kg_es_user_is_reserved(kg_str name);
/* True for the names of ES's built-in roles (superuser, viewer, editor, ...). */
bool kg_es_role_is_reserved(kg_str name);

/* Checks the name of PUT|POST /_security/role/{name} as ES does (1..507
 * printable ASCII characters, no leading or trailing space, not a built-in
 * role): KG_OK, or KG_EINVAL with f set (400
 * action_request_validation_exception), or KG_ENOMEM. */
kg_err kg_es_role_name_check(kg_str name, struct kg_es_fail *f) KG_MUST_CHECK;

/* Parses the body of PUT|POST /_security/role/{name}: a JSON object (nesting
 * at most KG_ES_MAX_DEPTH), returned owned in *out for es_role.c to
 * normalise. KG_EINVAL with f set (400 parse_exception or
 * x_content_parse_exception), or KG_ENOMEM. */
kg_err kg_es_role_body_parse(kg_str name, kg_str body, json_t **out, struct kg_es_fail *f) KG_MUST_CHECK;

/* GET /_security/user's entry for a stored user document (es.user):
 * {"username","roles","full_name","email","metadata","enabled"} - never the
 * hash. The caller puts it under the user's name. Returns owned, NULL on
 * ENOMEM or a document that is not an object. */
json_t *kg_es_user_view(const json_t *stored_doc);

/* The same entry for a built-in user of ES's reserved realm (elastic):
 * roles ["superuser"] for elastic, metadata {"_reserved":true}. Returns
 * owned, NULL on ENOMEM. */
json_t *kg_es_reserved_user_view(const char *name, bool is_enabled);

#endif
