/* es.h - Elasticsearch's security APIs (api_es.c) as the rest of the daemon
 * sees it: built with the runtime (server.c), its routes in the table
 * (routes.c), its authenticators in the runtime's auth config. http.c
 * includes no dialect's header. */
#ifndef KG_ES_H
#define KG_ES_H

#include "kg.h"
#include "routes.h"

/* admin_hash: the admin password's bcrypt hash (admin.h), the password of
 * the built-in user elastic. users_basic: the Basic users file's
 * authenticator, asked for names no Elasticsearch realm knows (may be NULL). */
kg_err kg__es_new(const kg_config *cfg, const char *admin_hash, struct kg_store *store, struct kg_cache *cache,
                  const struct kg_authenticator *users_basic, struct kg_es **out, kg_buf *why);
void kg__es_free(struct kg_es **es);
/* The ApiKey scheme, and the Basic scheme of Elasticsearch's users (then
 * the users file's), whose refusals are written in dialect d. */
const struct kg_authenticator *kg__es_apikey_authenticator(const struct kg_es *es);
const struct kg_authenticator *kg__es_basic_authenticator(struct kg_es *es, enum kg_dialect d);
/* Maintenance (blocking, off the event loops): deletes keys invalidated or
 * expired longer than api_key.retention ago, and writes the coalesced
 * last_used times. */
void kg__es_maintain(struct kg_es *es);
/* Reports, through cb, each API key used since the last call (id, the last
 * use in unix ms) and forgets it: the hook for writing last_used in
 * coalesced batches. Uses of keys deleted or rewritten before the call are
 * kept in a bounded list (the newest beyond it are dropped).
 * Call it from one thread at a time; cb runs without any lock held. */
void kg__es_last_used_take(struct kg_es *es, void (*cb)(void *data, const char *id, int64_t ms), void *data);
/* Writes the last uses of keys since the previous call (maintenance timer,
 * blocking): one store write per key used, however often it was used. */
void kg__es_flush_last_used(struct kg_es *es);
extern const struct kg_route_set kg__es_routes;

#endif
