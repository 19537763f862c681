/* users.h - HTTP Basic users from a file, and the cache that lets a
 * credential verified once skip bcrypt until it expires.
 *
 * The file holds one user per line, htpasswd -B's format with the roles as a
 * third field ('#' starts a comment line, blank lines are ignored):
 *
 *   alice:$2y$10$...:creator
 *   ops:$2b$12$...:maintainer,auditor
 *
 * Only bcrypt hashes are accepted (keygate bcrypt or htpasswd -B make them);
 * every role must exist in the policy.
 *
 * The cache keys a verified credential by HMAC-SHA256(a key drawn at load,
 * user and password): the password itself is never kept. Wrong passwords are
 * never cached, so each costs a bcrypt (throttled per client address by the
 * caller). Lookups and inserts are safe from any thread. */
#ifndef KEYGATE_USERS_H
#define KEYGATE_USERS_H

#include <stdint.h>

#include "keygate/auth.h"
#include "keygate/config.h"
#include "keygate/policy.h"

#define KG_USER_MAX_NAME 255
#define KG_USER_MAX_PASSWORD 1024
#define KG_USERS_MAX_FILE (16 * 1024 * 1024)

typedef struct kg_users kg_users;

struct kg_user {
	kg_str name;
	const char *hash;
	kg_str roles_text; /* as written: "creator" or "maintainer,auditor" */
	kg_rolemask roles;
	size_t line;       /* where the file defines it */
};

/* Reads a users file. Every problem is appended to errs as
 * "file:line: problem"; returns KG_OK only when there was none. */
kg_err kg_users_load(const char *path, const kg_policy *policy, kg_users **out, kg_config_errors *errs)
    KG_MUST_CHECK;
/* Same, from memory; name is used in error messages. */
kg_err kg_users_parse(const char *name, const char *text, size_t len, const kg_policy *policy, kg_users **out,
                      kg_config_errors *errs) KG_MUST_CHECK;
void kg_users_free(kg_users **u);
size_t kg_users_count(const kg_users *u);
/* User number i (< count), in file order; borrowed from u. */
const struct kg_user *kg_users_at(const kg_users *u, size_t i);
/* The user called name, or NULL; borrowed from u. */
const struct kg_user *kg_users_find(const kg_users *u, kg_str name);

/* Sets up the cache: about capacity credentials (0: no cache), each trusted
 * for ttl_s seconds after its bcrypt check. */
kg_err kg_users_cache_init(kg_users *u, size_t capacity, int64_t ttl_s) KG_MUST_CHECK;
/* Bytes the cache holds per credential (for the benchmark). */
size_t kg_users_cache_entry_size(void);

/* Splits the value of "Authorization: Basic VALUE" into user and password,
 * decoded into buf (cap bytes). KG_EBADCRED when it is not base64 of
 * "user:password" within the size limits. */
kg_err kg_basic_decode(kg_str value, char *buf, size_t cap, kg_str *user, kg_str *password) KG_MUST_CHECK;
/* Wipes what a successful kg_basic_decode wrote into buf ("user:password",
 * ending where password ends), not the rest of buf: that is a fixed
 * 1.3 KiB for the longest credential, and wiping it all cost ~800
 * instructions per request. */
void kg_basic_wipe(char *buf, kg_str password);

/* The user whose credential (user, password) was verified and is still
 * cached, or NULL: then call kg_users_verify off the event loop. */
const struct kg_user *kg_users_cached(kg_users *u, kg_str user, kg_str password, int64_t now);

/* bcrypt check (slow: thread pool). An unknown user name is checked against
 * a hash at the highest cost in the file, so it costs as much as the dearest
 * known user. KG_OK caches the credential; KG_EBADCRED for a wrong user or
 * password. */
kg_err kg_users_verify(kg_users *u, kg_str user, kg_str password, int64_t now, const struct kg_user **out)
    KG_MUST_CHECK;

/* For tests only: the bcrypt cost an unknown user name is checked at (the
 * highest cost in the file; 0 with no users). */
int kg_users__dummy_cost(const kg_users *u);

/* For tests and benchmarks only: caches (user, password) as verified for
 * the user at index idx without a bcrypt check. */
void kg_users__remember(kg_users *u, kg_str user, kg_str password, size_t idx, int64_t now);

/* The Basic scheme as an authenticator (owned by u): a cached credential is
 * decided on the event loop, anything else answers KG_ESLOW and its slow()
 * runs the bcrypt check. Refusals are written in dialect d. */
const struct kg_authenticator *kg_users_authenticator(kg_users *u, enum kg_dialect d);

#endif
