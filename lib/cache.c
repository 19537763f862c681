/* cache.c - revoked ids and kv records in memory, kept current from the
 * store's change log (see cache.h for the contract).
 *
 * Two locks, two jobs:
 * - lock (rwlock) guards the tables and the counters: readers on the hot
 *   path, the writer only to link/unlink entries or swap whole tables.
 * - write_lock (mutex) lets one updater at a time talk to the store: refresh,
 *   reload, the write-throughs and prune. Without it a refresh could re-read
 *   a record, a write-through could then store and apply a newer value, and
 *   the refresh would overwrite it with the older one it read.
 * Updaters do all store I/O and allocation holding only write_lock, then take
 * the write lock briefly to apply; unlinked entries are freed after it is
 * released.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keygate/cache.h"

/* ---- SipHash-2-4 (Aumasson, Bernstein), from the reference description ---- */

/* One load (and a byte swap on a big-endian host), not eight byte loads:
 * a SipHash of 40 bytes spent half its instructions in a byte loop here. */
static inline uint64_t load_le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static inline void sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl(v[1], 13);
	v[1] ^= v[0];
	v[0] = rotl(v[0], 32);
	v[2] += v[3];
	v[3] = rotl(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = rotl(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = rotl(v[1], 17);
	v[1] ^= v[2];
	v[2] = rotl(v[2], 32);
}

/* SipHash-c-d: c rounds per 8-byte block, d to finish. Inlined into each
 * variant below, so the round counts are constants. */
static inline uint64_t siphash(const unsigned char key[16], const void *in, size_t len, int c, int d)
{
	const unsigned char *p = in;
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v[4] = { 0x736f6d6570736575ULL ^ k0, 0x646f72616e646f6dULL ^ k1, 0x6c7967656e657261ULL ^ k0,
		          0x7465646279746573ULL ^ k1 };
	uint64_t m, b = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		m = load_le64(p + i);
		v[3] ^= m;
		for (int r = 0; r < c; r++)
			sipround(v);
		v[0] ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v[3] ^= b;
	for (int r = 0; r < c; r++)
		sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int r = 0; r < d; r++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t kg__siphash24(const unsigned char key[16], const void *in, size_t len)
{
	return siphash(key, in, len, 2, 4);
}

uint64_t kg__siphash13(const unsigned char key[16], const void *in, size_t len)
{
	return siphash(key, in, len, 1, 3);
}

/* ---- a chained hash table of byte-string keys ---- */

struct entry {
	struct entry *next;
	uint64_t hash;
	int64_t expires_at; /* revoked set */
	size_t klen, vlen;
	unsigned char data[]; /* klen key bytes, then vlen value bytes */
};

struct table {
	struct entry **buckets;
	size_t mask; /* bucket count - 1; the count is a power of two */
	size_t n;
	bool is_secret; /* wipe values when freeing */
};

#define TABLE_MIN_BUCKETS 64

static struct entry *entry_new(uint64_t hash, const void *k, size_t klen, const void *v, size_t vlen,
                               int64_t expires_at)
{
	if (klen > SIZE_MAX / 2 - sizeof(struct entry) || vlen > SIZE_MAX / 2 - klen - sizeof(struct entry))
		return NULL;
	struct entry *e = malloc(sizeof(*e) + klen + vlen);
	if (!e)
		return NULL;
	e->next = NULL;
	e->hash = hash;
	e->expires_at = expires_at;
	e->klen = klen;
	e->vlen = vlen;
	if (klen)
		memcpy(e->data, k, klen);
	if (vlen)
		memcpy(e->data + klen, v, vlen);
	return e;
}

/* Frees a list linked through next. */
static void entries_free(struct entry *e, bool is_secret)
{
	while (e) {
		struct entry *next = e->next;
		if (is_secret)
			OPENSSL_cleanse(e->data, e->klen + e->vlen);
		free(e);
		e = next;
	}
}

static kg_err table_init(struct table *t, bool is_secret)
{
	t->buckets = calloc(TABLE_MIN_BUCKETS, sizeof(*t->buckets));
	if (!t->buckets)
		return KG_ENOMEM;
	t->mask = TABLE_MIN_BUCKETS - 1;
	t->n = 0;
	t->is_secret = is_secret;
	return KG_OK;
}

static void table_free(struct table *t)
{
	if (!t->buckets)
		return;
	for (size_t i = 0; i <= t->mask; i++)
		entries_free(t->buckets[i], t->is_secret);
	free(t->buckets);
	t->buckets = NULL;
	t->n = 0;
}

static struct entry **table_slot(const struct table *t, uint64_t hash, const void *k, size_t klen)
{
	struct entry **pp = &t->buckets[hash & t->mask];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == hash && (*pp)->klen == klen && memcmp((*pp)->data, k, klen) == 0)
			break;
	return pp;
}

static struct entry *table_find(const struct table *t, uint64_t hash, const void *k, size_t klen)
{
	return *table_slot(t, hash, k, klen);
}

/* Doubles the bucket array; on allocation failure the table keeps working
 * with longer chains. */
static void table_grow(struct table *t)
{
	size_t count = (t->mask + 1) * 2;
	if (count > SIZE_MAX / sizeof(struct entry *))
		return;
	struct entry **b = calloc(count, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i <= t->mask; i++) {
		struct entry *e = t->buckets[i];
		while (e) {
			struct entry *next = e->next;
			e->next = b[e->hash & (count - 1)];
			b[e->hash & (count - 1)] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->mask = count - 1;
}

/* Links e in; returns the entry it replaced (unlinked) or NULL. */
static struct entry *table_put(struct table *t, struct entry *e)
{
	struct entry **pp = table_slot(t, e->hash, e->data, e->klen);
	struct entry *old = *pp;
	if (old) {
		e->next = old->next;
		*pp = e;
		old->next = NULL;
		return old;
	}
	e->next = NULL;
	*pp = e;
	if (++t->n > t->mask + 1)
		table_grow(t);
	return NULL;
}

/* Unlinks and returns the entry for k, or NULL. */
static struct entry *table_remove(struct table *t, uint64_t hash, const void *k, size_t klen)
{
	struct entry **pp = table_slot(t, hash, k, klen);
	struct entry *e = *pp;
	if (e) {
		*pp = e->next;
		e->next = NULL;
		t->n--;
	}
	return e;
}

/* ---- the cache ---- */

struct kg_cache {
	kg_store *store;        /* borrowed */
	unsigned char seed[16]; /* SipHash key */

	pthread_rwlock_t lock; /* guards the fields up to write_lock */
	struct table revoked;  /* id -> expires_at */
	struct table kv;       /* ns "\0" key -> value; ns never holds a NUL */
	int64_t last_seq;
	/* atomic: bumped after every change that may revoke (see
	 * kg_cache_revoked_gen); readers hold no lock for it */
	uint64_t revoked_gen;
	uint64_t kv_gen; /* atomic: the same for the records kept here (kg_cache_kv_gen) */
	uint64_t refreshes, reloads;

	pthread_mutex_t write_lock; /* one updater at a time; guards the fields below */
	int64_t refreshed_at;       /* when the cache last caught up with the store */
	int64_t min_expires;        /* no revocation expires before this; prune skips until then */
	/* namespaces whose records are not kept here (kg_cache_new_unstored,
	 * kg_cache_watch): only passed on to their watchers */
	struct {
		size_t n;
		char p[KG_STORE_MAX_KEY_BYTES];
	} unstored[KG_CACHE_UNSTORED_MAX];
	size_t nunstored;
	struct kg_cache_watcher *watches;
};

struct kg_cache_watcher {
	struct kg_cache_watcher *next;
	kg_cache_watch_fn fn;
	void *data;
	size_t nsn;
	char ns[KG_STORE_MAX_KEY_BYTES];
};

/* Called holding write_lock (or before the cache is shared). */
static bool is_unstored(const kg_cache *c, kg_str ns)
{
	for (size_t i = 0; i < c->nunstored; i++)
		if (c->unstored[i].n == ns.n && memcmp(c->unstored[i].p, ns.p, ns.n) == 0)
			return true;
	return false;
}

static bool is_watched(const kg_cache *c, kg_str ns)
{
	for (const struct kg_cache_watcher *w = c->watches; w; w = w->next)
		if (w->nsn == ns.n && memcmp(w->ns, ns.p, ns.n) == 0)
			return true;
	return false;
}

/* Tells the watchers of ns (every watcher, for the RESET events); called
 * holding write_lock, which is what keeps the events in order. */
static void notify(kg_cache *c, kg_str ns, enum kg_cache_event ev, kg_str key, kg_str value)
{
	bool is_reset = ev == KG_CACHE_RESET_BEGIN || ev == KG_CACHE_RESET_END;
	for (struct kg_cache_watcher *w = c->watches; w; w = w->next)
		if (is_reset || (w->nsn == ns.n && memcmp(w->ns, ns.p, ns.n) == 0))
			w->fn(w->data, ev, key, value);
}

/* Joins ns and key the way the kv table keys them; buf holds
 * 2 * KG_STORE_MAX_KEY_BYTES + 1 bytes. */
#define KV_KEY_MAX (2 * KG_STORE_MAX_KEY_BYTES + 1)

/* The table key of (ns, key) in buf ("ns\0key"), and its hash under c's seed. */
static kg_err kv_key(const kg_cache *c, kg_str ns, kg_str key, unsigned char *buf, size_t *len, uint64_t *hash)
{
	kg_err err = kg__store_check_key(ns, false);
	if (!err)
		err = kg__store_check_key(key, true);
	if (err)
		return err;
	memcpy(buf, ns.p, ns.n);
	buf[ns.n] = '\0';
	if (key.n)
		memcpy(buf + ns.n + 1, key.p, key.n);
	*len = ns.n + 1 + key.n;
	*hash = kg__siphash24(c->seed, buf, *len);
	return KG_OK;
}

static struct entry *kv_entry_new(kg_cache *c, kg_str ns, kg_str key, kg_str value, kg_err *err)
{
	unsigned char k[KV_KEY_MAX];
	size_t klen;
	uint64_t h;
	if ((*err = kv_key(c, ns, key, k, &klen, &h)))
		return NULL;
	if ((*err = kg__store_check_value(value)))
		return NULL;
	struct entry *e = entry_new(h, k, klen, value.p, value.n, 0);
	*err = e ? KG_OK : KG_ENOMEM;
	return e;
}

static int64_t now_seconds(void)
{
	return (int64_t)time(NULL);
}

static bool parse_i64(kg_str s, int64_t *out)
{
	bool is_negative = s.n > 0 && s.p[0] == '-';
	kg_str digits = is_negative ? (kg_str){ s.p + 1, s.n - 1 } : s;
	unsigned long long v;
	if (kg_str_to_u64(digits, is_negative ? (unsigned long long)INT64_MAX + 1 : INT64_MAX, &v) != KG_OK)
		return false;
	if (!is_negative)
		*out = (int64_t)v;
	else
		*out = v == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	return true;
}

/* A full load into fresh tables, outside any lock of the cache. */
struct load {
	kg_cache *c;
	struct table revoked, kv;
	int64_t seq;
	int64_t min_expires;
};

static kg_err load_revoked_cb(void *data, kg_str id, kg_str value)
{
	struct load *l = data;
	int64_t expires_at;
	if (!parse_i64(value, &expires_at))
		return KG_ESTORE;
	struct entry *e = entry_new(kg__siphash24(l->c->seed, id.p, id.n), id.p, id.n, NULL, 0, expires_at);
	if (!e)
		return KG_ENOMEM;
	entries_free(table_put(&l->revoked, e), false);
	if (expires_at < l->min_expires)
		l->min_expires = expires_at;
	return KG_OK;
}

static kg_err load_kv_cb(void *data, kg_str ns, kg_str key, kg_str value)
{
	struct load *l = data;
	kg_err err;
	if (is_unstored(l->c, ns)) {
		notify(l->c, ns, KG_CACHE_PUT, key, value);
		return KG_OK;
	}
	struct entry *e = kv_entry_new(l->c, ns, key, value, &err);
	if (!e)
		return err;
	entries_free(table_put(&l->kv, e), true);
	return KG_OK;
}

static void load_free(struct load *l)
{
	table_free(&l->revoked);
	table_free(&l->kv);
}

static kg_err load(kg_cache *c, struct load *l)
{
	kg_err err;
	*l = (struct load){ .c = c, .min_expires = INT64_MAX };
	/* position first: changes that land while we read get replayed later,
	 * which is harmless because replay re-reads the store's current state */
	if ((err = kg_store_changes_last(c->store, &l->seq)))
		return err;
	if ((err = table_init(&l->revoked, false)) || (err = table_init(&l->kv, true)))
		goto fail;
	if ((err = kg_store_revoked_scan(c->store, load_revoked_cb, l)))
		goto fail;
	notify(c, KG_STR_NULL, KG_CACHE_RESET_BEGIN, KG_STR_NULL, KG_STR_NULL);
	if ((err = kg_store_kv_scan_all(c->store, load_kv_cb, l)))
		goto fail;
	notify(c, KG_STR_NULL, KG_CACHE_RESET_END, KG_STR_NULL, KG_STR_NULL);
	return KG_OK;
fail:
	load_free(l);
	return err;
}

/* After the revoked set gained ids (or may have: a full load): those who
 * remember what they checked against it (the token caches) see a new
 * number. Release: whoever reads the new number also sees the new set. */
static void revoked_changed(kg_cache *c)
{
	__atomic_add_fetch(&c->revoked_gen, 1, __ATOMIC_RELEASE);
}

uint64_t kg_cache_revoked_gen(kg_cache *c)
{
	return c ? __atomic_load_n(&c->revoked_gen, __ATOMIC_ACQUIRE) : 0;
}

/* After a kv record kept here changed (or may have: a full load), as
 * revoked_changed. */
static void kv_changed(kg_cache *c)
{
	__atomic_add_fetch(&c->kv_gen, 1, __ATOMIC_RELEASE);
}

uint64_t kg_cache_kv_gen(kg_cache *c)
{
	return c ? __atomic_load_n(&c->kv_gen, __ATOMIC_ACQUIRE) : 0;
}

/* Swaps a load in; called holding write_lock. */
static void load_install(kg_cache *c, struct load *l)
{
	struct table old_revoked, old_kv;
	pthread_rwlock_wrlock(&c->lock);
	old_revoked = c->revoked;
	old_kv = c->kv;
	c->revoked = l->revoked;
	c->kv = l->kv;
	c->last_seq = l->seq;
	c->reloads++;
	pthread_rwlock_unlock(&c->lock);
	revoked_changed(c);
	kv_changed(c);
	c->min_expires = l->min_expires;
	c->refreshed_at = now_seconds();
	table_free(&old_revoked);
	table_free(&old_kv);
}

static kg_err reload_locked(kg_cache *c)
{
	struct load l;
	kg_err err = load(c, &l);
	if (!err)
		load_install(c, &l);
	return err;
}

kg_err kg_cache_new(kg_store *store, kg_cache **out)
{
	return kg_cache_new_unstored(store, NULL, out);
}

kg_err kg_cache_new_unstored(kg_store *store, const char *const *unstored, kg_cache **out)
{
	kg_cache *c = NULL;
	pthread_rwlockattr_t attr;
	kg_err err;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return KG_ENOMEM;
	c->store = store;
	if (RAND_bytes(c->seed, sizeof(c->seed)) != 1) {
		free(c);
		return KG_EIO;
	}
	/* glibc's default rwlock lets a steady stream of readers starve the
	 * writer; the hot path is exactly such a stream */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&c->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&c->write_lock, NULL);
	for (size_t i = 0; unstored && unstored[i]; i++) {
		kg_str ns = kg_str_c(unstored[i]);
		if (c->nunstored == KG_CACHE_UNSTORED_MAX || kg__store_check_key(ns, false) != KG_OK) {
			kg_cache_free(&c);
			return KG_EINVAL;
		}
		memcpy(c->unstored[c->nunstored].p, ns.p, ns.n);
		c->unstored[c->nunstored++].n = ns.n;
	}

	struct load l;
	if ((err = load(c, &l))) {
		kg_cache_free(&c);
		return err;
	}
	c->revoked = l.revoked;
	c->kv = l.kv;
	c->last_seq = l.seq;
	c->reloads = 1;
	c->min_expires = l.min_expires;
	c->refreshed_at = now_seconds();
	*out = c;
	return KG_OK;
}

void kg_cache_free(kg_cache **cp)
{
	kg_cache *c = cp ? *cp : NULL;
	if (!c)
		return;
	table_free(&c->revoked);
	table_free(&c->kv);
	while (c->watches) {
		struct kg_cache_watcher *w = c->watches;
		c->watches = w->next;
		free(w);
	}
	pthread_rwlock_destroy(&c->lock);
	pthread_mutex_destroy(&c->write_lock);
	OPENSSL_cleanse(c->seed, sizeof(c->seed));
	free(c);
	*cp = NULL;
}

bool kg_cache_is_revoked(kg_cache *c, kg_str id)
{
	/* ids the store refuses can never have been revoked */
	if (kg__store_check_key(id, false) != KG_OK)
		return false;
	uint64_t h = kg__siphash24(c->seed, id.p, id.n);
	pthread_rwlock_rdlock(&c->lock);
	bool is_revoked = table_find(&c->revoked, h, id.p, id.n) != NULL;
	pthread_rwlock_unlock(&c->lock);
	return is_revoked;
}

kg_err kg_cache_kv_get(kg_cache *c, kg_str ns, kg_str key, kg_buf *out)
{
	unsigned char k[KV_KEY_MAX];
	size_t klen;
	uint64_t h;
	kg_err err = kv_key(c, ns, key, k, &klen, &h);
	if (err)
		return err;
	pthread_rwlock_rdlock(&c->lock);
	const struct entry *e = table_find(&c->kv, h, k, klen);
	if (e) {
		kg_buf_clear(out);
		err = kg_buf_append(out, e->data + e->klen, e->vlen);
	} else {
		err = KG_ENOENT;
	}
	pthread_rwlock_unlock(&c->lock);
	return err;
}

/* ---- refresh: replaying the change log ---- */

/* One re-read record: e replaces the table's entry, or, when is_absent, the
 * entry with e's key is removed (e then only carries the key). */
struct update {
	struct table *t;
	struct entry *e;
	bool is_absent;
	bool is_watched; /* of an unstored namespace: for its watchers only */
};

struct replay {
	kg_cache *c;
	struct update *v;
	size_t n, cap;
};

static kg_err replay_push(struct replay *r, struct update u)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct update *v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return KG_ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = u;
	return KG_OK;
}

static void replay_free(struct replay *r)
{
	for (size_t i = 0; i < r->n; i++)
		entries_free(r->v[i].e, r->v[i].t->is_secret);
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
}

/* Runs inside changes_since, with the store locked: it only records which
 * keys changed (as key-only entries); the store is read afterwards. */
static kg_err replay_collect_cb(void *data, const struct kg_change *ch)
{
	struct replay *r = data;
	kg_cache *c = r->c;
	struct update u = { .is_absent = true };
	kg_err err;

	if (r->n >= KG_CACHE_REPLAY_MAX)
		return KG_ETOOBIG;
	/* A row naming a key the store could not hold describes nothing we
	 * could have cached; skipping it keeps one bad row from stopping every
	 * later refresh. */
	switch (ch->op) {
	case KG_CHANGE_REVOKE:
		if (kg__store_check_key(ch->key, false) != KG_OK)
			return KG_OK;
		u.t = &c->revoked;
		u.e = entry_new(kg__siphash24(c->seed, ch->key.p, ch->key.n), ch->key.p, ch->key.n, NULL, 0, 0);
		if (!u.e)
			return KG_ENOMEM;
		break;
	case KG_CHANGE_PUT:
	case KG_CHANGE_DEL:
		u.t = &c->kv;
		if (is_unstored(c, ch->ns)) {
			if (!is_watched(c, ch->ns))
				return KG_OK; /* nobody keeps it */
			u.is_watched = true;
		}
		if (!(u.e = kv_entry_new(c, ch->ns, ch->key, KG_STR(""), &err)))
			return err == KG_ENOMEM ? err : KG_OK;
		break;
	default:
		return KG_OK; /* an operation this cache does not keep */
	}
	if ((err = replay_push(r, u)))
		entries_free(u.e, false);
	return err;
}

/* Replaces each key-only entry with the store's current state of that key. */
static kg_err replay_read(struct replay *r, kg_buf *value)
{
	kg_cache *c = r->c;
	kg_err err = KG_OK;
	for (size_t i = 0; i < r->n && !err; i++) {
		struct update *u = &r->v[i];
		struct entry *e = u->e;
		if (u->t == &c->revoked) {
			int64_t expires_at;
			err = kg_store_revoked_get(c->store, (kg_str){ (const char *)e->data, e->klen }, &expires_at);
			if (!err) {
				e->expires_at = expires_at;
				u->is_absent = false;
			}
		} else {
			/* ns ends at the NUL that kv_key put in */
			size_t nsn = (size_t)((const unsigned char *)memchr(e->data, '\0', e->klen) - e->data);
			kg_str ns = { (const char *)e->data, nsn };
			kg_str key = { (const char *)e->data + nsn + 1, e->klen - nsn - 1 };
			err = kg_store_kv_get(c->store, ns, key, value);
			if (!err) {
				struct entry *full = entry_new(e->hash, e->data, e->klen, value->p, value->n, 0);
				if (!full) {
					err = KG_ENOMEM;
					break;
				}
				entries_free(e, false);
				u->e = full;
				u->is_absent = false;
			}
		}
		if (err == KG_ENOENT)
			err = KG_OK; /* deleted, or pruned since: remove it here too */
	}
	return err;
}

/* Applies the updates and moves the displaced entries back into r so
 * replay_free releases them after the write lock is gone. */
static void replay_apply(kg_cache *c, struct replay *r, int64_t seq)
{
	bool is_revoking = false, is_kv = false;
	pthread_rwlock_wrlock(&c->lock);
	for (size_t i = 0; i < r->n; i++) {
		struct update *u = &r->v[i];
		if (u->is_watched)
			continue; /* passed on by replay_notify */
		if (u->t == &c->kv)
			is_kv = true;
		if (u->is_absent) {
			struct entry *gone = table_remove(u->t, u->e->hash, u->e->data, u->e->klen);
			u->e->next = gone;
		} else {
			struct entry *e = u->e;
			u->e = table_put(u->t, e);
			if (u->t == &c->revoked && e->expires_at < c->min_expires)
				c->min_expires = e->expires_at;
			if (u->t == &c->revoked)
				is_revoking = true;
		}
	}
	c->last_seq = seq;
	c->refreshes++;
	pthread_rwlock_unlock(&c->lock);
	if (is_revoking)
		revoked_changed(c);
	if (is_kv)
		kv_changed(c);
}

/* Passes the re-read records of unstored namespaces to their watchers
 * (holding write_lock). */
static void replay_notify(kg_cache *c, const struct replay *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct update *u = &r->v[i];
		if (!u->is_watched)
			continue;
		const struct entry *e = u->e;
		size_t nsn = (size_t)((const unsigned char *)memchr(e->data, '\0', e->klen) - e->data);
		kg_str ns = { (const char *)e->data, nsn };
		kg_str key = { (const char *)e->data + nsn + 1, e->klen - nsn - 1 };
		if (u->is_absent)
			notify(c, ns, KG_CACHE_DEL, key, KG_STR_NULL);
		else
			notify(c, ns, KG_CACHE_PUT, key, (kg_str){ (const char *)e->data + e->klen, e->vlen });
	}
}

