/* cache.h - the hot path's view of the store.
 *
 * Event-loop threads must never wait on disk, so they read this in-memory
 * copy of the store's revoked ids and kv records instead. It is filled from
 * the store at start-up and kept current by kg_cache_refresh(), which replays
 * the store's change log: writes made by this process, by a keygate CLI
 * command, or by other instances sharing a PostgreSQL store all arrive that
 * way. Writes made through this cache (kg_cache_revoke, kg_cache_kv_put,
 * kg_cache_kv_del) reach the store first and are visible here as soon as the
 * call returns.
 *
 * Threads: the lookups (kg_cache_is_revoked, kg_cache_kv_get,
 * kg_cache_stats) take a read lock and never touch the store; any number of
 * threads may call them at once. Everything else is blocking (it calls the
 * store): run it off the event loops. Writers prefer over readers, so a
 * refresh is not starved by a busy hot path; no store I/O happens under the
 * write lock, only pointer swaps. Hash buckets are chosen by SipHash-2-4 with
 * a random per-cache key, so peers who pick token ids cannot flood a bucket.
 */
#ifndef KEYGATE_CACHE_H
#define KEYGATE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keygate/err.h"
#include "keygate/store.h"
#include "keygate/str.h"

typedef struct kg_cache kg_cache;

/* When more changes than this are waiting, a refresh reloads everything
 * instead of re-reading records one by one. */
#define KG_CACHE_REPLAY_MAX 4096

struct kg_cache_stats {
	size_t revoked;     /* ids in the revoked set */
	size_t kv;          /* kv records */
	int64_t last_seq;   /* change-log position the cache reflects */
	uint64_t refreshes; /* successful kg_cache_refresh calls */
	uint64_t reloads;   /* full loads, the first one included */
};

/* Loads every kv record and revoked id of store (borrowed: it must outlive
 * the cache) and records the change-log position. *out is owned by the
 * caller (kg_cache_free). Errors: the store's, KG_ENOMEM, KG_EIO when no
 * random hash key could be drawn. */
kg_err kg_cache_new(kg_store *store, kg_cache **out) KG_MUST_CHECK;

/* kg_cache_new for a store whose namespaces listed in unstored (a
 * NULL-terminated array of C strings, borrowed; at most KG_CACHE_UNSTORED_MAX)
 * are big and kept by their reader in a form of its own: the cache keeps no
 * copy of their records (kg_cache_kv_get answers KG_ENOENT for them) and
 * only passes their changes on to the watchers of kg_cache_watch. Loading a
 * million records it would not keep would cost their size at start-up. */
#define KG_CACHE_UNSTORED_MAX 8
kg_err kg_cache_new_unstored(kg_store *store, const char *const *unstored, kg_cache **out) KG_MUST_CHECK;

/* What a watcher of a namespace is told, always in the order the cache
 * applies changes (under its updater lock, so never two at once):
 *   KG_CACHE_PUT   key now holds value (borrowed for the call)
 *   KG_CACHE_DEL   key is gone (value empty)
 *   KG_CACHE_RESET_BEGIN, then a PUT for every record, then
 *   KG_CACHE_RESET_END: a full load; a record not PUT between them is gone.
 *   A load that fails half-way sends no RESET_END (the records PUT were
 *   current; the next refresh tries again).
 * The callback must not call the cache or the store. */
enum kg_cache_event { KG_CACHE_PUT = 1, KG_CACHE_DEL, KG_CACHE_RESET_BEGIN, KG_CACHE_RESET_END };
typedef void (*kg_cache_watch_fn)(void *data, enum kg_cache_event ev, kg_str key, kg_str value);
typedef struct kg_cache_watcher kg_cache_watcher;

/* Makes ns unstored (its records leave the cache's memory) and watches it:
 * delivers RESET_BEGIN, every record of ns in the store, RESET_END, then
 * every later change of ns, whether written through this cache
 * (kg_cache_kv_put/del: the watcher has it before the call returns) or
 * replayed from the change log by kg_cache_refresh/reload. *out (owned: pass
 * to kg_cache_unwatch) identifies the watch. Errors: the store's, KG_ENOMEM,
 * KG_ETOOBIG (too many unstored namespaces). Blocking. */
