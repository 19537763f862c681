/* api_avax.c - AvalancheGo's Auth API, brought back in front of the node:
 *   POST /ext/auth  JSON-RPC 2.0: auth.newToken, auth.revokeToken, auth.changePassword
 * and the authenticator that checks its HS256 JWTs on every other route.
 *
 * Better than AvalancheGo: the password hash, the signing key and the
 * revocations live in the store, so tokens, revocations and password changes
 * survive restarts; a password change draws a new signing key, which ends
 * every earlier token at once (on other instances within a second); password
 * checks run on the thread pool and are throttled per client address. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keygate/cache.h"
#include "keygate/jwt.h"
#include "keygate/log.h"
#include "keygate/password.h"
#include "keygate/store.h"
#include "kg.h"

#define KG_AVAX_NS KG_STR("avax")
#define KG_AVAX_MAX_PASSWORD 1024
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
		memcpy(x->signing_key, k, 32);
		pthread_rwlock_unlock(&x->key_lock);
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

static kg_err avax_authenticate(const struct kg_authenticator *a, const struct kg_auth_request *req, kg_arena *arena,
                                struct kg_principal *out, const char **message)
{
	unsigned char key[32];
	struct kg_jwt_claims *cl = kg_arena_alloc(arena, sizeof(*cl));
	if (!cl)
		return KG_ENOMEM;
	struct kg_avax *x = a->data;
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

enum method { NEW_TOKEN, REVOKE_TOKEN, CHANGE_PASSWORD };

struct rpc_work {
	struct kg_password_check pc; /* first */
	enum method method;
	json_t *id;
	kg_buf password, new_password, token;
	char **endpoints;
	size_t nendpoints;
	int64_t lifetime_ms;
	struct kg_avax *x; /* the runtime's, which the password check holds */
	/* outcome */
	const char *error; /* JSON-RPC -32000 message, NULL on success */
	kg_buf result;     /* the token for newToken */
};

static void rpc_send(struct kg_conn *c, json_t *id, json_t *result, int code, const char *message, int status,
                     const char *extra)
{
	json_t *o = json_object();
	json_object_set_new(o, "jsonrpc", json_string("2.0"));
	if (result) {
		json_object_set_new(o, "result", result);
	} else {
		json_t *e = json_object();
		json_object_set_new(e, "code", json_integer(code));
		json_object_set_new(e, "message", json_string(message));
		json_object_set_new(e, "data", json_null());
		json_object_set_new(o, "error", e);
	}
	json_object_set(o, "id", id ? id : json_null());
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!body) {
		kg__conn_respond_error(c, 500, "out of memory");
		return;
	}
	kg__conn_respond(c, status, "application/json", kg_str_c(body), extra);
	free(body);
}

