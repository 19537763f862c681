/* AvalancheGo's Auth API JSON-RPC (lib/avax_rpc.c): each refusal in
 * AvalancheGo's order, the call a request becomes, the answers byte for byte. */
#include <stdio.h>
#include <string.h>

#include "keygate/avax_rpc.h"
#include "kgtest.h"

#define RPC(method, params) "{\"jsonrpc\":\"2.0\",\"method\":\"" method "\",\"params\":" params ",\"id\":1}"

KG_TEST(test_refusals_in_avalanchego_order)
{
	static const struct {
		const char *body;
		int code;
		const char *message;
		const char *id;
	} cases[] = {
		/* the envelope: JSON, then jsonrpc 2.0 and a method, then a known method, then params */
		{ "", -32700, "parse error: the body is not JSON", "null" },
		{ "{nope", -32700, "parse error: the body is not JSON", "null" },
		{ "{\"id\":1,\"id\":2}", -32700, "parse error: the body is not JSON", "null" },
		{ "{\"a\":\"\\u0000\"}", -32700, "parse error: the body is not JSON", "null" },
		{ "[1]", -32600, "invalid request: expected {\"jsonrpc\":\"2.0\",\"method\":...}", "null" },
		{ "{\"jsonrpc\":\"1.0\",\"method\":\"auth.newToken\",\"id\":1}", -32600,
		  "invalid request: expected {\"jsonrpc\":\"2.0\",\"method\":...}", "1" },
		{ "{\"method\":\"auth.newToken\",\"id\":1}", -32600,
		  "invalid request: expected {\"jsonrpc\":\"2.0\",\"method\":...}", "1" },
		{ "{\"jsonrpc\":\"2.0\",\"method\":7,\"id\":\"x\"}", -32600,
		  "invalid request: expected {\"jsonrpc\":\"2.0\",\"method\":...}", "\"x\"" },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"auth.nope\",\"id\":7}", -32601, "rpc: can't find method \"auth.nope\"",
		  "7" },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"auth.nope\",\"params\":5}", -32601,
		  "rpc: can't find method \"auth.nope\"", "null" },
		{ RPC("auth.newToken", "5"), -32602, "invalid params: expected an object", "1" },
		{ RPC("auth.newToken", "null"), -32602, "invalid params: expected an object", "1" },
		{ RPC("auth.newToken", "[1]"), -32602, "invalid params: expected an object", "1" },
		{ RPC("auth.newToken", "[{},{}]"), -32602, "invalid params: expected an object", "1" },
		/* newToken: types, then password, then endpoints */
		{ RPC("auth.newToken", "{\"password\":5,\"endpoints\":[]}"), -32000,
		  "invalid params: a password or token is not a string", "1" },
		{ RPC("auth.newToken", "{\"password\":\"\",\"endpoints\":[\"*\"]}"), -32000, "no password", "1" },
		{ RPC("auth.newToken", "{\"password\":\"\",\"endpoints\":[]}"), -32000, "no password", "1" },
		{ RPC("auth.newToken", "{\"password\":null,\"endpoints\":[\"*\"]}"), -32000, "no password", "1" },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"auth.newToken\",\"id\":1}", -32000, "no password", "1" },
		{ RPC("auth.newToken", "{\"password\":\"p\",\"endpoints\":[]}"), -32000, "must name at least one endpoint",
		  "1" },
		{ RPC("auth.newToken", "{\"password\":\"p\"}"), -32000, "must name at least one endpoint", "1" },
		{ RPC("auth.newToken", "{\"password\":\"p\",\"endpoints\":\"*\"}"), -32000,
		  "must name at least one endpoint", "1" },
		{ RPC("auth.newToken", "{\"password\":\"p\",\"endpoints\":[1]}"), -32000,
		  "invalid params: endpoints must be strings", "1" },
		{ RPC("auth.newToken", "{\"password\":\"p\",\"endpoints\":[\"*\",null]}"), -32000,
		  "invalid params: endpoints must be strings", "1" },
		{ RPC("auth.newToken", "{\"password\":\"p\",\"endpoints\":[\"\"]}"), -32000,
		  "an endpoint can't be empty; name \"*\" to allow every endpoint", "1" },
		{ RPC("auth.newToken", "[{\"password\":\"p\",\"endpoints\":[\"/a\",\"\",5]}]"), -32000,
		  "an endpoint can't be empty; name \"*\" to allow every endpoint", "1" },
		/* revokeToken: types, then token, then password */
		{ RPC("auth.revokeToken", "{\"password\":\"p\",\"token\":5}"), -32000,
		  "invalid params: a password or token is not a string", "1" },
		{ RPC("auth.revokeToken", "{\"password\":\"p\"}"), -32000, "auth token not provided", "1" },
		{ RPC("auth.revokeToken", "{}"), -32000, "auth token not provided", "1" },
		{ RPC("auth.revokeToken", "{\"token\":\"t\"}"), -32000, "no password", "1" },
		/* changePassword: types, then old == new */
		{ RPC("auth.changePassword", "{\"oldPassword\":1,\"newPassword\":\"n\"}"), -32000,
		  "invalid params: a password or token is not a string", "1" },
		{ RPC("auth.changePassword", "{\"oldPassword\":\"o\",\"newPassword\":[]}"), -32000,
		  "invalid params: a password or token is not a string", "1" },
		{ RPC("auth.changePassword", "{\"oldPassword\":\"same\",\"newPassword\":\"same\"}"), -32000,
		  "new password can't be same as old password", "1" },
		{ RPC("auth.changePassword", "{}"), -32000, "new password can't be same as old password", "1" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kg_avax_call call;
		kg_err err = kg_avax_rpc_parse(kg_str_c(cases[i].body), &call);
		KG_CHECK(err == KG_EINVAL && call.error_code == cases[i].code && strcmp(call.error, cases[i].message) == 0,
		         "%s: %s %d '%s', want %d '%s'", cases[i].body, kg_errname(err), call.error_code, call.error,
		         cases[i].code, cases[i].message);
		KG_CHECK(call.id.p && strcmp(call.id.p, cases[i].id) == 0, "%s: id %s, want %s", cases[i].body,
		         call.id.p ? call.id.p : "(none)", cases[i].id);
		kg_avax_call_free(&call);
	}
}

