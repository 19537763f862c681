/* tokcache.c - validated Bearer tokens per worker (see tokcache.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keygate/cache.h"
#include "keygate/tokcache.h"

#define NONE UINT32_MAX

struct slot {
	unsigned char *bytes; /* the token, then the value; NULL: never used */
	size_t cap;           /* room at bytes, kept across reuse */
	uint32_t tok_n, val_n;
	uint32_t next;        /* the next slot in this bucket, NONE: last */
	bool is_used;
	bool is_referenced;   /* hit since the hand last passed */
	uint64_t hash, owner, epoch;
	int64_t last_valid;
};

/* What picks a token's bucket: its length and its bytes folded into
 * KG_TOKCACHE_FOLD bytes. See tokcache.h for why that is enough. */
#define FOLD KG_TOKCACHE_FOLD

struct kg_tokcache {
	unsigned char seed[16]; /* SipHash-1-3 key */
	uint64_t (*hash)(const unsigned char key[16], const void *in, size_t n);
	struct slot *slots;
	size_t cap, used, hand;
	uint32_t *buckets; /* slot index, NONE: empty */
	size_t mask;
};

uint64_t kg_tokcache_owner_new(void)
{
	static atomic_uint_fast64_t next = 0;
	return (uint64_t)atomic_fetch_add(&next, 1) + 1;
}

kg_err kg__tokcache_new_hashed(size_t capacity, uint64_t (*hash)(const unsigned char key[16], const void *in, size_t n),
                               kg_tokcache **out)
{
	kg_tokcache *c = NULL;
	size_t nb = 2;
	if (capacity == 0 || capacity >= NONE / 2)
		return KG_EINVAL;
	while (nb < 2 * capacity)
		nb *= 2;
	if (!(c = calloc(1, sizeof(*c))) || !(c->slots = calloc(capacity, sizeof(*c->slots))) ||
	    !(c->buckets = malloc(nb * sizeof(*c->buckets)))) {
		kg_tokcache_free(&c);
		return KG_ENOMEM;
	}
	if (RAND_bytes(c->seed, sizeof(c->seed)) != 1) {
		kg_tokcache_free(&c);
		return KG_EIO;
	}
	memset(c->buckets, 0xff, nb * sizeof(*c->buckets));
	c->hash = hash;
	c->cap = capacity;
	c->mask = nb - 1;
	*out = c;
	return KG_OK;
}

kg_err kg_tokcache_new(size_t capacity, kg_tokcache **out)
{
	return kg__tokcache_new_hashed(capacity, kg__siphash13, out);
}

void kg_tokcache_free(kg_tokcache **pc)
{
	kg_tokcache *c = pc ? *pc : NULL;
	if (!c)
		return;
	for (size_t i = 0; c->slots && i < c->cap; i++) {
		if (c->slots[i].bytes) {
			OPENSSL_cleanse(c->slots[i].bytes, c->slots[i].cap);
			free(c->slots[i].bytes);
		}
	}
	free(c->slots);
	free(c->buckets);
	OPENSSL_cleanse(c->seed, sizeof(c->seed));
	free(c);
	*pc = NULL;
}

size_t kg_tokcache_count(const kg_tokcache *c)
{
	return c ? c->used : 0;
}

/* Takes slot i out of its bucket and wipes what it held (the room stays). */
static void drop(kg_tokcache *c, uint32_t i)
{
	struct slot *s = &c->slots[i];
	uint32_t *link = &c->buckets[s->hash & c->mask];
	while (*link != i)
		link = &c->slots[*link].next;
	*link = s->next;
	OPENSSL_cleanse(s->bytes, (size_t)s->tok_n + s->val_n);
	s->is_used = false;
	s->is_referenced = false;
	c->used--;
}

/* The keyed hash of token's length (8 bytes, little-endian) and its fold:
 * byte i of the token XORed into byte i % FOLD. Eight bytes at a time, so
 * every byte counts for about half an instruction instead of a SipHash
 * round's share; the byte positions are kept whatever the endianness. */
static uint64_t hash_of(const kg_tokcache *c, kg_str token)
{
	_Static_assert(FOLD == 2 * sizeof(uint64_t), "the fold is two words");
	uint64_t lane[2] = { 0, 0 }, x;
	unsigned char w[8 + FOLD];
	size_t i = 0;
	for (; i + 16 <= token.n; i += 16) {
		memcpy(&x, token.p + i, 8);
		lane[0] ^= x;
		memcpy(&x, token.p + i + 8, 8);
		lane[1] ^= x;
	}
	if (i + 8 <= token.n) {
		memcpy(&x, token.p + i, 8);
		lane[0] ^= x;
		i += 8;
	}
	if (i < token.n) {
		unsigned char last[8] = { 0 };
		memcpy(last, token.p + i, token.n - i);
		memcpy(&x, last, 8);
		lane[(i >> 3) & 1] ^= x;
	}
	uint64_t n = token.n;
	for (size_t j = 0; j < 8; j++)
		w[j] = (unsigned char)(n >> (8 * j));
	memcpy(w + 8, lane, FOLD);
	return c->hash(c->seed, w, sizeof(w));
}

