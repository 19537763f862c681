/* credcache.c - passwords verified once (see credcache.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keygate/credcache.h"
#include "keygate/hmac.h"

#define KG_CREDCACHE_SHARDS 16
#define KG_PROBE 8

struct slot {
	unsigned char digest[32];
	int64_t expires; /* 0: empty */
	uint64_t value;
	uint64_t user;   /* user_tag of the name: kg_credcache_forget finds a user's entries */
};

struct shard {
	pthread_mutex_t lock;
	struct slot *slots;
	size_t n;
};

struct kg_credcache {
	unsigned char key[32]; /* the HMAC key */
	int64_t ttl;
	struct shard shards[KG_CREDCACHE_SHARDS];
};

void kg_credcache_free(kg_credcache **pc)
{
	kg_credcache *c = *pc;
	if (!c)
		return;
	for (int i = 0; i < KG_CREDCACHE_SHARDS; i++) {
		if (!c->shards[i].slots)
			continue;
		pthread_mutex_destroy(&c->shards[i].lock);
		OPENSSL_cleanse(c->shards[i].slots, c->shards[i].n * sizeof(struct slot));
		free(c->shards[i].slots);
	}
	OPENSSL_cleanse(c->key, sizeof(c->key));
	free(c);
	*pc = NULL;
}

kg_err kg_credcache_new(size_t capacity, int64_t ttl_s, kg_credcache **out)
{
	kg_credcache *c = calloc(1, sizeof(*c));
	if (!c)
		return KG_ENOMEM;
	if (RAND_bytes(c->key, sizeof(c->key)) != 1) {
		free(c);
		return KG_EIO;
	}
	/* a quarter more slots than entries: with a bounded probe window a
	 * table near full would evict entries it still has room for */
	size_t per = (capacity + capacity / 4 + KG_CREDCACHE_SHARDS - 1) / KG_CREDCACHE_SHARDS;
	if (per < KG_PROBE)
		per = KG_PROBE;
	for (int i = 0; i < KG_CREDCACHE_SHARDS; i++) {
		if (!(c->shards[i].slots = calloc(per, sizeof(struct slot)))) {
			kg_credcache_free(&c);
			return KG_ENOMEM;
		}
		c->shards[i].n = per;
		pthread_mutex_init(&c->shards[i].lock, NULL);
	}
	c->ttl = ttl_s;
	*out = c;
	return KG_OK;
}

size_t kg_credcache_entry_size(void)
{
	return sizeof(struct slot);
}

/* HMAC(key, len(user) || user || password): the length keeps "ab"+"c" and
 * "a"+"bc" apart. */
static bool digest(const kg_credcache *c, kg_str user, kg_str password, unsigned char out[32])
{
	unsigned char head[1 + KG_CREDCACHE_MAX_USER];
	if (user.n > KG_CREDCACHE_MAX_USER)
		return false;
	head[0] = (unsigned char)user.n;
	memcpy(head + 1, user.p, user.n);
	bool ok = kg_hmac_sha256(c->key, head, 1 + user.n, password.p, password.n, out);
	OPENSSL_cleanse(head, sizeof(head));
	return ok;
}

/* 64 bits of HMAC(key, 0xff || user): tells a user's entries apart without
 * keeping the name. A collision only makes forget drop another user's entry,
 * which costs that user one more bcrypt check. */
static uint64_t user_tag(const kg_credcache *c, kg_str user)
{
	static const unsigned char mark = 0xff;
	unsigned char d[32];
	uint64_t v = 0;
	if (kg_hmac_sha256(c->key, &mark, 1, user.p, user.n, d))
		memcpy(&v, d, sizeof(v));
	OPENSSL_cleanse(d, sizeof(d));
	return v;
}

static struct shard *home(kg_credcache *c, const unsigned char d[32], size_t *start)
{
	uint64_t h;
	memcpy(&h, d, sizeof(h));
	struct shard *s = &c->shards[d[31] % KG_CREDCACHE_SHARDS];
	*start = (size_t)(h % s->n);
	return s;
}

bool kg_credcache_get(kg_credcache *c, kg_str user, kg_str password, int64_t now, uint64_t *value)
{
	unsigned char d[32];
	bool found = false;
	size_t start;
	if (!c || !digest(c, user, password, d))
		return false;
	struct shard *s = home(c, d, &start);
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < KG_PROBE; i++) {
		struct slot *sl = &s->slots[(start + i) % s->n];
		if (sl->expires > now && CRYPTO_memcmp(sl->digest, d, 32) == 0) {
			*value = sl->value;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	OPENSSL_cleanse(d, sizeof(d));
	return found;
}

void kg_credcache_put(kg_credcache *c, kg_str user, kg_str password, uint64_t value, int64_t now)
{
	unsigned char d[32];
	size_t start;
	if (!c || !digest(c, user, password, d))
		return;
	struct shard *s = home(c, d, &start);
	pthread_mutex_lock(&s->lock);
	struct slot *victim = NULL;
	for (size_t i = 0; i < KG_PROBE; i++) {
		struct slot *sl = &s->slots[(start + i) % s->n];
		if (CRYPTO_memcmp(sl->digest, d, 32) == 0 || sl->expires <= now) {
			victim = sl; /* the same credential again, or a free slot */
			break;
		}
		if (!victim || sl->expires < victim->expires)
			victim = sl;
	}
	memcpy(victim->digest, d, 32);
	victim->expires = now + c->ttl;
	victim->value = value;
	victim->user = user_tag(c, user);
	pthread_mutex_unlock(&s->lock);
	OPENSSL_cleanse(d, sizeof(d));
}

void kg_credcache_clear(kg_credcache *c)
{
	for (int i = 0; c && i < KG_CREDCACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_mutex_lock(&s->lock);
		OPENSSL_cleanse(s->slots, s->n * sizeof(struct slot));
		pthread_mutex_unlock(&s->lock);
	}
}

void kg_credcache_forget(kg_credcache *c, kg_str user)
{
	if (!c || user.n > KG_CREDCACHE_MAX_USER)
		return;
	uint64_t tag = user_tag(c, user);
	/* a user's entries are spread over every shard (the password picks the
	 * slot): a walk over all of them, as rare as the API that asks */
	for (int i = 0; i < KG_CREDCACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_mutex_lock(&s->lock);
		for (size_t j = 0; j < s->n; j++)
			if (s->slots[j].expires && s->slots[j].user == tag)
				OPENSSL_cleanse(&s->slots[j], sizeof(s->slots[j]));
		pthread_mutex_unlock(&s->lock);
	}
}
