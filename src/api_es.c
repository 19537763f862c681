/* api_es.c - Elasticsearch's security APIs, brought back in front of any
 * HTTP API:
 *   /_security/api_key ...     create, get, invalidate, update, bulk update
 *   /_security/_query/api_key  query
 *   /_security/_authenticate   who am I
 *   /_security/user ...        the native realm's users
 *   /_security/role ...        the native realm's roles
 *   /_security/privilege ...   application privileges, the builtin list
 *   /_security/user/_has_privileges, _privileges, and the cache APIs
 * and two authenticators for every other route: "Authorization: ApiKey
 * base64(id:key)", and Basic for Elasticsearch's users (elastic, whose
 * password is the admin password; the native realm; an ES config
 * directory's file realm). What a key or user may do upstream comes from the
 * application privileges of application api_key.application (HTTP methods on
 * path patterns).
 *
 * Reading requests, validating role descriptors, running queries and
 * writing ES's bodies are lib/es*.c's (pure, unit-tested); this file keeps
 * the state, moves the bytes, and runs store I/O and bcrypt on the thread
 * pool. Keys, users and roles are kv records of the store (namespaces
 * es.api_key, es.user, es.role); the event loops read users and roles
 * through the cache, and keys through this file's index of them (no
 * documents: see KEY_STRIPES), which the cache feeds with every change of
 * es.api_key as it replays the store's change log, so a key invalidated on
 * one instance is refused by every instance within a second. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "keygate/cache.h"
#include "keygate/credcache.h"
#include "keygate/es.h"
#include "keygate/es_priv.h"
#include "keygate/es_query.h"
#include "keygate/es_realm.h"
#include "keygate/es_role.h"
#include "keygate/log.h"
#include "keygate/password.h"
#include "keygate/store.h"
#include "keygate/tokcache.h"
#include "keygate/users.h"
#include "conn.h"
#include "es.h"
#include "kg.h"
#include "slow.h"

#define NS_KEY KG_STR("es.api_key")
#define NS_USER KG_STR("es.user")
#define NS_ROLE KG_STR("es.role")
#define NS_PRIV KG_STR("es.privilege") /* "<application>/<name>" -> es_priv.h's document */
#define NS_LAST_USED KG_STR("es.last_used") /* id -> epoch ms (decimal): kept apart, so a use never rewrites the key */
#define ELASTIC "elastic"
#define CLUSTER_NAME "keygate"

/* The index of every API key, for the hot path: id -> the secret's salt and
 * MAC (decoded), expiration, invalidated, the owner and the effective
 * permission. It holds no document: owners and compiled permissions are
 * interned (a million keys made by one user with one set of role
 * descriptors share one of each), so a key costs its entry and its share of
 * the bucket array, and checking one costs a lookup, never a parse or a
 * compile. It is built from the store when the module starts and kept
 * current by the cache's watcher (on_key_change): own writes (the cache
 * tells the watcher before kg_cache_kv_put returns) and other instances'
 * (the change-log replay) alike, in the order the cache applies them.
 *
 * Locks: bucket b is guarded by stripes[b % KEY_STRIPES] (readers: the
 * whole check, HMAC included, under its read lock); growing the bucket
 * array holds every stripe. index_lock lets one writer at a time change the
 * index (the cache already serialises its watcher; this keeps the index
 * safe on its own). Lock order: stripe, then an intern table's lock.
 *
 * key_gen grows on every change of the index (a key put, replaced or
 * deleted, a full load's sweep), bumped while the changed entry's stripe is
 * write-locked and before an entry leaves is freed: a worker that finds
 * key_gen unchanged under a stripe's read lock knows every entry of that
 * stripe it saw under the same key_gen is still there, as it was. The
 * workers' caches of presented keys (lib/tokcache.c) rest on that. */
#define KEY_STRIPES 64
#define KEY_BUCKETS_MIN 1024
/* used_bits has one 64-bit word per 64 buckets, and bucket w * 64 + b is
 * under stripe b (kg__es_last_used_take relies on both) */
_Static_assert(KEY_STRIPES == 64 && KEY_BUCKETS_MIN % 64 == 0, "used_bits words are stripes");

/* An owner (username, realm, realm_type) or a compiled permission, shared by
 * every key that has it. */
struct shared {
	struct shared *next;
	struct interns *home;
	uint64_t hash;
	size_t refs;      /* guarded by home->lock */
	kg_es_perm *perm; /* a permission: compiled; an owner: NULL */
	size_t n;
	char text[];      /* a permission: the compact JSON of [role_descriptors, limited_by];
	                   * an owner: username NUL realm NUL realm_type NUL */
};

struct interns {
	pthread_mutex_t lock;
	struct shared **buckets;
	size_t mask, n;
	const unsigned char *seed;
};

/* One key. */
struct key_ent {
	struct key_ent *next;
	struct shared *owner, *perm;
	int64_t expiration_ms; /* 0: never */
	int64_t last_used_ms;  /* atomic: last use not yet taken (kg__es_last_used_take); 0: none */
	uint32_t epoch;        /* the full load that last saw it */
	bool has_hash;         /* salt and mac hold a well-formed stored hash */
	bool is_invalidated;
	uint8_t idn;
	unsigned char salt[16], mac[32]; /* kg_es_secret_hash form, decoded */
	char id[];
};

/* Uses of keys deleted or replaced before kg__es_last_used_take saw them. */
#define LAST_USED_PENDING_MAX 4096
struct last_used {
	char id[KG_ES_ID_MAX + 1];
	int64_t ms;
};

struct kg_es {
	struct kg_authenticator apikey;
	struct kg_authenticator basic;
	const struct kg_authenticator *users_basic; /* the users file's, for names no realm knows */
	struct kg_cache *cache;
	char admin_hash[128];
	char dummy_hash[64]; /* checked for unknown users: absence costs what presence costs */
	char app[128];       /* api_key.application */
	int64_t max_expiration_ms, retention_ms;
	kg_credcache *creds; /* verified passwords of ES users; value: fingerprint of the hash */
	kg_es_file_realm *file;
	json_t *file_roles;  /* the file realm's roles, normalised */
	unsigned char slot_key[16];          /* SipHash key of the index and the intern tables */
	pthread_rwlock_t stripes[KEY_STRIPES];
	struct key_ent **buckets;            /* the index; see KEY_STRIPES */
	size_t mask;                         /* bucket count - 1 (a power of two >= KEY_STRIPES) */
	uint64_t *used_bits;                 /* atomic words; bit i: bucket i may hold a use not yet
	                                      * taken (kg__es_last_used_take walks only those) */
	pthread_mutex_t index_lock;          /* one writer at a time; guards nkeys, epoch */
	size_t nkeys;
	uint32_t epoch;
	uint64_t key_gen;                    /* atomic; see KEY_STRIPES */
	uint64_t cache_owner;                /* in the workers' token caches */
	uint64_t view_owner;                 /* of the workers' user views (uview_get) */
	struct interns owners, perms;
	kg_cache_watcher *watch;             /* of es.api_key */
	pthread_rwlock_t privs_lock;         /* guards privs */
	json_t *privs;                       /* es.privilege as kg_es_privs_set_add's set (the resolver's) */
	json_t *privs_loading;               /* the set a reset is filling (the watcher's own) */
	kg_cache_watcher *privs_watch;       /* of es.privilege */
	pthread_mutex_t pending_lock; /* guards pending, npending */
	struct last_used *pending;    /* LAST_USED_PENDING_MAX entries */
	size_t npending;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 64 bits of SHA-256 of a stored password hash: a cached credential counts
 * only while the user's hash is the one it was verified against. */
static uint64_t hash_fingerprint(const char *hash)
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	uint64_t v;
	SHA256((const unsigned char *)hash, strlen(hash), d);
	memcpy(&v, d, sizeof(v));
	return v;
}

static json_t *json_parse(kg_str s)
{
	return s.n ? json_loadb(s.p, s.n, JSON_REJECT_DUPLICATES, NULL) : NULL;
}

static const char *json_str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* ---- who is asking ---- */

/* A user of one of the realms, found by name. */
struct es_user {
	char hash[128];
	const char *realm, *realm_type;
	json_t *roles; /* array of role names (owned) */
	json_t *doc;   /* the user's view: username, roles, full_name, email, metadata, enabled (owned) */
	bool is_enabled;
};

static void user_free(struct es_user *u)
{
	json_decref(u->roles);
	json_decref(u->doc);
	OPENSSL_cleanse(u->hash, sizeof(u->hash));
	memset(u, 0, sizeof(*u));
}

/* Finds name in the realms, in ES's order: reserved, file, native. Runs on
 * any thread (the cache and the file realm are read-only here). */
static bool user_find(const struct kg_es *es, kg_str name, struct es_user *u)
{
	memset(u, 0, sizeof(*u));
	if (kg_str_eq(name, KG_STR(ELASTIC))) {
		if (!es->admin_hash[0])
			return false;
		snprintf(u->hash, sizeof(u->hash), "%s", es->admin_hash);
		u->realm = u->realm_type = "reserved";
		u->roles = json_pack("[s]", "superuser");
		u->doc = kg_es_reserved_user_view(ELASTIC, true);
		u->is_enabled = true;
		return u->roles && u->doc;
	}
	const struct kg_es_file_user *fu = es->file ? kg_es_file_realm_user(es->file, name) : NULL;
	if (fu) {
		snprintf(u->hash, sizeof(u->hash), "%s", fu->hash);
		u->realm = "default_file";
		u->realm_type = "file";
		u->roles = json_array();
		for (size_t i = 0; u->roles && i < fu->nroles; i++)
			json_array_append_new(u->roles, json_string(fu->roles[i]));
		u->doc = json_pack("{s:s, s:O, s:n, s:n, s:{}, s:b}", "username", fu->name, "roles", u->roles,
		                   "full_name", "email", "metadata", "enabled", 1);
		u->is_enabled = true;
		return u->roles && u->doc;
	}
	kg_buf v = { 0 };
	json_t *doc = NULL;
	if (es->cache && kg_cache_kv_get(es->cache, NS_USER, name, &v) == KG_OK)
		doc = json_parse(kg_buf_str(&v));
	kg_buf_free(&v, false);
	if (!doc)
		return false;
	snprintf(u->hash, sizeof(u->hash), "%s", json_str(doc, "password_hash"));
	u->realm = "default_native";
	u->realm_type = "native";
	u->roles = json_incref(json_object_get(doc, "roles"));
	u->is_enabled = json_is_true(json_object_get(doc, "enabled"));
	u->doc = kg_es_user_view(doc);
	json_decref(doc);
	if (!u->roles)
		u->roles = json_array();
	return u->roles && u->doc;
}

/* The descriptor of role name, normalised (new reference), or NULL when no
 * realm defines it (ES ignores unknown roles). */
static json_t *role_find(const struct kg_es *es, const char *name)
{
	if (strcmp(name, "superuser") == 0)
		return kg_es_role_superuser();
	json_t *d = es->file_roles ? json_object_get(es->file_roles, name) : NULL;
	if (d)
		return json_incref(d);
	kg_buf v = { 0 };
	if (es->cache && kg_cache_kv_get(es->cache, NS_ROLE, kg_str_c(name), &v) == KG_OK)
		d = json_parse(kg_buf_str(&v));
	kg_buf_free(&v, false);
	return d;
}

/* {role: descriptor} for roles (an array of names): a user's permissions, and
 * the point-in-time snapshot an API key is limited by. */
static json_t *roles_snapshot(const struct kg_es *es, const json_t *roles)
{
	json_t *map = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(roles, i, r) {
		const char *name = json_string_value(r);
		json_t *d = name ? role_find(es, name) : NULL;
		if (d)
			json_object_set_new(map, name, d);
	}
	return map;
}

/* The caller of a /_security request. */
struct es_who {
	bool is_api_key;
	char username[KG_USER_MAX_NAME + 1];
	char realm[32], realm_type[32];
	char key_id[KG_ES_ID_MAX + 1];
	char key_name[4 * KG_ES_NAME_MAX + 1];
	json_t *roles;       /* user: role names; key: [] */
	json_t *user;        /* user: its view; key: NULL */
	json_t *descriptors; /* user: the snapshot of its roles; key: its role_descriptors */
	json_t *limited_by;  /* key: its owner's snapshot */
	json_t *key_metadata;
	const kg_es_perm *perm; /* effective: own_perm or perm_ref's */
	kg_es_perm *own_perm;   /* user: compiled from descriptors */
	struct shared *perm_ref; /* key: the index's, held */
};

static void shared_release(struct shared *s);

static void who_free(struct es_who *w)
{
	json_decref(w->roles);
	json_decref(w->user);
	json_decref(w->descriptors);
	json_decref(w->limited_by);
	json_decref(w->key_metadata);
	kg_es_perm_free(&w->own_perm);
	shared_release(w->perm_ref);
	memset(w, 0, sizeof(*w));
}

static kg_err who_from_user(const struct kg_es *es, kg_str name, struct es_user *u, struct es_who *w)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->username, sizeof(w->username), "%.*s", (int)name.n, name.p);
	snprintf(w->realm, sizeof(w->realm), "%s", u->realm);
	snprintf(w->realm_type, sizeof(w->realm_type), "%s", u->realm_type);
	w->roles = json_incref(u->roles);
	w->user = json_incref(u->doc);
	w->descriptors = roles_snapshot(es, u->roles);
	if (!w->descriptors)
		return KG_ENOMEM;
	kg_err err = kg_es_perm_compile(w->descriptors, &w->own_perm);
	w->perm = w->own_perm;
	return err;
}

/* The rest of what a key caller's stored document says (its name,
 * descriptors, limited_by, metadata), which the index does not keep: read
 * from the store, so on the thread pool only. False when the document is
 * gone. */
static bool who_key_doc(struct es_who *w)
{
	kg_buf v = { 0 };
	json_t *doc = NULL;
	struct kg_store *store = kg__store();
	if (store && kg_store_kv_get(store, NS_KEY, kg_str_c(w->key_id), &v) == KG_OK)
		doc = json_parse(kg_buf_str(&v));
	kg_buf_free(&v, false);
	if (!doc)
		return false;
	snprintf(w->key_name, sizeof(w->key_name), "%s", json_str(doc, "name"));
	w->descriptors = json_incref(json_object_get(doc, "role_descriptors"));
	w->limited_by = json_incref(json_object_get(doc, "limited_by"));
	w->key_metadata = json_incref(json_object_get(doc, "metadata"));
	json_decref(doc);
	return true;
}

/* ---- API keys: the index ---- */

static uint64_t mix(const unsigned char seed[16], const void *p, size_t n)
{
	return kg__siphash24(seed, p, n);
}

static kg_err interns_init(struct interns *t, const unsigned char *seed)
{
	pthread_mutex_init(&t->lock, NULL);
	t->seed = seed;
	t->mask = 63;
	t->buckets = calloc(t->mask + 1, sizeof(*t->buckets));
	return t->buckets ? KG_OK : KG_ENOMEM;
}

static void interns_free(struct interns *t)
{
	/* every key is gone by now; anything left is freed anyway */
	for (size_t i = 0; t->buckets && i <= t->mask; i++)
		while (t->buckets[i]) {
			struct shared *s = t->buckets[i];
			t->buckets[i] = s->next;
			kg_es_perm_free(&s->perm);
			free(s);
		}
	free(t->buckets);
	t->buckets = NULL;
	pthread_mutex_destroy(&t->lock);
}

/* The shared thing of text (one more reference), made when new: a
 * permission is compiled from (rd, lb) when is_perm. NULL when out of
 * memory or the permission does not compile. */
static struct shared *interns_get(struct interns *t, const char *text, size_t n, bool is_perm, const json_t *rd,
                                  const json_t *lb)
{
	uint64_t h = mix(t->seed, text, n);
	struct shared *s;
	pthread_mutex_lock(&t->lock);
	for (s = t->buckets[h & t->mask]; s; s = s->next)
		if (s->hash == h && s->n == n && memcmp(s->text, text, n) == 0)
			break;
	if (!s && (s = calloc(1, sizeof(*s) + n + 1))) {
		s->home = t;
		s->hash = h;
		s->n = n;
		memcpy(s->text, text, n);
		if (is_perm && kg_es_perm_compile_key(rd, lb, &s->perm) != KG_OK) {
			free(s);
			s = NULL;
		} else {
			if (t->n >= t->mask + 1) {
				/* grow; on failure chains get longer, which still works */
				size_t count = (t->mask + 1) * 2;
				struct shared **b = calloc(count, sizeof(*b));
				for (size_t i = 0; b && i <= t->mask; i++)
					while (t->buckets[i]) {
						struct shared *x = t->buckets[i];
						t->buckets[i] = x->next;
						x->next = b[x->hash & (count - 1)];
						b[x->hash & (count - 1)] = x;
					}
				if (b) {
					free(t->buckets);
					t->buckets = b;
					t->mask = count - 1;
				}
			}
			s->next = t->buckets[h & t->mask];
			t->buckets[h & t->mask] = s;
			t->n++;
		}
	}
	if (s)
		s->refs++;
	pthread_mutex_unlock(&t->lock);
	return s;
}

static void shared_hold(struct shared *s)
{
	pthread_mutex_lock(&s->home->lock);
	s->refs++;
	pthread_mutex_unlock(&s->home->lock);
}

static void shared_release(struct shared *s)
{
	if (!s)
		return;
	struct interns *t = s->home;
	pthread_mutex_lock(&t->lock);
	bool is_last = --s->refs == 0;
	if (is_last) {
		struct shared **pp = &t->buckets[s->hash & t->mask];
		while (*pp != s)
			pp = &(*pp)->next;
		*pp = s->next;
		t->n--;
	}
	pthread_mutex_unlock(&t->lock);
	if (is_last) {
		kg_es_perm_free(&s->perm);
		free(s);
	}
}

