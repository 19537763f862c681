#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "keygate/b64.h"
#include "keygate/hmac.h"
#include "keygate/token.h"

#define KG_PREFIX "kg1."
#define KG_NONCE 12
#define KG_TAG 16
#define KG_KID 4
#define KG_LAYOUT_FIXED (1 + 8 + 8 + 16 + 1)

struct key {
	unsigned char kid[KG_KID];
	unsigned char kg[32];  /* HKDF-derived */
	unsigned char bee[32]; /* hex(md5(secret)) */
};

struct kg_token_keys {
	size_t n;
	struct key k[];
};

/* One cipher context per thread, freed when the thread ends. It remembers
 * the key and direction it was last set up with, so a token under the same
 * key only resets the nonce instead of expanding the AES key again. */
struct cipher_state {
	EVP_CIPHER_CTX *ctx;
	unsigned char key[32];
	int dir; /* 0: none, 1: encrypt, 2: decrypt */
};

static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void ctx_free(void *p)
{
	struct cipher_state *st = p;
	EVP_CIPHER_CTX_free(st->ctx);
	OPENSSL_cleanse(st, sizeof(*st));
	free(st);
}

static void ctx_init(void)
{
	pthread_key_create(&ctx_key, ctx_free);
}

static struct cipher_state *thread_state(void)
{
	pthread_once(&ctx_once, ctx_init);
	struct cipher_state *st = pthread_getspecific(ctx_key);
	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st)
			return NULL;
		st->ctx = EVP_CIPHER_CTX_new();
		if (!st->ctx || pthread_setspecific(ctx_key, st) != 0) {
			EVP_CIPHER_CTX_free(st->ctx);
			free(st);
			return NULL;
		}
	}
	return st;
}

/* Sets st up for key and nonce in direction dir (1 encrypt, 2 decrypt). */
static bool cipher_begin(struct cipher_state *st, int dir, const unsigned char key[32], const unsigned char *nonce)
{
	bool same = st->dir == dir && CRYPTO_memcmp(st->key, key, 32) == 0;
	int ok = dir == 1 ? EVP_EncryptInit_ex(st->ctx, same ? NULL : EVP_aes_256_gcm(), NULL, same ? NULL : key, nonce)
	                  : EVP_DecryptInit_ex(st->ctx, same ? NULL : EVP_aes_256_gcm(), NULL, same ? NULL : key, nonce);
	if (ok != 1) {
		st->dir = 0;
		return false;
	}
	if (!same) {
		memcpy(st->key, key, 32);
		st->dir = dir;
	}
	return true;
}

/* out: 2*n hex digits and a NUL (ids are C strings in the claims). */
static void to_hex(const unsigned char *in, size_t n, char *out)
{
	out[kg_hex_encode(in, n, out, false)] = '\0';
}

static kg_err derive(const char *secret, struct key *k)
{
	unsigned char digest[32], md5[16];
	unsigned int dn = 0;
	size_t len = strlen(secret), outlen = sizeof(k->kg);
	kg_err err = KG_EIO;
	EVP_PKEY_CTX *pctx = NULL;

	if (!EVP_Digest(secret, len, digest, &dn, EVP_sha256(), NULL))
		return KG_EIO;
	memcpy(k->kid, digest, KG_KID);
	if (!EVP_Digest(secret, len, md5, &dn, EVP_md5(), NULL))
		return KG_EIO;
	char hex[33];
	to_hex(md5, sizeof(md5), hex);
	memcpy(k->bee, hex, 32);

	unsigned char info[3 + KG_KID] = { 'k', 'g', '1' };
	memcpy(info + 3, k->kid, KG_KID);
	pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	if (pctx && EVP_PKEY_derive_init(pctx) > 0 && EVP_PKEY_CTX_set_hkdf_md(pctx, EVP_sha256()) > 0 &&
	    EVP_PKEY_CTX_set1_hkdf_salt(pctx, (const unsigned char *)"keygate token v1", 16) > 0 &&
	    EVP_PKEY_CTX_set1_hkdf_key(pctx, (const unsigned char *)secret, (int)len) > 0 &&
	    EVP_PKEY_CTX_add1_hkdf_info(pctx, info, sizeof(info)) > 0 && EVP_PKEY_derive(pctx, k->kg, &outlen) > 0 &&
	    outlen == sizeof(k->kg))
		err = KG_OK;
	EVP_PKEY_CTX_free(pctx);
	OPENSSL_cleanse(digest, sizeof(digest));
	OPENSSL_cleanse(md5, sizeof(md5));
	OPENSSL_cleanse(hex, sizeof(hex));
	return err;
}

