/* api_avax.c - AvalancheGo's Auth API, brought back in front of the node:
 *   POST /ext/auth  JSON-RPC 2.0: auth.newToken, auth.revokeToken, auth.changePassword
 * and the authenticator that checks its HS256 JWTs on every other route.
 *
 * Better than AvalancheGo: the password hash, the signing key and the
 * revocations live in the store, so tokens, revocations and password changes
 * survive restarts; a password change draws a new signing key, which ends
 * every earlier token at once (on other instances within a second); password
 * checks run on the thread pool and are throttled per client address.
 * Reading a request and writing its answer are lib/avax_rpc.c's; this file
 * moves the bytes and runs the call behind the password check. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keygate/avax_rpc.h"
#include "keygate/cache.h"
#include "keygate/jwt.h"
#include "keygate/log.h"
#include "keygate/password.h"
#include "keygate/store.h"
#include "keygate/tokcache.h"
#include "avax.h"
#include "conn.h"
#include "kg.h"
#include "routes.h"
#include "slow.h"

#define KG_AVAX_NS KG_STR("avax")
#define KG_AVAX_REVOKED_PREFIX "avax:"

struct kg_avax {
	struct kg_authenticator auth;
	int64_t lifetime_ms;
	struct kg_cache *cache; /* the process's view of the store (revocations, the key), may be NULL */
	/* the signing key of the current password epoch: changed by
	 * auth.changePassword (a worker) and kg__avax_refresh (another
	 * instance's change), read by every verification */
	pthread_rwlock_t key_lock;
	unsigned char signing_key[32];
	/* grows after every change of signing_key (release: who reads the new
	 * number also sees the new key), so the workers' token caches drop
	 * what the old key verified */
	_Atomic uint64_t key_gen;
	uint64_t cache_owner; /* this instance's name in the workers' token caches */
};

static void key_get(struct kg_avax *x, unsigned char out[32])
{
	pthread_rwlock_rdlock(&x->key_lock);
	memcpy(out, x->signing_key, 32);
	pthread_rwlock_unlock(&x->key_lock);
}

/* Sets the key from its stored form, 64 hex digits (anything else is ignored). */
static void key_set_hex(struct kg_avax *x, kg_str hex)
{
	char text[65];
	unsigned char k[32];
	size_t n = 0;
	if (hex.n != 64)
		return;
	memcpy(text, hex.p, 64);
	text[64] = '\0';
	if (OPENSSL_hexstr2buf_ex(k, sizeof(k), &n, text, '\0') == 1 && n == sizeof(k)) {
		pthread_rwlock_wrlock(&x->key_lock);
		bool is_new = CRYPTO_memcmp(x->signing_key, k, 32) != 0;
		memcpy(x->signing_key, k, 32);
		pthread_rwlock_unlock(&x->key_lock);
		if (is_new)
			atomic_fetch_add_explicit(&x->key_gen, 1, memory_order_release);
	}
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(text, sizeof(text));
}

static kg_err new_key_hex(kg_buf *out)
{
	unsigned char k[32];
	char hex[2 * sizeof(k)];
	if (RAND_bytes(k, sizeof(k)) != 1)
		return KG_EIO;
	kg_buf_clear(out);
	kg_err err = kg_buf_append(out, hex, kg_hex_encode(k, sizeof(k), hex, false));
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(hex, sizeof(hex));
	return err;
}

/* Picks up a password change made by another instance (maintenance timer). */
void kg__avax_refresh(struct kg_avax *x)
{
	kg_buf v = { 0 };
	if (x->cache && kg_cache_kv_get(x->cache, KG_AVAX_NS, KG_STR("signing_key"), &v) == KG_OK)
		key_set_hex(x, kg_buf_str(&v));
	kg_buf_free(&v, true);
}

/* ---- the authenticator ---- */

static bool is_revoked(const struct kg_avax *x, kg_str jti, kg_arena *arena)
{
	if (!x->cache)
		return false;
	size_t n = sizeof(KG_AVAX_REVOKED_PREFIX) - 1 + jti.n;
	char *id = kg_arena_alloc(arena, n);
	if (!id)
		return true; /* fail closed */
	memcpy(id, KG_AVAX_REVOKED_PREFIX, sizeof(KG_AVAX_REVOKED_PREFIX) - 1);
	memcpy(id + sizeof(KG_AVAX_REVOKED_PREFIX) - 1, jti.p, jti.n);
	return kg_cache_is_revoked(x->cache, (kg_str){ id, n });
}

