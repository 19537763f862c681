/* api_bee.c - Swarm Bee's restricted APIs, brought back:
 *   POST /auth      HTTP Basic (admin password, bcrypt off the event loop) → {"key"}
 *   POST /refresh   Bearer token → a new token, never of a higher role
 * and the authenticator that checks Bee/keygate role tokens on every
 * proxied request. Errors are Bee's {"code","message"}. What a request says
 * and what the answer's body is are lib/bee.c's; this file moves the bytes. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keygate/b64.h"
#include "keygate/bee.h"
#include "keygate/cache.h"
#include "keygate/log.h"
#include "keygate/password.h"
#include "keygate/store.h"
#include "keygate/token.h"
#include "keygate/tokcache.h"
#include "admin.h"
#include "bee.h"
#include "conn.h"
#include "kg.h"
#include "routes.h"
#include "slow.h"
#include "throttle.h"

#define KG_BEE_NS KG_STR("bee")

struct kg_bee {
	struct kg_authenticator auth;
	kg_token_keys *keys;
	enum kg_token_format format;
	char admin_hash[128];
	int64_t max_expiry_ms;
	int64_t throttle_max;
	int64_t throttle_window_ms;
	const kg_policy *policy; /* the runtime's */
	struct kg_cache *cache;  /* the process's view of the store (revocations), may be NULL */
	/* Tokens issued before this instant (unix ms) are revoked: `keygate
	 * token revoke --all`. Kept current by kg__bee_refresh(). */
	_Atomic int64_t revoked_before_ms;
	uint64_t cache_owner; /* this instance's name in the workers' token caches */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the authenticator ---- */

/* Opens a token and checks expiry and revocation; *message gets Bee's words. */
static kg_err check_token(const struct kg_bee *bee, kg_str token, struct kg_token_claims *cl, const char **message)
{
	if (kg_token_open(bee->keys, token, cl) != KG_OK) {
		*message = "Invalid token";
		return KG_EBADCRED;
	}
	if (now_ms() > cl->expires_ms) {
		*message = "Token expired";
		return KG_EEXPIRED;
	}
	if ((cl->issued_ms && cl->issued_ms < atomic_load(&bee->revoked_before_ms)) ||
	    (bee->cache && kg_cache_is_revoked(bee->cache, kg_str_c(cl->id)))) {
		*message = "Token revoked";
		return KG_EREVOKED;
	}
	return KG_OK;
}

/* What a worker's token cache holds per token: its claims and the lengths
 * of their two strings, so that a hit does not scan them again. */
struct cached {
	struct kg_token_claims cl;
	size_t id_n, role_n;
};
_Static_assert(sizeof(struct cached) <= KG_TOKCACHE_MAX_VALUE, "a token's claims fit in its cache entry");

/* A token this worker opened before (lib/tokcache.c): its claims were
 * cached with the revocation generation read before they were checked, and
 * are served only while that generation holds and the token has not
 * expired. "Revoke everything before" is an instant, not a set: it is
 * checked again here, as check_token does. */
static bool cached_claims(const struct kg_bee *bee, kg_tokcache *tc, kg_str token, uint64_t gen,
                          struct cached *c)
{
	size_t n = 0;
	const void *v = kg_tokcache_get(tc, bee->cache_owner, token, gen, now_ms(), &n);
	if (!v || n != sizeof(*c))
		return false;
	memcpy(c, v, sizeof(*c));
	return !(c->cl.issued_ms && c->cl.issued_ms < atomic_load(&bee->revoked_before_ms));
}

