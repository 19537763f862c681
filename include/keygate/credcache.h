/* credcache.h - passwords verified once, remembered until a deadline.
 *
 * bcrypt costs tens of milliseconds on purpose; a client that sends the same
 * user and password on every request must not pay that each time. The cache
 * keys a verified credential by HMAC-SHA256(a key drawn at creation, user,
 * password): the password itself is never kept. Each entry carries a 64-bit
 * value the owner chooses (the user's index in a file, or a fingerprint of
 * the stored hash so that a password change misses). Wrong passwords are
 * never cached: callers only put what bcrypt accepted.
 *
 * Layout: KG_CREDCACHE_SHARDS independently locked tables, each probed over
 * at most 8 slots from the credential's home slot; a full window evicts the
 * entry that expires first. Safe from any thread. Used by the Basic users
 * file (users.c) and Elasticsearch's users (src/api_es.c). */
#ifndef KEYGATE_CREDCACHE_H
#define KEYGATE_CREDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keygate/err.h"
#include "keygate/str.h"

typedef struct kg_credcache kg_credcache;

/* The longest user name the cache keys (longer names are never cached). */
#define KG_CREDCACHE_MAX_USER 255

/* About capacity credentials, each trusted for ttl_s seconds after it was
 * put. KG_ENOMEM, or KG_EIO when no random key could be drawn. */
kg_err kg_credcache_new(size_t capacity, int64_t ttl_s, kg_credcache **out) KG_MUST_CHECK;
/* Wipes and frees *c; NULL-safe. */
void kg_credcache_free(kg_credcache **c);
/* True when (user, password) was put and has not expired at now; *value gets
 * what was put with it. */
bool kg_credcache_get(kg_credcache *c, kg_str user, kg_str password, int64_t now, uint64_t *value);
/* Remembers (user, password) as verified, with value, until now + ttl. */
void kg_credcache_put(kg_credcache *c, kg_str user, kg_str password, uint64_t value, int64_t now);
/* Forgets every credential (Elasticsearch's realm _clear_cache). NULL-safe. */
void kg_credcache_clear(kg_credcache *c);
/* Forgets every credential of user, whatever its password (_clear_cache
 * with usernames). A walk over the whole cache: for rare calls. NULL-safe. */
void kg_credcache_forget(kg_credcache *c, kg_str user);
/* Bytes held per credential (for the benchmark). */
size_t kg_credcache_entry_size(void);

#endif