static const char *owner_name(const struct shared *o)
{
	return o->text;
}

static const char *owner_realm(const struct shared *o)
{
	return o->text + strlen(o->text) + 1;
}

static const char *owner_realm_type(const struct shared *o)
{
	const char *realm = owner_realm(o);
	return realm + strlen(realm) + 1;
}

/* "s1$" + 22 characters of salt + "$" + 43 of MAC (kg_es_secret_hash),
 * decoded once per document instead of on every request. */
static void key_ent_free(struct key_ent *e)
{
	if (!e)
		return;
	shared_release(e->owner);
	shared_release(e->perm);
	OPENSSL_cleanse(e, sizeof(*e) + e->idn);
	free(e);
}

/* The entry of key id from its stored document; NULL when the document is
 * no key (not JSON, a permission that does not compile) or out of memory. */
static struct key_ent *key_ent_new(struct kg_es *es, kg_str id, kg_str bytes)
{
	json_t *doc = json_parse(bytes), *pair = NULL;
	struct key_ent *e = NULL;
	char *text = NULL;
	kg_buf who = { 0 };
	if (!doc || id.n == 0 || id.n > KG_ES_ID_MAX || !(e = calloc(1, sizeof(*e) + id.n + 1)))
		goto fail;
	e->idn = (uint8_t)id.n;
	memcpy(e->id, id.p, id.n);
	e->has_hash = kg_es_secret_decode(kg_str_c(json_str(doc, "hash")), e->salt, e->mac);
	e->expiration_ms = json_integer_value(json_object_get(doc, "expiration"));
	e->is_invalidated = json_is_true(json_object_get(doc, "invalidated"));
	const char *f[] = { json_str(doc, "username"), json_str(doc, "realm"), json_str(doc, "realm_type") };
	for (size_t i = 0; i < 3; i++)
		if (kg_buf_append(&who, f[i], strlen(f[i]) + 1) != KG_OK)
			goto fail;
	if (!(e->owner = interns_get(&es->owners, who.p, who.n, false, NULL, NULL)))
		goto fail;
	/* a missing field (null) and an empty one ({}) may compile apart: the
	 * text tells them apart too */
	json_t *rd = json_object_get(doc, "role_descriptors"), *lb = json_object_get(doc, "limited_by");
	if (!(pair = json_array()) || json_array_append_new(pair, rd ? json_incref(rd) : json_null()) ||
	    json_array_append_new(pair, lb ? json_incref(lb) : json_null()) ||
	    !(text = json_dumps(pair, JSON_COMPACT | JSON_ENCODE_ANY)))
		goto fail;
	if (!(e->perm = interns_get(&es->perms, text, strlen(text), true, rd, lb)))
		goto fail;
	goto out;
fail:
	key_ent_free(e);
	e = NULL;
out:
	free(text);
	json_decref(pair);
	json_decref(doc);
	kg_buf_free(&who, false);
	return e;
}

/* Keeps a use not yet taken of a key leaving the index. */
static void pending_push(struct kg_es *es, const struct key_ent *e, int64_t ms)
{
	if (!ms)
		return;
	pthread_mutex_lock(&es->pending_lock);
	/* full: the use is lost, which only makes last_used older (it is
	 * advisory; nothing is decided by it) */
	if (es->npending < LAST_USED_PENDING_MAX) {
		struct last_used *u = &es->pending[es->npending++];
		memcpy(u->id, e->id, e->idn);
		u->id[e->idn] = '\0';
		u->ms = ms;
	}
	pthread_mutex_unlock(&es->pending_lock);
}

static void stripes_wrlock_all(struct kg_es *es)
{
	for (size_t i = 0; i < KEY_STRIPES; i++)
		pthread_rwlock_wrlock(&es->stripes[i]);
}

static void stripes_unlock_all(struct kg_es *es)
{
	for (size_t i = KEY_STRIPES; i-- > 0;)
		pthread_rwlock_unlock(&es->stripes[i]);
}

/* Notes that bucket i holds a use not yet taken (under its stripe's lock,
 * read or write: the bucket array and used_bits stay while it is held). */
static void mark_used(struct kg_es *es, size_t i)
{
	__atomic_fetch_or(&es->used_bits[i / 64], (uint64_t)1 << (i % 64), __ATOMIC_RELAXED);
}

/* Doubles the bucket array (holding index_lock); on allocation failure
 * chains get longer, which still works. */
static void index_grow(struct kg_es *es)
{
	size_t count = (es->mask + 1) * 2;
	struct key_ent **b = count < SIZE_MAX / sizeof(*b) ? calloc(count, sizeof(*b)) : NULL;
	uint64_t *bits = b ? calloc(count / 64, sizeof(*bits)) : NULL;
	if (!bits) {
		free(b);
		return;
	}
	stripes_wrlock_all(es);
	for (size_t i = 0; i <= es->mask; i++)
		while (es->buckets[i]) {
			struct key_ent *e = es->buckets[i];
			size_t j = (size_t)mix(es->slot_key, e->id, e->idn) & (count - 1);
			es->buckets[i] = e->next;
			e->next = b[j];
			b[j] = e;
			if (e->last_used_ms) /* no reader stores now */
				bits[j / 64] |= (uint64_t)1 << (j % 64);
		}
	struct key_ent **old = es->buckets;
	uint64_t *old_bits = es->used_bits;
	es->buckets = b;
	es->used_bits = bits;
	es->mask = count - 1;
	stripes_unlock_all(es);
	free(old);
	free(old_bits);
}

/* Puts e (NULL: nothing) in place of key id's entry. */
static void index_set(struct kg_es *es, kg_str id, struct key_ent *e)
{
	uint64_t h = mix(es->slot_key, id.p, id.n);
	struct key_ent *old = NULL;
	int64_t ms = 0;
	pthread_mutex_lock(&es->index_lock);
	if (e && es->nkeys >= es->mask + 1)
		index_grow(es);
	pthread_rwlock_t *lock = &es->stripes[h % KEY_STRIPES];
	pthread_rwlock_wrlock(lock);
	struct key_ent **pp = &es->buckets[h & es->mask];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->idn == id.n && memcmp((*pp)->id, id.p, id.n) == 0)
			break;
	if ((old = *pp)) {
		*pp = old->next;
		es->nkeys--;
		/* readers only store while holding the read lock: none now */
		ms = __atomic_exchange_n(&old->last_used_ms, 0, __ATOMIC_RELAXED);
	}
	if (e) {
		e->epoch = es->epoch;
		e->last_used_ms = ms;
		e->next = es->buckets[h & es->mask];
		es->buckets[h & es->mask] = e;
		if (ms)
			mark_used(es, h & es->mask);
		es->nkeys++;
		ms = 0;
	}
	/* under the stripe's lock, before old is freed: a cached key of this
	 * stripe is used only while this number holds (see KEY_STRIPES) */
	__atomic_add_fetch(&es->key_gen, 1, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(lock);
	pthread_mutex_unlock(&es->index_lock);
	if (old)
		pending_push(es, old, ms);
	key_ent_free(old);
}

/* Drops the keys the last full load did not see. */
static void index_sweep(struct kg_es *es)
{
	struct key_ent *gone = NULL;
	pthread_mutex_lock(&es->index_lock);
	stripes_wrlock_all(es);
	for (size_t i = 0; i <= es->mask; i++)
		for (struct key_ent **pp = &es->buckets[i]; *pp;) {
			struct key_ent *e = *pp;
			if (e->epoch == es->epoch) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			e->next = gone;
			gone = e;
			es->nkeys--;
		}
	__atomic_add_fetch(&es->key_gen, 1, __ATOMIC_RELEASE); /* under every stripe's lock, as index_set */
	stripes_unlock_all(es);
	pthread_mutex_unlock(&es->index_lock);
	while (gone) {
		struct key_ent *next = gone->next;
		pending_push(es, gone, gone->last_used_ms);
		key_ent_free(gone);
		gone = next;
	}
}

/* The cache's watcher of es.api_key: every change of every key, in order. */
static void on_key_change(void *data, enum kg_cache_event ev, kg_str key, kg_str value)
{
	struct kg_es *es = data;
	switch (ev) {
	case KG_CACHE_RESET_BEGIN:
		pthread_mutex_lock(&es->index_lock);
		es->epoch++;
		pthread_mutex_unlock(&es->index_lock);
		break;
	case KG_CACHE_RESET_END: index_sweep(es); break;
	case KG_CACHE_PUT:
		/* a document that makes no entry (or no memory to make one) leaves
		 * no older entry behind: the key is refused, never kept as it was */
		if (key.n && key.n <= KG_ES_ID_MAX)
			index_set(es, key, key_ent_new(es, key, value));
		break;
	case KG_CACHE_DEL:
		if (key.n && key.n <= KG_ES_ID_MAX)
			index_set(es, key, NULL);
		break;
	}
}

static void index_free(struct kg_es *es)
{
	for (size_t i = 0; es->buckets && i <= es->mask; i++)
		while (es->buckets[i]) {
			struct key_ent *e = es->buckets[i];
			es->buckets[i] = e->next;
			key_ent_free(e);
		}
	free(es->buckets);
	es->buckets = NULL;
	free(es->used_bits);
	es->used_bits = NULL;
}

/* ---- application privileges (es.privilege): the resolver's set ---- */

/* Drops the privilege stored under key ("<application>/<name>") from set. */
static void privs_remove(json_t *set, kg_str key)
{
	const char *slash = memchr(key.p, '/', key.n);
	if (!slash)
		return;
	size_t an = (size_t)(slash - key.p);
	json_t *per = json_object_getn(set, key.p, an);
	if (!per)
		return;
	json_object_deln(per, slash + 1, key.n - an - 1);
	if (json_object_size(per) == 0)
		json_object_deln(set, key.p, an);
}

/* The cache's watcher of es.privilege: every change, own writes and other
 * instances' alike, so the set the resolver reads is always the store's. A
 * reset fills a new set and swaps it in whole: readers never see it half
 * loaded. The cache calls this one change at a time. */
static void on_priv_change(void *data, enum kg_cache_event ev, kg_str key, kg_str value)
{
	struct kg_es *es = data;
	json_t *doc = NULL, *old = NULL;
	switch (ev) {
	case KG_CACHE_RESET_BEGIN:
		json_decref(es->privs_loading);
		es->privs_loading = json_object();
		break;
	case KG_CACHE_RESET_END:
		if (!es->privs_loading)
			break;
		pthread_rwlock_wrlock(&es->privs_lock);
		old = es->privs;
		es->privs = es->privs_loading;
		pthread_rwlock_unlock(&es->privs_lock);
		es->privs_loading = NULL;
		json_decref(old);
		break;
	case KG_CACHE_PUT:
		doc = json_parse(value);
		if (es->privs_loading) {
			if (doc && kg_es_privs_set_add(es->privs_loading, doc) != KG_OK)
				kg_warn("elasticsearch: application privilege [%.*s] left out", (int)key.n, key.p);
			break;
		}
		pthread_rwlock_wrlock(&es->privs_lock);
		/* a document that cannot be read leaves no older one behind */
		privs_remove(es->privs, key);
		if (doc && kg_es_privs_set_add(es->privs, doc) != KG_OK)
			kg_warn("elasticsearch: application privilege [%.*s] left out", (int)key.n, key.p);
		pthread_rwlock_unlock(&es->privs_lock);
		break;
	case KG_CACHE_DEL:
		if (es->privs_loading) {
			privs_remove(es->privs_loading, key);
			break;
		}
		pthread_rwlock_wrlock(&es->privs_lock);
		privs_remove(es->privs, key);
		pthread_rwlock_unlock(&es->privs_lock);
		break;
	}
	json_decref(doc);
}

/* What resolve_upstream reads. */
struct upstream_ctx {
	const json_t *set;
	kg_str path;
};

/* Application privilege names for keygate's own application (api_key.
 * application), which the upstream routes check with the HTTP method as the
 * action and the normalised path as the resource: a stored privilege's
 * actions are "METHOD:PATH" (both parts patterns, e.g. GET:/data/ then a
 * star), or a path pattern alone for every method (a lone star: anything).
 * ES requires an action to hold '/', '*' or ':', so a bare "GET" cannot be
 * stored. The role's resources apply as well. No allocation: the hot path. */
static bool resolve_upstream(void *ctx, kg_str app, kg_str name, kg_str method)
{
	const struct upstream_ctx *u = ctx;
	if (kg_str_eq(name, method))
		return true;
	json_t *doc = json_object_getn(json_object_getn(u->set, app.p, app.n), name.p, name.n);
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(doc, "actions"), i, a) {
		kg_str s = { json_string_value(a), json_string_length(a) };
		const char *colon = s.p ? memchr(s.p, ':', s.n) : NULL;
		if (!s.p)
			continue;
		if (!colon) {
			if (kg_es_pattern_covers(s, u->path))
				return true;
		} else if (kg_es_pattern_covers((kg_str){ s.p, (size_t)(colon - s.p) }, method) &&
		           kg_es_pattern_covers((kg_str){ colon + 1, s.n - (size_t)(colon - s.p) - 1 }, u->path)) {
			return true;
		}
	}
	return false;
}

/* May p do method on path upstream (application api_key.application), with
 * privilege names resolved through the stored application privileges? */
static bool app_allowed(struct kg_es *es, const kg_es_perm *p, kg_str method, kg_str path)
{
	pthread_rwlock_rdlock(&es->privs_lock);
	struct upstream_ctx u = { es->privs, path };
	bool ok = kg_es_perm_app_resolved(p, kg_str_c(es->app), method, path, resolve_upstream, &u);
	pthread_rwlock_unlock(&es->privs_lock);
	return ok;
}

/* ---- API keys: checking a presented one ---- */

/* The outcome of presenting a key. */
enum key_check { KEY_OK, KEY_BAD, KEY_EXPIRED, KEY_INVALIDATED, KEY_NOMEM };

/* Where a good key was found: its entry, the hash that picks its stripe,
 * and its expiration as it was then (0: never). */
struct key_hit {
	struct key_ent *e;
	uint64_t h;
	int64_t expiration_ms;
};

/* The judgement of key e, whose secret matched, at now (its stripe read
 * locked by the caller): invalidated, expired, or KEY_OK with what the
 * caller asked for. When is_allowed is set, also judges the application
 * privilege (method on path); when owner is set, it gets the key's
 * username in arena; when who is set, it gets the key's principal (a
 * reference to its permission; who_free). A key found good is marked used
 * at now (kg__es_last_used_take), its bucket (h: its id's mix) in used_bits
 * when it had no use waiting. */
static enum key_check key_judge(struct kg_es *es, struct key_ent *e, uint64_t h, int64_t now, kg_str method,
                                kg_str path, bool *is_allowed, kg_arena *arena, kg_str *owner, struct es_who *who)
{
	enum key_check r;
	if (e->is_invalidated)
		return KEY_INVALIDATED;
	if (e->expiration_ms && now >= e->expiration_ms)
		return KEY_EXPIRED;
	r = KEY_OK;
	if (is_allowed)
		*is_allowed = app_allowed(es, e->perm->perm, method, path);
	if (owner) {
		*owner = kg_arena_strdup(arena, kg_str_c(owner_name(e->owner)));
		if (!owner->p)
			r = KEY_NOMEM;
	}
	if (who) {
		memset(who, 0, sizeof(*who));
		who->is_api_key = true;
		snprintf(who->username, sizeof(who->username), "%s", owner_name(e->owner));
		snprintf(who->realm, sizeof(who->realm), "%s", owner_realm(e->owner));
		snprintf(who->realm_type, sizeof(who->realm_type), "%s", owner_realm_type(e->owner));
		memcpy(who->key_id, e->id, e->idn);
		shared_hold(e->perm);
		who->perm_ref = e->perm;
		who->perm = e->perm->perm;
		if (!(who->roles = json_array()))
			r = KEY_NOMEM;
	}
	/* the bit after the use: kg__es_last_used_take clears a word before it
	 * walks its buckets, so a use is taken now or by its next call */
	if (r == KEY_OK && !__atomic_exchange_n(&e->last_used_ms, now > 0 ? now : 1, __ATOMIC_RELAXED))
		mark_used(es, h & es->mask);
	return r;
}

/* Checks (id, secret) against the index: HMAC-SHA256(salt, secret) against
 * the stored MAC in constant time (kg_es_secret_matches), then key_judge.
 * Unknown id and wrong secret are alike (KEY_BAD; an unknown id costs the
 * same HMAC); expiry and invalidation are told only once the secret
 * matched. When hit is set and the key is good, it gets where the key was
 * found (valid while key_gen holds; see KEY_STRIPES). */
static enum key_check key_check(struct kg_es *es, kg_str id, kg_str secret, int64_t now, kg_str method, kg_str path,
                                bool *is_allowed, kg_arena *arena, kg_str *owner, struct es_who *who,
                                struct key_hit *hit)
{
	static const unsigned char no_salt[16], no_mac[32];
	enum key_check r = KEY_BAD;
	if (id.n == 0 || id.n > KG_ES_ID_MAX)
		return KEY_BAD;
	uint64_t h = mix(es->slot_key, id.p, id.n);
	pthread_rwlock_t *lock = &es->stripes[h % KEY_STRIPES];
	pthread_rwlock_rdlock(lock);
	struct key_ent *e = es->buckets[h & es->mask];
	while (e && !(e->idn == id.n && memcmp(e->id, id.p, id.n) == 0))
		e = e->next;
	bool is_match = kg_es_secret_matches(e ? e->salt : no_salt, e ? e->mac : no_mac, secret);
	if (!e || !e->has_hash || !is_match)
		goto out;
	r = key_judge(es, e, h, now, method, path, is_allowed, arena, owner, who);
	if (r == KEY_OK && hit)
		*hit = (struct key_hit){ e, h, e->expiration_ms };
out:
	pthread_rwlock_unlock(lock);
	return r;
}

