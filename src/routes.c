/* routes.c - the one table of what keygate answers itself.
 *
 * Like redis's command table: every endpoint keygate serves (its own under
 * api_prefix, each dialect's: Bee's /auth and /refresh, AvalancheGo's
 * /ext/auth, and next Elasticsearch's /_security/...) is one entry, owned by
 * the module that registers it. http.c asks kg__route_find and names no
 * dialect; anything no entry matches is proxied (or, without an upstream,
 * answered 404 by the last entry). */
#include "avax.h"
#include "bee.h"
#include "es.h"
#include "kg.h"
#include "routes.h"

/* Each dialect module's entries, in matching order; the first match wins. */
static const struct kg_route_set *const sets[] = {
	&kg__keygate_routes,
	&kg__bee_routes,
	&kg__avax_routes,
	&kg__es_routes,
	&kg__fallback_routes, /* last: no upstream, nothing else matched */
};

/* path (already without the api prefix when r is under it) matches r.
 * Compared in place against r->path, no strlen: most routes differ from
 * the path within its first bytes. */
static bool route_matches(const struct kg_route *r, kg_str path)
{
	size_t n = kg_str_cprefix_len(path, r->path);
	if (n == SIZE_MAX)
		return false;
	if (!r->is_prefix)
		return path.n == n;
	/* "/x" as a prefix: "/x" itself and everything below "/x/" */
	return path.n == n || n == 0 || r->path[n - 1] == '/' || path.p[n] == '/';
}

const struct kg_route *kg__route_find(const struct kg_runtime *rt, kg_str path)
{
	/* the api prefix is judged once, not for each route under it */
	kg_str pre = rt->prefix;
	bool is_under = kg_str_has_prefix(path, pre) && (path.n == pre.n || path.p[pre.n] == '/');
	kg_str rest = is_under ? (kg_str){ path.p + pre.n, path.n - pre.n } : KG_STR_NULL;
	for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++)
		for (size_t i = 0; i < sets[s]->n; i++) {
			const struct kg_route *r = &sets[s]->routes[i];
			if (r->is_under_api_prefix && !is_under)
				continue;
			/* is_enabled reads rt only: asked after the cheaper match */
			if (route_matches(r, r->is_under_api_prefix ? rest : path) && (!r->is_enabled || r->is_enabled(rt)))
				return r;
		}
	return NULL;
}

kg_err kg__routes_json(const struct kg_runtime *rt, kg_buf *out)
{
	static const char *const owners[] = { "keygate", "bee", "avalanche", "elasticsearch" };
	kg_err err = kg_buf_appends(out, KG_STR("["));
	bool is_first = true;
	for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]) && !err; s++)
		for (size_t i = 0; i < sets[s]->n && !err; i++) {
			const struct kg_route *r = &sets[s]->routes[i];
			if (r->is_enabled && !r->is_enabled(rt))
				continue;
			kg_buf path = { 0 };
			err = kg_buf_appends(&path, r->is_under_api_prefix ? rt->prefix : KG_STR(""));
			if (!err)
				err = kg_buf_appends(&path, kg_str_c(r->path));
			if (!err && r->is_prefix)
				err = kg_buf_appends(&path, path.n && path.p[path.n - 1] == '/' ? KG_STR("*") : KG_STR("/*"));
			if (!err)
				err = kg_buf_appends(out, is_first ? KG_STR("{\"path\":") : KG_STR(",{\"path\":"));
			if (!err)
				err = kg_buf_append_json_string(out, kg_buf_str(&path));
			if (!err)
				err = kg_buf_appends(out, KG_STR(",\"methods\":"));
			if (!err)
				err = kg_buf_append_json_string(out, kg_str_c(r->methods));
			if (!err)
				err = kg_buf_appends(out, KG_STR(",\"owner\":\""));
			if (!err)
				err = kg_buf_appends(out, kg_str_c(owners[r->owner]));
			if (!err)
				err = kg_buf_appends(out, KG_STR("\"}"));
			kg_buf_free(&path, false);
			is_first = false;
		}
	if (!err)
		err = kg_buf_appends(out, KG_STR("]"));
	return err;
}
