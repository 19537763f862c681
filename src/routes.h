/* routes.h - the one table of the endpoints keygate answers itself
 * (routes.c). Each module that serves endpoints (keygate's own, each
 * dialect) registers a kg_route_set; routes.c lists them in matching order. */
#ifndef KG_ROUTES_H
#define KG_ROUTES_H

#include <stdbool.h>
#include <stdint.h>

#include "keygate/auth.h"
#include "keygate/str.h"

struct kg_conn;
struct kg_runtime;

struct kg_route {
	const char *path;         /* exact path, or a prefix when is_prefix */
	bool is_prefix;           /* path and everything below it */
	bool is_under_api_prefix; /* path is relative to api_prefix (keygate's own endpoints) */
	const char *methods;      /* what it answers, e.g. "POST" (the handler refuses others in its dialect's words) */
	enum kg_dialect owner;    /* whose wire format its answers and refusals use */
	uint64_t body_limit;      /* request body cap; 0: limits.max_body_bytes */
	void (*handle)(struct kg_conn *c); /* runs once the whole request (body included) is read */
	bool (*is_enabled)(const struct kg_runtime *rt); /* NULL: always */
};
struct kg_route_set {
	const struct kg_route *routes;
	size_t n;
};
#define KG_ROUTE_SET(name, array) const struct kg_route_set name = { array, sizeof(array) / sizeof(array[0]) }
/* The route that answers path under rt, or NULL: the request is proxied. */
const struct kg_route *kg__route_find(const struct kg_runtime *rt, kg_str path);
/* The enabled routes as a JSON array of {path, methods, owner} (health). */
kg_err kg__routes_json(const struct kg_runtime *rt, kg_buf *out);
extern const struct kg_route_set kg__keygate_routes, kg__fallback_routes; /* each dialect's: its header */

#endif