/* A key this worker checked before (lib/tokcache.c): the whole credential
 * (base64 of id:secret) is the cache's key, compared in full, so its
 * secret matched when it was put; the entry holds where the key was found,
 * under the key_gen read before that check. It is used only when, under
 * the key's stripe lock, key_gen is still that number: then no key was put,
 * replaced or deleted since (an invalidation, an update, retention's
 * deletion, a change replayed from another instance or a full reload: each
 * is a change of the index), and the entry is alive and as it was. Expiry and
 * invalidation are judged again on every use (key_judge), as without the
 * cache. KEY_BAD here means a miss: the caller checks in full. */
static enum key_check key_cached(struct kg_es *es, kg_tokcache *tc, kg_str cred, uint64_t gen, int64_t now,
                                 kg_str method, kg_str path, bool *is_allowed, kg_arena *arena, kg_str *owner,
                                 kg_str *key_id)
{
	struct key_hit hit;
	size_t n = 0;
	const void *v = kg_tokcache_get(tc, es->cache_owner, cred, gen, now, &n);
	if (!v || n != sizeof(hit))
		return KEY_BAD;
	memcpy(&hit, v, sizeof(hit));
	pthread_rwlock_t *lock = &es->stripes[hit.h % KEY_STRIPES];
	pthread_rwlock_rdlock(lock);
	enum key_check r = KEY_BAD;
	if (__atomic_load_n(&es->key_gen, __ATOMIC_ACQUIRE) == gen) {
		r = key_judge(es, hit.e, hit.h, now, method, path, is_allowed, arena, owner, NULL);
		*key_id = kg_arena_strdup(arena, (kg_str){ hit.e->id, hit.e->idn });
	}
	pthread_rwlock_unlock(lock);
	return r;
}

void kg__es_last_used_take(struct kg_es *es, void (*cb)(void *data, const char *id, int64_t ms), void *data)
{
	struct last_used u;
	for (;;) {
		pthread_mutex_lock(&es->pending_lock);
		bool has = es->npending > 0;
		if (has)
			u = es->pending[--es->npending];
		pthread_mutex_unlock(&es->pending_lock);
		if (!has)
			break;
		cb(data, u.id, u.ms);
	}
	/* the uses are gathered under the locks, told without them */
	struct last_used *v = NULL;
	size_t n = 0, cap = 0;
	/* only the buckets marked since the last call are walked: a million
	 * keys of which a few are in use cost a pass over 2 KiB of bits per
	 * 1024 buckets, not over every key */
	pthread_mutex_lock(&es->index_lock); /* the bucket array and used_bits stay */
	for (size_t w = 0; w <= es->mask / 64; w++) {
		uint64_t bits = __atomic_exchange_n(&es->used_bits[w], 0, __ATOMIC_RELAXED);
		while (bits) {
			/* KEY_STRIPES is 64 and divides the bucket count: bucket
			 * w * 64 + b is under stripe b */
			unsigned b = (unsigned)__builtin_ctzll(bits);
			size_t i = w * 64 + b;
			bits &= bits - 1;
			pthread_rwlock_rdlock(&es->stripes[b]);
			for (struct key_ent *e = es->buckets[i]; e; e = e->next) {
				if (!__atomic_load_n(&e->last_used_ms, __ATOMIC_RELAXED))
					continue;
				if (n == cap) {
					size_t c2 = cap ? cap * 2 : 64;
					struct last_used *v2 = realloc(v, c2 * sizeof(*v));
					if (!v2) { /* the rest wait for the next call */
						mark_used(es, i);
						break;
					}
					v = v2;
					cap = c2;
				}
				v[n].ms = __atomic_exchange_n(&e->last_used_ms, 0, __ATOMIC_RELAXED);
				memcpy(v[n].id, e->id, e->idn);
				v[n].id[e->idn] = '\0';
				n += v[n].ms != 0;
			}
			pthread_rwlock_unlock(&es->stripes[b]);
		}
	}
	pthread_mutex_unlock(&es->index_lock);
	for (size_t i = 0; i < n; i++)
		cb(data, v[i].id, v[i].ms);
	free(v);
}

static const char *key_check_why(enum key_check r)
{
	switch (r) {
	case KEY_EXPIRED: return "api key is expired";
	case KEY_INVALIDATED: return "api key has been invalidated";
	default: return "invalid credentials";
	}
}