/* ---- the workers' token caches (lib/tokcache.c) ----
 * A verified JWT is cached as its claims: u16 jti length, jti, u16 count,
 * then u16 length and bytes of each endpoint (at most KG_TOKCACHE_MAX_VALUE
 * bytes; a token whose claims do not fit is checked in full every time). */

static bool pack_u16(unsigned char *buf, size_t *n, kg_str s)
{
	if (s.n > UINT16_MAX || *n + 2 + s.n > KG_TOKCACHE_MAX_VALUE)
		return false;
	buf[(*n)++] = (unsigned char)(s.n >> 8);
	buf[(*n)++] = (unsigned char)s.n;
	memcpy(buf + *n, s.p, s.n);
	*n += s.n;
	return true;
}

static void cache_claims(const struct kg_avax *x, kg_tokcache *tc, kg_str token, uint64_t epoch,
                         const struct kg_jwt_claims *cl)
{
	unsigned char v[KG_TOKCACHE_MAX_VALUE];
	size_t n = 0;
	char count[2] = { (char)(cl->nendpoints >> 8), (char)cl->nendpoints };
	/* a JWT without exp never expires; those are rare enough to check in full */
	if (!tc || cl->exp <= 0 || cl->nendpoints > UINT16_MAX || !pack_u16(v, &n, cl->jti) || n + 2 > sizeof(v))
		return;
	memcpy(v + n, count, 2);
	n += 2;
	for (size_t i = 0; i < cl->nendpoints; i++)
		if (!pack_u16(v, &n, cl->endpoints[i]))
			return;
	kg_tokcache_put(tc, x->cache_owner, token, epoch, cl->exp, v, n);
}

static size_t get_u16(const unsigned char *p)
{
	return (size_t)p[0] << 8 | p[1];
}

/* The claims cached for token, in the arena (the principal points at them);
 * false on a miss. The buffer was written by cache_claims: lengths are ours. */
static bool cached_claims(const struct kg_avax *x, kg_tokcache *tc, kg_str token, uint64_t epoch, int64_t now,
                          kg_arena *arena, struct kg_jwt_claims *cl)
{
	size_t n = 0;
	const unsigned char *v = kg_tokcache_get(tc, x->cache_owner, token, epoch, now, &n);
	if (!v)
		return false;
	size_t at = 0, jn = get_u16(v);
	char *text = kg_arena_alloc(arena, n); /* every string fits in the value's length */
	if (!text)
		return false;
	memcpy(text, v + 2, jn);
	cl->jti = (kg_str){ text, jn };
	at = 2 + jn;
	cl->nendpoints = get_u16(v + at);
	at += 2;
	cl->endpoints = cl->nendpoints ? kg_arena_alloc(arena, cl->nendpoints * sizeof(kg_str)) : NULL;
	if (cl->nendpoints && !cl->endpoints)
		return false;
	size_t used = jn;
	for (size_t i = 0; i < cl->nendpoints; i++) {
		size_t en = get_u16(v + at);
		memcpy(text + used, v + at + 2, en);
		cl->endpoints[i] = (kg_str){ text + used, en };
		used += en;
		at += 2 + en;
	}
	return true;
}

static kg_err avax_authenticate(const struct kg_authenticator *a, const struct kg_auth_request *req, kg_arena *arena,
                                struct kg_principal *out, const char **message)
{
	unsigned char key[32];
	struct kg_jwt_claims *cl = kg_arena_alloc(arena, sizeof(*cl));
	if (!cl)
		return KG_ENOMEM;
	struct kg_avax *x = a->data;
	kg_tokcache *tc = kg_tokcache_of_thread();
	/* read before the key and the revocations, so a revocation or a new key
	 * during the check makes the entry stale (both numbers only grow) */
	uint64_t epoch = kg_cache_revoked_gen(x->cache) + atomic_load_explicit(&x->key_gen, memory_order_acquire);
	if (!cached_claims(x, tc, req->cred.value, epoch, req->now, arena, cl)) {
		key_get(x, key);
		enum kg_jwt_result r = kg_jwt_verify(key, req->cred.value, req->now, arena, cl, message);
		OPENSSL_cleanse(key, sizeof(key));
		if (r == KG_JWT_EXPIRED)
			return KG_EEXPIRED;
		if (r != KG_JWT_OK)
			return KG_EBADCRED;
		if (is_revoked(x, cl->jti, arena)) {
			*message = "the provided auth token was revoked";
			return KG_EREVOKED;
		}
		cache_claims(x, tc, req->cred.value, epoch, cl);
	}
	out->scheme = "avalanche";
	out->id = cl->jti;
	out->expires_at = cl->exp;
	out->scheme_data = cl;
	return KG_OK;
}

