/* hmac.h - SHA-256 and HMAC-SHA256 (32-byte key) over OpenSSL's EVP, keeping
 * one keyed context per thread (re-keyed only when the key changes), so the
 * hot paths (JWT signatures, the Basic credential cache) do not build and
 * free a MAC context per call as HMAC() does. */
#ifndef KEYGATE_HMAC_H
#define KEYGATE_HMAC_H

#include <stdbool.h>
#include <stddef.h>

/* mac = HMAC-SHA256(key, a || b); b may be NULL with bn 0. False on an
 * OpenSSL failure. */
bool kg_hmac_sha256(const unsigned char key[32], const void *a, size_t an, const void *b, size_t bn,
                    unsigned char mac[32]) __attribute__((warn_unused_result));

/* out = SHA-256(data), with the digest fetched once and a context kept per
 * thread (EVP_Digest with EVP_sha256() fetches and allocates per call). */
bool kg_sha256(const void *data, size_t n, unsigned char out[32]) __attribute__((warn_unused_result));

#endif
