#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "keygate/b64.h"
#include "keygate/hmac.h"
#include "keygate/jwt.h"

static const char header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; /* {"alg":"HS256","typ":"JWT"} */

static bool hs256(const unsigned char key[32], const char *data, size_t n, unsigned char mac[32])
{
	return kg_hmac_sha256(key, data, n, NULL, 0, mac);
}

kg_err kg_jwt_sign(const unsigned char key[32], int64_t exp, const char *const *endpoints, size_t n, kg_buf *out,
                   char *jti_out)
{
	unsigned char rnd[20], mac[32];
	kg_buf claims = { 0 }, jti = { 0 };
	bool is_star = false;
	kg_err err;

	if (n == 0 || n > KG_JWT_MAX_ENDPOINTS)
		return KG_EINVAL;
	for (size_t i = 0; i < n; i++)
		is_star |= strcmp(endpoints[i], "*") == 0;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return KG_EIO;
	if ((err = kg_b64_encode(KG_B64_URL_RAW, rnd, sizeof(rnd), &jti)))
		goto out;
	if ((err = kg_buf_printf(&claims, "{\"exp\":%lld,\"jti\":\"%s\",\"endpoints\":[", (long long)exp, jti.p)))
		goto out;
	for (size_t i = 0; i < (is_star ? 1 : n); i++) {
		if ((i && (err = kg_buf_append(&claims, ",", 1))) ||
		    (err = kg_buf_append_json_string(&claims, kg_str_c(is_star ? "*" : endpoints[i]))))
			goto out;
	}
	if ((err = kg_buf_append(&claims, "]}", 2)))
		goto out;
	size_t start = out->n;
	if ((err = kg_buf_appends(out, KG_STR(header_b64))) || (err = kg_buf_append(out, ".", 1)) ||
	    (err = kg_b64_encode(KG_B64_URL_RAW, claims.p, claims.n, out)))
		goto out;
	if (!hs256(key, out->p + start, out->n - start, mac)) {
		err = KG_EIO;
		goto out;
	}
	if ((err = kg_buf_append(out, ".", 1)) || (err = kg_b64_encode(KG_B64_URL_RAW, mac, sizeof(mac), out)))
		goto out;
	if (jti_out)
		memcpy(jti_out, jti.p, jti.n + 1);
out:
	kg_buf_free(&claims, false);
	kg_buf_free(&jti, false);
	return err;
}

/* Go's encoding/json matches field names case-insensitively. */
static json_t *get_ci(json_t *obj, const char *name)
{
	const char *k;
	json_t *v;
	json_t *exact = json_object_get(obj, name);
	if (exact)
		return exact;
	json_object_foreach(obj, k, v)
		if (strcasecmp(k, name) == 0)
			return v;
	return NULL;
}