kg_err kg_cache_refresh(kg_cache *c)
{
	struct replay r = { .c = c };
	kg_buf value = { 0 };
	int64_t seq = 0;
	kg_err err;

	pthread_mutex_lock(&c->write_lock);
	if (now_seconds() - c->refreshed_at > KG_STORE_CHANGES_KEEP_SECONDS / 2) {
		err = reload_locked(c);
		goto out;
	}
	err = kg_store_changes_since(c->store, c->last_seq, replay_collect_cb, &r, &seq);
	if (err == KG_ETOOBIG) {
		err = reload_locked(c);
		goto out;
	}
	if (!err)
		err = replay_read(&r, &value);
	if (!err) {
		replay_apply(c, &r, seq);
		replay_notify(c, &r);
		c->refreshed_at = now_seconds();
	}
out:
	pthread_mutex_unlock(&c->write_lock);
	replay_free(&r);
	kg_buf_free(&value, true);
	return err;
}

kg_err kg_cache_reload(kg_cache *c)
{
	pthread_mutex_lock(&c->write_lock);
	kg_err err = reload_locked(c);
	pthread_mutex_unlock(&c->write_lock);
	return err;
}

/* ---- write-through ---- */

kg_err kg_cache_revoke(kg_cache *c, kg_str id, int64_t expires_at)
{
	kg_err err = kg__store_check_key(id, false);
	if (err)
		return err;
	/* allocate before writing: once the store has it, only memory is left to do */
	struct entry *e = entry_new(kg__siphash24(c->seed, id.p, id.n), id.p, id.n, NULL, 0, expires_at);
	if (!e)
		return KG_ENOMEM;
	pthread_mutex_lock(&c->write_lock);
	err = kg_store_revoke(c->store, id, expires_at);
	if (!err) {
		pthread_rwlock_wrlock(&c->lock);
		struct entry *old = table_find(&c->revoked, e->hash, e->data, e->klen);
		if (old) {
			/* the store keeps the later expiry; so do we */
			if (old->expires_at < expires_at)
				old->expires_at = expires_at;
		} else {
			table_put(&c->revoked, e);
			e = NULL;
		}
		pthread_rwlock_unlock(&c->lock);
		revoked_changed(c);
		if (expires_at < c->min_expires)
			c->min_expires = expires_at;
	}
	pthread_mutex_unlock(&c->write_lock);
	entries_free(e, false);
	return err;
}

