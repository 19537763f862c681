/* api_keygate.c - keygate's own endpoints under the api prefix:
 *   GET  {prefix}/health  version, uptime, store status
 *   ANY  {prefix}/check   forward-auth for nginx auth_request / Traefik ForwardAuth
 * and the answer to any other path when keygate has no upstream. */
#include <stdio.h>
#include <time.h>

#include "keygate/password.h"
#include "conn.h"
#include "kg.h"
#include "routes.h"
#include "slow.h"

static void health(struct kg_conn *c)
{
	kg_buf b = { 0 };
	const char *backend = "none";
	const char *store = kg__store_status(&backend);
	long long uptime = (long long)(time(NULL) - kg__started_at());
	size_t running, waiting, joined;
	kg__slow_counts(&running, &waiting, &joined);
	kg_err err = kg_buf_printf(&b,
	                           "{\"status\":\"ok\",\"version\":\"%s\",\"uptime_seconds\":%lld,"
	                           "\"workers\":%zu,\"mode\":\"%s\",\"password_jobs\":{\"running\":%zu,"
	                           "\"waiting\":%zu,\"joined\":%zu,\"hashes\":%llu},\"store\":{\"backend\":\"%s\",\"status\":",
	                           kg__version, uptime, kg__worker_count(),
	                           kg__conn_rt(c)->has_upstream ? "proxy" : "forward-auth", running, waiting, joined,
	                           (unsigned long long)kg_bcrypt_count(), backend);
	if (!err)
		err = kg_buf_append_json_string(&b, kg_str_c(store));
	if (!err)
		err = kg_buf_appends(&b, KG_STR("},\"routes\":"));
	if (!err)
		err = kg__routes_json(kg__conn_rt(c), &b);
	if (!err)
		err = kg_buf_appends(&b, KG_STR("}"));
	if (err)
		kg__conn_respond_error(c, 500, "out of memory");
	else
		kg__conn_respond(c, 200, "application/json", kg_buf_str(&b), "Cache-Control: no-store\r\n");
	kg_buf_free(&b, false);
}

/* The value of the one header called name; *count says how many there
 * were (a repeated description of the original request is ambiguous). */
static kg_str find_one(const struct kg_conn *c, kg_str name, int *count)
{
	kg_str v = KG_STR_NULL;
	*count = 0;
	for (size_t i = 0; i < kg__conn_req(c)->nheaders; i++)
		if (kg_str_eq_ci(kg__req_header(c, i, false), name)) {
			if (!*count)
				v = kg__req_header(c, i, true);
			++*count;
		}
	return v;
}

/* The original request, as the fronting proxy describes it, normalised as
 * a proxied request's target is. Only one header set is read: nginx's
 * X-Original-* or Traefik's X-Forwarded-*; Traefik copies every client
 * header into the check, so under auto a check carrying both sets is
 * refused rather than guessed at. Returns false after answering 400. */
static bool original_request(struct kg_conn *c, kg_str *method, kg_str *path, bool *is_restructured)
{
	static const kg_str names[2][2] = {
		{ KG_STR("X-Original-Method"), KG_STR("X-Original-URI") },
		{ KG_STR("X-Forwarded-Method"), KG_STR("X-Forwarded-Uri") },
	};
	const char *source = kg__conn_rt(c)->cfg->forward_auth_source;
	kg_str m[2], uri[2];
	int mc[2], uc[2];
	for (int k = 0; k < 2; k++) {
		m[k] = find_one(c, names[k][0], &mc[k]);
		uri[k] = find_one(c, names[k][1], &uc[k]);
	}
	bool has[2] = { mc[0] || uc[0], mc[1] || uc[1] };
	int k = strcmp(source, "nginx") == 0 ? 0 : strcmp(source, "traefik") == 0 ? 1 : has[0] ? 0 : 1;
	if (strcmp(source, "auto") == 0 && has[0] && has[1]) {
		kg__conn_respond_error(c, 400,
		                       "forward-auth check carries both X-Original-* (nginx) and X-Forwarded-Method/-Uri "
		                       "(Traefik) headers: set forward_auth.source to the proxy in front");
		return false;
	}
	if (mc[k] > 1 || uc[k] > 1) {
		kg__conn_respond_error(c, 400, "forward-auth check repeats a header that describes the original request");
		return false;
	}
	if (!uri[k].p || uri[k].n == 0 || uri[k].p[0] != '/') {
		kg__conn_respond_error(c, 400,
		                       k == 0 ? "forward-auth check needs the original URI: X-Original-URI, starting with '/'"
		                              : "forward-auth check needs the original URI: X-Forwarded-Uri, starting with '/'");
		return false;
	}
	if (m[k].n == 0) {
		/* never the check request's own method: nginx's auth_request
		 * subrequest is always a GET, so a POST would be judged as one */
		kg__conn_respond_error(c, 400, k == 0 ? "forward-auth check needs the original method: a non-empty "
		                                        "X-Original-Method header"
		                                      : "forward-auth check needs the original method: a non-empty "
		                                        "X-Forwarded-Method header");
		return false;
	}
	*method = m[k];
	kg_str raw = uri[k], target;
	size_t bad = kg_head_forbidden_byte(raw);
	if (bad < raw.n) {
		kg__conn_respond_error(c, 400, raw.p[bad] == '#' ? "'#' in the original URI"
		                                                 : "control character in the original URI");
		return false;
	}
	/* judged as a proxied request's target is (proxy.escaped_slashes included) */
	const char *why = NULL;
	kg_err err = kg_head_origin_target(raw, kg__conn_rt(c)->head_rules.path_flags, kg__conn_arena(c), path, &target,
	                                   is_restructured, &why);
	if (err == KG_ENOMEM) {
		kg__conn_respond_error(c, 500, "out of memory");
		return false;
	}
	if (err) {
		char *msg = kg_arena_alloc(kg__conn_arena(c), 160);
		if (msg)
			snprintf(msg, 160, "original URI: %s", why ? why : "invalid path");
		kg__conn_respond_error(c, 400, msg ? msg : "invalid original URI");
		return false;
	}
	return true;
}