static kg_err avax_authorize(const struct kg_authenticator *a, const struct kg_auth_request *req,
                             const struct kg_principal *p, const char **message)
{
	if (kg_jwt_allows_path(p->scheme_data, req->path))
		return KG_OK;
	*message = "the provided auth token does not allow access to this endpoint";
	return KG_EFORBIDDEN;
}

const struct kg_authenticator *kg__avax_authenticator(const struct kg_avax *x)
{
	return &x->auth;
}

/* ---- set-up ---- */

static kg_err read_password_file(const char *path, kg_buf *out, kg_buf *why)
{
	FILE *f = fopen(path, "rb");
	char buf[KG_AVAX_MAX_PASSWORD + 3];
	if (!f) {
		kg_buf_printf(why, "api_auth_password_file: %s: cannot read: %s", path, strerror(errno));
		return KG_ECONFIG;
	}
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	kg_err err = KG_OK;
	if (n == 0) {
		kg_buf_printf(why, "api_auth_password_file: %s: the file is empty", path);
		err = KG_ECONFIG;
	} else if (n > KG_AVAX_MAX_PASSWORD) {
		kg_buf_printf(why, "api_auth_password_file: %s: password exceeds maximum length of %d chars", path,
		              KG_AVAX_MAX_PASSWORD);
		err = KG_ECONFIG;
	} else {
		err = kg_buf_append(out, buf, n);
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return err;
}

void kg__avax_free(struct kg_avax **px)
{
	struct kg_avax *x = *px;
	if (x) {
		pthread_rwlock_destroy(&x->key_lock);
		OPENSSL_cleanse(x->signing_key, sizeof(x->signing_key));
		free(x);
	}
	*px = NULL;
}

kg_err kg__avax_new(const kg_config *cfg, struct kg_store *store, struct kg_cache *cache, struct kg_avax **out,
                    kg_buf *why)
{
	kg_buf pw = { 0 }, v = { 0 }, h = { 0 };
	kg_err err;
	struct kg_avax *x = NULL;

	if (!cfg->api_auth_password_file[0]) {
		kg_buf_printf(why, "api_auth_required needs api_auth_password_file (the initial password)");
		return KG_ECONFIG;
	}
	if ((err = read_password_file(cfg->api_auth_password_file, &pw, why)))
		goto out;
	if (!(x = calloc(1, sizeof(*x))) || pthread_rwlock_init(&x->key_lock, NULL) != 0) {
		free(x);
		x = NULL;
		err = KG_ENOMEM;
		goto out;
	}
	x->cache = cache;
	x->cache_owner = kg_tokcache_owner_new();
	x->lifetime_ms = cfg->api_auth_token_lifetime_ms;
	x->auth = (struct kg_authenticator){
		.name = "avalanche",
		.dialect = KG_DIALECT_AVALANCHE,
		.kinds = 1u << KG_CRED_BEARER_JWT,
		.data = x,
		.authenticate = avax_authenticate,
		.authorize = avax_authorize,
	};
	if (store) {
		/* the file seeds the password once; later the store's hash counts */
		err = kg_store_kv_get(store, KG_AVAX_NS, KG_STR("password_hash"), &v);
		if (err == KG_ENOENT) {
			if (kg_password_is_weak(kg_buf_str(&pw)))
				kg_warn("avalanche: the password in %s is weak (zxcvbn below fair)", cfg->api_auth_password_file);
			if (!(err = kg_bcrypt_hash(kg_buf_str(&pw), KG_BCRYPT_DEFAULT_COST, &h))) {
				err = kg_store_kv_add(store, KG_AVAX_NS, KG_STR("password_hash"), kg_buf_str(&h));
				if (err == KG_EEXIST)
					err = KG_OK;
			}
		}
		if (!err) {
			kg_buf_clear(&v);
			err = kg_store_kv_get(store, KG_AVAX_NS, KG_STR("signing_key"), &v);
			if (err == KG_ENOENT && !(err = new_key_hex(&v))) {
				err = kg_store_kv_add(store, KG_AVAX_NS, KG_STR("signing_key"), kg_buf_str(&v));
				if (err == KG_EEXIST)
					err = kg_store_kv_get(store, KG_AVAX_NS, KG_STR("signing_key"), &v);
			}
			if (!err)
				key_set_hex(x, kg_buf_str(&v));
		}
		if (err) {
			kg_buf_printf(why, "avalanche: cannot store or read the Auth API state: %s", kg_strerror(err));
			goto out;
		}
	}
	kg__avax_refresh(x); /* a password changed since the store was read */
	*out = x;
	x = NULL;
out:
	kg__avax_free(&x);
	kg_buf_free(&pw, true);
	kg_buf_free(&v, true);
	kg_buf_free(&h, false);
	return err;
}

/* ---- JSON-RPC ---- */

struct rpc_work {
	struct kg_password_check pc; /* first */
	struct kg_avax_call call;    /* lib/avax_rpc.c's reading of the request */
	int64_t lifetime_ms;
	struct kg_avax *x; /* the runtime's, which the password check holds */
	/* outcome */
	const char *error; /* JSON-RPC -32000 message, NULL on success */
	kg_buf result;     /* the token for newToken */
};

static void rpc_send(struct kg_conn *c, kg_err written, kg_buf *body, int status, const char *extra)
{
	if (written == KG_OK)
		kg__conn_respond(c, status, "application/json", kg_buf_str(body), extra);
	else
		kg__conn_respond_error(c, 500, "out of memory");
	kg_buf_free(body, false);
}

static void rpc_send_error(struct kg_conn *c, kg_str id, const char *message, int status, const char *extra)
{
	kg_buf body = { 0 };
	kg_err err = kg_avax_rpc_error(id, KG_AVAX_RPC_SERVER_ERROR, message, &body);
	rpc_send(c, err, &body, status, extra);
}

static void work_free(struct rpc_work *w)
{
	kg_avax_call_free(&w->call);
	kg_buf_free(&w->result, true);
	free(w);
}

/* Runs on the thread pool: bcrypt, zxcvbn and store writes. */
static void rpc_work(struct kg_password_check *pc)
{
	struct rpc_work *w = (struct rpc_work *)pc;
	struct kg_store *store = kg__store();
	kg_buf hash = { 0 };
	bool ok = false;

	w->error = "incorrect password";
	if (!store || kg_store_kv_get(store, KG_AVAX_NS, KG_STR("password_hash"), &hash) != KG_OK ||
	    kg_bcrypt_verify(kg_buf_str(&w->call.password), hash.p, &ok) != KG_OK || !ok)
		goto out;
	pc->is_ok = true; /* the password was right, whatever follows */
	w->error = NULL;
	if (w->call.method == KG_AVAX_NEW_TOKEN) {
		unsigned char key[32];
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		key_get(w->x, key);
		if (kg_jwt_sign(key, (int64_t)ts.tv_sec + w->lifetime_ms / 1000, (const char *const *)w->call.endpoints,
		                w->call.nendpoints, &w->result, NULL) != KG_OK)
			w->error = "couldn't create the token";
		OPENSSL_cleanse(key, sizeof(key));
	} else if (w->call.method == KG_AVAX_REVOKE_TOKEN) {
		unsigned char key[32];
		kg_arena arena;
		struct kg_jwt_claims cl;
		const char *msg = NULL;
		kg_arena_init(&arena, 1024);
		key_get(w->x, key);
		if (kg_jwt_verify(key, kg_buf_str(&w->call.token), (int64_t)time(NULL), &arena, &cl, &msg) != KG_JWT_OK) {
			w->error = msg;
		} else {
			char id[128];
			snprintf(id, sizeof(id), KG_AVAX_REVOKED_PREFIX "%.*s", (int)cl.jti.n, cl.jti.p);
			/* kept until the token would have expired anyway, then pruned */
			if (kg_cache_revoke(w->x->cache, kg_str_c(id), cl.exp ? cl.exp + 1 : (int64_t)time(NULL) + 86400) != KG_OK)
				w->error = "couldn't store the revocation";
		}
		OPENSSL_cleanse(key, sizeof(key));
		kg_arena_destroy(&arena);
	} else {
		kg_str np = kg_buf_str(&w->call.new_password);
		kg_buf nh = { 0 }, nk = { 0 };
		w->error = kg_avax_new_password_problem(np);
		if (w->error)
			goto out;
		if (kg_bcrypt_hash(np, KG_BCRYPT_DEFAULT_COST, &nh) != KG_OK || new_key_hex(&nk) != KG_OK ||
		         kg_store_kv_put(store, KG_AVAX_NS, KG_STR("password_hash"), kg_buf_str(&nh), true) != KG_OK ||
		         kg_cache_kv_put(w->x->cache, KG_AVAX_NS, KG_STR("signing_key"), kg_buf_str(&nk), true) != KG_OK)
			w->error = "couldn't store the new password";
		else
			key_set_hex(w->x, kg_buf_str(&nk)); /* every earlier token ends now */
		kg_buf_free(&nh, false);
		kg_buf_free(&nk, true);
	}
out:
	kg_buf_free(&hash, false);
}

static void rpc_done(struct kg_password_check *pc, struct kg_conn *c, int status)
{
	struct rpc_work *w = (struct rpc_work *)pc;
	kg_str id = kg_buf_str(&w->call.id);
	if (c) {
		kg_buf body = { 0 };
		if (status != 0)
			rpc_send_error(c, id, "request cancelled", 200, NULL);
		else if (w->error)
			rpc_send_error(c, id, w->error, 200, NULL);
		else if (w->call.method == KG_AVAX_NEW_TOKEN)
			rpc_send(c, kg_avax_rpc_token(id, kg_buf_str(&w->result), &body), &body, 200, NULL);
		else
			rpc_send(c, kg_avax_rpc_success(id, &body), &body, 200, NULL);
		if (!status && !w->error && w->call.method == KG_AVAX_CHANGE_PASSWORD)
			kg_info("avalanche: password changed by %s; earlier tokens are void", kg__conn_client(c));
	}
	work_free(w);
}

static void api_avax(struct kg_conn *c)
{
	const struct kg_avax *x = kg__conn_rt(c)->avax;
	char msg[256];
	int status = kg_avax_rpc_check_http(kg__conn_req(c)->method, kg__req_find(c, KG_STR("Content-Type")), msg, sizeof(msg));
	if (status) {
		kg__conn_respond(c, status, "text/plain; charset=utf-8", kg_str_c(msg),
		                 status == 405 ? "Allow: POST\r\n" : NULL);
		return;
	}
	struct rpc_work *w = calloc(1, sizeof(*w));
	if (!w) {
		kg__conn_respond_error(c, 500, "out of memory");
		return;
	}
	if (kg_avax_rpc_parse(kg_buf_str(&kg__conn_req(c)->own_body), &w->call) != KG_OK) {
		kg_buf body = { 0 };
		kg_err err = kg_avax_rpc_error(kg_buf_str(&w->call.id), w->call.error_code, w->call.error, &body);
		rpc_send(c, err, &body, 200, NULL);
		work_free(w);
		return;
	}
	int64_t wait;
	w->lifetime_ms = x->lifetime_ms;
	w->x = kg__conn_rt(c)->avax;
	w->pc.work = rpc_work;
	w->pc.done = rpc_done;
	kg_err err = kg__password_check(c, &w->pc, &wait);
	if (err) {
		/* throttled (429) or the queue full (503), in AvalancheGo's words */
		char extra[KG_RETRY_AFTER_MAX], why[KG_THROTTLE_MESSAGE_MAX];
		int refused;
		if (kg_throttle_message(KG_DIALECT_AVALANCHE, err == KG_ETHROTTLED ? err : KG_EUNAVAILABLE, wait,
		                        &refused, why, sizeof(why)) == KG_OK &&
		    kg_retry_after_header(wait, extra, sizeof(extra)) == KG_OK)
			rpc_send_error(c, kg_buf_str(&w->call.id), why, refused, extra);
		else
			kg__conn_respond_error(c, 500, "out of memory");
		work_free(w);
	}
}

static bool is_auth_api_on(const struct kg_runtime *rt)
{
	return rt->avax != NULL;
}

static const struct kg_route routes[] = {
	{ .path = "/ext/auth", .methods = "POST", .owner = KG_DIALECT_AVALANCHE, .handle = api_avax,
	  .is_enabled = is_auth_api_on },
};
KG_ROUTE_SET(kg__avax_routes, routes);
