/* api_keygate.c - keygate's own endpoints under the api prefix:
 *   GET  {prefix}/health  version, uptime, store status
 *   ANY  {prefix}/check   forward-auth for nginx auth_request / Traefik ForwardAuth
 * and the answer to any other path when keygate has no upstream. */
#include <stdio.h>
#include <time.h>

#include "keygate/log.h"
#include "keygate/password.h"
#include "kg.h"

static void health(struct kg_conn *c)
{
	kg_buf b = { 0 };
	const char *backend = "none";
	const char *store = kg__store_status(&backend);
	long long uptime = (long long)(time(NULL) - kg__started_at());
	size_t running, waiting;
	kg__slow_counts(&running, &waiting);
	kg_err err = kg_buf_printf(&b,
	                           "{\"status\":\"ok\",\"version\":\"%s\",\"uptime_seconds\":%lld,"
	                           "\"workers\":%zu,\"mode\":\"%s\",\"password_jobs\":{\"running\":%zu,"
	                           "\"waiting\":%zu,\"hashes\":%llu},\"store\":{\"backend\":\"%s\",\"status\":",
	                           kg__version, uptime, kg__worker_count(),
	                           c->rt->has_upstream ? "proxy" : "forward-auth", running, waiting,
	                           (unsigned long long)kg_bcrypt_count(), backend);
	if (!err)
		err = kg_buf_append_json_string(&b, kg_str_c(store));
	if (!err)
		err = kg_buf_appends(&b, KG_STR("}}"));
	if (err)
		kg__conn_respond_error(c, 500, "out of memory");
	else
		kg__conn_respond(c, 200, "application/json", kg_buf_str(&b), "Cache-Control: no-store\r\n");
	kg_buf_free(&b, false);
}

/* The original request, as the fronting proxy describes it. */
static bool original_request(struct kg_conn *c, kg_str *method, kg_str *path)
{
	kg_str m = kg__req_find(c, KG_STR("X-Original-Method"));
	kg_str uri = kg__req_find(c, KG_STR("X-Original-URI"));
	if (!m.p)
		m = kg__req_find(c, KG_STR("X-Forwarded-Method"));
	if (!uri.p)
		uri = kg__req_find(c, KG_STR("X-Forwarded-Uri"));
	if (!uri.p || uri.n == 0 || uri.p[0] != '/')
		return false;
	*method = m.n ? m : c->req.method;
	const char *q = memchr(uri.p, '?', uri.n);
	*path = q ? (kg_str){ uri.p, (size_t)(q - uri.p) } : uri;
	return true;
}

static void check_answer(struct kg_conn *c);

static void check(struct kg_conn *c)
{
	kg_str method, path;
	struct kg_request *r = &c->req;
	if (!original_request(c, &method, &path)) {
		kg__conn_respond_error(c, 400,
		                       "forward-auth check needs the original URI: X-Original-URI (nginx) or "
		                       "X-Forwarded-Uri (Traefik), starting with '/'");
		return;
	}
	kg_auth_decide(&c->rt->auth, method, path, r->authorization, (int64_t)time(NULL), &c->arena, &r->decision);
	if (r->decision.err == KG_ESLOW && kg__auth_slow(c, method, path, check_answer))
		return; /* a password check runs off the loop; check_answer follows */
	check_answer(c);
}

/* Answers the forward-auth check from c's decision. */
static void check_answer(struct kg_conn *c)
{
	struct kg_request *r = &c->req;
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

void kg__api_keygate(struct kg_conn *c)
{
	kg_str path = c->req.path, pre = c->rt->prefix;
	bool is_own = kg_str_has_prefix(path, pre) && (path.n == pre.n || path.p[pre.n] == '/');

	if (kg__bee_is_endpoint(c->rt, path)) {
		kg__api_bee(c);
		return;
	}
	if (kg__avax_is_endpoint(c->rt, path)) {
		kg__api_avax(c);
		return;
	}
	if (!is_own) {
		kg__conn_respond_error(c, 404,
		                       "no upstream is configured: keygate runs in forward-auth mode and answers "
		                       "only its own endpoints (see /_keygate/check)");
		return;
	}
	kg_str rest = { path.p + pre.n, path.n - pre.n };
	if (kg_str_eq(rest, KG_STR("/health"))) {
		if (!kg_str_eq(c->req.method, KG_STR("GET")) && !c->req.is_head) {
			kg__conn_respond_error(c, 405, "health answers GET and HEAD only");
			return;
		}
		health(c);
	} else if (kg_str_eq(rest, KG_STR("/check"))) {
		check(c);
	} else {
		kg__conn_respond_error(c, 404, "no such keygate endpoint");
	}
}