kg_err kg_cache_kv_put(kg_cache *c, kg_str ns, kg_str key, kg_str value, bool durable)
{
	kg_err err;
	struct entry *e = kv_entry_new(c, ns, key, value, &err);
	if (!e)
		return err;
	pthread_mutex_lock(&c->write_lock);
	err = kg_store_kv_put(c->store, ns, key, value, durable);
	if (!err && is_unstored(c, ns)) {
		notify(c, ns, KG_CACHE_PUT, key, value);
	} else if (!err) {
		pthread_rwlock_wrlock(&c->lock);
		struct entry *old = table_put(&c->kv, e);
		pthread_rwlock_unlock(&c->lock);
		kv_changed(c);
		e = old;
	}
	pthread_mutex_unlock(&c->write_lock);
	entries_free(e, true);
	return err;
}

kg_err kg_cache_kv_del(kg_cache *c, kg_str ns, kg_str key)
{
	unsigned char k[KV_KEY_MAX];
	size_t klen;
	uint64_t h;
	kg_err err = kv_key(c, ns, key, k, &klen, &h);
	if (err)
		return err;
	struct entry *gone = NULL;
	pthread_mutex_lock(&c->write_lock);
	err = kg_store_kv_del(c->store, ns, key);
	/* ENOENT: absent in the store, so it must not linger here either */
	if ((!err || err == KG_ENOENT) && is_unstored(c, ns)) {
		notify(c, ns, KG_CACHE_DEL, key, KG_STR_NULL);
	} else if (!err || err == KG_ENOENT) {
		pthread_rwlock_wrlock(&c->lock);
		gone = table_remove(&c->kv, h, k, klen);
		pthread_rwlock_unlock(&c->lock);
		kv_changed(c);
	}
	pthread_mutex_unlock(&c->write_lock);
	entries_free(gone, true);
	return err;
}