static kg_err bee_authenticate(const struct kg_authenticator *a, const struct kg_auth_request *req, kg_arena *arena,
                               struct kg_principal *out, const char **message)
{
	const struct kg_bee *bee = a->data;
	struct cached c;
	kg_tokcache *tc = kg_tokcache_of_thread();
	/* read before the check, so a revocation during it makes the entry stale */
	uint64_t gen = kg_cache_revoked_gen(bee->cache);
	if (!cached_claims(bee, tc, req->cred.value, gen, &c)) {
		memset(&c, 0, sizeof(c)); /* the padding too: all of c is copied into the cache */
		kg_err err = check_token(bee, req->cred.value, &c.cl, message);
		if (err)
			return err;
		c.id_n = strlen(c.cl.id);
		c.role_n = strlen(c.cl.role);
		kg_tokcache_put(tc, bee->cache_owner, req->cred.value, gen, c.cl.expires_ms, &c, sizeof(c));
	}
	kg_str role = { c.cl.role, c.role_n };
	out->scheme = "bee";
	out->id = kg_arena_strdup(arena, (kg_str){ c.cl.id, c.id_n });
	out->role = kg_arena_strdup(arena, role);
	out->roles = kg_policy_role(req->policy, role);
	out->expires_at = c.cl.expires_ms / 1000;
	return KG_OK;
}

const struct kg_authenticator *kg__bee_authenticator(const struct kg_bee *bee)
{
	return &bee->auth;
}

/* ---- set-up ---- */

static kg_err make_random_hex(kg_buf *out, void *arg)
{
	unsigned char raw[32];
	char hex[2 * sizeof(raw)];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return KG_EIO;
	kg_err err = kg_buf_append(out, hex, kg_hex_encode(raw, sizeof(raw), hex, false));
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(hex, sizeof(hex));
	return err;
}

void kg__bee_free(struct kg_bee **pb)
{
	struct kg_bee *b = *pb;
	if (!b)
		return;
	kg_token_keys_free(&b->keys);
	OPENSSL_cleanse(b->admin_hash, sizeof(b->admin_hash));
	free(b);
	*pb = NULL;
}

kg_err kg__bee_new(const kg_config *cfg, const kg_policy *policy, const char *admin_hash, struct kg_store *store,
                   struct kg_cache *cache, struct kg_bee **out, kg_buf *why)
{
	struct kg_bee *b = calloc(1, sizeof(*b));
	kg_buf key = { 0 };
	kg_err err = KG_ENOMEM;
	bool is_new;

	if (!b)
		goto fail;
	b->format = strcmp(cfg->token_format, "bee") == 0 ? KG_TOKEN_FORMAT_BEE : KG_TOKEN_FORMAT_KEYGATE;
	b->max_expiry_ms = cfg->token_max_expiry_ms;
	b->throttle_max = cfg->throttle_max_failures;
	b->throttle_window_ms = cfg->throttle_window_ms;
	b->policy = policy;
	b->cache = cache;
	b->cache_owner = kg_tokcache_owner_new();
	b->auth = (struct kg_authenticator){
		.name = "bee",
		.dialect = KG_DIALECT_BEE,
		.kinds = (1u << KG_CRED_BEARER_BEE) | (1u << KG_CRED_BEARER_KG),
		.data = b,
		.authenticate = bee_authenticate,
	};

	snprintf(b->admin_hash, sizeof(b->admin_hash), "%s", admin_hash);

	const char *const *keys = (const char *const *)cfg->token_encryption_keys.v;
	size_t nkeys = cfg->token_encryption_keys.n;
	const char *one[1];
	for (size_t i = 0; i < nkeys; i++) {
		if (!keys[i][0]) {
			kg_buf_printf(why, "token_encryption_key: an empty key would make tokens valid everywhere");
			err = KG_ECONFIG;
			goto fail;
		}
	}
	if (nkeys == 0 && store) {
		if ((err = kg__stored_secret(store, KG_BEE_NS, "token_encryption_key", &key, &is_new, make_random_hex, NULL))) {
			kg_buf_printf(why, "token encryption key: cannot store or read it: %s", kg_strerror(err));
			goto fail;
		}
		if (is_new)
			kg_info("restricted mode: generated a random token encryption key (stored in the data dir)");
		one[0] = key.p;
		keys = one;
		nkeys = 1;
	}
	if (nkeys == 0) {
		/* config check without a store: a throwaway key keeps validation honest */
		if ((err = make_random_hex(&key, NULL)))
			goto fail;
		one[0] = key.p;
		keys = one;
		nkeys = 1;
	}
	if ((err = kg_token_keys_new(keys, nkeys, &b->keys))) {
		kg_buf_printf(why, "token_encryption_key: %s", kg_strerror(err));
		goto fail;
	}
	kg_buf_free(&key, true);
	kg__bee_refresh(b);
	*out = b;
	return KG_OK;
fail:
	kg_buf_free(&key, true);
	kg__bee_free(&b);
	return err ? err : KG_ENOMEM;
}

