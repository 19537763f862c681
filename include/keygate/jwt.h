/* jwt.h - HS256 JSON Web Tokens as AvalancheGo's Auth API issued them.
 *
 * Header {"alg":"HS256","typ":"JWT"}; claims {"exp":<unix s>,"jti":"...",
 * "endpoints":[...]} in that order (Go's encoding/json of jwt.StandardClaims
 * plus Endpoints). Verification pins HS256 (anything else is refused even if
 * correctly signed), compares the signature in constant time and matches
 * claim names case-insensitively, as Go's decoder does. */
#ifndef KEYGATE_JWT_H
#define KEYGATE_JWT_H

#include <stdint.h>

#include "keygate/arena.h"
#include "keygate/str.h"

#define KG_JWT_MAX_ENDPOINTS 128
#define KG_JWT_MAX_LEN 16384

enum kg_jwt_result {
	KG_JWT_OK = 0,
	KG_JWT_MALFORMED,      /* segments, base64 or JSON */
	KG_JWT_BAD_ALG,        /* not HS256 */
	KG_JWT_BAD_SIGNATURE,
	KG_JWT_EXPIRED,
};

struct kg_jwt_claims {
	int64_t exp;        /* unix seconds */
	kg_str jti;         /* in the arena */
	kg_str *endpoints;  /* in the arena */
	size_t nendpoints;
};

/* Appends a signed token to out. endpoints: n ≥ 1 strings (borrowed); when any
 * is "*" the claim is just ["*"]. jti is 20 random bytes, base64url; its
 * text is written to jti_out (≥ 28 bytes) when not NULL. */
kg_err kg_jwt_sign(const unsigned char key[32], int64_t exp, const char *const *endpoints, size_t n, kg_buf *out,
                   char *jti_out) KG_MUST_CHECK;

/* Verifies token under key at time now (unix s). On KG_JWT_OK, *c holds the
 * claims (strings in arena). *message gets AvalancheGo's wording of a failure. */
enum kg_jwt_result kg_jwt_verify(const unsigned char key[32], kg_str token, int64_t now, kg_arena *arena,
                                 struct kg_jwt_claims *c, const char **message) KG_MUST_CHECK;

/* AvalancheGo's endpoint rule: "*" or the path ends with an endpoint. */
bool kg_jwt_allows_path(const struct kg_jwt_claims *c, kg_str path);

#endif