kg_err kg_cache_prune(kg_cache *c, int64_t now)
{
	struct entry *gone = NULL;
	pthread_mutex_lock(&c->write_lock);
	kg_err err = kg_store_prune(c->store, now, NULL);
	/* min_expires lets the common case (nothing expired yet) skip the walk
	 * and so the write lock */
	if (now > c->min_expires) {
		int64_t min_expires = INT64_MAX;
		pthread_rwlock_wrlock(&c->lock);
		struct table *t = &c->revoked;
		for (size_t i = 0; i <= t->mask; i++) {
			struct entry **pp = &t->buckets[i];
			while (*pp) {
				struct entry *e = *pp;
				if (e->expires_at < now) {
					*pp = e->next;
					e->next = gone;
					gone = e;
					t->n--;
				} else {
					if (e->expires_at < min_expires)
						min_expires = e->expires_at;
					pp = &e->next;
				}
			}
		}
		pthread_rwlock_unlock(&c->lock);
		c->min_expires = min_expires;
	}
	pthread_mutex_unlock(&c->write_lock);
	entries_free(gone, false);
	return err;
}

void kg_cache_stats(kg_cache *c, struct kg_cache_stats *out)
{
	pthread_rwlock_rdlock(&c->lock);
	*out = (struct kg_cache_stats){
		.revoked = c->revoked.n,
		.kv = c->kv.n,
		.last_seq = c->last_seq,
		.refreshes = c->refreshes,
		.reloads = c->reloads,
	};
	pthread_rwlock_unlock(&c->lock);
}