/* Re-reads the "revoke everything before" instant (at build, then on the
 * maintenance timer for the current runtime). */
void kg__bee_refresh(struct kg_bee *b)
{
	kg_buf v = { 0 };
	unsigned long long ms;
	if (b->cache && kg_cache_kv_get(b->cache, KG_BEE_NS, KG_STR("revoked_before_ms"), &v) == KG_OK &&
	    kg_str_to_u64(kg_buf_str(&v), (unsigned long long)INT64_MAX, &ms) == KG_OK)
		atomic_store(&b->revoked_before_ms, (int64_t)ms);
	kg_buf_free(&v, false);
}

/* ---- /auth and /refresh ---- */

static void unauthorized(struct kg_conn *c)
{
	kg__conn_respond_error_with(c, 401, "Unauthorized", kg_dialect_challenge(KG_DIALECT_BEE, true, true, false));
}

/* Reads the body of a /auth or /refresh (lib/bee.c); answers Bee's 400 when
 * it is refused. */
static bool parse_request(struct kg_conn *c, const struct kg_bee *b, bool is_role_optional, struct kg_bee_request *r)
{
	if (kg_bee_parse_request(kg_buf_str(&kg__conn_req(c)->own_body), b->policy, b->max_expiry_ms / 1000, is_role_optional, r) ==
	    KG_OK)
		return true;
	kg__conn_respond_error(c, r->status, r->message);
	return false;
}

static void issue(struct kg_conn *c, const struct kg_bee *b, const char *role, int64_t expiry_s)
{
	struct kg_token_claims cl = { 0 };
	kg_buf tok = { 0 }, body = { 0 };
	snprintf(cl.role, sizeof(cl.role), "%s", role);
	cl.issued_ms = now_ms();
	cl.expires_ms = cl.issued_ms + expiry_s * 1000;
	if (kg_token_mint(b->keys, b->format, &cl, &tok) != KG_OK || kg_bee_key_json(kg_buf_str(&tok), &body) != KG_OK) {
		kg__conn_respond_error(c, 500, "Internal Server Error");
	} else {
		kg_info("bee: issued token %s role %s for %llds to %s", cl.id, role, (long long)expiry_s, kg__conn_client(c));
		kg__conn_respond(c, 201, "application/json", kg_buf_str(&body), NULL);
	}
	kg_buf_free(&tok, true);
	kg_buf_free(&body, false);
}

struct auth_work {
	struct kg_password_check pc; /* first */
	kg_buf password;
	char hash[128];
};

static void auth_work(struct kg_password_check *pc)
{
	struct auth_work *w = (struct auth_work *)pc;
	bool ok = false;
	pc->is_ok = kg_bcrypt_verify(kg_buf_str(&w->password), w->hash, &ok) == KG_OK && ok;
}

static void auth_work_free(struct auth_work *w)
{
	kg_buf_free(&w->password, true);
	OPENSSL_cleanse(w->hash, sizeof(w->hash));
	free(w);
}

static void auth_done(struct kg_password_check *pc, struct kg_conn *c, int status)
{
	struct auth_work *w = (struct auth_work *)pc;
	bool ok = status == 0 && pc->is_ok;
	auth_work_free(w);
	if (!c)
		return;
	const struct kg_bee *b = kg__conn_rt(c)->bee;
	if (!ok) {
		kg_warn("bee: /auth: wrong password from %s", kg__conn_client(c));
		unauthorized(c);
	} else {
		struct kg_bee_request r;
		if (parse_request(c, b, false, &r))
			issue(c, b, r.role, r.expiry_s);
	}
}

/* A password check not run: err KG_ETHROTTLED (429) or KG_EUNAVAILABLE (503),
 * in Bee's words, with Retry-After: wait. */
