/* password.h - bcrypt through libxcrypt's crypt_r.
 *
 * bcrypt reads at most 72 bytes of a password; the rest is ignored, as in
 * every bcrypt. Passwords with a NUL byte are refused. These calls take tens
 * of milliseconds at cost 10: never call them on an event loop. */
#ifndef KEYGATE_PASSWORD_H
#define KEYGATE_PASSWORD_H

#include <stdbool.h>
#include <stdint.h>

#include "keygate/str.h"

#define KG_BCRYPT_MIN_COST 4
#define KG_BCRYPT_MAX_COST 31
#define KG_BCRYPT_DEFAULT_COST 10

/* Appends a new "$2b$" hash of plain at cost (KG_ERANGE outside 4..31). */
kg_err kg_bcrypt_hash(kg_str plain, int cost, kg_buf *out) KG_MUST_CHECK;

/* *ok tells whether plain matches hash ($2a$, $2b$, $2y$, any cost); the
 * comparison is constant-time. KG_EINVAL for a malformed hash. */
kg_err kg_bcrypt_verify(kg_str plain, const char *hash, bool *ok) KG_MUST_CHECK;

/* bcrypt computations (hash or verify) this process has run. */
uint64_t kg_bcrypt_count(void);

/* True for a syntactically valid bcrypt hash: $2a$|$2b$|$2y$, a two-digit
 * cost 04..31, '$' and 53 characters of bcrypt's base64. */
bool kg_bcrypt_is_valid_hash(const char *hash);

/* Strength, as AvalancheGo judged it: zxcvbn over the first 50 characters;
 * fewer than 10^6 estimated guesses (below zxcvbn's "fair") is weak. */
#define KG_PASSWORD_MIN_GUESSES_LOG10 6.0
double kg_password_guesses_log10(kg_str pw);
bool kg_password_is_weak(kg_str pw);

#endif