/* ---- watchers of unstored namespaces ---- */

static kg_err watch_scan_cb(void *data, kg_str key, kg_str value)
{
	struct kg_cache_watcher *w = data;
	w->fn(w->data, KG_CACHE_PUT, key, value);
	return KG_OK;
}

kg_err kg_cache_watch(kg_cache *c, kg_str ns, kg_cache_watch_fn fn, void *data, kg_cache_watcher **out)
{
	*out = NULL;
	kg_err err = kg__store_check_key(ns, false);
	if (err)
		return err;
	struct kg_cache_watcher *w = calloc(1, sizeof(*w));
	if (!w)
		return KG_ENOMEM;
	w->fn = fn;
	w->data = data;
	w->nsn = ns.n;
	memcpy(w->ns, ns.p, ns.n);
	struct entry *gone = NULL;
	pthread_mutex_lock(&c->write_lock);
	if (!is_unstored(c, ns)) {
		if (c->nunstored == KG_CACHE_UNSTORED_MAX) {
			err = KG_ETOOBIG;
			goto out;
		}
		memcpy(c->unstored[c->nunstored].p, ns.p, ns.n);
		c->unstored[c->nunstored++].n = ns.n;
		/* from now on its records live with the watcher: drop ours */
		pthread_rwlock_wrlock(&c->lock);
		for (size_t i = 0; i <= c->kv.mask; i++) {
			struct entry **pp = &c->kv.buckets[i];
			while (*pp) {
				struct entry *e = *pp;
				if (e->klen > ns.n && e->data[ns.n] == '\0' && memcmp(e->data, ns.p, ns.n) == 0) {
					*pp = e->next;
					e->next = gone;
					gone = e;
					c->kv.n--;
				} else {
					pp = &e->next;
				}
			}
		}
		pthread_rwlock_unlock(&c->lock);
	}
	/* under write_lock: no change can land between the scan and the link */
	fn(data, KG_CACHE_RESET_BEGIN, KG_STR_NULL, KG_STR_NULL);
	if ((err = kg_store_kv_scan(c->store, ns, watch_scan_cb, w)))
		goto out;
	fn(data, KG_CACHE_RESET_END, KG_STR_NULL, KG_STR_NULL);
	w->next = c->watches;
	c->watches = w;
	*out = w;
	w = NULL;
out:
	pthread_mutex_unlock(&c->write_lock);
	entries_free(gone, true);
	free(w);
	return err;
}

void kg_cache_unwatch(kg_cache *c, kg_cache_watcher **pw)
{
	struct kg_cache_watcher *w = pw ? *pw : NULL;
	if (!w)
		return;
	pthread_mutex_lock(&c->write_lock);
	for (struct kg_cache_watcher **pp = &c->watches; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	pthread_mutex_unlock(&c->write_lock);
	free(w);
	*pw = NULL;
}