static const char *arena_printf(kg_arena *arena, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *arena_printf(kg_arena *arena, const char *fmt, ...)
{
	kg_buf b = { 0 };
	va_list ap;
	va_start(ap, fmt);
	kg_err err = kg_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	const char *s = err ? NULL : kg_arena_strdup(arena, kg_buf_str(&b)).p;
	kg_buf_free(&b, false);
	return s;
}

/* A client's key id as the log may show it: bytes outside the id alphabet
 * (URL-safe base64) become '?', so no id can forge a log line. */
static void loggable_id(kg_str id, char *out, size_t cap)
{
	size_t n = 0;
	for (; n < id.n && n + 1 < cap; n++) {
		char ch = id.p[n];
		bool is_ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		             ch == '_';
		out[n] = is_ok ? ch : '?';
	}
	out[n] = '\0';
}

static kg_err apikey_authenticate(const struct kg_authenticator *a, const struct kg_auth_request *req, kg_arena *arena,
                                  struct kg_principal *out, const char **message)
{
	struct kg_es *es = a->data;
	char buf[KG_ES_ID_MAX + KG_ES_SECRET_MAX + 8];
	kg_str id, secret, owner = KG_STR_NULL, key_id = KG_STR_NULL;
	bool is_allowed = false;
	struct key_hit hit = { 0 };
	*message = KG_ES_REASON_BAD_CREDENTIALS;
	/* req->now is whole seconds: a key would outlive its expiration by up to
	 * a second here while /_security (milliseconds) already refuses it */
	int64_t now = now_ms();
	kg_tokcache *tc = kg_tokcache_of_thread();
	/* read before the check, so a change of the index during it makes the
	 * entry stale (it only grows) */
	uint64_t gen = __atomic_load_n(&es->key_gen, __ATOMIC_ACQUIRE);
	enum key_check r = key_cached(es, tc, req->cred.value, gen, now, req->method, req->path, &is_allowed, arena,
	                              &owner, &key_id);
	if (r == KEY_BAD) {
		if (kg_es_apikey_decode(req->cred.value, buf, sizeof(buf), &id, &secret) != KG_OK) {
			OPENSSL_cleanse(buf, sizeof(buf));
			kg_info("API key refused: the credential is not base64 of id:key");
			return KG_EBADCRED;
		}
		r = key_check(es, id, secret, now, req->method, req->path, &is_allowed, arena, &owner, NULL, &hit);
		key_id = kg_arena_strdup(arena, id);
		OPENSSL_cleanse(buf, sizeof(buf));
		/* served while now <= last_valid: up to the last millisecond before
		 * the expiration, as key_judge counts */
		if (r == KEY_OK)
			kg_tokcache_put(tc, es->cache_owner, req->cred.value, gen,
			                hit.expiration_ms ? hit.expiration_ms - 1 : INT64_MAX, &hit, sizeof(hit));
	}
	if (r == KEY_NOMEM || !key_id.p)
		return KG_ENOMEM;
	if (r != KEY_OK) {
		char logged[KG_ES_ID_MAX + 1];
		loggable_id(key_id, logged, sizeof(logged));
		kg_info("API key [%s] refused: %s", logged, key_check_why(r));
		return r == KEY_EXPIRED ? KG_EEXPIRED : r == KEY_INVALIDATED ? KG_EREVOKED : KG_EBADCRED;
	}
	out->scheme = "apikey";
	out->id = key_id;
	out->role = owner;
	if (!is_allowed) {
		*message = arena_printf(arena, "action [%.*s %.*s] is unauthorized for API key id [%.*s] of user [%.*s]",
		                        (int)req->method.n, req->method.p, (int)req->path.n, req->path.p, (int)key_id.n,
		                        key_id.p, (int)owner.n, owner.p);
		return KG_EFORBIDDEN;
	}
	return KG_OK;
}

/* Elasticsearch's principals were judged by their application privileges
 * when authenticated; a Basic user of the users file (asked for names no
 * realm knows) is judged by the role policy as without Elasticsearch. */
static kg_err es_authorize(const struct kg_authenticator *a, const struct kg_auth_request *req,
                           const struct kg_principal *p, const char **message)
{
	if (strcmp(p->scheme, "apikey") == 0 || strcmp(p->scheme, "es-user") == 0)
		return KG_OK;
	if (req->policy && kg_policy_allows(req->policy, p->roles, req->method, req->path))
		return KG_OK;
	return KG_EFORBIDDEN;
}

const struct kg_authenticator *kg__es_apikey_authenticator(const struct kg_es *es)
{
	return &es->apikey;
}

/* ---- Basic: Elasticsearch's users ---- */

/* A user's view, per worker: what basic_authenticate derives from the
 * stored documents on every request (the user found in its realm, the
 * fingerprint of its password hash, its roles' descriptors compiled into a
 * permission), kept so that a repeated Basic caller costs a lookup and the
 * credential cache's HMAC instead of JSON parses and a compile. A view is
 * used only while kg_cache_kv_gen (which grows with every change of a kept
 * record: a user or role written here, replayed from another instance, or a
 * full reload) is the number read before the documents were, and only by
 * the kg_es it was made by (view_owner: a reload makes a new one, with its
 * own file realm and admin password). The password is still checked as
 * before (the credential cache against the current hash's fingerprint), and
 * the application privileges are resolved on every request (app_allowed).
 * Only enabled users whose permission compiled are kept.
 *
 * Each worker has its own table (no locks; pthread key: freed at the
 * worker's exit), UVIEW_SLOTS views placed by the name's hash, a newer view
 * replacing the one in its slot. */
#define UVIEW_SLOTS 64

struct uview {
	uint64_t owner, gen;
	uint64_t fp;      /* hash_fingerprint of the user's password hash */
	kg_es_perm *perm; /* compiled from the user's roles (owned) */
	size_t n;
	char name[];
};

struct uviews {
	struct uview *slot[UVIEW_SLOTS];
};

static pthread_key_t uviews_key;
static pthread_once_t uviews_once = PTHREAD_ONCE_INIT;
static bool has_uviews_key;

static void uview_free(struct uview *v)
{
	if (v) {
		kg_es_perm_free(&v->perm);
		free(v);
	}
}

static void uviews_free(void *p)
{
	struct uviews *t = p;
	for (size_t i = 0; i < UVIEW_SLOTS; i++)
		uview_free(t->slot[i]);
	free(t);
}

static void uviews_key_make(void)
{
	has_uviews_key = pthread_key_create(&uviews_key, uviews_free) == 0;
}

/* The calling thread's table, made on first use; NULL when that fails (then
 * every request derives its view, as without the table). */
static struct uviews *uviews_of_thread(void)
{
	pthread_once(&uviews_once, uviews_key_make);
	if (!has_uviews_key)
		return NULL;
	struct uviews *t = pthread_getspecific(uviews_key);
	if (!t && (t = calloc(1, sizeof(*t))) && pthread_setspecific(uviews_key, t) != 0) {
		free(t);
		t = NULL;
	}
	return t;
}

static struct uview **uview_slot(const struct kg_es *es, struct uviews *t, kg_str name)
{
	return &t->slot[mix(es->slot_key, name.p, name.n) % UVIEW_SLOTS];
}

/* The view of name made by es under gen, or NULL. */
static const struct uview *uview_get(const struct kg_es *es, struct uviews *t, kg_str name, uint64_t gen)
{
	if (!t)
		return NULL;
	const struct uview *v = *uview_slot(es, t, name);
	if (v && v->owner == es->view_owner && v->gen == gen && v->n == name.n && memcmp(v->name, name.p, name.n) == 0)
		return v;
	return NULL;
}

/* Keeps the view of name (takes ownership of *perm, setting it to NULL). */
static void uview_put(const struct kg_es *es, struct uviews *t, kg_str name, uint64_t gen, uint64_t fp,
                      kg_es_perm **perm)
{
	struct uview *v;
	if (!t || !(v = malloc(sizeof(*v) + name.n)))
		return;
	*v = (struct uview){ .owner = es->view_owner, .gen = gen, .fp = fp, .perm = *perm, .n = name.n };
	memcpy(v->name, name.p, name.n);
	*perm = NULL;
	struct uview **slot = uview_slot(es, t, name);
	uview_free(*slot);
	*slot = v;
}

static kg_err user_forbidden(const struct kg_auth_request *req, kg_arena *arena, kg_str user, const char **message)
{
	*message = arena_printf(arena, "action [%.*s %.*s] is unauthorized for user [%.*s]", (int)req->method.n,
	                        req->method.p, (int)req->path.n, req->path.p, (int)user.n, user.p);
	return KG_EFORBIDDEN;
}

static kg_err basic_authenticate(const struct kg_authenticator *a, const struct kg_auth_request *req, kg_arena *arena,
                                 struct kg_principal *out, const char **message)
{
	struct kg_es *es = a->data;
	char buf[KG_USER_MAX_NAME + KG_USER_MAX_PASSWORD + 2];
	kg_str name, password;
	struct es_user u;
	uint64_t fp;
	kg_err err = KG_EBADCRED;
	if (kg_basic_decode(req->cred.value, buf, sizeof(buf), &name, &password) != KG_OK) {
		if (es->users_basic)
			return es->users_basic->authenticate(es->users_basic, req, arena, out, message);
		*message = a->dialect == KG_DIALECT_ES ? KG_ES_REASON_BAD_CREDENTIALS
		                                       : "malformed Basic credential: want base64 of user:password";
		return KG_EBADCRED;
	}
	/* read before the documents, so a change while they are read makes the
	 * view stale (it only grows) */
	uint64_t gen = kg_cache_kv_gen(es->cache);
	struct uviews *views = uviews_of_thread();
	const struct uview *v = uview_get(es, views, name, gen);
	if (v) {
		bool is_known = kg_credcache_get(es->creds, name, password, req->now, &fp) && fp == v->fp;
		kg_str user = kg_arena_strdup(arena, name);
		kg_basic_wipe(buf, password);
		if (!is_known)
			return KG_ESLOW;
		out->scheme = "es-user";
		out->id = user;
		return app_allowed(es, v->perm, req->method, req->path) ? KG_OK : user_forbidden(req, arena, user, message);
	}
	if (!user_find(es, name, &u)) {
		kg_basic_wipe(buf, password);
		user_free(&u);
		if (es->users_basic)
			return es->users_basic->authenticate(es->users_basic, req, arena, out, message);
		return KG_ESLOW; /* checked against the dummy hash: as slow as a real user */
	}
	uint64_t user_fp = hash_fingerprint(u.hash);
	bool is_cached = kg_credcache_get(es->creds, name, password, req->now, &fp) && fp == user_fp;
	kg_str user = kg_arena_strdup(arena, name);
	kg_basic_wipe(buf, password);
	if (!is_cached) {
		user_free(&u);
		return KG_ESLOW;
	}
	if (!u.is_enabled) {
		*message = arena_printf(arena, KG_ES_REASON_BAD_USER, (int)user.n, user.p, (int)req->path.n, req->path.p);
		user_free(&u);
		return KG_EBADCRED;
	}
	out->scheme = "es-user";
	out->id = user;
	struct es_who w;
	if ((err = who_from_user(es, user, &u, &w)) == KG_OK) {
		if (!app_allowed(es, w.perm, req->method, req->path))
			err = user_forbidden(req, arena, user, message);
		/* w.perm stays valid until who_free, which frees own_perm only */
		if (user.p)
			uview_put(es, views, user, gen, user_fp, &w.own_perm);
	}
	who_free(&w);
	user_free(&u);
	return err;
}

/* The bcrypt check (thread pool). A right password is remembered against the
 * user's current hash. */
static kg_err basic_check(struct kg_es *es, kg_str name, kg_str password, int64_t now)
{
	struct es_user u;
	bool ok = false;
	bool is_known = user_find(es, name, &u);
	const char *hash = is_known && u.hash[0] ? u.hash : es->dummy_hash;
	if (kg_bcrypt_verify(password, hash, &ok) != KG_OK)
		ok = false;
	ok = ok && is_known;
	if (ok)
		kg_credcache_put(es->creds, name, password, hash_fingerprint(u.hash), now);
	user_free(&u);
	return ok ? KG_OK : KG_EBADCRED;
}

static kg_err basic_slow(const struct kg_authenticator *a, const struct kg_auth_request *req, const char **message)
{
	struct kg_es *es = a->data;
	char buf[KG_USER_MAX_NAME + KG_USER_MAX_PASSWORD + 2];
	kg_str name, password;
	struct es_user u;
	*message = KG_ES_REASON_BAD_CREDENTIALS;
	if (kg_basic_decode(req->cred.value, buf, sizeof(buf), &name, &password) != KG_OK)
		return KG_EBADCRED;
	bool is_known = user_find(es, name, &u);
	user_free(&u);
	kg_err err;
	if (!is_known && es->users_basic)
		err = es->users_basic->slow(es->users_basic, req, message);
	else
		err = basic_check(es, name, password, req->now);
	kg_basic_wipe(buf, password);
	return err;
}

/* After a failed check on a proxied route: ES names the user and the
 * request, as it does on /_security/ (users of the users file keep its
 * message). */
static const char *basic_slow_refusal(const struct kg_authenticator *a, const struct kg_auth_request *req,
                                      kg_arena *arena)
{
	struct kg_es *es = a->data;
	char buf[KG_USER_MAX_NAME + KG_USER_MAX_PASSWORD + 2];
	kg_str name, password;
	struct es_user u;
	const char *msg = NULL;
	if (a->dialect != KG_DIALECT_ES || kg_basic_decode(req->cred.value, buf, sizeof(buf), &name, &password) != KG_OK)
		return NULL;
	bool is_known = user_find(es, name, &u);
	user_free(&u);
	if (is_known || !es->users_basic)
		msg = arena_printf(arena, KG_ES_REASON_BAD_USER, (int)name.n, name.p, (int)req->path.n, req->path.p);
	kg_basic_wipe(buf, password);
	return msg;
}

const struct kg_authenticator *kg__es_basic_authenticator(struct kg_es *es, enum kg_dialect d)
{
	es->basic.dialect = d;
	return &es->basic;
}

/* ---- /_security: one request on its way ---- */

enum es_op {
	OP_AUTHENTICATE = 1,
	OP_KEY_CREATE,
	OP_KEY_GET,
	OP_KEY_INVALIDATE,
	OP_KEY_UPDATE,
	OP_KEY_BULK_UPDATE,
	OP_KEY_QUERY,
	OP_USER_PUT,
	OP_USER_GET,
	OP_USER_DELETE,
	OP_USER_PASSWORD,
	OP_ROLE_PUT,
	OP_ROLE_GET,
	OP_ROLE_DELETE,
	OP_INFO, /* GET / (api_key.info: keygate), answered on the loop */
	OP_PRIV_PUT,
	OP_PRIV_GET,
	OP_PRIV_DELETE,
	OP_PRIV_BUILTIN,
	OP_HAS_PRIVILEGES,
	OP_USER_PRIVILEGES,
	OP_CACHE_KEY,
	OP_CACHE_REALM,
	OP_CACHE_ROLE,
	OP_CACHE_PRIV,
};

/* Parsed on the loop, run on the thread pool (store I/O, bcrypt), answered
 * on the loop. */
struct es_req {
	struct kg_password_check pc; /* first: a Basic caller's password check */
	uv_work_t work;
	struct kg_conn *c;
	struct kg_runtime *rt; /* held while on the thread pool */
	struct kg_es *es;
	enum es_op op;
	const char *action;    /* ES's action name */
	char arg[KG_ES_NATIVE_NAME_MAX * 4 + 1]; /* the path's {id} or {name}, decoded; "" when none */
	bool has_arg;
	const char *arg2;      /* the path's second name (privilege/{app}/{names}), after arg's NUL; NULL when none */
	kg_buf body;           /* the request body (copied: the request's may go) */
	kg_buf query;          /* the query string */
	char cred[KG_USER_MAX_NAME + KG_USER_MAX_PASSWORD + 2]; /* a Basic caller's, decoded (wiped) */
	kg_str name, password; /* views of cred */
	char path[512];        /* for messages */
	char content_type[96]; /* of the answer */
	int64_t now;
	enum kg_es_grant grant;
	struct es_who who;
	/* parsed request */
	struct kg_es_create create;
	struct kg_es_get get;
	struct kg_es_invalidate inv;
	struct kg_es_update upd;
	kg_es_query *q;
	bool with_limited_by;
	struct kg_es_user_req user;
	json_t *role;          /* OP_ROLE_PUT: normalised */
	json_t *privs_req;     /* OP_PRIV_PUT: the documents */
	struct kg_es_has_privs has; /* OP_HAS_PRIVILEGES */
	bool needs_app_manage; /* no cluster privilege: global.application.manage may allow it (thread pool) */
	/* the answer */
	int status;
	json_t *answer;
	struct kg_es_fail fail;
};

static void req_free(struct es_req *r)
{
	OPENSSL_cleanse(r->cred, sizeof(r->cred));
	kg_buf_free(&r->body, true);
	kg_buf_free(&r->query, false);
	who_free(&r->who);
	kg_es_create_free(&r->create);
	kg_es_get_free(&r->get);
	kg_es_invalidate_free(&r->inv);
	kg_es_update_free(&r->upd);
	kg_es_query_free(&r->q);
	kg_es_user_req_free(&r->user);
	json_decref(r->role);
	json_decref(r->privs_req);
	kg_es_has_privileges_free(&r->has);
	json_decref(r->answer);
	kg_es_fail_free(&r->fail);
	free(r);
}

/* Every answer of these APIs: the official clients refuse a 2xx without
 * X-elastic-product. */
static void send_body(struct kg_conn *c, int status, const char *content_type, kg_str body, const char *extra)
{
	char headers[512];
	snprintf(headers, sizeof(headers), "X-elastic-product: Elasticsearch\r\n%s", extra ? extra : "");
	kg__conn_respond(c, status, content_type, body, headers);
}

static void send_json(struct kg_conn *c, const char *content_type, int status, const json_t *answer)
{
	char *text = json_dumps(answer, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text) {
		kg__conn_respond_error(c, 500, "out of memory");
		return;
	}
	send_body(c, status, content_type, kg_str_c(text), NULL);
	free(text);
}

static void send_fail(struct kg_conn *c, const char *content_type, const struct kg_es_fail *f)
{
	kg_buf body = { 0 };
	if (kg_es_error_json(&body, f, KG_STR_NULL) == KG_OK)
		send_body(c, f->status, content_type, kg_buf_str(&body), NULL);
	else
		kg__conn_respond_error(c, 500, "out of memory");
	kg_buf_free(&body, false);
}

/* 401 with ES's challenges; why (may be NULL) names the API key's problem
 * once its secret matched. */
static void send_401(struct kg_conn *c, const char *content_type, const char *reason, const char *why)
{
	kg_buf body = { 0 };
	if (kg_es_error_401(&body, kg_str_c(reason), why ? kg_str_c(why) : KG_STR_NULL) == KG_OK)
		send_body(c, 401, content_type, kg_buf_str(&body), kg_es_www_authenticate_lines);
	else
		kg__conn_respond_error(c, 500, "out of memory");
	kg_buf_free(&body, false);
}

/* ES's answers for a path or method it has no handler for. */
static void send_no_handler(struct kg_conn *c, const char *content_type, kg_str method, kg_str path, const char *allowed)
{
	json_t *a = NULL;
	char msg[1024];
	if (allowed) {
		snprintf(msg, sizeof(msg), "Incorrect HTTP method for uri [%.*s] and method [%.*s], allowed: [%s]",
		         (int)path.n, path.p, (int)method.n, method.p, allowed);
		a = json_pack("{s:s, s:i}", "error", msg, "status", 405);
	} else {
		snprintf(msg, sizeof(msg), "no handler found for uri [%.*s] and method [%.*s]", (int)path.n, path.p,
		         (int)method.n, method.p);
		a = json_pack("{s:s, s:i}", "error", msg, "status", 400);
	}
	if (a)
		send_json(c, content_type, allowed ? 405 : 400, a);
	else
		kg__conn_respond_error(c, 500, "out of memory");
	json_decref(a);
}

/* ---- routing ---- */

static bool is_method(kg_str m, const char *a, const char *b)
{
	return kg_str_eq(m, kg_str_c(a)) || (b && kg_str_eq(m, kg_str_c(b)));
}

/* The operation method + path (below /_security/) asks for, with the
 * path's {id} or {name} in r->arg; 0 with *allowed set when the path is
 * known but not the method; 0 with *allowed NULL when no API has this path. */
static enum es_op route(struct es_req *r, kg_str method, kg_str rest, const char **allowed)
{
	kg_str seg[4];
	size_t n = 0;
	*allowed = NULL;
	while (rest.n && n < 4) {
		const char *slash = memchr(rest.p, '/', rest.n);
		size_t len = slash ? (size_t)(slash - rest.p) : rest.n;
		seg[n++] = (kg_str){ rest.p, len };
		rest = slash ? (kg_str){ slash + 1, rest.n - len - 1 } : KG_STR_NULL;
	}
	if (rest.n || n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (seg[i].n == 0)
			return 0;
#define SEG(i, s) (n > (i) && kg_str_eq(seg[i], KG_STR(s)))
	kg_str arg = KG_STR_NULL, arg2 = KG_STR_NULL;
	enum es_op op = 0;
	if (n == 1 && SEG(0, "_authenticate")) {
		*allowed = "GET";
		op = is_method(method, "GET", NULL) ? OP_AUTHENTICATE : 0;
	} else if (n == 2 && SEG(0, "user") && SEG(1, "_has_privileges")) {
		*allowed = "GET, POST";
		op = is_method(method, "GET", "POST") ? OP_HAS_PRIVILEGES : 0;
	} else if (n == 3 && SEG(0, "user") && SEG(2, "_has_privileges")) {
		*allowed = "GET, POST";
		op = is_method(method, "GET", "POST") ? OP_HAS_PRIVILEGES : 0;
		arg = seg[1];
	} else if (n == 2 && SEG(0, "user") && SEG(1, "_privileges")) {
		*allowed = "GET";
		op = is_method(method, "GET", NULL) ? OP_USER_PRIVILEGES : 0;
	} else if (n == 1 && SEG(0, "privilege")) {
		*allowed = "GET, PUT, POST";
		op = is_method(method, "PUT", "POST") ? OP_PRIV_PUT : is_method(method, "GET", NULL) ? OP_PRIV_GET : 0;
	} else if (n == 2 && SEG(0, "privilege") && SEG(1, "_builtin")) {
		*allowed = "GET";
		op = is_method(method, "GET", NULL) ? OP_PRIV_BUILTIN : 0;
	} else if (n == 2 && SEG(0, "privilege")) {
		*allowed = "GET";
		op = is_method(method, "GET", NULL) ? OP_PRIV_GET : 0;
		arg = seg[1];
	} else if (n == 3 && SEG(2, "_clear_cache") &&
	           (SEG(0, "privilege") || SEG(0, "api_key") || SEG(0, "realm") || SEG(0, "role"))) {
		*allowed = "POST";
		op = !is_method(method, "POST", NULL) ? 0
		     : SEG(0, "privilege")            ? OP_CACHE_PRIV
		     : SEG(0, "api_key")              ? OP_CACHE_KEY
		     : SEG(0, "realm")                ? OP_CACHE_REALM
		                                      : OP_CACHE_ROLE;
		arg = seg[1];
	} else if (n == 3 && SEG(0, "privilege")) {
		*allowed = "GET, DELETE";
		op = is_method(method, "GET", NULL) ? OP_PRIV_GET : is_method(method, "DELETE", NULL) ? OP_PRIV_DELETE : 0;
		arg = seg[1];
		arg2 = seg[2];
	} else if (n == 1 && SEG(0, "api_key")) {
		*allowed = "GET, POST, PUT, DELETE";
		op = is_method(method, "POST", "PUT") ? OP_KEY_CREATE
		     : is_method(method, "GET", NULL) ? OP_KEY_GET
		     : is_method(method, "DELETE", NULL) ? OP_KEY_INVALIDATE
		                                        : 0;
	} else if (n == 2 && SEG(0, "api_key") && SEG(1, "_bulk_update")) {
		*allowed = "POST";
		op = is_method(method, "POST", NULL) ? OP_KEY_BULK_UPDATE : 0;
	} else if (n == 2 && SEG(0, "api_key")) {
		*allowed = "PUT";
		op = is_method(method, "PUT", NULL) ? OP_KEY_UPDATE : 0;
		arg = seg[1];
	} else if (n == 2 && SEG(0, "_query") && SEG(1, "api_key")) {
		*allowed = "GET, POST";
		op = is_method(method, "GET", "POST") ? OP_KEY_QUERY : 0;
	} else if (n == 1 && SEG(0, "user")) {
		*allowed = "GET";
		op = is_method(method, "GET", NULL) ? OP_USER_GET : 0;
	} else if (n == 2 && SEG(0, "user") && SEG(1, "_password")) {
		*allowed = "PUT, POST";
		op = is_method(method, "PUT", "POST") ? OP_USER_PASSWORD : 0;
	} else if (n == 2 && SEG(0, "user")) {
		*allowed = "GET, PUT, POST, DELETE";
		op = is_method(method, "GET", NULL)       ? OP_USER_GET
		     : is_method(method, "PUT", "POST")   ? OP_USER_PUT
		     : is_method(method, "DELETE", NULL) ? OP_USER_DELETE
		                                          : 0;
		arg = seg[1];
	} else if (n == 3 && SEG(0, "user") && SEG(2, "_password")) {
		*allowed = "PUT, POST";
		op = is_method(method, "PUT", "POST") ? OP_USER_PASSWORD : 0;
		arg = seg[1];
	} else if (n == 1 && SEG(0, "role")) {
		*allowed = "GET";
		op = is_method(method, "GET", NULL) ? OP_ROLE_GET : 0;
	} else if (n == 2 && SEG(0, "role")) {
		*allowed = "GET, PUT, POST, DELETE";
		op = is_method(method, "GET", NULL)       ? OP_ROLE_GET
		     : is_method(method, "PUT", "POST")   ? OP_ROLE_PUT
		     : is_method(method, "DELETE", NULL) ? OP_ROLE_DELETE
		                                          : 0;
		arg = seg[1];
	}
#undef SEG
	if (op && arg.n) {
		kg_buf d = { 0 };
		if (kg_es_percent_decode(arg, false, &d) != KG_OK || d.n >= sizeof(r->arg)) {
			kg_buf_free(&d, false);
			return 0;
		}
		memcpy(r->arg, d.p, d.n);
		r->arg[d.n] = '\0';
		r->has_arg = true;
		kg_buf_free(&d, false);
	}
	if (op && arg2.n) {
		/* after arg's NUL, in the same buffer */
		kg_buf d = { 0 };
		size_t at = strlen(r->arg) + 1;
		if (kg_es_percent_decode(arg2, false, &d) != KG_OK || at + d.n >= sizeof(r->arg)) {
			kg_buf_free(&d, false);
			return 0;
		}
		memcpy(r->arg + at, d.p, d.n);
		r->arg[at + d.n] = '\0';
		r->arg2 = r->arg + at;
		kg_buf_free(&d, false);
	}
	return op;
}

static const char *action_of(enum es_op op)
{
	switch (op) {
	case OP_AUTHENTICATE: return "cluster:admin/xpack/security/user/authenticate";
	case OP_KEY_CREATE: return "cluster:admin/xpack/security/api_key/create";
	case OP_KEY_GET: return "cluster:admin/xpack/security/api_key/get";
	case OP_KEY_INVALIDATE: return "cluster:admin/xpack/security/api_key/invalidate";
	case OP_KEY_UPDATE: return "cluster:admin/xpack/security/api_key/update";
	case OP_KEY_BULK_UPDATE: return "cluster:admin/xpack/security/api_key/bulk_update";
	case OP_KEY_QUERY: return "cluster:admin/xpack/security/api_key/query";
	case OP_USER_PUT: return "cluster:admin/xpack/security/user/put";
	case OP_USER_GET: return "cluster:admin/xpack/security/user/get";
	case OP_USER_DELETE: return "cluster:admin/xpack/security/user/delete";
	case OP_USER_PASSWORD: return "cluster:admin/xpack/security/user/change_password";
	case OP_ROLE_PUT: return "cluster:admin/xpack/security/role/put";
	case OP_ROLE_GET: return "cluster:admin/xpack/security/role/get";
	case OP_ROLE_DELETE: return "cluster:admin/xpack/security/role/delete";
	case OP_INFO: return "cluster:monitor/main";
	case OP_PRIV_PUT: return "cluster:admin/xpack/security/privilege/put";
	case OP_PRIV_GET: return "cluster:admin/xpack/security/privilege/get";
	case OP_PRIV_DELETE: return "cluster:admin/xpack/security/privilege/delete";
	case OP_PRIV_BUILTIN: return "cluster:admin/xpack/security/privilege/builtin/get";
	case OP_HAS_PRIVILEGES: return "cluster:admin/xpack/security/user/has_privileges";
	case OP_USER_PRIVILEGES: return "cluster:admin/xpack/security/user/list_privileges";
	case OP_CACHE_KEY: return "cluster:admin/xpack/security/api_key/clear_cache";
	case OP_CACHE_REALM: return "cluster:admin/xpack/security/realm/cache/clear";
	case OP_CACHE_ROLE: return "cluster:admin/xpack/security/roles/cache/clear";
	case OP_CACHE_PRIV: return "cluster:admin/xpack/security/privilege/cache/clear";
	}
	return "";
}

/* The media type of ES's answer: what the official clients asked for
 * (application/vnd.elasticsearch+json; compatible-with=N), else JSON. */
static void answer_type(struct kg_conn *c, char *out, size_t cap)
{
	kg_str accept = kg__req_find(c, KG_STR("Accept"));
	const char *v = NULL;
	for (size_t i = 0; accept.n >= 16 && i + 16 <= accept.n; i++)
		if (memcmp(accept.p + i, "compatible-with=", 16) == 0) {
			v = accept.p + i + 16;
			break;
		}
	if (v && v < accept.p + accept.n && *v >= '7' && *v <= '9')
		snprintf(out, cap, "application/vnd.elasticsearch+json;compatible-with=%c", *v);
	else
		snprintf(out, cap, "application/json");
}

/* A body must say it is JSON, as ES's REST layer requires (406 otherwise). */
static bool is_json_type(kg_str ct)
{
	size_t n = 0;
	while (n < ct.n && ct.p[n] != ';')
		n++;
	kg_str media = kg_str_trim((kg_str){ ct.p, n });
	return kg_str_eq_ci(media, KG_STR("application/json")) ||
	       kg_str_eq_ci(media, KG_STR("application/vnd.elasticsearch+json")) ||
	       kg_str_eq_ci(media, KG_STR("application/x-ndjson"));
}

/* ---- /_security: authentication and authorization ---- */

/* Fills r->fail with ES's 403 for r->action; false on no memory. */
static bool fail_403(struct es_req *r, bool is_own_request)
{
	kg_buf msg = { 0 }, by = { 0 }, principal = { 0 };
	const char *roles[64];
	size_t nroles = 0;
	json_t *v;
	size_t i;
	json_array_foreach(r->who.roles, i, v)
		if (nroles < 64 && json_is_string(v))
			roles[nroles++] = json_string_value(v);
	kg_err err = r->who.is_api_key
	                 ? kg_buf_printf(&principal, "API key id [%s] of user [%s]", r->who.key_id, r->who.username)
	                 : kg_buf_printf(&principal, "user [%s]", r->who.username);
	if (!err)
		err = kg_es_cluster_privileges_granting(r->action, is_own_request, &by);
	if (!err)
		err = kg_es_unauthorized_message(&msg, kg_str_c(r->action), kg_buf_str(&principal), r->who.is_api_key, roles,
		                                 nroles, by.n ? by.p : NULL);
	if (!err)
		err = kg_es_fail_set(&r->fail, 403, "security_exception", "%s", msg.p) == KG_ENOMEM ? KG_ENOMEM : KG_OK;
	kg_buf_free(&msg, false);
	kg_buf_free(&by, false);
	kg_buf_free(&principal, false);
	return !err;
}

static void send_403(struct es_req *r, bool is_own_request)
{
	if (fail_403(r, is_own_request))
		send_fail(r->c, r->content_type, &r->fail);
	else
		kg__conn_respond_error(r->c, 500, "out of memory");
}

static void send_r_fail(struct es_req *r)
{
	send_fail(r->c, r->content_type, &r->fail);
}

static bool prepare(struct es_req *r);
static void submit(struct es_req *r);
static void send_info(struct es_req *r);

/* The caller is known (r->who): may it do this at all? Then parse and
 * queue. */
static void authorized(struct es_req *r)
{
	if (r->op == OP_AUTHENTICATE || r->op == OP_USER_PASSWORD || r->op == OP_USER_PRIVILEGES)
		r->grant = KG_ES_ALLOW; /* everyone (a password change is judged in prepare) */
	else
		r->grant = kg_es_perm_cluster(r->who.perm, r->action);
	/* ES's global.application.manage allows the privilege APIs for the
	 * applications it names: judged with the caller's descriptors, which a
	 * key's are read for on the thread pool (work_cb) */
	if (r->grant == KG_ES_DENY && (r->op == OP_PRIV_PUT || r->op == OP_PRIV_GET || r->op == OP_PRIV_DELETE ||
	                               r->op == OP_CACHE_PRIV))
		r->needs_app_manage = true;
	else if (r->grant == KG_ES_DENY) {
		send_403(r, r->op == OP_KEY_CREATE);
		req_free(r);
		return;
	}
	if (r->op == OP_INFO) {
		send_info(r);
		req_free(r);
		return;
	}
	if (!prepare(r)) {
		req_free(r);
		return;
	}
	submit(r);
}

/* The password check of a Basic caller (thread pool). */
static void basic_work(struct kg_password_check *pc)
{
	struct es_req *r = (struct es_req *)pc;
	pc->is_ok = basic_check(r->es, r->name, r->password, r->now / 1000) == KG_OK;
}

static void send_bad_user(struct es_req *r)
{
	char reason[1024];
	snprintf(reason, sizeof(reason), KG_ES_REASON_BAD_USER, (int)r->name.n, r->name.p, (int)strlen(r->path), r->path);
	send_401(r->c, r->content_type, reason, NULL);
}

/* The user r->name, whose password is now known right. */
static void basic_known(struct es_req *r)
{
	struct es_user u;
	bool is_found = user_find(r->es, r->name, &u);
	if (!is_found || !u.is_enabled) {
		send_bad_user(r);
		user_free(&u);
		req_free(r);
		return;
	}
	kg_err err = who_from_user(r->es, r->name, &u, &r->who);
	user_free(&u);
	OPENSSL_cleanse(r->cred, sizeof(r->cred));
	r->password = KG_STR_NULL;
	if (err) {
		kg__conn_respond_error(r->c, 500, "out of memory");
		req_free(r);
		return;
	}
	authorized(r);
}

static void basic_done(struct kg_password_check *pc, struct kg_conn *c, int status)
{
	struct es_req *r = (struct es_req *)pc;
	if (!c) {
		req_free(r);
		return;
	}
	r->c = c;
	if (status != 0 || !pc->is_ok) {
		kg_info("elasticsearch: user [%.*s] refused: %s", (int)r->name.n, r->name.p,
		        status ? "the check was cancelled" : "wrong user name or password");
		send_bad_user(r);
		req_free(r);
		return;
	}
	basic_known(r);
}

/* Who is asking: the ApiKey or Basic credential of the request. Answers
 * the refusal itself and returns false. */
static bool authenticate(struct es_req *r, kg_str authorization)
{
	struct kg_cred cred = kg_cred_parse(authorization);
	if (cred.kind == KG_CRED_NONE) {
		char reason[700];
		snprintf(reason, sizeof(reason), KG_ES_REASON_MISSING, (int)strlen(r->path), r->path);
		send_401(r->c, r->content_type, reason, NULL);
		return false;
	}
	if (cred.kind == KG_CRED_APIKEY) {
		char buf[KG_ES_ID_MAX + KG_ES_SECRET_MAX + 8], logged[KG_ES_ID_MAX + 1] = "?";
		kg_str id, secret;
		enum key_check kc = KEY_BAD;
		/* the index has what the loop needs (owner, realm, the permission);
		 * the rest of the document is read on the thread pool (who_key_doc) */
		if (kg_es_apikey_decode(cred.value, buf, sizeof(buf), &id, &secret) == KG_OK) {
			kc = key_check(r->es, id, secret, r->now, KG_STR_NULL, KG_STR_NULL, NULL, NULL, NULL, &r->who, NULL);
			loggable_id(id, logged, sizeof(logged));
		}
		OPENSSL_cleanse(buf, sizeof(buf));
		if (kc == KEY_NOMEM) {
			kg__conn_respond_error(r->c, 500, "out of memory");
			return false;
		}
		if (kc != KEY_OK) {
			kg_info("elasticsearch: API key [%s] refused: %s", logged, key_check_why(kc));
			send_401(r->c, r->content_type, KG_ES_REASON_BAD_CREDENTIALS,
			         kc == KEY_EXPIRED || kc == KEY_INVALIDATED ? key_check_why(kc) : NULL);
			return false;
		}
		return true;
	}
	if (cred.kind != KG_CRED_BASIC ||
	    kg_basic_decode(cred.value, r->cred, sizeof(r->cred), &r->name, &r->password) != KG_OK) {
		send_401(r->c, r->content_type, KG_ES_REASON_BAD_CREDENTIALS, NULL);
		return false;
	}
	return true; /* Basic: the password is checked next (basic_begin) */
}

/* Checks a Basic caller's password: at once when it is cached against the
 * user's current hash, else on the thread pool behind the throttle. */
static void basic_begin(struct es_req *r)
{
	struct es_user u;
	uint64_t fp;
	bool is_found = user_find(r->es, r->name, &u);
	bool is_cached = is_found && kg_credcache_get(r->es->creds, r->name, r->password, r->now / 1000, &fp) &&
	                 fp == hash_fingerprint(u.hash);
	user_free(&u);
	if (is_cached) {
		basic_known(r);
		return;
	}
	int64_t wait;
	r->pc.work = basic_work;
	r->pc.done = basic_done;
	kg_err err = kg__password_check(r->c, &r->pc, &wait);
	if (err) {
		/* worded as the proxied routes word it (kg_throttle_message), in
		 * ES's error body */
		char headers[64], msg[KG_THROTTLE_MESSAGE_MAX];
		int status = 503;
		kg_err why = err == KG_ETHROTTLED ? KG_ETHROTTLED : KG_EUNAVAILABLE;
		kg_buf body = { 0 };
		if (kg_throttle_message(KG_DIALECT_ES, why, wait, &status, msg, sizeof(msg)) != KG_OK ||
		    kg_retry_after_header(wait, headers, sizeof(headers)) != KG_OK ||
		    kg_es_fail_set(&r->fail, status,
		                   why == KG_ETHROTTLED ? "security_exception" : "es_rejected_execution_exception", "%s",
		                   msg) == KG_ENOMEM || /* it returns KG_EINVAL once set */
		    kg_es_error_json(&body, &r->fail, KG_STR_NULL) != KG_OK)
			kg__conn_respond_error(r->c, 500, "out of memory");
		else
			send_body(r->c, r->fail.status, r->content_type, kg_buf_str(&body), headers);
		kg_buf_free(&body, false);
		req_free(r);
	}
}

/* ---- /_security: the operations ---- */

static bool fail400(struct es_req *r, const char *type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail400(struct es_req *r, const char *type, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kg_es_fail_set(&r->fail, 400, type, "%s", msg);
	send_r_fail(r);
	return false;
}

/* Is the request about the caller's own keys only, as manage_own_api_key
 * requires: owner=true, or the caller's own user name and realm, or (an API
 * key) its own id? An API key owns no other key, so for one only its own id
 * counts (ES's ManageOwnApiKeyClusterPrivilege): owner=true or its owner's
 * name would reach the keys of the user it was made from. */
static bool is_own_request(const struct es_req *r, bool is_owner, kg_str username, kg_str realm, const json_t *ids)
{
	if (r->who.is_api_key)
		return json_array_size(ids) == 1 &&
		       strcmp(json_string_value(json_array_get(ids, 0)) ?: "", r->who.key_id) == 0;
	if (is_owner)
		return true;
	return username.n && realm.n && kg_str_eq(username, kg_str_c(r->who.username)) &&
	       kg_str_eq(realm, kg_str_c(r->who.realm));
}

static bool check_expiration(struct es_req *r, bool has, int64_t *expiration_ms)
{
	int64_t max = r->es->max_expiration_ms;
	if (!max)
		return true;
	if (!has || *expiration_ms == 0) {
		if (r->op == OP_KEY_CREATE)
			*expiration_ms = r->now + max;
		return true;
	}
	if (*expiration_ms - r->now > max) {
		kg_es_fail_set(&r->fail, 400, "illegal_argument_exception",
		               "API key expiration exceeds the maximum lifetime keygate allows (api_key.max_expiration: "
		               "%lld ms)",
		               (long long)max);
		send_r_fail(r);
		return false;
	}
	return true;
}

/* Every descriptor of map grants nothing (what a key-made key must have). */
static bool is_all_empty(const json_t *map)
{
	const char *k;
	json_t *d;
	/* normalised descriptors: a grant can only come from one of these */
	json_object_foreach((json_t *)map, k, d) {
		if (json_array_size(json_object_get(d, "cluster")) || json_array_size(json_object_get(d, "indices")) ||
		    json_array_size(json_object_get(d, "applications")) || json_array_size(json_object_get(d, "run_as")) ||
		    json_object_size(json_object_get(d, "global")))
			return false;
	}
	return true;
}

static bool prepare_key_create(struct es_req *r)
{
	if (kg_es_create_parse(kg_buf_str(&r->body), r->now, &r->create, &r->fail) != KG_OK) {
		send_r_fail(r);
		return false;
	}
	json_t *rd = NULL;
	if (r->create.role_descriptors) {
		if (kg_es_roles_normalise(r->create.role_descriptors, true, &rd, &r->fail) != KG_OK) {
			send_r_fail(r);
			return false;
		}
		json_decref(r->create.role_descriptors);
		r->create.role_descriptors = rd;
	}
	if (r->who.is_api_key && (!rd || json_object_size(rd) == 0 || !is_all_empty(rd)))
		return fail400(r, "illegal_argument_exception", "%s",
		               "creating derived api keys requires an explicit role descriptor that is empty (has no "
		               "privileges)");
	return check_expiration(r, r->create.expiration_ms != 0, &r->create.expiration_ms);
}

static bool prepare_key_get(struct es_req *r)
{
	if (kg_es_get_params(kg_buf_str(&r->query), &r->get, &r->fail) != KG_OK) {
		send_r_fail(r);
		return false;
	}
	r->with_limited_by = r->get.with_limited_by;
	json_t *ids = r->get.id.n ? json_pack("[s%]", r->get.id.p, r->get.id.n) : NULL;
	bool own = is_own_request(r, r->get.is_owner, kg_buf_str(&r->get.username), kg_buf_str(&r->get.realm_name), ids);
	json_decref(ids);
	if (r->grant == KG_ES_OWN && (!own || (r->with_limited_by && r->who.is_api_key))) {
		send_403(r, false);
		return false;
	}
	return true;
}

static bool prepare_key_invalidate(struct es_req *r)
{
	if (kg_es_invalidate_parse(kg_buf_str(&r->body), &r->inv, &r->fail) != KG_OK) {
		send_r_fail(r);
		return false;
	}
	if (r->grant == KG_ES_OWN &&
	    !is_own_request(r, r->inv.is_owner, kg_buf_str(&r->inv.username), kg_buf_str(&r->inv.realm_name), r->inv.ids)) {
		send_403(r, false);
		return false;
	}
	return true;
}

static bool prepare_key_update(struct es_req *r)
{
	if (r->who.is_api_key)
		return fail400(r, "illegal_argument_exception", "%s",
		               "authentication via API key not supported: An API key cannot be used to update API keys");
	if (kg_es_update_parse(kg_buf_str(&r->body), r->op == OP_KEY_BULK_UPDATE, r->now, &r->upd, &r->fail) != KG_OK) {
		send_r_fail(r);
		return false;
	}
	if (r->upd.role_descriptors) {
		json_t *rd = NULL;
		if (kg_es_roles_normalise(r->upd.role_descriptors, true, &rd, &r->fail) != KG_OK) {
			send_r_fail(r);
			return false;
		}
		json_decref(r->upd.role_descriptors);
		r->upd.role_descriptors = rd;
	}
	return check_expiration(r, r->upd.has_expiration, &r->upd.expiration_ms);
}

static bool prepare_key_query(struct es_req *r)
{
	/* the query API's one URL parameter */
	kg_str q = kg_buf_str(&r->query);
	r->with_limited_by = false;
	while (q.n) {
		const char *amp = memchr(q.p, '&', q.n);
		kg_str p = { q.p, amp ? (size_t)(amp - q.p) : q.n };
		q = amp ? (kg_str){ amp + 1, q.n - p.n - 1 } : KG_STR_NULL;
		if (kg_str_eq(p, KG_STR("with_limited_by")) || kg_str_eq(p, KG_STR("with_limited_by=true")))
			r->with_limited_by = true;
	}
	if (kg_es_query_parse(kg_buf_str(&r->body), &r->q, &r->fail) != KG_OK) {
		send_r_fail(r);
		return false;
	}
	if (r->grant == KG_ES_OWN && r->with_limited_by && r->who.is_api_key) {
		send_403(r, false);
		return false;
	}
	return true;
}

static bool prepare_user_put(struct es_req *r)
{
	/* does the native realm have it? (not user_find: a file realm user of
	 * the same name comes first there and would hide the native one) */
	kg_buf v = { 0 };
	bool exists = r->es->cache && kg_cache_kv_get(r->es->cache, NS_USER, kg_str_c(r->arg), &v) == KG_OK;
	kg_buf_free(&v, false);
	if (kg_es_user_parse(kg_str_c(r->arg), kg_buf_str(&r->body), !exists, &r->user, &r->fail) != KG_OK) {
		send_r_fail(r);
		return false;
	}
	return true;
}

static bool prepare_user_password(struct es_req *r)
{
	/* no name in the path: the caller's own (copied into arg, never onto
	 * itself: snprintf from a buffer into the same buffer is undefined, and
	 * glibc's left arg empty) */
	if (!r->has_arg)
		snprintf(r->arg, sizeof(r->arg), "%s", r->who.username);
	bool is_self = !r->who.is_api_key && strcmp(r->arg, r->who.username) == 0;
	if (!is_self && kg_es_perm_cluster(r->who.perm, r->action) != KG_ES_ALLOW) {
		send_403(r, false);
		return false;
	}
	if (strcmp(r->arg, ELASTIC) == 0)
		return fail400(r, "illegal_argument_exception",
		               "the password of [%s] is keygate's admin password: change admin_password instead", r->arg);
	/* ES's other built-in users (kibana_system...) do not exist in keygate */
	if (kg_es_user_is_reserved(kg_str_c(r->arg)))
		return fail400(r, "illegal_argument_exception",
		               "user [%s] is reserved by Elasticsearch and keygate does not provide it", r->arg);
	if (kg_es_password_parse(kg_buf_str(&r->body), &r->user, &r->fail) != KG_OK) {
		send_r_fail(r);
		return false;
	}
	return true;
}

static bool prepare_role_put(struct es_req *r)
{
	json_t *in = NULL;
	if (kg_es_role_name_check(kg_str_c(r->arg), &r->fail) != KG_OK ||
	    kg_es_role_body_parse(kg_str_c(r->arg), kg_buf_str(&r->body), &in, &r->fail) != KG_OK ||
	    kg_es_role_normalise(r->arg, in, false, &r->role, &r->fail) != KG_OK) {
		json_decref(in);
		send_r_fail(r);
		return false;
	}
	json_decref(in);
	return true;
}

static bool prepare_priv_put(struct es_req *r)
{
	if (kg_es_privileges_parse(kg_buf_str(&r->body), &r->privs_req, &r->fail) != KG_OK) {
		send_r_fail(r);
		return false;
	}
	/* refused before any is stored: a store key is "<application>/<name>" */
	size_t i;
	json_t *doc;
	json_array_foreach(r->privs_req, i, doc) {
		size_t an = strlen(json_str(doc, "application")), nn = strlen(json_str(doc, "name"));
		if (an + 1 + nn > KG_STORE_MAX_KEY_BYTES)
			return fail400(r, "illegal_argument_exception",
			               "application privilege [%.64s...] of application [%.64s...]: application and name "
			               "together may not be longer than [%d] bytes",
			               json_str(doc, "name"), json_str(doc, "application"), KG_STORE_MAX_KEY_BYTES - 1);
	}
	return true;
}

/* ES's has_privileges checks the caller's own privileges only: another
 * user's name is refused, with a 403 to a caller without the action and
 * ES's 400 to one with it (TransportHasPrivilegesAction). */
static bool prepare_has_privileges(struct es_req *r)
{
	if (r->has_arg && strcmp(r->arg, r->who.username) != 0) {
		/* the privileges whose actions include has_privileges (manage_security
		 * and all imply read_security); kg_es_perm_cluster says yes to
		 * everyone for one's own account */
		if (!kg_es_perm_cluster_privilege(r->who.perm, "read_security") &&
		    !kg_es_perm_cluster_privilege(r->who.perm, "read_ccr")) {
			send_403(r, false);
			return false;
		}
		return fail400(r, "illegal_argument_exception", "%s", "users may only check the privileges of their own account");
	}
	if (kg_es_has_privileges_parse(kg_buf_str(&r->body), r->who.username, &r->has, &r->fail) != KG_OK) {
		send_r_fail(r);
		return false;
	}
	return true;
}

/* The realms keygate has, by ES's names; "_all" and "*" are every one. */
static bool prepare_cache_realm(struct es_req *r)
{
	const char *p = r->arg;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		kg_str name = { p, n };
		if (n && !kg_str_eq(name, KG_STR("default_native")) && !kg_str_eq(name, KG_STR("default_file")) &&
		    !kg_str_eq(name, KG_STR("reserved")) && !kg_str_eq(name, KG_STR("_all")) && !kg_str_eq(name, KG_STR("*")))
			return fail400(r, "illegal_argument_exception", "could not find active realm [%.*s]", (int)n, p);
		p += n + (comma ? 1 : 0);
	}
	return true;
}

/* Parses and judges what needs no store; false when answered already. */
static bool prepare(struct es_req *r)
{
	switch (r->op) {
	case OP_PRIV_PUT: return prepare_priv_put(r);
	case OP_HAS_PRIVILEGES: return prepare_has_privileges(r);
	case OP_CACHE_REALM: return prepare_cache_realm(r);
	case OP_KEY_CREATE: return prepare_key_create(r);
	case OP_KEY_GET: return prepare_key_get(r);
	case OP_KEY_INVALIDATE: return prepare_key_invalidate(r);
	case OP_KEY_UPDATE:
	case OP_KEY_BULK_UPDATE: return prepare_key_update(r);
	case OP_KEY_QUERY: return prepare_key_query(r);
	case OP_USER_PUT: return prepare_user_put(r);
	case OP_USER_PASSWORD: return prepare_user_password(r);
	case OP_ROLE_PUT: return prepare_role_put(r);
	case OP_USER_DELETE:
		if (kg_es_user_is_reserved(kg_str_c(r->arg)))
			return fail400(r, "illegal_argument_exception", "user [%s] is reserved and cannot be deleted", r->arg);
		return true;
	case OP_ROLE_DELETE:
		if (kg_es_role_is_reserved(kg_str_c(r->arg)))
			return fail400(r, "illegal_argument_exception", "role [%s] is reserved and cannot be deleted", r->arg);
		return true;
	default: return true;
	}
}

/* ---- /_security: store work (thread pool) ---- */

static kg_err collect(void *data, kg_str key, kg_str value)
{
	json_t *doc = json_parse(value);
	if (doc && json_array_append_new(data, doc) != 0)
		return KG_ENOMEM;
	return KG_OK;
}

/* Every stored document of ns, parsed. */
static json_t *scan(kg_str ns, kg_err *err)
{
	json_t *all = json_array();
	struct kg_store *store = kg__store();
	*err = !all ? KG_ENOMEM : !store ? KG_EUNAVAILABLE : kg_store_kv_scan(store, ns, collect, all);
	if (*err) {
		json_decref(all);
		return NULL;
	}
	return all;
}

static bool glob(const char *pat, const char *s)
{
	const char *star = NULL, *back = NULL;
	while (*s) {
		if (*pat == '*') {
			star = pat++;
			back = s;
		} else if (*pat == *s) {
			pat++;
			s++;
		} else if (star) {
			pat = star + 1;
			s = ++back;
		} else {
			return false;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

static bool is_owned_by(const json_t *doc, const struct es_who *w)
{
	return strcmp(json_str(doc, "username"), w->username) == 0 && strcmp(json_str(doc, "realm"), w->realm) == 0;
}

/* Does doc match the get or invalidate filters? */
static bool key_matches(const struct es_req *r, const json_t *doc, const json_t *ids, kg_str name, kg_str username,
                        kg_str realm, bool is_owner)
{
	if (ids) {
		bool hit = false;
		size_t i;
		json_t *v;
		json_array_foreach(ids, i, v)
			hit = hit || strcmp(json_string_value(v) ?: "", json_str(doc, "id")) == 0;
		if (!hit)
			return false;
	}
	char pat[4 * KG_ES_NAME_MAX + 1];
	if (name.n && (snprintf(pat, sizeof(pat), "%.*s", (int)name.n, name.p), !glob(pat, json_str(doc, "name"))))
		return false;
	if (username.n && !kg_str_eq(username, kg_str_c(json_str(doc, "username"))))
		return false;
	if (realm.n && !kg_str_eq(realm, kg_str_c(json_str(doc, "realm"))))
		return false;
	if ((is_owner || r->grant == KG_ES_OWN) && !is_owned_by(doc, &r->who))
		return false;
	return true;
}

/* Updates and invalidations read a key document, judge it and write it
 * back on the thread pool's threads: without one lock an update that read
 * the key just before an invalidation wrote it would write it back as
 * valid, bringing an invalidated key back to life. One lock for every key
 * (these APIs are rare next to the requests keys authenticate) held from
 * the read to the write. */
static pthread_mutex_t key_write_lock = PTHREAD_MUTEX_INITIALIZER;

/* Key id's stored document, parsed, or NULL (thread pool: the cache keeps
 * no copy of es.api_key, only the index). */
static json_t *key_doc_get(const char *id)
{
	kg_buf v = { 0 };
	json_t *doc = NULL;
	struct kg_store *store = kg__store();
	if (store && kg_store_kv_get(store, NS_KEY, kg_str_c(id), &v) == KG_OK)
		doc = json_parse(kg_buf_str(&v));
	kg_buf_free(&v, false);
	return doc;
}

static kg_err put_doc(struct es_req *r, kg_str ns, const char *key, const json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text)
		return KG_ENOMEM;
	kg_err err = r->es->cache ? kg_cache_kv_put(r->es->cache, ns, kg_str_c(key), kg_str_c(text), true) : KG_EUNAVAILABLE;
	free(text);
	return err;
}

static void work_key_create(struct es_req *r)
{
	char id[KG_ES_ID_LEN + 1], secret[KG_ES_SECRET_LEN + 1];
	kg_buf hash = { 0 }, encoded = { 0 };
	json_t *doc = NULL;
	kg_err err = kg_es_key_new(id, secret);
	if (!err)
		err = kg_es_secret_hash(kg_str_c(secret), &hash);
	if (!err)
		err = kg_es_encoded(kg_str_c(id), kg_str_c(secret), &encoded);
	if (err)
		goto out;
	/* a key-made key is limited by what limits its parent */
	json_t *limited = r->who.is_api_key ? (json_object_size(r->who.descriptors) ? r->who.descriptors : r->who.limited_by)
	                                    : r->who.descriptors;
	doc = json_pack("{s:s, s:s%, s:s, s:I}", "id", id, "name", r->create.name.p ?: "", r->create.name.n, "type",
	                "rest", "creation", (json_int_t)r->now);
	if (!doc) {
		err = KG_ENOMEM;
		goto out;
	}
	if (r->create.expiration_ms)
		json_object_set_new(doc, "expiration", json_integer(r->create.expiration_ms));
	json_object_set_new(doc, "invalidated", json_false());
	json_object_set_new(doc, "username", json_string(r->who.username));
	json_object_set_new(doc, "realm", json_string(r->who.realm));
	json_object_set_new(doc, "realm_type", json_string(r->who.realm_type));
	json_object_set_new(doc, "metadata", r->create.metadata ? json_incref(r->create.metadata) : json_object());
	json_object_set_new(doc, "role_descriptors",
	                    r->create.role_descriptors ? json_incref(r->create.role_descriptors) : json_object());
	json_object_set_new(doc, "limited_by", limited ? json_incref(limited) : json_object());
	json_object_set_new(doc, "hash", json_stringn(hash.p, hash.n));
	if ((err = put_doc(r, NS_KEY, id, doc)))
		goto out;
	r->answer = json_pack("{s:s, s:s%}", "id", id, "name", r->create.name.p ?: "", r->create.name.n);
	if (r->answer && r->create.expiration_ms)
		json_object_set_new(r->answer, "expiration", json_integer(r->create.expiration_ms));
	if (r->answer) {
		json_object_set_new(r->answer, "api_key", json_string(secret));
		json_object_set_new(r->answer, "encoded", json_stringn(encoded.p, encoded.n));
	}
	r->status = 200;
	kg_info("elasticsearch: API key [%s] created for user [%s] (%s)", id, r->who.username, r->who.realm);
out:
	if (err)
		kg_es_fail_set(&r->fail, 500, "exception", "could not store the API key: %s", kg_strerror(err));
	OPENSSL_cleanse(secret, sizeof(secret));
	kg_buf_free(&encoded, true);
	kg_buf_free(&hash, false);
	json_decref(doc);
}

static kg_err collect_last_used(void *data, kg_str key, kg_str value)
{
	unsigned long long ms;
	char id[KG_STORE_MAX_KEY_BYTES + 1];
	if (kg_str_to_u64(value, (unsigned long long)INT64_MAX, &ms) != KG_OK)
		return KG_OK; /* not ours to judge: skipped */
	snprintf(id, sizeof(id), "%.*s", (int)key.n, key.p);
	return json_object_set_new(data, id, json_integer((json_int_t)ms)) ? KG_ENOMEM : KG_OK;
}

/* Every stored key, each with its last_used when it has one. */
static json_t *scan_keys(kg_err *err)
{
	json_t *all = scan(NS_KEY, err), *used = json_object();
	struct kg_store *store = kg__store();
	if (all && used && store && kg_store_kv_scan(store, NS_LAST_USED, collect_last_used, used) == KG_OK) {
		size_t i;
		json_t *doc;
		json_array_foreach(all, i, doc) {
			json_t *ms = json_object_get(used, json_str(doc, "id"));
			if (ms)
				json_object_set(doc, "last_used", ms);
		}
	}
	json_decref(used);
	return all;
}

static void last_used_write(void *data, const char *id, int64_t ms)
{
	char v[24];
	struct kg_store *store = kg__store();
	snprintf(v, sizeof(v), "%lld", (long long)ms);
	/* not durable: a crash loses at most the last few seconds of uses */
	if (store && kg_store_kv_put(store, NS_LAST_USED, kg_str_c(id), kg_str_c(v), false) != KG_OK)
		kg_debug("elasticsearch: could not record the last use of an API key");
}

void kg__es_flush_last_used(struct kg_es *es)
{
	kg__es_last_used_take(es, last_used_write, es);
}

static json_t *view_full(const json_t *doc, void *data)
{
	return kg_es_key_view(doc, *(bool *)data);
}

static void work_key_get(struct es_req *r)
{
	kg_err err;
	json_t *all = scan_keys(&err), *list = json_array(), *ids = NULL;
	if (!all || !list) {
		kg_es_fail_set(&r->fail, 500, "exception", "could not read the API keys: %s", kg_strerror(err ?: KG_ENOMEM));
		goto out;
	}
	if (r->get.id.n)
		ids = json_pack("[s%]", r->get.id.p, r->get.id.n);
	size_t i;
	json_t *doc;
	json_array_foreach(all, i, doc) {
		if (!key_matches(r, doc, ids, kg_buf_str(&r->get.name), kg_buf_str(&r->get.username),
		                 kg_buf_str(&r->get.realm_name), r->get.is_owner))
			continue;
		if (r->get.is_active_only && !kg_es_key_is_active(doc, r->now))
			continue;
		json_array_append_new(list, kg_es_key_view(doc, r->with_limited_by));
	}
	r->status = r->get.id.n && json_array_size(list) == 0 ? 404 : 200;
	r->answer = json_pack("{s:O}", "api_keys", list);
out:
	json_decref(ids);
	json_decref(list);
	json_decref(all);
}

static void work_key_invalidate(struct es_req *r)
{
	kg_err err;
	json_t *all = scan(NS_KEY, &err), *done = json_array(), *before = json_array(), *errors = json_array();
	if (!all || !done || !before || !errors) {
		kg_es_fail_set(&r->fail, 500, "exception", "could not read the API keys: %s", kg_strerror(err ?: KG_ENOMEM));
		goto out;
	}
	size_t i;
	json_t *doc;
	json_array_foreach(all, i, doc) {
		if (!key_matches(r, doc, r->inv.ids, kg_buf_str(&r->inv.name), kg_buf_str(&r->inv.username),
		                 kg_buf_str(&r->inv.realm_name), r->inv.is_owner))
			continue;
		const char *id = json_str(doc, "id");
		/* the scan may be older than an update since: write what the key is now */
		pthread_mutex_lock(&key_write_lock);
		json_t *now = key_doc_get(id);
		if (!now) {
			pthread_mutex_unlock(&key_write_lock);
			continue; /* deleted meanwhile (retention) */
		}
		if (json_is_true(json_object_get(now, "invalidated"))) {
			pthread_mutex_unlock(&key_write_lock);
			json_decref(now);
			json_array_append_new(before, json_string(id));
			continue;
		}
		json_object_set_new(now, "invalidated", json_true());
		json_object_set_new(now, "invalidation", json_integer(r->now));
		err = put_doc(r, NS_KEY, id, now);
		pthread_mutex_unlock(&key_write_lock);
		json_decref(now);
		if (err) {
			json_array_append_new(errors, json_pack("{s:s, s:s}", "type", "exception", "reason", kg_strerror(err)));
			continue;
		}
		kg_info("elasticsearch: API key [%s] invalidated by user [%s]", id, r->who.username);
		json_array_append_new(done, json_string(id));
	}
	r->status = 200;
	r->answer = json_pack("{s:O, s:O, s:I}", "invalidated_api_keys", done, "previously_invalidated_api_keys", before,
	                      "error_count", (json_int_t)json_array_size(errors));
	if (r->answer && json_array_size(errors))
		json_object_set(r->answer, "error_details", errors);
out:
	json_decref(all);
	json_decref(done);
	json_decref(before);
	json_decref(errors);
}

/* Updates one key; *error gets ES's error object when it cannot be. */
static int update_one(struct es_req *r, const char *id, json_t **error)
{
	kg_buf v = { 0 };
	json_t *doc = NULL, *next = NULL;
	int updated = -1;
	struct kg_es_fail f = { 0 };
	pthread_mutex_lock(&key_write_lock);
	if (!r->es->cache || !(doc = key_doc_get(id)) || !is_owned_by(doc, &r->who)) {
		kg_es_fail_set(&f, 404, "resource_not_found_exception", "no API key owned by requesting user found for ID [%s]",
		               id);
		goto out;
	}
	if (json_is_true(json_object_get(doc, "invalidated"))) {
		kg_es_fail_set(&f, 400, "illegal_argument_exception", "cannot update invalidated API key [%s]", id);
		goto out;
	}
	if (!kg_es_key_is_active(doc, r->now)) {
		kg_es_fail_set(&f, 400, "illegal_argument_exception", "cannot update expired API key [%s]", id);
		goto out;
	}
	next = json_deep_copy(doc);
	if (!next)
		goto nomem;
	if (r->upd.role_descriptors)
		json_object_set(next, "role_descriptors", r->upd.role_descriptors);
	if (r->upd.metadata)
		json_object_set(next, "metadata", r->upd.metadata);
	if (r->upd.has_expiration) {
		if (r->upd.expiration_ms)
			json_object_set_new(next, "expiration", json_integer(r->upd.expiration_ms));
		else
			json_object_del(next, "expiration");
	}
	/* every update takes a new snapshot of the owner's permissions */
	json_object_set(next, "limited_by", r->who.descriptors);
	updated = !json_equal(doc, next);
	if (updated && put_doc(r, NS_KEY, id, next) != KG_OK) {
		kg_es_fail_set(&f, 500, "exception", "could not store API key [%s]", id);
		updated = -1;
	}
	goto out;
nomem:
	kg_es_fail_set(&f, 500, "exception", "out of memory");
out:
	pthread_mutex_unlock(&key_write_lock);
	if (updated < 0)
		*error = json_pack("{s:s, s:s%}", "type", f.type, "reason", f.reason.p ?: "", f.reason.n);
	if (updated < 0 && r->op == OP_KEY_UPDATE) {
		kg_es_fail_set(&r->fail, f.status, f.type, "%s", f.reason.p ?: "");
	}
	kg_es_fail_free(&f);
	kg_buf_free(&v, false);
	json_decref(doc);
	json_decref(next);
	return updated;
}

static void work_key_update(struct es_req *r)
{
	json_t *error = NULL;
	int u = update_one(r, r->arg, &error);
	json_decref(error);
	if (u >= 0) {
		r->status = 200;
		r->answer = json_pack("{s:b}", "updated", u);
	}
}

static void work_key_bulk_update(struct es_req *r)
{
	json_t *updated = json_array(), *noops = json_array(), *details = json_object();
	size_t i;
	json_t *v;
	json_array_foreach(r->upd.ids, i, v) {
		const char *id = json_string_value(v);
		json_t *error = NULL;
		int u = update_one(r, id, &error);
		if (u > 0)
			json_array_append_new(updated, json_string(id));
		else if (u == 0)
			json_array_append_new(noops, json_string(id));
		else if (error)
			json_object_set_new(details, id, error);
	}
	r->status = 200;
	r->answer = json_pack("{s:O, s:O}", "updated", updated, "noops", noops);
	if (r->answer && json_object_size(details))
		json_object_set_new(r->answer, "errors",
		                    json_pack("{s:I, s:O}", "count", (json_int_t)json_object_size(details), "details", details));
	json_decref(updated);
	json_decref(noops);
	json_decref(details);
}

static void work_key_query(struct es_req *r)
{
	kg_err err;
	json_t *all = scan_keys(&err);
	json_t **docs = NULL;
	size_t n = 0, i;
	json_t *doc;
	if (!all || !(docs = calloc(json_array_size(all) + 1, sizeof(*docs)))) {
		kg_es_fail_set(&r->fail, 500, "exception", "could not read the API keys: %s", kg_strerror(err ?: KG_ENOMEM));
		goto out;
	}
	/* manage_own_api_key sees its own, silently: a user its keys, an API key
	 * itself (ES filters a key's query by its id) */
	json_array_foreach(all, i, doc)
		if (r->grant != KG_ES_OWN ||
		    (r->who.is_api_key ? strcmp(json_str(doc, "id"), r->who.key_id) == 0 : is_owned_by(doc, &r->who)))
			docs[n++] = doc;
	if (kg_es_query_run(r->q, docs, n, r->now, view_full, &r->with_limited_by, &r->answer, &r->fail) == KG_OK)
		r->status = 200;
out:
	free(docs);
	json_decref(all);
}

static void work_authenticate(struct es_req *r)
{
	const struct es_who *w = &r->who;
	if (w->is_api_key) {
		/* "metadata" is the user's, as ES answers: {} (the key's own metadata
		 * is its holder's business, shown by get and query to its managers,
		 * not to everyone who holds the key) */
		r->answer = json_pack("{s:s, s:[], s:n, s:n, s:{}, s:b, s:{s:s, s:s}, s:{s:s, s:s}, s:s, s:{s:s, s:s}}",
		                      "username", w->username, "roles", "full_name", "email", "metadata", "enabled", 1,
		                      "authentication_realm", "name", "_es_api_key", "type", "_es_api_key", "lookup_realm",
		                      "name", "_es_api_key", "type", "_es_api_key", "authentication_type", "api_key",
		                      "api_key", "id", w->key_id, "name", w->key_name);
	} else {
		r->answer = json_deep_copy(w->user);
		if (r->answer) {
			json_object_set_new(r->answer, "authentication_realm",
			                    json_pack("{s:s, s:s}", "name", w->realm, "type", w->realm_type));
			json_object_set_new(r->answer, "lookup_realm", json_pack("{s:s, s:s}", "name", w->realm, "type", w->realm_type));
			json_object_set_new(r->answer, "authentication_type", json_string("realm"));
		}
	}
	r->status = 200;
}

static void work_user_put(struct es_req *r)
{
	kg_buf hash = { 0 }, old = { 0 };
	json_t *doc = json_deep_copy(r->user.doc), *prev = NULL;
	bool is_created = true;
	kg_err err = doc ? KG_OK : KG_ENOMEM;
	if (!err && r->es->cache && kg_cache_kv_get(r->es->cache, NS_USER, kg_str_c(r->arg), &old) == KG_OK) {
		is_created = false;
		prev = json_parse(kg_buf_str(&old));
	}
	if (!err && r->user.has_password)
		err = kg_bcrypt_hash(kg_buf_str(&r->user.password), KG_BCRYPT_DEFAULT_COST, &hash);
	else if (!err && r->user.password_hash)
		err = kg_buf_appends(&hash, kg_str_c(r->user.password_hash));
	else if (!err)
		err = kg_buf_appends(&hash, kg_str_c(json_str(prev, "password_hash")));
	if (!err)
		err = json_object_set_new(doc, "password_hash", json_stringn(hash.p ?: "", hash.n)) ? KG_ENOMEM : KG_OK;
	if (!err)
		err = put_doc(r, NS_USER, r->arg, doc);
	if (err) {
		kg_es_fail_set(&r->fail, 500, "exception", "could not store user [%s]: %s", r->arg, kg_strerror(err));
	} else {
		r->status = 200;
		r->answer = json_pack("{s:b}", "created", is_created);
		kg_info("elasticsearch: user [%s] %s by [%s]", r->arg, is_created ? "created" : "updated", r->who.username);
	}
	kg_buf_free(&hash, false);
	kg_buf_free(&old, false);
	json_decref(doc);
	json_decref(prev);
}

static void work_user_password(struct es_req *r)
{
	kg_buf old = { 0 }, hash = { 0 };
	json_t *doc = NULL;
	kg_err err = KG_ENOENT;
	if (r->es->cache && kg_cache_kv_get(r->es->cache, NS_USER, kg_str_c(r->arg), &old) == KG_OK)
		doc = json_parse(kg_buf_str(&old));
	if (!doc) {
		kg_es_fail_set(&r->fail, 404, "resource_not_found_exception", "user [%s] does not exist in the native realm",
		               r->arg);
		goto out;
	}
	err = r->user.has_password ? kg_bcrypt_hash(kg_buf_str(&r->user.password), KG_BCRYPT_DEFAULT_COST, &hash)
	                           : kg_buf_appends(&hash, kg_str_c(r->user.password_hash ?: ""));
	if (!err)
		err = json_object_set_new(doc, "password_hash", json_stringn(hash.p ?: "", hash.n)) ? KG_ENOMEM : KG_OK;
	if (!err)
		err = put_doc(r, NS_USER, r->arg, doc);
	if (err) {
		kg_es_fail_set(&r->fail, 500, "exception", "could not store user [%s]: %s", r->arg, kg_strerror(err));
		goto out;
	}
	r->status = 200;
	r->answer = json_object();
	kg_info("elasticsearch: password of user [%s] changed by [%s]", r->arg, r->who.username);
out:
	kg_buf_free(&old, false);
	kg_buf_free(&hash, false);
	json_decref(doc);
}

/* The names a GET of users or roles asks for: r->arg split at commas, or
 * NULL for all. */
static json_t *names_asked(const struct es_req *r)
{
	if (!r->has_arg)
		return NULL;
	json_t *names = json_array();
	const char *p = r->arg;
	while (names && *p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n)
			json_array_append_new(names, json_stringn(p, n));
		p += n + (comma ? 1 : 0);
	}
	return names;
}

static bool is_asked(const json_t *names, const char *name)
{
	size_t i;
	json_t *v;
	if (!names)
		return true;
	json_array_foreach(names, i, v)
		if (strcmp(json_string_value(v), name) == 0)
			return true;
	return false;
}

static void work_user_get(struct es_req *r)
{
	kg_err err;
	json_t *names = names_asked(r), *all = scan(NS_USER, &err), *out = json_object();
	if (!all || !out) {
		kg_es_fail_set(&r->fail, 500, "exception", "could not read the users: %s", kg_strerror(err ?: KG_ENOMEM));
		goto out;
	}
	if (r->es->admin_hash[0] && is_asked(names, ELASTIC))
		json_object_set_new(out, ELASTIC, kg_es_reserved_user_view(ELASTIC, true));
	size_t i;
	json_t *doc;
	json_array_foreach(all, i, doc)
		if (is_asked(names, json_str(doc, "username")))
			json_object_set_new(out, json_str(doc, "username"), kg_es_user_view(doc));
	r->status = names && json_object_size(out) == 0 ? 404 : 200;
	r->answer = json_incref(out);
out:
	json_decref(names);
	json_decref(all);
	json_decref(out);
}

static void work_delete(struct es_req *r, kg_str ns, const char *what)
{
	kg_err err = r->es->cache ? kg_cache_kv_del(r->es->cache, ns, kg_str_c(r->arg)) : KG_EUNAVAILABLE;
	if (err && err != KG_ENOENT) {
		kg_es_fail_set(&r->fail, 500, "exception", "could not delete %s [%s]: %s", what, r->arg, kg_strerror(err));
		return;
	}
	r->status = err ? 404 : 200;
	r->answer = json_pack("{s:b}", "found", !err);
	if (!err)
		kg_info("elasticsearch: %s [%s] deleted by [%s]", what, r->arg, r->who.username);
}

static void work_role_put(struct es_req *r)
{
	kg_buf old = { 0 };
	bool is_created = !(r->es->cache && kg_cache_kv_get(r->es->cache, NS_ROLE, kg_str_c(r->arg), &old) == KG_OK);
	kg_buf_free(&old, false);
	kg_err err = put_doc(r, NS_ROLE, r->arg, r->role);
	if (err) {
		kg_es_fail_set(&r->fail, 500, "exception", "could not store role [%s]: %s", r->arg, kg_strerror(err));
		return;
	}
	r->status = 200;
	r->answer = json_pack("{s:{s:b}}", "role", "created", is_created);
	kg_info("elasticsearch: role [%s] %s by [%s]", r->arg, is_created ? "created" : "updated", r->who.username);
}

static kg_err collect_named(void *data, kg_str key, kg_str value)
{
	json_t *doc = json_parse(value);
	char name[KG_STORE_MAX_KEY_BYTES + 1];
	snprintf(name, sizeof(name), "%.*s", (int)key.n, key.p);
	if (doc && json_object_set_new(data, name, doc) != 0)
		return KG_ENOMEM;
	return KG_OK;
}

static void work_role_get(struct es_req *r)
{
	json_t *names = names_asked(r), *stored = json_object(), *out = json_object();
	struct kg_store *store = kg__store();
	kg_err err = !stored || !out ? KG_ENOMEM : !store ? KG_EUNAVAILABLE : kg_store_kv_scan(store, NS_ROLE, collect_named, stored);
	if (err) {
		kg_es_fail_set(&r->fail, 500, "exception", "could not read the roles: %s", kg_strerror(err));
		goto out;
	}
	if (is_asked(names, "superuser")) {
		json_t *su = kg_es_role_superuser();
		if (su)
			json_object_set_new(su, "metadata", json_pack("{s:b}", "_reserved", 1));
		json_object_set_new(out, "superuser", su);
	}
	const char *k;
	json_t *d;
	json_object_foreach(stored, k, d)
		if (is_asked(names, k))
			json_object_set(out, k, d);
	r->status = names && json_object_size(out) == 0 ? 404 : 200;
	r->answer = json_incref(out);
out:
	json_decref(names);
	json_decref(stored);
	json_decref(out);
}

/* ---- /_security: the privileges APIs (thread pool) ---- */

/* Does some descriptor of map hold global.application.manage for app? */
static bool map_manages_app(const json_t *map, kg_str app)
{
	const char *k;
	json_t *d;
	json_object_foreach((json_t *)map, k, d) {
		json_t *apps = json_object_get(
		    json_object_get(json_object_get(json_object_get(d, "global"), "application"), "manage"), "applications");
		size_t i;
		json_t *a;
		json_array_foreach(apps, i, a)
			if (json_is_string(a) && kg_es_pattern_covers((kg_str){ json_string_value(a), json_string_length(a) }, app))
				return true;
	}
	return false;
}

/* global.application.manage, as ES's ManageApplicationPrivileges: every
 * application the request names (none: it asks for all, which no such
 * grant covers) is covered by the caller's descriptors; for an API key by
 * its own (when it has any) and by its owner's snapshot, both. */
static bool who_manages_app(const struct es_who *w, kg_str app)
{
	if (!w->is_api_key)
		return map_manages_app(w->descriptors, app);
	return (json_object_size(w->descriptors) == 0 || map_manages_app(w->descriptors, app)) &&
	       map_manages_app(w->limited_by, app);
}

static bool manages_apps(const struct es_req *r)
{
	if (r->op == OP_PRIV_PUT) {
		size_t i;
		json_t *doc;
		json_array_foreach(r->privs_req, i, doc)
			if (!who_manages_app(&r->who, kg_str_c(json_str(doc, "application"))))
				return false;
		return json_array_size(r->privs_req) > 0;
	}
	if (!r->has_arg)
		return false;
	size_t asked = 0;
	const char *p = r->arg;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n && (asked++, !who_manages_app(&r->who, (kg_str){ p, n })))
			return false;
		p += n + (comma ? 1 : 0);
	}
	return asked > 0;
}

/* The privilege stored under app/name: present in the set? */
static bool priv_exists(struct kg_es *es, const char *app, const char *name)
{
	pthread_rwlock_rdlock(&es->privs_lock);
	bool found = json_object_get(json_object_get(es->privs, app), name) != NULL;
	pthread_rwlock_unlock(&es->privs_lock);
	return found;
}

static void work_priv_put(struct es_req *r)
{
	size_t n = json_array_size(r->privs_req), i;
	bool *existed = calloc(n ? n : 1, sizeof(*existed));
	json_t *doc;
	kg_err err = existed ? KG_OK : KG_ENOMEM;
	json_array_foreach(r->privs_req, i, doc) {
		char key[2 * KG_ES_PRIV_STRING_MAX + 2];
		if (err)
			break;
		existed[i] = priv_exists(r->es, json_str(doc, "application"), json_str(doc, "name"));
		snprintf(key, sizeof(key), "%s/%s", json_str(doc, "application"), json_str(doc, "name"));
		err = put_doc(r, NS_PRIV, key, doc);
	}
	if (err) {
		kg_es_fail_set(&r->fail, 500, "exception", "could not store the application privileges: %s", kg_strerror(err));
	} else {
		r->status = 200;
		r->answer = kg_es_privileges_put_answer(r->privs_req, existed);
		kg_info("elasticsearch: %zu application privileges put by [%s]", n, r->who.username);
	}
	free(existed);
}

static void work_priv_get(struct es_req *r)
{
	pthread_rwlock_rdlock(&r->es->privs_lock);
	json_t *view = kg_es_privs_view(r->es->privs, r->has_arg ? kg_str_c(r->arg) : KG_STR_NULL,
	                                r->arg2 ? kg_str_c(r->arg2) : KG_STR_NULL);
	/* the view shares the set's arrays; the set changes under the lock only */
	r->answer = view ? json_deep_copy(view) : NULL;
	json_decref(view);
	pthread_rwlock_unlock(&r->es->privs_lock);
	r->status = r->has_arg && json_object_size(r->answer) == 0 ? 404 : 200;
}

static void work_priv_delete(struct es_req *r)
{
	kg_str app = kg_str_c(r->arg);
	pthread_rwlock_rdlock(&r->es->privs_lock);
	json_t *ans = kg_es_privs_delete_answer(r->es->privs, app, kg_str_c(r->arg2));
	pthread_rwlock_unlock(&r->es->privs_lock);
	bool is_any = false;
	const char *name;
	json_t *v;
	json_object_foreach(json_object_get(ans, r->arg), name, v) {
		char key[2 * KG_ES_PRIV_STRING_MAX + 2];
		if (!json_is_true(json_object_get(v, "found")))
			continue;
		snprintf(key, sizeof(key), "%s/%s", r->arg, name);
		kg_err err = r->es->cache ? kg_cache_kv_del(r->es->cache, NS_PRIV, kg_str_c(key)) : KG_EUNAVAILABLE;
		if (err && err != KG_ENOENT) {
			kg_es_fail_set(&r->fail, 500, "exception", "could not delete application privilege [%s]: %s", key,
			               kg_strerror(err));
			json_decref(ans);
			return;
		}
		is_any = true;
		kg_info("elasticsearch: application privilege [%s] deleted by [%s]", key, r->who.username);
	}
	r->answer = ans;
	r->status = is_any ? 200 : 404;
}

static void work_has_privileges(struct es_req *r)
{
	pthread_rwlock_rdlock(&r->es->privs_lock);
	kg_err err = kg_es_has_privileges_eval(&r->has, r->who.perm, r->es->privs, r->who.username, &r->answer, &r->fail);
	pthread_rwlock_unlock(&r->es->privs_lock);
	if (!err)
		r->status = 200;
	else if (err == KG_ENOMEM && !r->fail.type)
		kg_es_fail_set(&r->fail, 500, "exception", "out of memory");
}

/* A user's privileges are its roles'; a key's would be the intersection of
 * two sets, which ES will not print (nor will keygate). */
static void work_user_privileges(struct es_req *r)
{
	const json_t *map = r->who.descriptors;
	if (r->who.is_api_key) {
		if (json_object_size(r->who.descriptors)) {
			kg_es_fail_set(&r->fail, 400, "illegal_argument_exception", "%s",
			               "Cannot retrieve privileges for API keys with assigned role descriptors. Please use the "
			               "Get API key information API https://ela.st/es-api-get-api-key");
			return;
		}
		map = r->who.limited_by;
	}
	json_t *empty = map ? NULL : json_object();
	kg_err err = kg_es_user_privileges(map ? map : empty, &r->answer);
	json_decref(empty);
	if (err)
		kg_es_fail_set(&r->fail, 500, "exception", "could not list the privileges: %s", kg_strerror(err));
	else
		r->status = 200;
}

/* The cache APIs. keygate keeps no copy of roles or privileges that could
 * outlive a change (the cache follows the store's change log; the key index
 * and the privilege set follow the cache), so only the realms' verified
 * passwords have anything to drop. */
static void work_clear_cache(struct es_req *r)
{
	if (r->op == OP_CACHE_REALM) {
		/* ?usernames=a,b drops those users; else every cached password (the
		 * cache is one for the three realms) */
		kg_str q = kg_buf_str(&r->query), names = KG_STR_NULL;
		while (q.n) {
			const char *amp = memchr(q.p, '&', q.n);
			kg_str p = { q.p, amp ? (size_t)(amp - q.p) : q.n };
			q = amp ? (kg_str){ amp + 1, q.n - p.n - 1 } : KG_STR_NULL;
			if (p.n > 10 && memcmp(p.p, "usernames=", 10) == 0)
				names = (kg_str){ p.p + 10, p.n - 10 };
		}
		kg_buf d = { 0 };
		if (names.n && kg_es_percent_decode(names, true, &d) == KG_OK && d.n) {
			size_t i = 0;
			while (i < d.n) {
				size_t j = i;
				while (j < d.n && d.p[j] != ',')
					j++;
				if (j > i)
					kg_credcache_forget(r->es->creds, (kg_str){ d.p + i, j - i });
				i = j + 1;
			}
		} else {
			kg_credcache_clear(r->es->creds);
		}
		kg_buf_free(&d, false);
	}
	r->answer = json_pack("{s:{s:i, s:i, s:i}, s:s}", "_nodes", "total", 1, "successful", 1, "failed", 0,
	                      "cluster_name", CLUSTER_NAME);
	r->status = 200;
}

static void work_cb(uv_work_t *req)
{
	struct es_req *r = req->data;
	kg__slow_work_begin();
	/* a key made by a key is limited by its parent's document; _authenticate
	 * names the key */
	if (r->who.is_api_key &&
	    (r->op == OP_KEY_CREATE || r->op == OP_AUTHENTICATE || r->op == OP_USER_PRIVILEGES || r->needs_app_manage) &&
	    !who_key_doc(&r->who)) {
		kg_es_fail_set(&r->fail, 500, "exception", "API key [%s] was deleted while in use", r->who.key_id);
		return;
	}
	if (r->needs_app_manage && !manages_apps(r)) {
		if (!fail_403(r, false))
			kg_es_fail_set(&r->fail, 500, "exception", "out of memory");
		return;
	}
	switch (r->op) {
	case OP_AUTHENTICATE: work_authenticate(r); break;
	case OP_KEY_CREATE: work_key_create(r); break;
	case OP_KEY_GET: work_key_get(r); break;
	case OP_KEY_INVALIDATE: work_key_invalidate(r); break;
	case OP_KEY_UPDATE: work_key_update(r); break;
	case OP_KEY_BULK_UPDATE: work_key_bulk_update(r); break;
	case OP_KEY_QUERY: work_key_query(r); break;
	case OP_USER_PUT: work_user_put(r); break;
	case OP_USER_GET: work_user_get(r); break;
	case OP_USER_DELETE: work_delete(r, NS_USER, "user"); break;
	case OP_USER_PASSWORD: work_user_password(r); break;
	case OP_ROLE_PUT: work_role_put(r); break;
	case OP_ROLE_GET: work_role_get(r); break;
	case OP_ROLE_DELETE: work_delete(r, NS_ROLE, "role"); break;
	case OP_INFO: break; /* answered on the loop (send_info) */
	case OP_PRIV_PUT: work_priv_put(r); break;
	case OP_PRIV_GET: work_priv_get(r); break;
	case OP_PRIV_DELETE: work_priv_delete(r); break;
	case OP_PRIV_BUILTIN:
		r->answer = kg_es_builtin_privileges();
		r->status = 200;
		break;
	case OP_HAS_PRIVILEGES: work_has_privileges(r); break;
	case OP_USER_PRIVILEGES: work_user_privileges(r); break;
	case OP_CACHE_KEY:
	case OP_CACHE_REALM:
	case OP_CACHE_ROLE:
	case OP_CACHE_PRIV: work_clear_cache(r); break;
	}
	if (!r->answer && !r->fail.type)
		kg_es_fail_set(&r->fail, 500, "exception", "out of memory");
}

static void after_cb(uv_work_t *req, int status)
{
	struct es_req *r = req->data;
	struct kg_runtime *rt = r->rt;
	if (kg__conn_release(r->c)) {
		if (status != 0)
			kg__conn_respond_error(r->c, 503, "cancelled");
		else if (r->fail.type)
			send_r_fail(r);
		else
			send_json(r->c, r->content_type, r->status, r->answer);
	}
	req_free(r);
	kg__runtime_release(rt);
}

static void submit(struct es_req *r)
{
	r->work.data = r;
	r->rt = kg__conn_rt(r->c);
	kg__runtime_hold(r->rt);
	kg__conn_hold(r->c);
	if (uv_queue_work(&kg__conn_worker(r->c)->loop, &r->work, work_cb, after_cb) != 0) {
		kg__conn_release(r->c);
		kg__runtime_release(r->rt);
		kg__conn_respond_error(r->c, 503, "cannot queue the request");
		req_free(r);
	}
}

/* ---- the route ---- */

/* A request to answer: NULL (500 answered) when out of memory. */
static struct es_req *req_new(struct kg_conn *c, const char *ctype)
{
	struct kg_request *q = kg__conn_req(c);
	struct es_req *r = calloc(1, sizeof(*r));
	if (!r) {
		kg__conn_respond_error(c, 500, "out of memory");
		return NULL;
	}
	r->c = c;
	r->es = kg__conn_rt(c)->es;
	r->now = now_ms();
	snprintf(r->content_type, sizeof(r->content_type), "%s", ctype);
	snprintf(r->path, sizeof(r->path), "%.*s", (int)q->facts.path.n, q->facts.path.p);
	return r;
}

/* Who is asking (at once for an API key, after the password check for a
 * Basic user), then on to the operation. */
static void req_run(struct es_req *r)
{
	if (!authenticate(r, kg__conn_req(r->c)->facts.authorization)) {
		req_free(r);
		return;
	}
	if (r->who.perm)
		authorized(r); /* an API key */
	else
		basic_begin(r);
}

static void handle(struct kg_conn *c)
{
	struct kg_request *q = kg__conn_req(c);
	char ctype[96];
	const char *allowed;
	answer_type(c, ctype, sizeof(ctype));
	struct es_req *r = req_new(c, ctype);
	if (!r)
		return;
	kg_str rest = KG_STR_NULL;
	if (q->facts.path.n > sizeof("/_security/") - 1)
		rest = (kg_str){ q->facts.path.p + sizeof("/_security/") - 1, q->facts.path.n - (sizeof("/_security/") - 1) };
	r->op = route(r, q->method, rest, &allowed);
	if (!r->op) {
		send_no_handler(c, ctype, q->method, q->facts.path, allowed);
		req_free(r);
		return;
	}
	r->action = action_of(r->op);
	kg_str ct = kg__req_find(c, KG_STR("Content-Type"));
	if (q->own_body.n && !is_json_type(ct)) {
		char msg[256];
		snprintf(msg, sizeof(msg), "Content-Type header [%.*s] is not supported", (int)(ct.n > 128 ? 128 : ct.n), ct.p);
		json_t *a = json_pack("{s:s, s:i}", "error", msg, "status", 406);
		if (a)
			send_json(c, ctype, 406, a);
		else
			kg__conn_respond_error(c, 500, "out of memory");
		json_decref(a);
		req_free(r);
		return;
	}
	const char *qm = memchr(q->facts.target.p, '?', q->facts.target.n);
	if ((qm && kg_buf_append(&r->query, qm + 1, (size_t)(q->facts.target.p + q->facts.target.n - qm - 1)) != KG_OK) ||
	    kg_buf_appends(&r->body, kg_buf_str(&q->own_body)) != KG_OK) {
		kg__conn_respond_error(c, 500, "out of memory");
		req_free(r);
		return;
	}
	req_run(r);
}

/* ---- GET /: Elasticsearch's info API (api_key.info: keygate) ---- */

/* The version keygate's /_security APIs follow. Clients read it: Debian's
 * elasticsearch-py 7.17 goes on only for >= 7.14 with build_flavor default,
 * the tagline and X-elastic-product (send_body adds the header). */
#define INFO_VERSION "8.19.0"

static void send_info(struct es_req *r)
{
	/* cluster_uuid "_na_" is what ES says before it knows its cluster's
	 * uuid: keygate is no cluster, and a made-up uuid would look like one */
	json_t *a = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s}, s:s}", "name", CLUSTER_NAME,
	                      "cluster_name", CLUSTER_NAME, "cluster_uuid", "_na_", "version", "number", INFO_VERSION,
	                      "build_flavor", "default", "build_type", "keygate", "build_hash", kg__version, "build_date",
	                      "1970-01-01T00:00:00.000Z", "build_snapshot", 0, "lucene_version", "9.12.2",
	                      "minimum_wire_compatibility_version", "7.17.0", "minimum_index_compatibility_version",
	                      "7.0.0", "tagline", "You Know, for Search");
	if (a)
		send_json(r->c, r->content_type, 200, a);
	else
		kg__conn_respond_error(r->c, 500, "out of memory");
	json_decref(a);
}