static void refuse_check(struct kg_conn *c, kg_err err, int64_t wait)
{
	char extra[KG_RETRY_AFTER_MAX], msg[KG_THROTTLE_MESSAGE_MAX];
	int status;
	if (kg_throttle_message(KG_DIALECT_BEE, err == KG_ETHROTTLED ? err : KG_EUNAVAILABLE, wait, &status, msg,
	                        sizeof(msg)) != KG_OK ||
	    kg_retry_after_header(wait, extra, sizeof(extra)) != KG_OK) {
		kg__conn_respond_error(c, 500, "Internal Server Error");
		return;
	}
	kg__conn_respond_error_with(c, status, msg, extra);
}

static void do_auth(struct kg_conn *c, const struct kg_bee *b)
{
	kg_buf password = { 0 };
	struct auth_work *w = NULL;
	int64_t wait;

	kg_err err = kg_bee_basic_password(kg__conn_req(c)->facts.authorization, &password);
	if (err == KG_EBADCRED || (!err && !b->admin_hash[0])) {
		/* a malformed credential is a failed attempt too, throttled alike */
		if (!kg__throttle_begin(kg__conn_client(c), b->throttle_max, b->throttle_window_ms, &wait)) {
			refuse_check(c, KG_ETHROTTLED, wait);
		} else {
			kg__throttle_end(kg__conn_client(c), false, b->throttle_window_ms);
			unauthorized(c);
		}
		goto out;
	}
	if (err || !(w = calloc(1, sizeof(*w)))) {
		kg__conn_respond_error(c, 500, "Internal Server Error");
		goto out;
	}
	w->password = password; /* moved */
	password = (kg_buf){ 0 };
	snprintf(w->hash, sizeof(w->hash), "%s", b->admin_hash);
	w->pc.work = auth_work;
	w->pc.done = auth_done;
	err = kg__password_check(c, &w->pc, &wait);
	if (err)
		refuse_check(c, err, wait);
	if (err == KG_OK)
		w = NULL; /* auth_done frees it */
out:
	kg_buf_free(&password, true);
	if (w)
		auth_work_free(w);
}

static void do_refresh(struct kg_conn *c, const struct kg_bee *b)
{
	struct kg_cred cred = kg_cred_parse(kg__conn_req(c)->facts.authorization);
	struct kg_token_claims cl;
	struct kg_bee_request r;
	char role[KG_BEE_MAX_ROLE + 1];

	if (cred.kind != KG_CRED_BEARER_BEE && cred.kind != KG_CRED_BEARER_KG) {
		kg__conn_respond_error(c, 401, "Missing bearer token");
		return;
	}
	const char *why = NULL;
	if (check_token(b, cred.value, &cl, &why) != KG_OK) {
		kg__conn_respond_error(c, 401, why);
		return;
	}
	if (!parse_request(c, b, true, &r))
		return;
	if (kg_bee_refresh_role(b->policy, cl.role, r.role, role, &why) != KG_OK) {
		kg__conn_respond_error(c, 403, why);
		return;
	}
	issue(c, b, role, r.expiry_s);
}

static bool is_post(struct kg_conn *c)
{
	if (kg_str_eq(kg__conn_req(c)->method, KG_STR("POST")))
		return true;
	kg__conn_respond_error_with(c, 405, "Method Not Allowed", "Allow: POST\r\n");
	return false;
}

static void route_auth(struct kg_conn *c)
{
	if (is_post(c))
		do_auth(c, kg__conn_rt(c)->bee);
}

static void route_refresh(struct kg_conn *c)
{
	if (is_post(c))
		do_refresh(c, kg__conn_rt(c)->bee);
}

static bool is_restricted(const struct kg_runtime *rt)
{
	return rt->bee != NULL;
}

static const struct kg_route routes[] = {
	{ .path = "/auth", .methods = "POST", .owner = KG_DIALECT_BEE, .body_limit = KG_BEE_MAX_BODY,
	  .handle = route_auth, .is_enabled = is_restricted },
	{ .path = "/refresh", .methods = "POST", .owner = KG_DIALECT_BEE, .body_limit = KG_BEE_MAX_BODY,
	  .handle = route_refresh, .is_enabled = is_restricted },
};
KG_ROUTE_SET(kg__bee_routes, routes);
