/* tokcache.h - Bearer tokens already validated, remembered per worker.
 *
 * Opening a token costs an AES-GCM open or an HMAC, base64 and a parse; a
 * client that sends the same token on every request should pay a hash
 * lookup instead. An entry is keyed by the whole token, compared in full
 * (CRYPTO_memcmp), never by its hash alone: SipHash-1-3 with a random key
 * only picks the bucket, so nobody can aim tokens at one bucket. SipHash
 * reads the token's length and its bytes folded (XORed) into
 * KG_TOKCACHE_FOLD bytes, not the whole token: folding is a fraction of a
 * SipHash round per byte, and 24 bytes take seven rounds in all (1-3: one
 * per block, three to finish; 2-4 over a 32-byte fold took sixteen). The fold is linear, so tokens of chosen bytes could be made to fold
 * alike; but only validated tokens are ever put, whose bytes nobody chooses
 * (AES-GCM ciphertext and tag, a JWT's signature, an API key's random
 * secret), and tokens that do fold alike land in one bucket and are still
 * told apart by their bytes. A bucket holds at most KG_TOKCACHE_CHAIN_MAX
 * tokens (more are not cached), so a lookup compares at most that many
 * whatever the tokens are. It holds what
 * the authenticator needs to answer again (a value of at most
 * KG_TOKCACHE_MAX_VALUE bytes, copied in), and is served only while all of
 * these hold:
 *   - the same owner asks (an authenticator instance: kg_tokcache_owner_new;
 *     a reload builds new ones, so keys or settings that changed never meet
 *     an answer of the old ones);
 *   - now <= the last instant the token is valid (its expiry);
 *   - the epoch the caller passes is the one it was put with: callers pass
 *     a number that grows on every revocation and key rotation, read before
 *     they validate, so an entry put across a revocation is never served.
 * An entry that fails one of these is dropped when met. The table holds at
 * most its capacity; a full table evicts by CLOCK (a hit marks an entry,
 * the hand spares marked ones once).
 *
 * Threads: none. A kg_tokcache belongs to one thread; the daemon gives each
 * worker its own (kg_tokcache_of_thread), so there are no locks. Tokens are
 * secrets: they are wiped when evicted, dropped or freed. */
#ifndef KEYGATE_TOKCACHE_H
#define KEYGATE_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "keygate/err.h"
#include "keygate/str.h"

typedef struct kg_tokcache kg_tokcache;

/* Tokens longer than this, and values longer than that, are never cached. */
#define KG_TOKCACHE_MAX_TOKEN 2048
#define KG_TOKCACHE_MAX_VALUE 512
/* The bytes a token is folded into for its bucket hash (with its length). */
#define KG_TOKCACHE_FOLD 16
/* The most tokens one bucket holds. */
#define KG_TOKCACHE_CHAIN_MAX 8
/* The entries of each worker's cache (kg_tokcache_of_thread). */
#define KG_TOKCACHE_PER_THREAD 1024

/* A cache of at most capacity (≥ 1) entries. KG_ENOMEM, or KG_EIO when no
 * random hash key could be drawn. */
kg_err kg_tokcache_new(size_t capacity, kg_tokcache **out) KG_MUST_CHECK;
/* Wipes and frees *c, sets it to NULL. NULL-safe. */
void kg_tokcache_free(kg_tokcache **c);

/* A number never returned before in this process (never 0), naming an owner. */
uint64_t kg_tokcache_owner_new(void);

/* The value put with token by owner under epoch, when still valid at now
 * (see above): a pointer into the cache, valid until the next call on c;
 * *n gets its length. NULL on a miss (c NULL included). */
const void *kg_tokcache_get(kg_tokcache *c, uint64_t owner, kg_str token, uint64_t epoch, int64_t now, size_t *n);

/* Remembers token as validated by owner under epoch, valid while
 * now <= last_valid, with value (n bytes, copied). Replaces an entry of the
 * same token. Does nothing when token or value is too long, its bucket
 * holds KG_TOKCACHE_CHAIN_MAX other tokens, c is NULL or memory runs out:
 * the cache only ever saves work. */
void kg_tokcache_put(kg_tokcache *c, uint64_t owner, kg_str token, uint64_t epoch, int64_t last_valid,
                     const void *value, size_t n);

/* Entries held now (tests). */
size_t kg_tokcache_count(const kg_tokcache *c);

/* The calling thread's cache, made on first use (NULL when that fails) and
 * freed when the thread exits; kg_tokcache_thread_free releases it earlier
 * (tests). */
kg_tokcache *kg_tokcache_of_thread(void);
void kg_tokcache_thread_free(void);

/* For tests: a cache whose bucket hash is hash (to make tokens collide); it
 * is given the length (8 bytes, little-endian) and the fold. */
kg_err kg__tokcache_new_hashed(size_t capacity, uint64_t (*hash)(const unsigned char key[16], const void *in, size_t n),
                               kg_tokcache **out) KG_MUST_CHECK;

#endif
