/* avax_rpc.c - AvalancheGo's Auth API JSON-RPC: requests in, answers out.
 * Pure: src/api_avax.c does the I/O, the password check and the signing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "keygate/avax_rpc.h"
#include "keygate/jwt.h"
#include "keygate/password.h"

static kg_err refuse(struct kg_avax_call *call, int code, const char *message)
{
	call->error_code = code;
	snprintf(call->error, sizeof(call->error), "%s", message);
	return KG_EINVAL;
}

/* The length of the longest prefix of s[0..n) that is at most max bytes and
 * does not end inside a UTF-8 sequence: a client's method name quoted in a
 * message stays valid UTF-8, which a JSON string must be. */
static size_t utf8_prefix(const char *s, size_t n, size_t max)
{
	if (n <= max)
		return n;
	size_t k = max;
	while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--; /* s[k] continues a sequence that started before it */
	return k;
}

/* Copies params[name] when present and not null; *is_bad_type when it is
 * not a string. false on a bad type or no memory. */
static bool copy_string(json_t *params, const char *name, kg_buf *out, bool *is_bad_type)
{
	json_t *v = params ? json_object_get(params, name) : NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v)) {
		*is_bad_type = true;
		return false;
	}
	return kg_buf_append(out, json_string_value(v), json_string_length(v)) == KG_OK;
}

/* newToken's endpoints, AvalancheGo's checks in its order (after "no password"). */
static kg_err copy_endpoints(json_t *eps, struct kg_avax_call *call)
{
	size_t n = json_is_array(eps) ? json_array_size(eps) : 0;
	if (n == 0)
		return refuse(call, KG_AVAX_RPC_SERVER_ERROR, "must name at least one endpoint");
	if (n > KG_JWT_MAX_ENDPOINTS)
		return refuse(call, KG_AVAX_RPC_SERVER_ERROR, "can only name at most 128 endpoints");
	if (!(call->endpoints = calloc(n, sizeof(char *))))
		return refuse(call, KG_AVAX_RPC_SERVER_ERROR, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(eps, i);
		if (!json_is_string(e))
			return refuse(call, KG_AVAX_RPC_SERVER_ERROR, "invalid params: endpoints must be strings");
		/* every path ends with "": the token would open every route,
		 * which is what "*" says openly */
		if (json_string_length(e) == 0)
			return refuse(call, KG_AVAX_RPC_SERVER_ERROR,
			              "an endpoint can't be empty; name \"*\" to allow every endpoint");
		if (!(call->endpoints[call->nendpoints++] = strdup(json_string_value(e))))
			return refuse(call, KG_AVAX_RPC_SERVER_ERROR, "out of memory");
	}
	return KG_OK;
}

kg_err kg_avax_rpc_parse(kg_str body, struct kg_avax_call *call)
{
	json_error_t jerr;
	kg_err err = KG_OK;
	char msg[256];

	memset(call, 0, sizeof(*call));
	json_t *req = json_loadb(body.p ? body.p : "", body.n, JSON_REJECT_DUPLICATES, &jerr);
	if (!req) {
		(void)kg_buf_appends(&call->id, KG_STR("null"));
		return refuse(call, KG_AVAX_RPC_PARSE_ERROR, "parse error: the body is not JSON");
	}
	/* the id is echoed in every answer from here on, whatever its type */
	json_t *id = json_object_get(req, "id");
	char *id_text = id ? json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if ((id && !id_text) || kg_buf_appends(&call->id, id_text ? kg_str_c(id_text) : KG_STR("null"))) {
		kg_buf_clear(&call->id);
		(void)kg_buf_appends(&call->id, KG_STR("null"));
		err = refuse(call, KG_AVAX_RPC_SERVER_ERROR, "out of memory");
		goto out;
	}
	json_t *ver = json_object_get(req, "jsonrpc"), *m = json_object_get(req, "method");
	if (!json_is_object(req) || !json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0 ||
	    !json_is_string(m)) {
		err = refuse(call, KG_AVAX_RPC_INVALID_REQUEST, "invalid request: expected {\"jsonrpc\":\"2.0\",\"method\":...}");
		goto out;
	}
	const char *method = json_string_value(m);
	if (strcmp(method, "auth.newToken") == 0) {
		call->method = KG_AVAX_NEW_TOKEN;
	} else if (strcmp(method, "auth.revokeToken") == 0) {
		call->method = KG_AVAX_REVOKE_TOKEN;
	} else if (strcmp(method, "auth.changePassword") == 0) {
		call->method = KG_AVAX_CHANGE_PASSWORD;
	} else {
		size_t n = strlen(method);
		snprintf(msg, sizeof(msg), "rpc: can't find method \"%.*s\"", (int)utf8_prefix(method, n, 100), method);
		err = refuse(call, KG_AVAX_RPC_NO_METHOD, msg);
		goto out;
	}
	json_t *params = json_object_get(req, "params");
	if (json_is_array(params) && json_array_size(params) == 1)
		params = json_array_get(params, 0); /* gorilla/rpc's json2 takes [ {params} ] too */
	if (params && !json_is_object(params)) {
		err = refuse(call, KG_AVAX_RPC_BAD_PARAMS, "invalid params: expected an object");
		goto out;
	}

	bool is_bad_type = false, is_copied;
	if (call->method == KG_AVAX_CHANGE_PASSWORD)
		is_copied = copy_string(params, "oldPassword", &call->password, &is_bad_type) &&
		            copy_string(params, "newPassword", &call->new_password, &is_bad_type);
	else
		is_copied = copy_string(params, "password", &call->password, &is_bad_type) &&
		            (call->method != KG_AVAX_REVOKE_TOKEN || copy_string(params, "token", &call->token, &is_bad_type));
	/* AvalancheGo's checks, in AvalancheGo's order */
	if (!is_copied)
		err = refuse(call, KG_AVAX_RPC_SERVER_ERROR,
		             is_bad_type ? "invalid params: a password or token is not a string" : "out of memory");
	else if (call->method == KG_AVAX_NEW_TOKEN)
		err = call->password.n == 0 ? refuse(call, KG_AVAX_RPC_SERVER_ERROR, "no password")
		                            : copy_endpoints(params ? json_object_get(params, "endpoints") : NULL, call);
	else if (call->method == KG_AVAX_REVOKE_TOKEN)
		err = call->token.n == 0      ? refuse(call, KG_AVAX_RPC_SERVER_ERROR, "auth token not provided")
		      : call->password.n == 0 ? refuse(call, KG_AVAX_RPC_SERVER_ERROR, "no password")
		                              : KG_OK;
	else if (kg_str_eq(kg_buf_str(&call->password), kg_buf_str(&call->new_password)))
		err = refuse(call, KG_AVAX_RPC_SERVER_ERROR, "new password can't be same as old password");
out:
	free(id_text);
	json_decref(req);
	return err;
}

