/* hmac.h - HMAC-SHA256 with a 32-byte key over OpenSSL's EVP_MAC, keeping
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
                    unsigned char mac[32]);

#endif
