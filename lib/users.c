/* users.c - HTTP Basic users (see users.h). */
#include <errno.h>
#include <stdarg.h>
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keygate/b64.h"
#include "keygate/cache.h"
#include "keygate/credcache.h"
#include "keygate/password.h"
#include "keygate/users.h"

struct kg_users {
	char *text;          /* the file's contents; names, hashes and roles point into it */
	size_t text_len;
	struct kg_user *v;
	size_t n, cap;
	uint32_t *index;     /* by name, see index_slot */
	size_t index_cap;    /* a power of two */
	/* checked for unknown users, so they cost as much as the dearest known
	 * one: a name's absence must not answer faster than its presence */
	char dummy_hash[61];
	int dummy_cost;
	unsigned char index_key[16]; /* SipHash key of the name index */
	kg_credcache *cache;         /* verified credentials; value: the user's index */
	struct kg_authenticator auth;
};

static bool is_name_byte(unsigned char c)
{
	return c > 0x20 && c != 0x7f && c != ':';
}

/* ---- the name index: open addressing over user numbers + 1 (0: empty) ---- */

static size_t index_home(const kg_users *u, kg_str name)
{
	return (size_t)(kg__siphash24(u->index_key, name.p, name.n) & (u->index_cap - 1));
}

/* The slot holding name, or the empty slot where it would go. */
static size_t index_slot(const kg_users *u, kg_str name)
{
	size_t i = index_home(u, name);
	while (u->index[i] && !kg_str_eq(u->v[u->index[i] - 1].name, name))
		i = (i + 1) & (u->index_cap - 1);
	return i;
}

/* Makes room for one more user (at most half full). */
static kg_err index_reserve(kg_users *u)
{
	if ((u->n + 1) * 2 <= u->index_cap)
		return KG_OK;
	size_t cap = u->index_cap ? u->index_cap * 2 : 64;
	uint32_t *old = u->index;
	if (!(u->index = calloc(cap, sizeof(*u->index)))) {
		u->index = old;
		return KG_ENOMEM;
	}
	u->index_cap = cap;
	for (size_t k = 0; k < u->n; k++)
		u->index[index_slot(u, u->v[k].name)] = (uint32_t)(k + 1);
	free(old);
	return KG_OK;
}

