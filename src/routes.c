/* routes.c - the one table of what keygate answers itself.
 *
 * Like redis's command table: every endpoint keygate serves (its own under
 * api_prefix, each dialect's: Bee's /auth and /refresh, AvalancheGo's
 * /ext/auth, and next Elasticsearch's /_security/...) is one entry, owned by
 * the module that registers it. http.c asks kg__route_find and names no
 * dialect; anything no entry matches is proxied (or, without an upstream,
 * answered 404 by the last entry). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Every set's routes in matching order with their path lengths, made once
 * before main, and for each value of a path's second byte the routes that
 * could match it (bit i: flat[i]; a route whose path is shorter than 2
 * bytes is in every entry). A lookup visits only those, in order: a
 * proxied path is compared with the one or two "/" routes, not all. */
#define KG_ROUTES_MAX 64
static struct flat_route {
	const struct kg_route *r;
	size_t len; /* strlen(r->path) */
} flat[KG_ROUTES_MAX];
static size_t nflat;
/* [0][c]: the routes not under the api prefix whose path could match a
 * path with second byte c; [1][c]: those under it, for the rest after the
 * prefix; [.][256]: for a path (or rest) shorter than 2 bytes */
static uint64_t by_second[2][257];

__attribute__((constructor)) static void index_routes(void)
{
	for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++)
		for (size_t i = 0; i < sets[s]->n; i++) {
			const struct kg_route *r = &sets[s]->routes[i];
			if (nflat == KG_ROUTES_MAX) {
				fprintf(stderr, "keygate: more than %d routes: raise KG_ROUTES_MAX (src/routes.c)\n",
				        KG_ROUTES_MAX);
				abort();
			}
			size_t len = strlen(r->path);
			uint64_t bit = (uint64_t)1 << nflat;
			uint64_t *m = by_second[r->is_under_api_prefix];
			for (int c = 0; c < 257; c++)
				if (len < 2 || c == (unsigned char)r->path[1]) /* c 256 is no byte */
					m[c] |= bit;
			flat[nflat].r = r;
			flat[nflat].len = len;
			nflat++;
		}
}

/* path (already without the api prefix when the route is under it)
 * matches f */
static bool route_matches(const struct flat_route *f, kg_str path)
{
	const char *want = f->r->path;
	size_t n = f->len;
	if (path.n < n || (n && memcmp(path.p, want, n) != 0))
		return false;
	if (!f->r->is_prefix)
		return path.n == n;
	/* "/x" as a prefix: "/x" itself and everything below "/x/" */
	return path.n == n || n == 0 || want[n - 1] == '/' || path.p[n] == '/';
}

static inline uint64_t candidates(int under, kg_str path)
{
	return by_second[under][path.n >= 2 ? (unsigned char)path.p[1] : 256];
}

const struct kg_route *kg__route_find(const struct kg_runtime *rt, kg_str path)
{
	/* the api prefix is judged once, not for each route under it */
	kg_str pre = rt->prefix;
	bool is_under = kg_str_has_prefix(path, pre) && (path.n == pre.n || path.p[pre.n] == '/');
	kg_str rest = is_under ? (kg_str){ path.p + pre.n, path.n - pre.n } : KG_STR_NULL;
	uint64_t m = candidates(0, path) | (is_under ? candidates(1, rest) : 0);
	for (; m; m &= m - 1) {
		const struct flat_route *f = &flat[__builtin_ctzll(m)]; /* lowest bit first: table order */
		const struct kg_route *r = f->r;
		/* is_enabled reads rt only: asked after the cheaper match */
		if (route_matches(f, r->is_under_api_prefix ? rest : path) && (!r->is_enabled || r->is_enabled(rt)))
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