static void work_free(struct rpc_work *w)
{
	kg_buf_free(&w->password, true);
	kg_buf_free(&w->new_password, true);
	kg_buf_free(&w->token, true);
	kg_buf_free(&w->result, true);
	for (size_t i = 0; i < w->nendpoints; i++)
		free(w->endpoints[i]);
	free(w->endpoints);
	json_decref(w->id);
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
	    kg_bcrypt_verify(kg_buf_str(&w->password), hash.p, &ok) != KG_OK || !ok)
		goto out;
	pc->is_ok = true; /* the password was right, whatever follows */
	w->error = NULL;
	if (w->method == NEW_TOKEN) {
		unsigned char key[32];
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		key_get(w->x, key);
		if (kg_jwt_sign(key, (int64_t)ts.tv_sec + w->lifetime_ms / 1000, (const char *const *)w->endpoints,
		                w->nendpoints, &w->result, NULL) != KG_OK)
			w->error = "couldn't create the token";
		OPENSSL_cleanse(key, sizeof(key));
	} else if (w->method == REVOKE_TOKEN) {
		unsigned char key[32];
		kg_arena arena;
		struct kg_jwt_claims cl;
		const char *msg = NULL;
		kg_arena_init(&arena, 1024);
		key_get(w->x, key);
		if (kg_jwt_verify(key, kg_buf_str(&w->token), (int64_t)time(NULL), &arena, &cl, &msg) != KG_JWT_OK) {
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
		kg_str np = kg_buf_str(&w->new_password);
		kg_buf nh = { 0 }, nk = { 0 };
		if (np.n == 0)
			w->error = "empty password";
		else if (np.n > KG_AVAX_MAX_PASSWORD)
			w->error = "password exceeds maximum length of 1024 chars";
		else if (kg_password_is_weak(np))
			w->error = "password is too weak";
		else if (kg_bcrypt_hash(np, KG_BCRYPT_DEFAULT_COST, &nh) != KG_OK || new_key_hex(&nk) != KG_OK ||
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
	if (c) {
		if (status != 0)
			rpc_send(c, w->id, NULL, -32000, "request cancelled", 200, NULL);
		else if (w->error)
			rpc_send(c, w->id, NULL, -32000, w->error, 200, NULL);
		else if (w->method == NEW_TOKEN)
			rpc_send(c, w->id, json_pack("{s:s}", "token", w->result.p), 0, NULL, 200, NULL);
		else
			rpc_send(c, w->id, json_pack("{s:b}", "success", 1), 0, NULL, 200, NULL);
		if (!status && !w->error && w->method == CHANGE_PASSWORD)
			kg_info("avalanche: password changed by %s; earlier tokens are void", c->client);
	}
	work_free(w);
}

static bool copy_string(json_t *params, const char *name, kg_buf *out, bool *bad_type)
{
	json_t *v = params ? json_object_get(params, name) : NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v)) {
		*bad_type = true;
		return false;
	}
	return kg_buf_append(out, json_string_value(v), json_string_length(v)) == KG_OK;
}

static bool is_json_content_type(kg_str ct)
{
	const char *semi = memchr(ct.p, ';', ct.n);
	kg_str media = kg_str_trim(semi ? (kg_str){ ct.p, (size_t)(semi - ct.p) } : ct);
	return kg_str_eq_ci(media, KG_STR("application/json"));
}