/* GET|HEAD /: answered as ES does, to a caller who may cluster:monitor/main
 * (monitor, manage, all, superuser); ES's 401 without credentials, its 403
 * without the privilege (the official clients warn and go on after either). */
static void handle_info(struct kg_conn *c)
{
	struct kg_request *q = kg__conn_req(c);
	char ctype[96];
	answer_type(c, ctype, sizeof(ctype));
	if (!is_method(q->method, "GET", "HEAD")) {
		send_no_handler(c, ctype, q->method, q->facts.path, "GET, HEAD");
		return;
	}
	struct es_req *r = req_new(c, ctype);
	if (!r)
		return;
	r->op = OP_INFO;
	r->action = action_of(r->op);
	req_run(r);
}

static bool is_on(const struct kg_runtime *rt)
{
	return rt->es != NULL;
}

static bool is_info_on(const struct kg_runtime *rt)
{
	return rt->es != NULL && strcmp(rt->cfg->api_key_info, "keygate") == 0;
}

static const struct kg_route routes[] = {
	{ .path = "/_security", .is_prefix = true, .methods = "GET POST PUT DELETE", .owner = KG_DIALECT_ES,
	  .handle = handle, .is_enabled = is_on },
	{ .path = "/", .methods = "GET HEAD", .owner = KG_DIALECT_ES, .handle = handle_info, .is_enabled = is_info_on },
};
KG_ROUTE_SET(kg__es_routes, routes);

