/* libFuzzer target: AvalancheGo's JSON-RPC request parser (and Bee's /auth
 * body parser) on any bytes. A refusal must be answerable (its message a
 * JSON string, its id JSON); a call must keep AvalancheGo's rules and, written
 * back as a request, parse to the same call. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keygate/avax_rpc.h"
#include "keygate/bee.h"
#include "keygate/jwt.h"
#include "keygate/policy.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char *method_name(enum kg_avax_method m)
{
	switch (m) {
	case KG_AVAX_NEW_TOKEN: return "auth.newToken";
	case KG_AVAX_REVOKE_TOKEN: return "auth.revokeToken";
	case KG_AVAX_CHANGE_PASSWORD: return "auth.changePassword";
	}
	__builtin_trap();
}

/* The call as a request again: {"jsonrpc","method","params","id"}. */
static char *reserialise(const struct kg_avax_call *c)
{
	json_error_t jerr;
	json_t *params = json_object(), *id = json_loadb(c->id.p, c->id.n, JSON_DECODE_ANY, &jerr);
	if (!params || !id)
		__builtin_trap(); /* a call's id is always JSON */
	if (c->method == KG_AVAX_CHANGE_PASSWORD) {
		json_object_set_new(params, "oldPassword", json_stringn(c->password.p ? c->password.p : "", c->password.n));
		json_object_set_new(params, "newPassword",
		                    json_stringn(c->new_password.p ? c->new_password.p : "", c->new_password.n));
	} else {
		json_object_set_new(params, "password", json_stringn(c->password.p, c->password.n));
	}
	if (c->method == KG_AVAX_REVOKE_TOKEN)
		json_object_set_new(params, "token", json_stringn(c->token.p, c->token.n));
	if (c->method == KG_AVAX_NEW_TOKEN) {
		json_t *eps = json_array();
		for (size_t i = 0; i < c->nendpoints; i++)
			json_array_append_new(eps, json_string(c->endpoints[i]));
		json_object_set_new(params, "endpoints", eps);
	}
	json_t *req = json_pack("{s:s,s:s,s:o,s:o}", "jsonrpc", "2.0", "method", method_name(c->method), "params", params,
	                        "id", id);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	return text;
}

static bool is_same(const kg_buf *a, const kg_buf *b)
{
	return kg_str_eq(kg_buf_str(a), kg_buf_str(b));
}

static void check_call(const struct kg_avax_call *c)
{
	if (c->error_code != 0 || c->id.n == 0)
		__builtin_trap();
	switch (c->method) {
	case KG_AVAX_NEW_TOKEN:
		if (c->password.n == 0 || c->nendpoints == 0 || c->nendpoints > KG_JWT_MAX_ENDPOINTS)
			__builtin_trap();
		for (size_t i = 0; i < c->nendpoints; i++)
			if (!c->endpoints[i] || !c->endpoints[i][0])
				__builtin_trap(); /* "" would open every route */
		break;
	case KG_AVAX_REVOKE_TOKEN:
		if (c->password.n == 0 || c->token.n == 0 || c->nendpoints)
			__builtin_trap();
		break;
	case KG_AVAX_CHANGE_PASSWORD:
		if (is_same(&c->password, &c->new_password) || c->nendpoints)
			__builtin_trap();
		break;
	default:
		__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	kg_str in = { (const char *)data, size };
	struct kg_avax_call call, again;
	kg_buf out = { 0 };

	kg_err err = kg_avax_rpc_parse(in, &call);
	if (err == KG_EINVAL) {
		/* every refusal can be written: a known code, a UTF-8 message, a JSON id */
		if (call.error_code != KG_AVAX_RPC_PARSE_ERROR && call.error_code != KG_AVAX_RPC_INVALID_REQUEST &&
		    call.error_code != KG_AVAX_RPC_NO_METHOD && call.error_code != KG_AVAX_RPC_BAD_PARAMS &&
		    call.error_code != KG_AVAX_RPC_SERVER_ERROR)
			__builtin_trap();
		if (!call.error[0] || kg_avax_rpc_error(kg_buf_str(&call.id), call.error_code, call.error, &out) != KG_OK)
			__builtin_trap();
		json_error_t jerr;
		json_t *j = json_loadb(out.p, out.n, 0, &jerr);
		if (!j || !json_is_string(json_object_get(json_object_get(j, "error"), "message")))
			__builtin_trap();
		json_decref(j);
	} else if (err == KG_OK) {
		check_call(&call);
		if (kg_avax_rpc_success(kg_buf_str(&call.id), &out) != KG_OK)
			__builtin_trap();
		char *text = reserialise(&call);
		if (!text)
			__builtin_trap();
		if (kg_avax_rpc_parse(kg_str_c(text), &again) != KG_OK || again.method != call.method ||
		    !is_same(&again.id, &call.id) || !is_same(&again.password, &call.password) ||
		    !is_same(&again.new_password, &call.new_password) || !is_same(&again.token, &call.token) ||
		    again.nendpoints != call.nendpoints)
			__builtin_trap(); /* the call, written back, is the same call */
		for (size_t i = 0; i < call.nendpoints; i++)
			if (strcmp(again.endpoints[i], call.endpoints[i]) != 0)
				__builtin_trap();
		kg_avax_call_free(&again);
		free(text);
	} else if (err != KG_ENOMEM) {
		__builtin_trap();
	}
	kg_avax_call_free(&call);
	kg_buf_free(&out, false);

	/* Bee's /auth body on the same bytes: a result within the rules or a 400 */
	static kg_policy *bee;
	if (!bee && kg_policy_load_preset("bee", &bee) != KG_OK)
		__builtin_trap();
	struct kg_bee_request r;
	err = kg_bee_parse_request(in, bee, 86400, size & 1, &r);
	if (err == KG_OK &&
	    (r.expiry_s <= 0 || r.expiry_s > 86400 || r.status || (r.role[0] && !kg_policy_role(bee, kg_str_c(r.role))) ||
	     (!r.role[0] && !(size & 1))))
		__builtin_trap();
	if (err != KG_OK && (err != KG_EINVAL || r.status != 400 || !r.message[0]))
		__builtin_trap();
	return 0;
}
