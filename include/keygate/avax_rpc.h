/* avax_rpc.h - AvalancheGo's Auth API as JSON-RPC 2.0: its protocol, pure.
 *
 * A POST /ext/auth body becomes a call (auth.newToken, auth.revokeToken,
 * auth.changePassword) or the JSON-RPC error AvalancheGo gave, with its
 * checks in its order; answers are written byte for byte as AvalancheGo's
 * gorilla/rpc json2 codec wrote them. No sockets, no keys, no store:
 * src/api_avax.c moves the bytes and runs the call behind the password check.
 */
#ifndef KEYGATE_AVAX_RPC_H
#define KEYGATE_AVAX_RPC_H

#include <stddef.h>

#include "keygate/err.h"
#include "keygate/str.h"

/* AvalancheGo's password limit (its "password exceeds maximum length"). */
#define KG_AVAX_MAX_PASSWORD 1024

/* JSON-RPC 2.0 error codes, as gorilla/rpc's json2 used them. */
#define KG_AVAX_RPC_PARSE_ERROR (-32700)
#define KG_AVAX_RPC_INVALID_REQUEST (-32600)
#define KG_AVAX_RPC_NO_METHOD (-32601)
#define KG_AVAX_RPC_BAD_PARAMS (-32602)
#define KG_AVAX_RPC_SERVER_ERROR (-32000) /* what every method's own error was */

enum kg_avax_method {
	KG_AVAX_NEW_TOKEN = 1,
	KG_AVAX_REVOKE_TOKEN,
	KG_AVAX_CHANGE_PASSWORD,
};

/* A parsed request. Every field is owned by the call: kg_avax_call_free. */
struct kg_avax_call {
	enum kg_avax_method method; /* 0 when the request was refused before its method was known */
	kg_buf id;                  /* the request's "id" as compact JSON ("null" when absent): echoed */
	kg_buf password;            /* "password", or "oldPassword" of changePassword (secret) */
	kg_buf new_password;        /* changePassword's "newPassword" (secret) */
	kg_buf token;               /* revokeToken's "token" (secret) */
	char **endpoints;           /* newToken's, 1..KG_JWT_MAX_ENDPOINTS non-empty strings */
	size_t nendpoints;
	/* when refused: the JSON-RPC error to answer (HTTP 200) */
	int error_code;
	char error[256];
};

/* Parses a JSON-RPC 2.0 request (body borrowed) into *call (zeroed first).
 * KG_OK: a call to run once the password is checked. KG_EINVAL: answer
 * call->error_code and call->error with call->id (each check in
 * AvalancheGo's order: not JSON -32700; not {"jsonrpc":"2.0","method":"..."}
 * -32600; unknown method -32601; params not an object (or [object]) -32602;
 * then the method's own checks, -32000). Either way free it with
 * kg_avax_call_free. */
kg_err kg_avax_rpc_parse(kg_str body, struct kg_avax_call *call) KG_MUST_CHECK;

/* Frees what call owns, wiping the secrets; call is zeroed. NULL-safe. */
void kg_avax_call_free(struct kg_avax_call *call);

/* What is wrong with a POST /ext/auth before its body is read: 0 when
 * method is POST and content_type's media type is application/json (any
 * case, parameters ignored); else 405 or 415 with AvalancheGo's plain-text
 * message in msg (cap bytes, NUL-terminated). Both borrowed. */
int kg_avax_rpc_check_http(kg_str method, kg_str content_type, char *msg, size_t cap);

/* What is wrong with changePassword's new password (borrowed), checked once
 * the old one is known good: "empty password", "password exceeds maximum
 * length of 1024 chars", "password is too weak" (zxcvbn), or NULL. */
const char *kg_avax_new_password_problem(kg_str new_password);

/* Append an answer to out: {"jsonrpc":"2.0","error":{"code":C,"message":M,
 * "data":null},"id":ID}, {"jsonrpc":"2.0","result":{"token":T},"id":ID} or
 * {"jsonrpc":"2.0","result":{"success":true},"id":ID}. id is compact JSON
 * text (a call's id; KG_STR_NULL for null), message and token are borrowed.
 * KG_EINVAL when id is not JSON, message or token not UTF-8; KG_ENOMEM. */
kg_err kg_avax_rpc_error(kg_str id, int code, const char *message, kg_buf *out) KG_MUST_CHECK;
kg_err kg_avax_rpc_token(kg_str id, kg_str token, kg_buf *out) KG_MUST_CHECK;
kg_err kg_avax_rpc_success(kg_str id, kg_buf *out) KG_MUST_CHECK;

#endif
