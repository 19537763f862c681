/* bee.h - Swarm Bee's restricted mode (api_bee.c) as the rest of the daemon
 * sees it: built with the runtime (server.c), its routes in the table
 * (routes.c). http.c includes no dialect's header. */
#ifndef KG_BEE_H
#define KG_BEE_H

#include "kg.h"
#include "routes.h"

/* admin_hash: the admin password's bcrypt hash (admin.h), "" for none */
kg_err kg__bee_new(const kg_config *cfg, const kg_policy *policy, const char *admin_hash, struct kg_store *store,
                   struct kg_cache *cache, struct kg_bee **out, kg_buf *why);
void kg__bee_free(struct kg_bee **b);
const struct kg_authenticator *kg__bee_authenticator(const struct kg_bee *bee);
/* the dialect's view of the store's state, re-read (the maintenance timer
 * calls it for the current runtime) */
void kg__bee_refresh(struct kg_bee *b);
extern const struct kg_route_set kg__bee_routes;

#endif