KG_TEST(test_too_many_endpoints)
{
	char body[4096];
	size_t o = (size_t)snprintf(body, sizeof(body), "%s",
	                            "{\"jsonrpc\":\"2.0\",\"method\":\"auth.newToken\",\"params\":{\"password\":\"p\",\"endpoints\":[");
	for (int i = 0; i < 129; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"/e%d\"", i ? "," : "", i);
	snprintf(body + o, sizeof(body) - o, "]}}");
	struct kg_avax_call call;
	KG_CHECK(kg_avax_rpc_parse(kg_str_c(body), &call) == KG_EINVAL &&
	             strcmp(call.error, "can only name at most 128 endpoints") == 0,
	         "129 endpoints: '%s'", call.error);
	kg_avax_call_free(&call);
	/* 128 are fine */
	char *last = strstr(body, ",\"/e128\"");
	KG_CHECK(last != NULL, "body has no 129th endpoint");
	if (last)
		snprintf(last, sizeof(body) - (size_t)(last - body), "]}}");
	KG_CHECK(kg_avax_rpc_parse(kg_str_c(body), &call) == KG_OK && call.nendpoints == 128,
	         "128 endpoints: '%s' %zu", call.error, call.nendpoints);
	kg_avax_call_free(&call);
}

KG_TEST(test_an_unknown_method_is_quoted_whole_utf8_characters_up_to_100_bytes)
{
	char method[160], body[256], want[200];
	memset(method, 'a', 150);
	method[150] = '\0';
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"method\":\"%s\"}", method);
	snprintf(want, sizeof(want), "rpc: can't find method \"%.100s\"", method);
	struct kg_avax_call call;
	KG_CHECK(kg_avax_rpc_parse(kg_str_c(body), &call) == KG_EINVAL && strcmp(call.error, want) == 0,
	         "150 bytes: '%s', want '%s'", call.error, want);
	kg_avax_call_free(&call);
	/* 99 'a' then "é" (2 bytes) straddling the 100-byte cut: the é goes
	 * whole, or the message would not be UTF-8 (and not a JSON string) */
	memcpy(method + 99, "\xc3\xa9zz", 5);
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"method\":\"%s\"}", method);
	snprintf(want, sizeof(want), "rpc: can't find method \"%.99s\"", method);
	KG_CHECK(kg_avax_rpc_parse(kg_str_c(body), &call) == KG_EINVAL && strcmp(call.error, want) == 0,
	         "é at the cut: '%s', want '%s'", call.error, want);
	kg_buf out = { 0 };
	KG_CHECK(kg_avax_rpc_error(kg_buf_str(&call.id), call.error_code, call.error, &out) == KG_OK &&
	             strstr(out.p, "\"message\":"),
	         "the answer has no message: %s", out.p ? out.p : "(none)");
	kg_buf_free(&out, false);
	kg_avax_call_free(&call);
	/* a 100-byte method with é at its end fits whole */
	memcpy(method + 98, "\xc3\xa9", 3);
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"method\":\"%s\"}", method);
	snprintf(want, sizeof(want), "rpc: can't find method \"%s\"", method);
	KG_CHECK(kg_avax_rpc_parse(kg_str_c(body), &call) == KG_EINVAL && strcmp(call.error, want) == 0,
	         "100 bytes ending in é: '%s', want '%s'", call.error, want);
	kg_avax_call_free(&call);
}

