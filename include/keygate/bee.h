/* bee.h - Swarm Bee's restricted API (/auth, /refresh): its protocol, pure.
 *
 * What a request to POST /auth or POST /refresh says and what the answer's
 * body is, with Bee's validation messages in Bee's order. No sockets, no
 * clock, no keys: src/api_bee.c moves the bytes, checks the password off the
 * event loop and mints the token. Errors are answered with Bee's body
 * {"code":N,"message":"..."}, which kg_error_json (auth.h) writes.
 */
#ifndef KEYGATE_BEE_H
#define KEYGATE_BEE_H

#include <stdbool.h>
#include <stdint.h>

#include "keygate/err.h"
#include "keygate/policy.h"
#include "keygate/str.h"

/* The most a /auth or /refresh body may hold (413 beyond). */
#define KG_BEE_MAX_BODY 512
/* The most a Basic credential's base64 may decode to. */
#define KG_BEE_MAX_BASIC 2048
/* The longest role name a token carries (token.h's KG_TOKEN_MAX_ROLE). */
#define KG_BEE_MAX_ROLE 63

/* A /auth or /refresh body, or why it was refused. */
struct kg_bee_request {
	char role[KG_BEE_MAX_ROLE + 1]; /* "" when absent (allowed for /refresh only) */
	int64_t expiry_s;               /* > 0, at most the maximum */
	int status;                     /* 0: parsed; else the HTTP status of the refusal (400) */
	char message[512];              /* Bee's words for the refusal */
};

/* Parses {"role": "...", "expiry": N} (body borrowed). Checks, in Bee's
 * order: the body is a JSON object ("Unmarshal json body"); expiry is a
 * positive integer ("Expiry duration must be a positive number"); at most
 * max_expiry_s ("Expiry duration exceeds the maximum of N seconds"); the role,
 * when given, is one of policy's ("Unknown role 'X'; valid roles: ..."); a
 * role is present unless is_role_optional ("A role is required"). Returns
 * KG_OK with out->role and out->expiry_s, or KG_EINVAL with out->status and
 * out->message. policy is borrowed. */
kg_err kg_bee_parse_request(kg_str body, const kg_policy *policy, int64_t max_expiry_s, bool is_role_optional,
                            struct kg_bee_request *out) KG_MUST_CHECK;

/* The password of a POST /auth's "Authorization: Basic base64(user:password)"
 * header value (borrowed; the user name is ignored, as Bee did). Appends it
 * to password (a secret: free it with kg_buf_free(.., true)). KG_EBADCRED
 * when the header is not Basic, not canonical base64, beyond
 * KG_BEE_MAX_BASIC, or has no colon; KG_ENOMEM. */
kg_err kg_bee_basic_password(kg_str authorization, kg_buf *password) KG_MUST_CHECK;

/* The role of a refreshed token: the presented token's (held, borrowed) when
 * requested is "", else requested, which must not grant more than held does
 * under policy. KG_OK with the role copied to out (KG_BEE_MAX_ROLE + 1
 * bytes); KG_EFORBIDDEN with *message set to Bee's 403 words. */
kg_err kg_bee_refresh_role(const kg_policy *policy, const char *held, const char *requested, char *out,
                           const char **message) KG_MUST_CHECK;

/* Appends the success body {"key":"TOKEN"} (token borrowed) to out. */
kg_err kg_bee_key_json(kg_str token, kg_buf *out) KG_MUST_CHECK;

#endif