static void check_answer(struct kg_conn *c);

static void check(struct kg_conn *c)
{
	kg_str method, path;
	struct kg_request *r = kg__conn_req(c);
	if (!original_request(c, &method, &path, &r->is_target_restructured))
		return;
	kg_auth_decide(&kg__conn_rt(c)->auth, method, path, r->facts.authorization, (int64_t)time(NULL), kg__conn_arena(c), &r->decision);
	if (r->decision.err == KG_ESLOW && kg__auth_slow(c, method, path, check_answer))
		return; /* a password check runs off the loop; check_answer follows */
	check_answer(c);
}

/* Answers the forward-auth check from c's decision. */
static void check_answer(struct kg_conn *c)
{
	struct kg_request *r = kg__conn_req(c);
	if (r->decision.status == 200 && r->is_target_restructured) {
		/* The fronting proxy may forward the target as it was sent (nginx's
		 * proxy_pass without a URI does) to an upstream that does not
		 * normalise: a yes for the clean path could open a different one. */
		kg_decision_refuse(&r->decision, r->decision.is_authenticated ? 403 : 401,
		                   r->decision.is_authenticated ? KG_EFORBIDDEN : KG_ENOCRED,
		                   r->decision.dialect,
		                   "the original URI has dot segments or repeated slashes: refused, as the upstream "
		                   "may read it differently (send the normalised path)");
		r->decision.is_authenticated = false;
	}
	if (r->decision.status != 200) {
		kg__conn_respond_decision(c);
		return;
	}
	kg_buf h = { 0 };
	kg_err err = KG_OK;
	if (r->decision.is_authenticated) {
		const struct kg_principal *p = &r->decision.principal;
		err = kg_buf_printf(&h, "X-Keygate-Scheme: %s\r\nX-Keygate-Principal: %.*s\r\n", p->scheme, (int)p->id.n,
		                    p->id.p);
		if (!err && p->role.n)
			err = kg_buf_printf(&h, "X-Keygate-Role: %.*s\r\n", (int)p->role.n, p->role.p);
	}
	if (err)
		kg__conn_respond_error(c, 500, "out of memory");
	else
		kg__conn_respond(c, 200, "application/json", KG_STR("{\"code\":200,\"message\":\"allowed\"}"), h.p);
	kg_buf_free(&h, false);
}

static void route_health(struct kg_conn *c)
{
	if (!kg_str_eq(kg__conn_req(c)->method, KG_STR("GET")) && !kg__conn_req(c)->is_head) {
		kg__conn_respond_error(c, 405, "health answers GET and HEAD only");
		return;
	}
	health(c);
}

static void route_unknown(struct kg_conn *c)
{
	kg__conn_respond_error(c, 404, "no such keygate endpoint");
}

static void route_no_upstream(struct kg_conn *c)
{
	kg__conn_respond_error(c, 404,
	                       "no upstream is configured: keygate runs in forward-auth mode and answers "
	                       "only its own endpoints (see /_keygate/check)");
}

static bool has_no_upstream(const struct kg_runtime *rt)
{
	return !rt->has_upstream;
}

static const struct kg_route routes[] = {
	{ .path = "/health", .is_under_api_prefix = true, .methods = "GET HEAD", .handle = route_health },
	{ .path = "/check", .is_under_api_prefix = true, .methods = "any", .handle = check },
	{ .path = "", .is_prefix = true, .is_under_api_prefix = true, .methods = "any", .handle = route_unknown },
};
KG_ROUTE_SET(kg__keygate_routes, routes);

static const struct kg_route fallback[] = {
	{ .path = "/", .is_prefix = true, .methods = "any", .handle = route_no_upstream, .is_enabled = has_no_upstream },
};
KG_ROUTE_SET(kg__fallback_routes, fallback);