void kg_avax_call_free(struct kg_avax_call *call)
{
	if (!call)
		return;
	kg_buf_free(&call->id, false);
	kg_buf_free(&call->password, true);
	kg_buf_free(&call->new_password, true);
	kg_buf_free(&call->token, true);
	for (size_t i = 0; i < call->nendpoints; i++)
		free(call->endpoints[i]);
	free(call->endpoints);
	OPENSSL_cleanse(call, sizeof(*call));
}

static bool is_json_content_type(kg_str ct)
{
	const char *semi = ct.n ? memchr(ct.p, ';', ct.n) : NULL;
	kg_str media = kg_str_trim(semi ? (kg_str){ ct.p, (size_t)(semi - ct.p) } : ct);
	return kg_str_eq_ci(media, KG_STR("application/json"));
}

int kg_avax_rpc_check_http(kg_str method, kg_str content_type, char *msg, size_t cap)
{
	if (!kg_str_eq(method, KG_STR("POST"))) {
		snprintf(msg, cap, "rpc: POST method required, received %.*s", (int)method.n, method.p ? method.p : "");
		return 405;
	}
	if (!is_json_content_type(content_type)) {
		snprintf(msg, cap, "rpc: unrecognized Content-Type: %.*s", (int)(content_type.n > 100 ? 100 : content_type.n),
		         content_type.p ? content_type.p : "");
		return 415;
	}
	if (cap)
		msg[0] = '\0';
	return 0;
}

const char *kg_avax_new_password_problem(kg_str np)
{
	if (np.n == 0)
		return "empty password";
	if (np.n > KG_AVAX_MAX_PASSWORD)
		return "password exceeds maximum length of 1024 chars";
	if (kg_password_is_weak(np))
		return "password is too weak";
	return NULL;
}

/* Writes {"jsonrpc":"2.0","result"|"error":...,"id":ID} with jansson, as the
 * answers always were (key order kept, compact). Takes result's reference. */
static kg_err answer(kg_str id_text, json_t *result, int code, const char *message, kg_buf *out)
{
	json_error_t jerr;
	kg_err err = KG_ENOMEM;
	json_t *id = id_text.p ? json_loadb(id_text.p, id_text.n, JSON_DECODE_ANY, &jerr) : json_null();
	json_t *o = json_object();
	char *body = NULL;

	if (!id || !o)
		goto fail;
	if (json_object_set_new(o, "jsonrpc", json_string("2.0")))
		goto fail;
	if (result) {
		err = json_object_set_new(o, "result", result) ? KG_ENOMEM : KG_OK;
		result = NULL;
	} else {
		json_t *m = json_string(message), *e = m ? json_object() : NULL;
		if (!m) {
			err = KG_EINVAL; /* not UTF-8 */
			goto fail;
		}
		if (!e) {
			json_decref(m);
			goto fail;
		}
		/* each set_new takes its value's reference, failing or not */
		bool is_bad = json_object_set_new(e, "code", json_integer(code)) != 0;
		is_bad |= json_object_set_new(e, "message", m) != 0;
		is_bad |= json_object_set_new(e, "data", json_null()) != 0;
		is_bad |= json_object_set_new(o, "error", e) != 0;
		err = is_bad ? KG_ENOMEM : KG_OK;
	}
	if (err)
		goto fail;
	err = json_object_set(o, "id", id) ? KG_ENOMEM : KG_OK;
	if (!err && !(body = json_dumps(o, JSON_COMPACT)))
		err = KG_ENOMEM;
	if (!err)
		err = kg_buf_appends(out, kg_str_c(body));
fail:
	if (!id && id_text.p)
		err = KG_EINVAL;
	free(body);
	json_decref(result);
	json_decref(id);
	json_decref(o);
	return err;
}

kg_err kg_avax_rpc_error(kg_str id, int code, const char *message, kg_buf *out)
{
	return answer(id, NULL, code, message, out);
}

kg_err kg_avax_rpc_token(kg_str id, kg_str token, kg_buf *out)
{
	json_t *t = json_stringn(token.p ? token.p : "", token.n);
	if (!t)
		return KG_EINVAL;
	json_t *r = json_object();
	if (!r || json_object_set_new(r, "token", t)) {
		json_decref(r);
		return KG_ENOMEM;
	}
	return answer(id, r, 0, NULL, out);
}

kg_err kg_avax_rpc_success(kg_str id, kg_buf *out)
{
	json_t *r = json_pack("{s:b}", "success", 1);
	if (!r)
		return KG_ENOMEM;
	return answer(id, r, 0, NULL, out);
}