static void api_avax(struct kg_conn *c)
{
	const struct kg_avax *x = c->rt->avax;
	json_error_t jerr;
	char msg[256];

	if (!kg_str_eq(c->req.method, KG_STR("POST"))) {
		snprintf(msg, sizeof(msg), "rpc: POST method required, received %.*s", (int)c->req.method.n, c->req.method.p);
		kg__conn_respond(c, 405, "text/plain; charset=utf-8", kg_str_c(msg), "Allow: POST\r\n");
		return;
	}
	kg_str ct = kg__req_find(c, KG_STR("Content-Type"));
	if (!is_json_content_type(ct)) {
		snprintf(msg, sizeof(msg), "rpc: unrecognized Content-Type: %.*s", (int)(ct.n > 100 ? 100 : ct.n), ct.p ? ct.p : "");
		kg__conn_respond(c, 415, "text/plain; charset=utf-8", kg_str_c(msg), NULL);
		return;
	}
	kg_str body = kg_buf_str(&c->req.own_body);
	json_t *req = json_loadb(body.p ? body.p : "", body.n, JSON_REJECT_DUPLICATES, &jerr);
	if (!req) {
		rpc_send(c, NULL, NULL, -32700, "parse error: the body is not JSON", 200, NULL);
		return;
	}
	json_t *id = json_object_get(req, "id");
	json_t *ver = json_object_get(req, "jsonrpc"), *m = json_object_get(req, "method");
	if (!json_is_object(req) || !json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0 ||
	    !json_is_string(m)) {
		rpc_send(c, id, NULL, -32600, "invalid request: expected {\"jsonrpc\":\"2.0\",\"method\":...}", 200, NULL);
		json_decref(req);
		return;
	}
	const char *method = json_string_value(m);
	enum method which;
	if (strcmp(method, "auth.newToken") == 0)
		which = NEW_TOKEN;
	else if (strcmp(method, "auth.revokeToken") == 0)
		which = REVOKE_TOKEN;
	else if (strcmp(method, "auth.changePassword") == 0)
		which = CHANGE_PASSWORD;
	else {
		snprintf(msg, sizeof(msg), "rpc: can't find method \"%.100s\"", method);
		rpc_send(c, id, NULL, -32601, msg, 200, NULL);
		json_decref(req);
		return;
	}
	json_t *params = json_object_get(req, "params");
	if (json_is_array(params) && json_array_size(params) == 1)
		params = json_array_get(params, 0); /* gorilla/rpc's json2 takes [ {params} ] too */
	if (params && !json_is_object(params)) {
		rpc_send(c, id, NULL, -32602, "invalid params: expected an object", 200, NULL);
		json_decref(req);
		return;
	}

	struct rpc_work *w = calloc(1, sizeof(*w));
	bool bad_type = false;
	const char *fail = NULL;
	if (!w) {
		json_decref(req);
		kg__conn_respond_error(c, 500, "out of memory");
		return;
	}
	w->method = which;
	w->id = json_incref(id);
	w->lifetime_ms = x->lifetime_ms;
	w->x = c->rt->avax;
	bool copied = true;
	if (which == CHANGE_PASSWORD) {
		copied = copy_string(params, "oldPassword", &w->password, &bad_type) &&
		         copy_string(params, "newPassword", &w->new_password, &bad_type);
	} else {
		copied = copy_string(params, "password", &w->password, &bad_type) &&
		         (which != REVOKE_TOKEN || copy_string(params, "token", &w->token, &bad_type));
	}
	json_t *eps = params ? json_object_get(params, "endpoints") : NULL;
	/* AvalancheGo's checks, in AvalancheGo's order */
	if (!copied) {
		fail = bad_type ? "invalid params: a password or token is not a string" : "out of memory";
	} else if (which == NEW_TOKEN) {
		size_t n = json_is_array(eps) ? json_array_size(eps) : 0;
		if (w->password.n == 0)
			fail = "no password";
		else if (n == 0)
			fail = "must name at least one endpoint";
		else if (n > KG_JWT_MAX_ENDPOINTS)
			fail = "can only name at most 128 endpoints";
		else if (!(w->endpoints = calloc(n, sizeof(char *))))
			fail = "out of memory";
		for (size_t i = 0; !fail && i < n; i++) {
			json_t *e = json_array_get(eps, i);
			if (!json_is_string(e)) {
				fail = "invalid params: endpoints must be strings";
				break;
			}
			/* every path ends with "": the token would open every route,
			 * which is what "*" says openly */
			if (json_string_length(e) == 0) {
				fail = "an endpoint can't be empty; name \"*\" to allow every endpoint";
				break;
			}
			if (!(w->endpoints[w->nendpoints++] = strdup(json_string_value(e))))
				fail = "out of memory";
		}
	} else if (which == REVOKE_TOKEN) {
		if (w->token.n == 0)
			fail = "auth token not provided";
		else if (w->password.n == 0)
			fail = "no password";
	} else {
		if (kg_str_eq(kg_buf_str(&w->password), kg_buf_str(&w->new_password)))
			fail = "new password can't be same as old password";
	}
	json_decref(req);
	if (fail) {
		rpc_send(c, w->id, NULL, -32000, fail, 200, NULL);
		work_free(w);
		return;
	}
	int64_t wait;
	w->pc.work = rpc_work;
	w->pc.done = rpc_done;
	kg_err err = kg__password_check(c, &w->pc, &wait);
	if (err == KG_ETHROTTLED) {
		char extra[64];
		snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n", (long long)wait);
		snprintf(msg, sizeof(msg), "too many failed password attempts; retry in %lld seconds", (long long)wait);
		rpc_send(c, w->id, NULL, -32000, msg, 429, extra);
	} else if (err) {
		rpc_send(c, w->id, NULL, -32000, "too many password checks in progress; retry later", 503,
		         "Retry-After: 1\r\n");
	}
	if (err)
		work_free(w);
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
