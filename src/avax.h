/* avax.h - AvalancheGo's Auth API (api_avax.c) as the rest of the daemon
 * sees it: built with the runtime (server.c), its routes in the table
 * (routes.c). http.c includes no dialect's header. */
#ifndef KG_AVAX_H
#define KG_AVAX_H

#include "kg.h"
#include "routes.h"

kg_err kg__avax_new(const kg_config *cfg, struct kg_store *store, struct kg_cache *cache, struct kg_avax **out,
                    kg_buf *why);
void kg__avax_free(struct kg_avax **x);
const struct kg_authenticator *kg__avax_authenticator(const struct kg_avax *x);
/* the dialect's view of the store's state, re-read (the maintenance timer) */
void kg__avax_refresh(struct kg_avax *x);
extern const struct kg_route_set kg__avax_routes;

#endif
