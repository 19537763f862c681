/* hmac.c - SHA-256 and per-thread keyed HMAC-SHA256 (see hmac.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "keygate/hmac.h"

struct mac_state {
	EVP_MAC_CTX *ctx;
	EVP_MD_CTX *md_ctx;
	unsigned char key[32];
	bool is_keyed;
};

static pthread_key_t mac_key;
static pthread_once_t mac_once = PTHREAD_ONCE_INIT;
static EVP_MAC *hmac_alg;
static EVP_MD *sha256_alg;

static void mac_state_free(void *p)
{
	struct mac_state *m = p;
	EVP_MAC_CTX_free(m->ctx);
	EVP_MD_CTX_free(m->md_ctx);
	OPENSSL_cleanse(m, sizeof(*m));
	free(m);
}

static void mac_init_once(void)
{
	pthread_key_create(&mac_key, mac_state_free);
	hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
	sha256_alg = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* This thread's state, made on first use. */
static struct mac_state *state(void)
{
	pthread_once(&mac_once, mac_init_once);
	struct mac_state *m = pthread_getspecific(mac_key);
	if (m)
		return m;
	if (!hmac_alg || !sha256_alg || !(m = calloc(1, sizeof(*m))))
		return NULL;
	if (!(m->ctx = EVP_MAC_CTX_new(hmac_alg)) || !(m->md_ctx = EVP_MD_CTX_new()) ||
	    pthread_setspecific(mac_key, m) != 0) {
		EVP_MAC_CTX_free(m->ctx);
		EVP_MD_CTX_free(m->md_ctx);
		free(m);
		return NULL;
	}
	return m;
}

bool kg_sha256(const void *data, size_t n, unsigned char out[32])
{
	struct mac_state *m = state();
	unsigned int len = 0;
	return m && EVP_DigestInit_ex2(m->md_ctx, sha256_alg, NULL) == 1 && EVP_DigestUpdate(m->md_ctx, data, n) == 1 &&
	       EVP_DigestFinal_ex(m->md_ctx, out, &len) == 1 && len == 32;
}

bool kg_hmac_sha256(const unsigned char key[32], const void *a, size_t an, const void *b, size_t bn,
                    unsigned char mac[32])
{
	struct mac_state *m = state();
	if (!m)
		return false;
	size_t len = 0;
	bool same = m->is_keyed && CRYPTO_memcmp(m->key, key, 32) == 0;
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0), OSSL_PARAM_construct_end() };
	if (EVP_MAC_init(m->ctx, same ? NULL : key, same ? 0 : 32, same ? NULL : params) != 1) {
		m->is_keyed = false;
		return false;
	}
	if (!same) {
		memcpy(m->key, key, 32);
		m->is_keyed = true;
	}
	return EVP_MAC_update(m->ctx, a, an) == 1 && (bn == 0 || EVP_MAC_update(m->ctx, b, bn) == 1) &&
	       EVP_MAC_final(m->ctx, mac, &len, 32) == 1 && len == 32;
}