/* ---- set-up and maintenance ---- */

void kg__es_free(struct kg_es **pes)
{
	struct kg_es *es = *pes;
	if (!es)
		return;
	if (es->cache) {
		kg_cache_unwatch(es->cache, &es->privs_watch);
		kg_cache_unwatch(es->cache, &es->watch);
	}
	json_decref(es->privs);
	json_decref(es->privs_loading);
	pthread_rwlock_destroy(&es->privs_lock);
	index_free(es);
	if (es->owners.buckets)
		interns_free(&es->owners);
	if (es->perms.buckets)
		interns_free(&es->perms);
	free(es->pending);
	for (size_t i = 0; i < KEY_STRIPES; i++)
		pthread_rwlock_destroy(&es->stripes[i]);
	pthread_mutex_destroy(&es->index_lock);
	pthread_mutex_destroy(&es->pending_lock);
	kg_credcache_free(&es->creds);
	kg_es_file_realm_free(&es->file);
	json_decref(es->file_roles);
	OPENSSL_cleanse(es->admin_hash, sizeof(es->admin_hash));
	free(es);
	*pes = NULL;
}

/* The file realm of es.config_dir, its roles normalised. */
static kg_err load_file_realm(struct kg_es *es, const char *dir, kg_buf *why)
{
	kg_config_errors errs = { 0 };
	struct kg_es_fail f = { 0 };
	kg_err err = kg_es_file_realm_load(dir, &es->file, &errs);
	if (err) {
		kg_buf_printf(why, "es.config_dir: ");
		for (size_t i = 0; i < errs.n; i++)
			kg_buf_printf(why, "%s%s", i ? "; " : "", errs.v[i]);
		if (!errs.n)
			kg_buf_printf(why, "%s", kg_strerror(err));
		goto out;
	}
	err = kg_es_roles_normalise(kg_es_file_realm_roles(es->file), false, &es->file_roles, &f);
	if (err)
		kg_buf_printf(why, "es.config_dir: %s/roles.yml: %s", dir, f.reason.p ? f.reason.p : kg_strerror(err));
out:
	kg_config_errors_free(&errs);
	kg_es_fail_free(&f);
	return err;
}

