/* token.h - role tokens, in two formats.
 *
 * keygate format ("kg1." + base64url, no padding), the default:
 *   wire      = key_id(4) ‖ nonce(12) ‖ ciphertext ‖ tag(16)
 *   key_id    = first 4 bytes of SHA-256(token-encryption-key): finds the key
 *   AES key   = HKDF-SHA256(ikm = token-encryption-key, salt = "keygate token v1",
 *                           info = "kg1" ‖ key_id), 32 bytes
 *   AEAD      = AES-256-GCM, AAD = "kg1" ‖ key_id (version and key bound)
 *   plaintext = layout(1) = 1 ‖ expires_ms (int64 BE) ‖ issued_ms (int64 BE)
 *               ‖ id(16) ‖ role_len(1) ‖ role
 *
 * Bee format (byte-compatible with Swarm Bee ≤ 2.1):
 *   wire      = standard padded base64 of nonce(12) ‖ ciphertext ‖ tag(16)
 *   AES key   = the 32 ASCII bytes of lowercase hex(MD5(token-encryption-key))
 *   plaintext = {"r":"<role>","e":"<RFC 3339 time>"} as Go's encoding/json writes it
 *   id        = hex of the first 16 bytes of SHA-256 of the token string
 *
 * Several keys may be loaded: the first encrypts, all decrypt. */
#ifndef KEYGATE_TOKEN_H
#define KEYGATE_TOKEN_H

#include <stdint.h>

#include "keygate/str.h"

#define KG_TOKEN_MAX_ROLE 63
#define KG_TOKEN_MAX_WIRE 1024 /* longer Authorization values are not tokens */

enum kg_token_format { KG_TOKEN_FORMAT_KEYGATE, KG_TOKEN_FORMAT_BEE };

struct kg_token_claims {
	char role[KG_TOKEN_MAX_ROLE + 1]; /* NUL-terminated */
	int64_t expires_ms;               /* unix milliseconds */
	int64_t issued_ms;                /* unix ms; 0 when the format has none (Bee) */
	char id[33];                      /* 32 lowercase hex digits */
};

typedef struct kg_token_keys kg_token_keys;

/* Derives the keys from n ≥ 1 non-empty secrets (borrowed; copied as
 * derived keys only). Returns owned. */
kg_err kg_token_keys_new(const char *const *keys, size_t n, kg_token_keys **out) KG_MUST_CHECK;

/* Wipes and frees; sets *k to NULL. Safe on NULL. */
void kg_token_keys_free(kg_token_keys **k);

/* Encrypts c under the first key. Fills c->id (and c->issued_ms when 0) for
 * the keygate format; the Bee format carries role and expiry only. Appends the
 * token to out. KG_EINVAL for a role the format cannot carry. */
kg_err kg_token_mint(const kg_token_keys *k, enum kg_token_format f, struct kg_token_claims *c, kg_buf *out)
    KG_MUST_CHECK;

/* Decrypts and parses token (either format, told apart by the "kg1."
 * prefix). KG_EBADCRED for anything that is not a valid token under one of
 * the keys. Expiry is the caller's to check. */
kg_err kg_token_open(const kg_token_keys *k, kg_str token, struct kg_token_claims *out) KG_MUST_CHECK;

enum kg_token_format kg_token_format_of(kg_str token);

/* Internals exposed for known-answer tests. */
kg_err kg__token_bee_plaintext(const char *role, int64_t expires_ms, kg_buf *out);
kg_err kg__token_parse_rfc3339(kg_str s, int64_t *ms);

#endif