KG_TEST(test_calls_carry_their_params)
{
	struct kg_avax_call call;
	kg_err err = kg_avax_rpc_parse(KG_STR(RPC("auth.newToken", "{\"password\":\"p w\",\"endpoints\":[\"/ext/info\",\"*\"]}")),
	                               &call);
	KG_CHECK(err == KG_OK && call.method == KG_AVAX_NEW_TOKEN && call.error_code == 0, "newToken: %s '%s'",
	         kg_errname(err), call.error);
	KG_CHECK(kg_str_eq(kg_buf_str(&call.password), KG_STR("p w")) && call.nendpoints == 2 &&
	             strcmp(call.endpoints[0], "/ext/info") == 0 && strcmp(call.endpoints[1], "*") == 0 &&
	             strcmp(call.id.p, "1") == 0,
	         "newToken's params");
	kg_avax_call_free(&call);
	KG_CHECK(call.endpoints == NULL && call.password.p == NULL, "kg_avax_call_free leaves pointers behind");

	/* gorilla/rpc's [ {params} ] form */
	err = kg_avax_rpc_parse(KG_STR("{\"id\":\"r\",\"method\":\"auth.revokeToken\",\"jsonrpc\":\"2.0\","
	                               "\"params\":[{\"password\":\"p\",\"token\":\"a.b.c\"}]}"),
	                        &call);
	KG_CHECK(err == KG_OK && call.method == KG_AVAX_REVOKE_TOKEN &&
	             kg_str_eq(kg_buf_str(&call.token), KG_STR("a.b.c")) &&
	             kg_str_eq(kg_buf_str(&call.password), KG_STR("p")) && strcmp(call.id.p, "\"r\"") == 0,
	         "revokeToken: %s '%s'", kg_errname(err), call.error);
	kg_avax_call_free(&call);

	/* passwords are bytes: escapes decoded, length kept */
	err = kg_avax_rpc_parse(KG_STR(RPC("auth.changePassword", "{\"oldPassword\":\"o\\u00e9\",\"newPassword\":\"n\\\"\"}")),
	                        &call);
	KG_CHECK(err == KG_OK && call.method == KG_AVAX_CHANGE_PASSWORD &&
	             kg_str_eq(kg_buf_str(&call.password), KG_STR("o\xc3\xa9")) &&
	             kg_str_eq(kg_buf_str(&call.new_password), KG_STR("n\"")),
	         "changePassword: %s '%s'", kg_errname(err), call.error);
	kg_avax_call_free(&call);
}