kg_err kg_token_keys_new(const char *const *keys, size_t n, kg_token_keys **out)
{
	if (n == 0 || n > 64)
		return KG_EINVAL;
	kg_token_keys *k = calloc(1, sizeof(*k) + n * sizeof(struct key));
	if (!k)
		return KG_ENOMEM;
	k->n = n;
	for (size_t i = 0; i < n; i++) {
		kg_err err = !keys[i] || !keys[i][0] ? KG_EINVAL : derive(keys[i], &k->k[i]);
		if (err) {
			kg_token_keys_free(&k);
			return err;
		}
	}
	*out = k;
	return KG_OK;
}

void kg_token_keys_free(kg_token_keys **pk)
{
	kg_token_keys *k = pk ? *pk : NULL;
	if (!k)
		return;
	OPENSSL_cleanse(k->k, k->n * sizeof(struct key));
	free(k);
	*pk = NULL;
}

static bool gcm_seal(const unsigned char key[32], const unsigned char *nonce, const unsigned char *aad, size_t aadn,
                     const unsigned char *pt, size_t n, unsigned char *ct, unsigned char *tag)
{
	struct cipher_state *st = thread_state();
	int len;
	return st && cipher_begin(st, 1, key, nonce) &&
	       (aadn == 0 || EVP_EncryptUpdate(st->ctx, NULL, &len, aad, (int)aadn) == 1) &&
	       EVP_EncryptUpdate(st->ctx, ct, &len, pt, (int)n) == 1 && EVP_EncryptFinal_ex(st->ctx, ct + len, &len) == 1 &&
	       EVP_CIPHER_CTX_ctrl(st->ctx, EVP_CTRL_GCM_GET_TAG, KG_TAG, tag) == 1;
}

static bool gcm_open(const unsigned char key[32], const unsigned char *nonce, const unsigned char *aad, size_t aadn,
                     const unsigned char *ct, size_t n, const unsigned char *tag, unsigned char *pt)
{
	struct cipher_state *st = thread_state();
	int len;
	return st && cipher_begin(st, 2, key, nonce) &&
	       (aadn == 0 || EVP_DecryptUpdate(st->ctx, NULL, &len, aad, (int)aadn) == 1) &&
	       EVP_DecryptUpdate(st->ctx, pt, &len, ct, (int)n) == 1 &&
	       EVP_CIPHER_CTX_ctrl(st->ctx, EVP_CTRL_GCM_SET_TAG, KG_TAG, (void *)tag) == 1 &&
	       EVP_DecryptFinal_ex(st->ctx, pt + len, &len) == 1;
}

static bool is_role_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	       c == '.';
}

static bool valid_role(const char *r, size_t n)
{
	if (n == 0 || n > KG_TOKEN_MAX_ROLE)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_role_char(r[i]))
			return false;
	return true;
}

static void put64(unsigned char *p, int64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v = (int64_t)((uint64_t)v >> 8);
	}
}

static int64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return (int64_t)v;
}

/* ---- RFC 3339 ---- */

static bool digits(const char *p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return true;
}