kg_err kg_cache_watch(kg_cache *c, kg_str ns, kg_cache_watch_fn fn, void *data, kg_cache_watcher **out) KG_MUST_CHECK;

/* Stops the watch (no call of its fn starts after this returns) and sets *w
 * to NULL; ns stays unstored. Safe on NULL. Blocking. */
void kg_cache_unwatch(kg_cache *c, kg_cache_watcher **w);

/* True when id has been revoked (and not yet pruned). Hot path. */
bool kg_cache_is_revoked(kg_cache *c, kg_str id);

/* A number that grows each time the revoked set gains ids, whether revoked
 * here (kg_cache_revoke), replayed from the store or reloaded: an answer
 * derived from kg_cache_is_revoked (a cached token check) is current only
 * while this number is the one read before that check. Never blocks; 0 for
 * a NULL cache. Hot path. */
uint64_t kg_cache_revoked_gen(kg_cache *c);

/* The same for the kv records kept here (not those of unstored namespaces,
 * which go to their watchers): it grows after every put or delete of one,
 * here, replayed from the store or by a full reload, so an answer derived
 * from kg_cache_kv_get (a compiled permission) is current only while this
 * number is the one read before those reads. Never blocks; 0 for a NULL
 * cache. Hot path. */
uint64_t kg_cache_kv_gen(kg_cache *c);

/* Replaces the content of *out (the caller's buffer; free it as a secret if
 * the record is one) with the record's value. KG_ENOENT when absent,
 * KG_EINVAL/KG_ETOOBIG for names the store could not hold. Hot path. */
kg_err kg_cache_kv_get(kg_cache *c, kg_str ns, kg_str key, kg_buf *out) KG_MUST_CHECK;

/* Applies the store's changes since the last refresh: re-reads each changed
 * record or revocation from the store, then swaps the results in under the
 * write lock. Falls back to a full reload when more than KG_CACHE_REPLAY_MAX
 * changes wait or the last refresh is older than half of
 * KG_STORE_CHANGES_KEEP_SECONDS (the log may have been trimmed past it). On
 * error nothing changes and the next call retries the same changes.
 * Blocking. */
kg_err kg_cache_refresh(kg_cache *c);

/* Reloads everything from the store, as kg_cache_new does. Blocking. */
kg_err kg_cache_reload(kg_cache *c);

/* Revokes id in the store (durably), then in the cache. Blocking. */
kg_err kg_cache_revoke(kg_cache *c, kg_str id, int64_t expires_at) KG_MUST_CHECK;

/* Writes the record to the store (see kg_store_ops.kv_put for durable),
 * then to the cache. value is copied. Blocking. */
kg_err kg_cache_kv_put(kg_cache *c, kg_str ns, kg_str key, kg_str value, bool durable) KG_MUST_CHECK;

/* Deletes the record from the store, then from the cache. KG_ENOENT when the
 * store had no such record. Blocking. */
kg_err kg_cache_kv_del(kg_cache *c, kg_str ns, kg_str key);

/* Deletes revocations whose expires_at < now from the store (see
 * kg_store_ops.prune) and from the cache. The cache drops them even if the
 * store fails: an expired token is refused for its expiry anyway. Blocking. */
kg_err kg_cache_prune(kg_cache *c, int64_t now);

/* Fills *out with the current sizes and counters. */
void kg_cache_stats(kg_cache *c, struct kg_cache_stats *out);

/* Frees c and sets *c to NULL; no other thread may be using it. The store is
 * not closed. Safe on NULL. */
void kg_cache_free(kg_cache **c);

/* SipHash-2-4 of in under the 16-byte key; exposed for its known-answer test. */
uint64_t kg__siphash24(const unsigned char key[16], const void *in, size_t len);
/* SipHash-1-3 (the same with one round per block and three to finish, as
 * Rust's and CPython's hash tables use): for a hot lookup whose input is
 * short and whose table bounds its chains anyway (tokcache.c). */
uint64_t kg__siphash13(const unsigned char key[16], const void *in, size_t len);

#endif