KG_TEST(test_id_is_kept_whatever_its_type)
{
	static const struct {
		const char *id, *want;
	} cases[] = {
		{ "7", "7" }, { "\"seven\"", "\"seven\"" }, { "[1, 2]", "[1,2]" }, { "{\"k\": \"v\"}", "{\"k\":\"v\"}" },
		{ "null", "null" }, { "1.5", "1.5" }, { "-0", "0" }, { "true", "true" }, { "\"\\u00e9/\"", "\"\xc3\xa9/\"" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[256];
		snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"method\":\"auth.newToken\",\"id\":%s}", cases[i].id);
		struct kg_avax_call call;
		kg_buf out = { 0 };
		KG_CHECK(kg_avax_rpc_parse(kg_str_c(body), &call) == KG_EINVAL, "id %s: the call was accepted", cases[i].id);
		KG_CHECK(call.id.p && strcmp(call.id.p, cases[i].want) == 0, "id %s kept as %s, want %s", cases[i].id,
		         call.id.p ? call.id.p : "(none)", cases[i].want);
		char want[256];
		snprintf(want, sizeof(want),
		         "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32000,\"message\":\"no password\",\"data\":null},\"id\":%s}",
		         cases[i].want);
		KG_CHECK(kg_avax_rpc_error(kg_buf_str(&call.id), call.error_code, call.error, &out) == KG_OK &&
		             strcmp(out.p, want) == 0,
		         "id %s: answer %s, want %s", cases[i].id, out.p ? out.p : "(none)", want);
		kg_buf_free(&out, false);
		kg_avax_call_free(&call);
	}
}

KG_TEST(test_answers_byte_for_byte)
{
	kg_buf out = { 0 };
	KG_CHECK(kg_avax_rpc_error(KG_STR("1"), -32000, "no password", &out) == KG_OK &&
	             strcmp(out.p, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32000,\"message\":\"no password\","
	                           "\"data\":null},\"id\":1}") == 0,
	         "error: %s", out.p);
	kg_buf_clear(&out);
	KG_CHECK(kg_avax_rpc_error(KG_STR_NULL, -32700, "parse error: the body is not JSON", &out) == KG_OK &&
	             strcmp(out.p, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"parse error: the body "
	                           "is not JSON\",\"data\":null},\"id\":null}") == 0,
	         "error, null id: %s", out.p);
	kg_buf_clear(&out);
	KG_CHECK(kg_avax_rpc_error(KG_STR("{\"a\":[1,\"b\"]}"), -32600,
	                           "invalid request: expected {\"jsonrpc\":\"2.0\",\"method\":...}", &out) == KG_OK &&
	             strcmp(out.p, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"invalid request: "
	                           "expected {\\\"jsonrpc\\\":\\\"2.0\\\",\\\"method\\\":...}\",\"data\":null},"
	                           "\"id\":{\"a\":[1,\"b\"]}}") == 0,
	         "error, object id: %s", out.p);
	kg_buf_clear(&out);
	KG_CHECK(kg_avax_rpc_token(KG_STR("\"x\""), KG_STR("aaa.bbb.ccc"), &out) == KG_OK &&
	             strcmp(out.p, "{\"jsonrpc\":\"2.0\",\"result\":{\"token\":\"aaa.bbb.ccc\"},\"id\":\"x\"}") == 0,
	         "token: %s", out.p);
	kg_buf_clear(&out);
	KG_CHECK(kg_avax_rpc_success(KG_STR("null"), &out) == KG_OK &&
	             strcmp(out.p, "{\"jsonrpc\":\"2.0\",\"result\":{\"success\":true},\"id\":null}") == 0,
	         "success: %s", out.p);
	kg_buf_clear(&out);
	/* the writer appends */
	KG_CHECK(kg_avax_rpc_success(KG_STR("2"), &out) == KG_OK && kg_avax_rpc_success(KG_STR("3"), &out) == KG_OK &&
	             strcmp(out.p, "{\"jsonrpc\":\"2.0\",\"result\":{\"success\":true},\"id\":2}"
	                           "{\"jsonrpc\":\"2.0\",\"result\":{\"success\":true},\"id\":3}") == 0,
	         "two answers: %s", out.p);
	kg_buf_clear(&out);
	KG_CHECK(kg_avax_rpc_error(KG_STR("{nope"), -32000, "x", &out) == KG_EINVAL && out.n == 0,
	         "an id that is not JSON is refused");
	KG_CHECK(kg_avax_rpc_error(KG_STR("1"), -32000, "\xc3", &out) == KG_EINVAL && out.n == 0,
	         "a message that is not UTF-8 is refused");
	kg_buf_free(&out, false);
}