kg_err kg__token_parse_rfc3339(kg_str s, int64_t *ms)
{
	int Y, M, D, h, m, sec, frac_ms = 0, off = 0;
	const char *p = s.p, *end = s.p + s.n;

	if (s.n < 20 || !digits(p, 4, &Y) || p[4] != '-' || !digits(p + 5, 2, &M) || p[7] != '-' ||
	    !digits(p + 8, 2, &D) || (p[10] != 'T' && p[10] != 't') || !digits(p + 11, 2, &h) || p[13] != ':' ||
	    !digits(p + 14, 2, &m) || p[16] != ':' || !digits(p + 17, 2, &sec))
		return KG_EINVAL;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return KG_EINVAL;
	p += 19;
	if (p < end && *p == '.') {
		int nd = 0;
		p++;
		while (p < end && *p >= '0' && *p <= '9') {
			if (nd < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
			nd++;
			p++;
		}
		if (nd == 0 || nd > 9)
			return KG_EINVAL;
		for (int i = nd; i < 3; i++)
			frac_ms *= 10;
	}
	if (p < end && (*p == 'Z' || *p == 'z') && p + 1 == end) {
		off = 0;
	} else if (end - p == 6 && (*p == '+' || *p == '-') && p[3] == ':') {
		int oh, om;
		if (!digits(p + 1, 2, &oh) || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return KG_EINVAL;
		off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
	} else {
		return KG_EINVAL;
	}
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool is_leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (D > mdays[M - 1] + (M == 2 && is_leap)) /* 31 February and the like */
		return KG_EINVAL;
	/* days since 1970-01-01 without timegm (which reads the time zone
	 * database): Howard Hinnant's days_from_civil */
	int64_t y = Y - (M <= 2);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (M > 2 ? M - 3 : M + 9) + 2) / 5 + D - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	int64_t days = era * 146097 + doe - 719468;
	int64_t t = days * 86400 + h * 3600 + m * 60 + sec;
	*ms = (t - off) * 1000 + frac_ms;
	return KG_OK;
}

/* Go's time.RFC3339Nano in UTC: the fraction without trailing zeros. */
kg_err kg__token_bee_plaintext(const char *role, int64_t expires_ms, kg_buf *out)
{
	if (!valid_role(role, strlen(role)))
		return KG_EINVAL;
	time_t t = (time_t)(expires_ms >= 0 ? expires_ms / 1000 : (expires_ms - 999) / 1000);
	int frac = (int)(expires_ms - (int64_t)t * 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
		return KG_ERANGE;
	char fs[8] = "";
	if (frac) {
		snprintf(fs, sizeof(fs), ".%03d", frac);
		size_t n = strlen(fs);
		while (fs[n - 1] == '0')
			fs[--n] = '\0';
	}
	return kg_buf_printf(out, "{\"r\":\"%s\",\"e\":\"%04d-%02d-%02dT%02d:%02d:%02d%sZ\"}", role, tm.tm_year + 1900,
	                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, fs);
}

enum kg_token_format kg_token_format_of(kg_str token)
{
	return kg_str_has_prefix(token, KG_STR(KG_PREFIX)) ? KG_TOKEN_FORMAT_KEYGATE : KG_TOKEN_FORMAT_BEE;
}

/* ---- mint ---- */

static kg_err mint_keygate(const struct key *k, struct kg_token_claims *c, kg_buf *out)
{
	size_t rl = strlen(c->role);
	unsigned char pt[KG_LAYOUT_FIXED + KG_TOKEN_MAX_ROLE], wire[KG_KID + KG_NONCE + sizeof(pt) + KG_TAG], id[16];
	unsigned char aad[3 + KG_KID] = { 'k', 'g', '1' };
	size_t n = KG_LAYOUT_FIXED + rl;

	if (!valid_role(c->role, rl))
		return KG_EINVAL;
	if (RAND_bytes(id, sizeof(id)) != 1 || RAND_bytes(wire + KG_KID, KG_NONCE) != 1)
		return KG_EIO;
	if (!c->issued_ms) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		c->issued_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	to_hex(id, sizeof(id), c->id);
	pt[0] = 1;
	put64(pt + 1, c->expires_ms);
	put64(pt + 9, c->issued_ms);
	memcpy(pt + 17, id, 16);
	pt[33] = (unsigned char)rl;
	memcpy(pt + 34, c->role, rl);
	memcpy(wire, k->kid, KG_KID);
	memcpy(aad + 3, k->kid, KG_KID);
	if (!gcm_seal(k->kg, wire + KG_KID, aad, sizeof(aad), pt, n, wire + KG_KID + KG_NONCE,
	              wire + KG_KID + KG_NONCE + n))
		return KG_EIO;
	kg_err err = kg_buf_appends(out, KG_STR(KG_PREFIX));
	if (!err)
		err = kg_b64_encode(KG_B64_URL_RAW, wire, KG_KID + KG_NONCE + n + KG_TAG, out);
	OPENSSL_cleanse(pt, sizeof(pt));
	return err;
}

static kg_err bee_id(kg_str token, char id[33])
{
	unsigned char d[32];
	if (!kg_sha256(token.p, token.n, d))
		return KG_EIO;
	to_hex(d, 16, id);
	return KG_OK;
}

static kg_err mint_bee(const struct key *k, struct kg_token_claims *c, kg_buf *out)
{
	kg_buf pt = { 0 };
	unsigned char *wire = NULL;
	kg_err err = kg__token_bee_plaintext(c->role, c->expires_ms, &pt);
	if (err)
		goto out;
	wire = malloc(KG_NONCE + pt.n + KG_TAG);
	err = KG_ENOMEM;
	if (!wire)
		goto out;
	err = KG_EIO;
	if (RAND_bytes(wire, KG_NONCE) != 1 ||
	    !gcm_seal(k->bee, wire, NULL, 0, (unsigned char *)pt.p, pt.n, wire + KG_NONCE, wire + KG_NONCE + pt.n))
		goto out;
	size_t start = out->n;
	if ((err = kg_b64_encode(KG_B64_STD, wire, KG_NONCE + pt.n + KG_TAG, out)))
		goto out;
	c->issued_ms = 0;
	err = bee_id((kg_str){ out->p + start, out->n - start }, c->id);
out:
	kg_buf_free(&pt, true);
	free(wire);
	return err;
}

kg_err kg_token_mint(const kg_token_keys *k, enum kg_token_format f, struct kg_token_claims *c, kg_buf *out)
{
	return f == KG_TOKEN_FORMAT_BEE ? mint_bee(&k->k[0], c, out) : mint_keygate(&k->k[0], c, out);
}

/* ---- open ---- */

static kg_err open_keygate(const kg_token_keys *ks, kg_str token, struct kg_token_claims *out)
{
	unsigned char w[KG_TOKEN_MAX_WIRE], pt[KG_LAYOUT_FIXED + KG_TOKEN_MAX_ROLE];
	size_t n = 0;
	kg_err err = KG_EBADCRED;
	token.p += 4;
	token.n -= 4;
	if (kg_b64_decode_to(KG_B64_URL_RAW, token, w, sizeof(w), &n) != KG_OK)
		return KG_EBADCRED;
	if (n < KG_KID + KG_NONCE + KG_LAYOUT_FIXED + 1 + KG_TAG || n > KG_KID + KG_NONCE + sizeof(pt) + KG_TAG)
		return KG_EBADCRED;
	size_t ctn = n - KG_KID - KG_NONCE - KG_TAG;
	for (size_t i = 0; i < ks->n; i++) {
		const struct key *k = &ks->k[i];
		if (memcmp(k->kid, w, KG_KID) != 0)
			continue;
		unsigned char aad[3 + KG_KID] = { 'k', 'g', '1' };
		memcpy(aad + 3, k->kid, KG_KID);
		if (!gcm_open(k->kg, w + KG_KID, aad, sizeof(aad), w + KG_KID + KG_NONCE, ctn, w + n - KG_TAG, pt))
			continue;
		size_t rl = pt[33];
		if (pt[0] != 1 || KG_LAYOUT_FIXED + rl != ctn || !valid_role((char *)pt + 34, rl))
			break;
		out->expires_ms = get64(pt + 1);
		out->issued_ms = get64(pt + 9);
		to_hex(pt + 17, 16, out->id);
		memcpy(out->role, pt + 34, rl);
		out->role[rl] = '\0';
		err = KG_OK;
		break;
	}
	OPENSSL_cleanse(pt, sizeof(pt));
	return err;
}

/* Bee's plaintext exactly as Go writes it, {"r":"<role>","e":"<time>"}:
 * parsed without a JSON library; anything else takes the jansson path. */
static bool parse_bee_fast(const unsigned char *pt, size_t n, struct kg_token_claims *out)
{
	const char *p = (const char *)pt, *end = p + n;
	if (n < 16 || memcmp(p, "{\"r\":\"", 6) != 0)
		return false;
	p += 6;
	const char *role = p;
	while (p < end && is_role_char(*p))
		p++;
	size_t rl = (size_t)(p - role);
	if ((size_t)(end - p) < 7 || memcmp(p, "\",\"e\":\"", 7) != 0 || !valid_role(role, rl))
		return false;
	p += 7;
	const char *t = p;
	while (p < end && *p != '"' && *p != '\\')
		p++;
	if ((size_t)(end - p) != 2 || memcmp(p, "\"}", 2) != 0)
		return false;
	if (kg__token_parse_rfc3339((kg_str){ t, (size_t)(p - t) }, &out->expires_ms) != KG_OK)
		return false;
	memcpy(out->role, role, rl);
	out->role[rl] = '\0';
	out->issued_ms = 0;
	return true;
}

static kg_err parse_bee_plaintext(const unsigned char *pt, size_t n, struct kg_token_claims *out)
{
	if (parse_bee_fast(pt, n, out))
		return KG_OK;
	json_error_t e;
	json_t *j = json_loadb((const char *)pt, n, JSON_REJECT_DUPLICATES, &e);
	kg_err err = KG_EBADCRED;
	if (!j || !json_is_object(j) || json_object_size(j) != 2)
		goto out;
	json_t *r = json_object_get(j, "r"), *ex = json_object_get(j, "e");
	if (!json_is_string(r) || !json_is_string(ex))
		goto out;
	const char *role = json_string_value(r);
	size_t rl = json_string_length(r);
	if (!valid_role(role, rl))
		goto out;
	if (kg__token_parse_rfc3339((kg_str){ json_string_value(ex), json_string_length(ex) }, &out->expires_ms))
		goto out;
	memcpy(out->role, role, rl);
	out->role[rl] = '\0';
	out->issued_ms = 0;
	err = KG_OK;
out:
	json_decref(j);
	return err;
}

static kg_err open_bee(const kg_token_keys *ks, kg_str token, struct kg_token_claims *out)
{
	unsigned char w[KG_TOKEN_MAX_WIRE], pt[KG_TOKEN_MAX_WIRE];
	size_t n = 0;
	kg_err err = KG_EBADCRED;
	/* Bee panicked on tokens shorter than a nonce: length first */
	if (kg_b64_decode_to(KG_B64_STD, token, w, sizeof(w), &n) != KG_OK || n < KG_NONCE + KG_TAG + 2)
		return KG_EBADCRED;
	size_t ctn = n - KG_NONCE - KG_TAG;
	for (size_t i = 0; i < ks->n; i++) {
		if (!gcm_open(ks->k[i].bee, w, NULL, 0, w + KG_NONCE, ctn, w + n - KG_TAG, pt))
			continue;
		err = parse_bee_plaintext(pt, ctn, out);
		if (!err)
			err = bee_id(token, out->id);
		break;
	}
	OPENSSL_cleanse(pt, ctn);
	return err;
}

kg_err kg_token_open(const kg_token_keys *k, kg_str token, struct kg_token_claims *out)
{
	memset(out, 0, sizeof(*out));
	if (token.n == 0 || token.n > KG_TOKEN_MAX_WIRE)
		return KG_EBADCRED;
	return kg_token_format_of(token) == KG_TOKEN_FORMAT_KEYGATE ? open_keygate(k, token, out)
	                                                             : open_bee(k, token, out);
}