/* The slot of token in its bucket, or NONE; *chain (when set) gets the
 * number of slots looked at. */
static uint32_t find(const kg_tokcache *c, uint64_t h, kg_str token, size_t *chain)
{
	size_t k = 0;
	for (uint32_t i = c->buckets[h & c->mask]; i != NONE; i = c->slots[i].next, k++) {
		const struct slot *s = &c->slots[i];
		/* the hash only narrows the search: the token itself decides */
		if (s->hash == h && s->tok_n == token.n && CRYPTO_memcmp(s->bytes, token.p, token.n) == 0)
			return i;
	}
	if (chain)
		*chain = k;
	return NONE;
}

const void *kg_tokcache_get(kg_tokcache *c, uint64_t owner, kg_str token, uint64_t epoch, int64_t now, size_t *n)
{
	if (!c || token.n == 0 || token.n > KG_TOKCACHE_MAX_TOKEN)
		return NULL;
	uint64_t h = hash_of(c, token);
	uint32_t i = find(c, h, token, NULL);
	if (i == NONE)
		return NULL;
	struct slot *s = &c->slots[i];
	if (s->owner != owner || s->epoch != epoch || now > s->last_valid) {
		drop(c, i);
		return NULL;
	}
	s->is_referenced = true;
	*n = s->val_n;
	return s->bytes + s->tok_n;
}

/* A free slot, or the one CLOCK evicts: the hand spares a referenced slot
 * once (clearing its mark), so it stops within two turns. */
static uint32_t victim(kg_tokcache *c)
{
	for (;;) {
		uint32_t i = (uint32_t)c->hand;
		struct slot *s = &c->slots[i];
		c->hand = (c->hand + 1) % c->cap;
		if (!s->is_used)
			return i;
		if (s->is_referenced) {
			s->is_referenced = false;
			continue;
		}
		drop(c, i);
		return i;
	}
}

void kg_tokcache_put(kg_tokcache *c, uint64_t owner, kg_str token, uint64_t epoch, int64_t last_valid,
                     const void *value, size_t n)
{
	if (!c || token.n == 0 || token.n > KG_TOKCACHE_MAX_TOKEN || n > KG_TOKCACHE_MAX_VALUE)
		return;
	uint64_t h = hash_of(c, token);
	size_t chain = 0;
	uint32_t i = find(c, h, token, &chain);
	if (i != NONE)
		drop(c, i);
	else if (chain >= KG_TOKCACHE_CHAIN_MAX)
		return; /* many tokens alike in the window: never let a lookup compare more */
	else
		i = victim(c);
	struct slot *s = &c->slots[i];
	size_t need = token.n + n;
	if (s->cap < need) {
		/* rounded up so that tokens of one kind, which differ a little in
		 * length, reuse the room */
		size_t cap = (need + 255) & ~(size_t)255;
		unsigned char *b = malloc(cap);
		if (!b)
			return;
		if (s->bytes) {
			OPENSSL_cleanse(s->bytes, s->cap);
			free(s->bytes);
		}
		s->bytes = b;
		s->cap = cap;
	}
	memcpy(s->bytes, token.p, token.n);
	if (n)
		memcpy(s->bytes + token.n, value, n);
	s->tok_n = (uint32_t)token.n;
	s->val_n = (uint32_t)n;
	s->hash = h;
	s->owner = owner;
	s->epoch = epoch;
	s->last_valid = last_valid;
	s->is_used = true;
	s->is_referenced = false;
	s->next = c->buckets[h & c->mask];
	c->buckets[h & c->mask] = i;
	c->used++;
}

/* Each thread's cache: read through a thread-local pointer (one TLS load per
 * request), and freed when the thread exits by a pthread key's destructor,
 * as api_es.c's per-worker user views are, so no thread has to remember to
 * free it. */
static _Thread_local kg_tokcache *thread_cache;
static _Thread_local bool thread_cache_failed;
static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;
static bool has_thread_key;

static void thread_cache_destroy(void *p)
{
	kg_tokcache *c = p;
	kg_tokcache_free(&c);
	thread_cache = NULL;
}

static void thread_key_make(void)
{
	has_thread_key = pthread_key_create(&thread_key, thread_cache_destroy) == 0;
}

kg_tokcache *kg_tokcache_of_thread(void)
{
	if (thread_cache || thread_cache_failed)
		return thread_cache;
	pthread_once(&thread_once, thread_key_make);
	if (!has_thread_key || kg_tokcache_new(KG_TOKCACHE_PER_THREAD, &thread_cache) != KG_OK) {
		thread_cache_failed = true; /* no cache: every token takes the full check */
	} else if (pthread_setspecific(thread_key, thread_cache) != 0) {
		kg_tokcache_free(&thread_cache);
		thread_cache_failed = true;
	}
	return thread_cache;
}

void kg_tokcache_thread_free(void)
{
	if (thread_cache)
		(void)pthread_setspecific(thread_key, NULL);
	kg_tokcache_free(&thread_cache);
	thread_cache_failed = false;
}