static void problem(kg_config_errors *errs, const char *file, size_t lineno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(kg_config_errors *errs, const char *file, size_t lineno, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kg_config_errors_add(errs, "%s:%zu: %s", file, lineno, msg);
}

/* One "NAME:HASH:ROLE[,ROLE]" line (trimmed, in u->text, NUL-terminated
 * after it): adds the user, or reports the problem and returns KG_ECONFIG. */
static kg_err parse_line(kg_users *u, const char *file, size_t lineno, kg_str l, const kg_policy *policy,
                         kg_config_errors *errs)
{
	char *c1 = memchr(l.p, ':', l.n);
	char *c2 = c1 ? memchr(c1 + 1, ':', l.n - (size_t)(c1 + 1 - l.p)) : NULL;
	if (!c1) {
		problem(errs, file, lineno, "not NAME:BCRYPT-HASH:ROLE");
		return KG_ECONFIG;
	}
	kg_str name = { l.p, (size_t)(c1 - l.p) };
	if (name.n == 0 || name.n > KG_USER_MAX_NAME) {
		problem(errs, file, lineno, "user name must be 1 to %d bytes", KG_USER_MAX_NAME);
		return KG_ECONFIG;
	}
	int nn = (int)name.n;
	for (size_t i = 0; i < name.n; i++) {
		if (!is_name_byte((unsigned char)name.p[i])) {
			problem(errs, file, lineno, "user name '%.*s' has a space or control byte", nn, name.p);
			return KG_ECONFIG;
		}
	}
	kg_str roles_text = c2 ? kg_str_trim((kg_str){ c2 + 1, (size_t)(l.p + l.n - (c2 + 1)) }) : KG_STR_NULL;
	if (roles_text.n == 0) {
		problem(errs, file, lineno, "user '%.*s' has no role: write NAME:BCRYPT-HASH:ROLE[,ROLE...]", nn, name.p);
		return KG_ECONFIG;
	}
	*c2 = '\0'; /* ends the hash */
	const char *hash = c1 + 1;
	if (!kg_bcrypt_is_valid_hash(hash)) {
		problem(errs, file, lineno,
		        "user '%.*s': not a bcrypt hash ($2a$, $2b$ or $2y$); make one with keygate bcrypt or htpasswd -B",
		        nn, name.p);
		return KG_ECONFIG;
	}
	kg_rolemask roles = 0;
	for (size_t i = 0; i <= roles_text.n;) {
		size_t j = i;
		while (j < roles_text.n && roles_text.p[j] != ',')
			j++;
		kg_str r = kg_str_trim((kg_str){ roles_text.p + i, j - i });
		kg_rolemask m = kg_policy_role(policy, r);
		if (!m) {
			problem(errs, file, lineno, "user '%.*s': role '%.*s' is not in the policy", nn, name.p,
			        (int)(r.n > 64 ? 64 : r.n), r.p);
			return KG_ECONFIG;
		}
		roles |= m;
		i = j + 1;
	}
	if (index_reserve(u) != KG_OK)
		return KG_ENOMEM;
	size_t slot = index_slot(u, name);
	if (u->index[slot]) {
		problem(errs, file, lineno, "user '%.*s' appears twice (first on line %zu)", nn, name.p,
		        u->v[u->index[slot] - 1].line);
		return KG_ECONFIG;
	}
	if (u->n == u->cap) {
		size_t ncap = u->cap ? u->cap * 2 : 16;
		struct kg_user *nv = realloc(u->v, ncap * sizeof(*nv));
		if (!nv)
			return KG_ENOMEM;
		u->v = nv;
		u->cap = ncap;
	}
	c1[0] = '\0'; /* ends the name */
	u->v[u->n] = (struct kg_user){ name, hash, roles_text, kg_policy_role_closure(policy, roles), lineno };
	u->index[slot] = (uint32_t)++u->n;
	return KG_OK;
}

static int hash_cost(const char *hash)
{
	return (hash[4] - '0') * 10 + (hash[5] - '0'); /* valid: kg_bcrypt_is_valid_hash */
}

/* A hash at the highest cost in the file that no password matches in
 * practice: a fixed salt and a digest of '.'s. Nothing is computed, so a
 * cost-14 file still loads at once; each verify against it costs what the
 * dearest user's does. */
static kg_err make_dummy(kg_users *u)
{
	static const char salt_bytes[16] = "keygate-nobody!!";
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	int cost = KG_BCRYPT_MIN_COST;
	for (size_t i = 0; i < u->n; i++)
		if (hash_cost(u->v[i].hash) > cost)
			cost = hash_cost(u->v[i].hash);
	if (!crypt_gensalt_rn("$2b$", (unsigned long)cost, salt_bytes, sizeof(salt_bytes), setting, sizeof(setting)) ||
	    strlen(setting) != 29)
		return KG_EINVAL;
	memcpy(u->dummy_hash, setting, 29);
	memset(u->dummy_hash + 29, '.', 31);
	u->dummy_hash[60] = '\0';
	u->dummy_cost = cost;
	return kg_bcrypt_is_valid_hash(u->dummy_hash) ? KG_OK : KG_EINVAL;
}

int kg_users__dummy_cost(const kg_users *u)
{
	return u->dummy_cost;
}

kg_err kg_users_parse(const char *name, const char *text, size_t len, const kg_policy *policy, kg_users **out,
                      kg_config_errors *errs)
{
	kg_users *u = calloc(1, sizeof(*u));
	kg_err err = KG_OK;
	if (!u || !(u->text = malloc(len + 1))) {
		free(u);
		return KG_ENOMEM;
	}
	memcpy(u->text, text, len);
	u->text[len] = '\0';
	u->text_len = len;
	if (RAND_bytes(u->index_key, sizeof(u->index_key)) != 1) {
		err = KG_EIO;
		goto out;
	}

	char *line = u->text;
	for (size_t lineno = 1; line && *line; lineno++) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		size_t ll = strlen(line);
		if (ll && line[ll - 1] == '\r')
			line[--ll] = '\0';
		kg_str l = kg_str_trim((kg_str){ line, ll });
		line = nl ? nl + 1 : NULL;
		if (l.n == 0 || l.p[0] == '#')
			continue;
		kg_err e = parse_line(u, name, lineno, l, policy, errs);
		if (e == KG_ENOMEM) {
			err = e;
			goto out;
		}
		if (e && !err)
			err = e;
	}
	if (!err && u->n >= UINT32_MAX / 2)
		err = KG_ETOOBIG;
	if (!err && u->n)
		err = make_dummy(u);
out:
	if (err) {
		kg_users_free(&u);
		return err;
	}
	*out = u;
	return KG_OK;
}

kg_err kg_users_load(const char *path, const kg_policy *policy, kg_users **out, kg_config_errors *errs)
{
	kg_buf b = { 0 };
	kg_err err = kg_buf_read_file(&b, path, KG_USERS_MAX_FILE);
	if (err == KG_ETOOBIG)
		kg_config_errors_add(errs, "%s: users file too large (16 MiB at most)", path);
	else if (err)
		kg_config_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
	if (!err)
		err = kg_users_parse(path, b.p ? b.p : "", b.n, policy, out, errs);
	kg_buf_free(&b, true);
	return err;
}

void kg_users_free(kg_users **pu)
{
	kg_users *u = *pu;
	if (!u)
		return;
	kg_credcache_free(&u->cache);
	if (u->text) {
		OPENSSL_cleanse(u->text, u->text_len);
		free(u->text);
	}
	free(u->v);
	free(u->index);
	free(u);
	*pu = NULL;
}

size_t kg_users_count(const kg_users *u)
{
	return u->n;
}

const struct kg_user *kg_users_at(const kg_users *u, size_t i)
{
	return i < u->n ? &u->v[i] : NULL;
}