static json_t *decode_json(kg_str seg, kg_buf *tmp)
{
	json_error_t e;
	if (kg_b64_decode(KG_B64_URL_RAW, seg, KG_JWT_MAX_LEN, tmp) != KG_OK)
		return NULL;
	json_t *j = json_loadb(tmp->p, tmp->n, 0, &e);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The claims exactly as kg_jwt_sign (and AvalancheGo) write them:
 * {"exp":N,"jti":"...","endpoints":["...",...]} with no escapes. Returns 1
 * when parsed and valid, 2 when expired, 0 for anything else (the caller
 * then uses the general JSON path). No allocation besides the arena. */
static int parse_claims_fast(kg_str b64, int64_t now, kg_arena *arena, struct kg_jwt_claims *c)
{
	size_t cap = b64.n / 4 * 3 + 3, n = 0;
	char *j = kg_arena_alloc(arena, cap + 1);
	if (!j || kg_b64_decode_to(KG_B64_URL_RAW, b64, (unsigned char *)j, cap, &n) != KG_OK)
		return 0;
	const char *p = j, *end = j + n;
#define EXPECT(lit) do { size_t l_ = sizeof(lit) - 1; if ((size_t)(end - p) < l_ || memcmp(p, lit, l_)) return 0; p += l_; } while (0)
	EXPECT("{\"exp\":");
	int64_t exp = 0;
	const char *d = p;
	while (p < end && *p >= '0' && *p <= '9' && p - d < 18)
		exp = exp * 10 + (*p++ - '0');
	if (p == d)
		return 0;
	EXPECT(",\"jti\":\"");
	const char *jti = p;
	while (p < end && *p != '"' && *p != '\\')
		p++;
	if (p == end || *p != '"')
		return 0;
	kg_str jt = { jti, (size_t)(p - jti) };
	p++;
	EXPECT(",\"endpoints\":[");
	kg_str eps[KG_JWT_MAX_ENDPOINTS];
	size_t ne = 0;
	while (p < end && *p == '"' && ne < KG_JWT_MAX_ENDPOINTS) {
		const char *s = ++p;
		while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
			p++;
		if (p == end || *p != '"')
			return 0;
		eps[ne++] = (kg_str){ s, (size_t)(p - s) };
		p++;
		if (p < end && *p == ',')
			p++;
		else
			break;
	}
	EXPECT("]}");
#undef EXPECT
	if (p != end || ne == 0)
		return 0;
	c->exp = exp;
	c->jti = jt;
	c->endpoints = kg_arena_alloc(arena, ne * sizeof(kg_str));
	if (!c->endpoints)
		return 0;
	memcpy(c->endpoints, eps, ne * sizeof(kg_str));
	c->nendpoints = ne;
	return now > exp ? 2 : 1;
}

enum kg_jwt_result kg_jwt_verify(const unsigned char key[32], kg_str token, int64_t now, kg_arena *arena,
                                 struct kg_jwt_claims *c, const char **message)
{
	const char *d1 = NULL, *d2 = NULL;
	kg_buf tmp = { 0 };
	json_t *h = NULL, *p = NULL;
	enum kg_jwt_result r = KG_JWT_MALFORMED;

	memset(c, 0, sizeof(*c));
	*message = "token contains an invalid number of segments";
	if (token.n > KG_JWT_MAX_LEN)
		goto out;
	for (size_t i = 0, dots = 0; i < token.n; i++) {
		if (token.p[i] != '.')
			continue;
		if (++dots == 1)
			d1 = token.p + i;
		else if (dots == 2)
			d2 = token.p + i;
		else
			goto out;
	}
	if (!d2)
		goto out;
	kg_str hs = { token.p, (size_t)(d1 - token.p) };
	kg_str ps = { d1 + 1, (size_t)(d2 - d1 - 1) };
	kg_str ss = { d2 + 1, token.n - (size_t)(d2 + 1 - token.p) };

	/* the header every HS256 token from AvalancheGo or keygate carries is
	 * recognised as is; any other goes through the JSON decoder */
	if (!kg_str_eq(hs, KG_STR(header_b64))) {
		*message = "token is malformed: the header is not base64url JSON";
		if (!(h = decode_json(hs, &tmp)))
			goto out;
		json_t *alg = json_object_get(h, "alg");
		if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0) {
			*message = "auth token didn't specify the HS256 signing method correctly";
			r = KG_JWT_BAD_ALG;
			goto out;
		}
	}
	unsigned char mac[32], sig[32];
	size_t sn = 0;
	*message = "signature is invalid";
	r = KG_JWT_BAD_SIGNATURE;
	if (kg_b64_decode_to(KG_B64_URL_RAW, ss, sig, sizeof(sig), &sn) != KG_OK || sn != 32 ||
	    !hs256(key, token.p, (size_t)(d2 - token.p), mac) || CRYPTO_memcmp(mac, sig, 32) != 0)
		goto out;

	r = KG_JWT_MALFORMED;
	*message = "token is malformed: the claims are not base64url JSON";
	int fast = parse_claims_fast(ps, now, arena, c);
	if (fast == 1) {
		r = KG_JWT_OK;
		*message = NULL;
		goto out;
	}
	if (fast == 2) {
		*message = "token is expired";
		r = KG_JWT_EXPIRED;
		goto out;
	}
	if (!(p = decode_json(ps, &tmp)))
		goto out;
	json_t *exp = get_ci(p, "exp"), *jti = get_ci(p, "jti"), *eps = get_ci(p, "endpoints");
	/* exp is an int64 in Go's jwt.StandardClaims: a fraction or a number out
	 * of range did not decode there, and must not be converted here */
	if ((exp && !json_is_integer(exp)) || (jti && !json_is_string(jti)) ||
	    (eps && !json_is_array(eps) && !json_is_null(eps)))
		goto out;
	c->exp = exp ? (int64_t)json_integer_value(exp) : 0;
	if (jti)
		c->jti = kg_arena_strdup(arena, (kg_str){ json_string_value(jti), json_string_length(jti) });
	size_t n = eps && json_is_array(eps) ? json_array_size(eps) : 0;
	if (n > KG_JWT_MAX_ENDPOINTS)
		goto out;
	c->endpoints = n ? kg_arena_alloc(arena, n * sizeof(kg_str)) : NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(eps, i);
		if (!json_is_string(e))
			goto out;
		c->endpoints[i] = kg_arena_strdup(arena, (kg_str){ json_string_value(e), json_string_length(e) });
	}
	c->nendpoints = n;
	/* jwt-go: a token without exp never expires; with one, now must be before it */
	if (exp && now > c->exp) {
		*message = "token is expired";
		r = KG_JWT_EXPIRED;
		goto out;
	}
	*message = NULL;
	r = KG_JWT_OK;
out:
	json_decref(h);
	json_decref(p);
	kg_buf_free(&tmp, false);
	return r;
}

bool kg_jwt_allows_path(const struct kg_jwt_claims *c, kg_str path)
{
	for (size_t i = 0; i < c->nendpoints; i++) {
		kg_str e = c->endpoints[i];
		if (kg_str_eq(e, KG_STR("*")))
			return true;
		if (e.n <= path.n && memcmp(path.p + path.n - e.n, e.p, e.n) == 0)
			return true;
	}
	return false;
}
