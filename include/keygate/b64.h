/* b64.h - strict base64 (RFC 4648), standard and URL alphabets, over
 * OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock.
 *
 * Decoding rejects what OpenSSL lets through: characters outside the
 * alphabet, whitespace, misplaced or missing padding, and non-canonical
 * trailing bits, so one byte string has exactly one accepted encoding. */
#ifndef KEYGATE_B64_H
#define KEYGATE_B64_H

#include <stdbool.h>

#include "keygate/str.h"

enum kg_b64_alphabet {
	KG_B64_STD,     /* A-Z a-z 0-9 + /, padded with '=' */
	KG_B64_URL_RAW, /* A-Z a-z 0-9 - _, no padding */
};

/* Appends the encoding of data to out. */
kg_err kg_b64_encode(enum kg_b64_alphabet a, const void *data, size_t len, kg_buf *out) KG_MUST_CHECK;

/* Decodes in into out (replacing its contents). KG_EINVAL for anything that
 * is not the canonical encoding in alphabet a; KG_ETOOBIG when the decoded
 * length would exceed max. */
kg_err kg_b64_decode(enum kg_b64_alphabet a, kg_str in, size_t max, kg_buf *out) KG_MUST_CHECK;

/* Same, into caller memory: out has cap bytes, *outlen gets the length. No
 * allocation (for hot paths). */
kg_err kg_b64_decode_to(enum kg_b64_alphabet a, kg_str in, unsigned char *out, size_t cap, size_t *outlen)
    KG_MUST_CHECK;

#endif