kg_err kg__es_new(const kg_config *cfg, const char *admin_hash, struct kg_store *store, struct kg_cache *cache,
                  const struct kg_authenticator *users_basic, struct kg_es **out, kg_buf *why)
{
	(void)store;
	struct kg_es *es = calloc(1, sizeof(*es));
	kg_err err = KG_ENOMEM;
	if (!es)
		return KG_ENOMEM;
	for (size_t i = 0; i < KEY_STRIPES; i++)
		pthread_rwlock_init(&es->stripes[i], NULL);
	pthread_mutex_init(&es->index_lock, NULL);
	pthread_mutex_init(&es->pending_lock, NULL);
	/* writers first: under constant traffic a reader-preferring lock could
	 * hold the watcher, and with it the cache's updater, indefinitely (as
	 * lib/cache.c's lock) */
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&es->privs_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (!(es->privs = json_object()))
		goto fail;
	es->cache = cache;
	es->cache_owner = kg_tokcache_owner_new();
	es->view_owner = kg_tokcache_owner_new();
	es->users_basic = users_basic;
	snprintf(es->admin_hash, sizeof(es->admin_hash), "%s", admin_hash);
	snprintf(es->app, sizeof(es->app), "%s", cfg->api_key_application);
	es->max_expiration_ms = cfg->api_key_max_expiration_ms;
	es->retention_ms = cfg->api_key_retention_ms;
	es->mask = KEY_BUCKETS_MIN - 1;
	if (!(es->buckets = calloc(KEY_BUCKETS_MIN, sizeof(*es->buckets))) ||
	    !(es->used_bits = calloc(KEY_BUCKETS_MIN / 64, sizeof(*es->used_bits))) ||
	    !(es->pending = calloc(LAST_USED_PENDING_MAX, sizeof(*es->pending))))
		goto fail;
	if (RAND_bytes(es->slot_key, sizeof(es->slot_key)) != 1) {
		err = KG_EIO;
		goto fail;
	}
	if ((err = interns_init(&es->owners, es->slot_key)) || (err = interns_init(&es->perms, es->slot_key)))
		goto fail;
	if ((err = kg_credcache_new((size_t)cfg->basic_cache_size, cfg->basic_cache_ttl_ms / 1000, &es->creds)))
		goto fail;
	/* unknown users are checked against a hash of the admin password's
	 * cost: a name's absence must not answer faster than elastic's check */
	int cost = KG_BCRYPT_DEFAULT_COST;
	if (strlen(admin_hash) > 7 && admin_hash[4] >= '0' && admin_hash[4] <= '3' && admin_hash[5] >= '0' &&
	    admin_hash[5] <= '9')
		cost = (admin_hash[4] - '0') * 10 + (admin_hash[5] - '0');
	kg_buf dummy = { 0 };
	if ((err = kg_bcrypt_hash(KG_STR("keygate: no such user"), cost, &dummy)))
		goto fail;
	snprintf(es->dummy_hash, sizeof(es->dummy_hash), "%s", dummy.p);
	kg_buf_free(&dummy, false);
	if (cfg->es_config_dir[0] && (err = load_file_realm(es, cfg->es_config_dir, why)))
		goto fail;
	es->apikey = (struct kg_authenticator){
		.name = "apikey",
		.dialect = KG_DIALECT_ES,
		.kinds = 1u << KG_CRED_APIKEY,
		.data = es,
		.authenticate = apikey_authenticate,
		.authorize = es_authorize,
	};
	es->basic = (struct kg_authenticator){
		.name = "elasticsearch-basic",
		.dialect = KG_DIALECT_ES,
		.kinds = 1u << KG_CRED_BASIC,
		.data = es,
		.authenticate = basic_authenticate,
		.slow = basic_slow,
		.authorize = es_authorize,
		.slow_refusal = basic_slow_refusal,
	};
	/* last: from here on the cache tells the index every change of a key */
	if (cache && (err = kg_cache_watch(cache, NS_KEY, on_key_change, es, &es->watch))) {
		kg_buf_printf(why, "cannot index the API keys of the store: %s", kg_strerror(err));
		goto fail;
	}
	if (cache && (err = kg_cache_watch(cache, NS_PRIV, on_priv_change, es, &es->privs_watch))) {
		kg_buf_printf(why, "cannot read the application privileges of the store: %s", kg_strerror(err));
		goto fail;
	}
	*out = es;
	return KG_OK;
fail:
	kg__es_free(&es);
	return err;
}

/* Retention: keys invalidated or expired longer than api_key.retention ago
 * are deleted. */
void kg__es_maintain(struct kg_es *es)
{
	kg_err err;
	json_t *all = scan(NS_KEY, &err);
	int64_t now = now_ms(), cutoff = now - es->retention_ms;
	size_t i, removed = 0;
	json_t *doc;
	json_array_foreach(all, i, doc) {
		int64_t inv = json_integer_value(json_object_get(doc, "invalidation"));
		int64_t exp = json_integer_value(json_object_get(doc, "expiration"));
		bool is_old = (json_is_true(json_object_get(doc, "invalidated")) && inv < cutoff) || (exp && exp < cutoff);
		if (is_old && es->cache && kg_cache_kv_del(es->cache, NS_KEY, kg_str_c(json_str(doc, "id"))) == KG_OK) {
			if (kg__store())
				kg_store_kv_del(kg__store(), NS_LAST_USED, kg_str_c(json_str(doc, "id")));
			removed++;
		}
	}
	if (removed)
		kg_info("elasticsearch: deleted %zu API keys invalidated or expired more than api_key.retention ago", removed);
	json_decref(all);
}