const struct kg_user *kg_users_find(const kg_users *u, kg_str name)
{
	if (!u->index_cap)
		return NULL;
	size_t slot = index_slot(u, name);
	return u->index[slot] ? &u->v[u->index[slot] - 1] : NULL;
}

kg_err kg_users_cache_init(kg_users *u, size_t capacity, int64_t ttl_s)
{
	if (u->cache || capacity == 0)
		return KG_OK;
	return kg_credcache_new(capacity, ttl_s, &u->cache);
}

size_t kg_users_cache_entry_size(void)
{
	return kg_credcache_entry_size();
}

kg_err kg_basic_decode(kg_str value, char *buf, size_t cap, kg_str *user, kg_str *password)
{
	size_t n = 0;
	if (value.n == 0 || kg_b64_decode_to(KG_B64_STD, value, (unsigned char *)buf, cap, &n) != KG_OK)
		return KG_EBADCRED;
	char *colon = memchr(buf, ':', n);
	if (!colon || colon == buf || (size_t)(colon - buf) > KG_USER_MAX_NAME ||
	    n - (size_t)(colon - buf) - 1 > KG_USER_MAX_PASSWORD) {
		OPENSSL_cleanse(buf, n); /* decoded, maybe a password, and of no use */
		return KG_EBADCRED;
	}
	*user = (kg_str){ buf, (size_t)(colon - buf) };
	*password = (kg_str){ colon + 1, n - (size_t)(colon - buf) - 1 };
	return KG_OK;
}

void kg_basic_wipe(char *buf, kg_str password)
{
	OPENSSL_cleanse(buf, (size_t)(password.p + password.n - buf));
}

const struct kg_user *kg_users_cached(kg_users *u, kg_str user, kg_str password, int64_t now)
{
	uint64_t idx;
	if (!kg_credcache_get(u->cache, user, password, now, &idx) || idx >= u->n)
		return NULL;
	return &u->v[idx];
}

void kg_users__remember(kg_users *u, kg_str user, kg_str password, size_t idx, int64_t now)
{
	if (idx < u->n)
		kg_credcache_put(u->cache, user, password, idx, now);
}

kg_err kg_users_verify(kg_users *u, kg_str user, kg_str password, int64_t now, const struct kg_user **out)
{
	const struct kg_user *found = kg_users_find(u, user);
	const char *hash = found ? found->hash : u->dummy_hash;
	bool ok = false;
	if (!hash[0])
		return KG_EBADCRED; /* no users at all */
	if (kg_bcrypt_verify(password, hash, &ok) != KG_OK || !ok || !found)
		return KG_EBADCRED;
	kg_credcache_put(u->cache, user, password, (uint64_t)(found - u->v), now);
	*out = found;
	return KG_OK;
}

/* ---- the authenticator ---- */

static void fill_principal(const struct kg_user *usr, struct kg_principal *p)
{
	*p = (struct kg_principal){
		.scheme = "basic",
		.id = usr->name,
		.role = usr->roles_text,
		.roles = usr->roles,
	};
}

static kg_err basic_authenticate(const struct kg_authenticator *a, const struct kg_auth_request *req, kg_arena *arena,
                                 struct kg_principal *out, const char **message)
{
	char buf[KG_USER_MAX_NAME + KG_USER_MAX_PASSWORD + 2];
	kg_str user, password;
	(void)arena;
	if (kg_basic_decode(req->cred.value, buf, sizeof(buf), &user, &password) != KG_OK) {
		*message = "malformed Basic credential: want base64 of user:password";
		return KG_EBADCRED;
	}
	const struct kg_user *usr = kg_users_cached(a->data, user, password, req->now);
	kg_basic_wipe(buf, password);
	if (!usr)
		return KG_ESLOW;
	fill_principal(usr, out);
	return KG_OK;
}

static kg_err basic_slow(const struct kg_authenticator *a, const struct kg_auth_request *req, const char **message)
{
	char buf[KG_USER_MAX_NAME + KG_USER_MAX_PASSWORD + 2];
	kg_str user, password;
	const struct kg_user *usr;
	kg_err err = KG_EBADCRED;
	if (kg_basic_decode(req->cred.value, buf, sizeof(buf), &user, &password) == KG_OK) {
		/* many connections often present one new credential at once: the
		 * checks queued behind the first find it cached and skip bcrypt */
		if (kg_users_cached(a->data, user, password, req->now))
			err = KG_OK;
		else
			err = kg_users_verify(a->data, user, password, req->now, &usr);
		kg_basic_wipe(buf, password);
	}
	if (err)
		*message = "wrong user name or password";
	return err;
}

const struct kg_authenticator *kg_users_authenticator(kg_users *u, enum kg_dialect d)
{
	u->auth = (struct kg_authenticator){
		.name = "basic",
		.dialect = d,
		.kinds = 1u << KG_CRED_BASIC,
		.data = u,
		.authenticate = basic_authenticate,
		.slow = basic_slow,
	};
	return &u->auth;
}