KG_TEST(test_http_checks_before_the_body)
{
	static const struct {
		const char *method, *ctype;
		int status;
		const char *message;
	} cases[] = {
		{ "POST", "application/json", 0, "" },
		{ "POST", "Application/JSON; charset=utf-8", 0, "" },
		{ "POST", "application/json;", 0, "" },
		{ "POST", " application/json ;charset=UTF-8", 0, "" },
		{ "GET", "application/json", 405, "rpc: POST method required, received GET" },
		{ "post", "application/json", 405, "rpc: POST method required, received post" },
		{ "GET", "text/plain", 405, "rpc: POST method required, received GET" }, /* method first */
		{ "POST", "text/plain", 415, "rpc: unrecognized Content-Type: text/plain" },
		{ "POST", "application/jsonx", 415, "rpc: unrecognized Content-Type: application/jsonx" },
		{ "POST", NULL, 415, "rpc: unrecognized Content-Type: " },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[256] = "untouched";
		int status = kg_avax_rpc_check_http(kg_str_c(cases[i].method),
		                                    cases[i].ctype ? kg_str_c(cases[i].ctype) : KG_STR_NULL, msg, sizeof(msg));
		KG_CHECK(status == cases[i].status && strcmp(msg, cases[i].message) == 0, "%s %s: %d '%s', want %d '%s'",
		         cases[i].method, cases[i].ctype ? cases[i].ctype : "(none)", status, msg, cases[i].status,
		         cases[i].message);
	}
	char ct[201], msg[256], want[256];
	memset(ct, 'x', 200);
	ct[200] = '\0';
	snprintf(want, sizeof(want), "rpc: unrecognized Content-Type: %.100s", ct);
	KG_CHECK(kg_avax_rpc_check_http(KG_STR("POST"), kg_str_c(ct), msg, sizeof(msg)) == 415 && strcmp(msg, want) == 0,
	         "a long Content-Type is quoted up to 100 bytes: '%s'", msg);
}

KG_TEST(test_new_password_problems_in_order)
{
	char long_pw[KG_AVAX_MAX_PASSWORD + 2];
	memset(long_pw, 'Q', sizeof(long_pw) - 1);
	long_pw[sizeof(long_pw) - 1] = '\0';
	const char *p;
	KG_CHECK((p = kg_avax_new_password_problem(KG_STR(""))) && strcmp(p, "empty password") == 0, "'': %s", p);
	KG_CHECK((p = kg_avax_new_password_problem(kg_str_c(long_pw))) &&
	             strcmp(p, "password exceeds maximum length of 1024 chars") == 0,
	         "1025 bytes: %s", p);
	KG_CHECK((p = kg_avax_new_password_problem(KG_STR("password"))) && strcmp(p, "password is too weak") == 0,
	         "'password': %s", p);
	KG_CHECK(!(p = kg_avax_new_password_problem(KG_STR("An0ther-Str0ng-Passw0rd-2026?"))), "a strong one: %s", p);
}

int main(void)
{
	return kg_test_main();
}
