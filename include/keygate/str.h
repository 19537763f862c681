/* str.h - (pointer, length) strings and a growable byte buffer.
 *
 * Everything that comes from the network is a kg_str: never NUL-scanned,
 * always bounded by its length.
 */
#ifndef KEYGATE_STR_H
#define KEYGATE_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "keygate/err.h"

typedef struct kg_str {
	const char *p; /* borrowed; not NUL-terminated in general */
	size_t n;
} kg_str;

#define KG_STR(lit) ((kg_str){ (lit), sizeof(lit) - 1 })
#define KG_STR_NULL ((kg_str){ NULL, 0 })

static inline kg_str kg_str_c(const char *s)
{
	return (kg_str){ s, s ? strlen(s) : 0 };
}

static inline bool kg_str_eq(kg_str a, kg_str b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* ASCII case-insensitive equality (HTTP header names, schemes). */
bool kg_str_eq_ci(kg_str a, kg_str b);

/* True when s starts with prefix (case-sensitive). */
static inline bool kg_str_has_prefix(kg_str s, kg_str prefix)
{
	return s.n >= prefix.n && memcmp(s.p, prefix.p, prefix.n) == 0;
}

/* True when s starts with prefix, ASCII case-insensitive. */
bool kg_str_has_prefix_ci(kg_str s, kg_str prefix);

/* HTTP's character classes (RFC 9110 section 5.6.2 and 5.5), one table
 * lookup per byte on the request and response paths. */
bool kg_str_is_token(kg_str s);        /* a non-empty token: a header name, a method */
bool kg_str_is_field_value(kg_str s);  /* no control byte but HTAB: nothing that splits a line */

/* Removes leading and trailing spaces and tabs (HTTP OWS). */
kg_str kg_str_trim(kg_str s);

/* Parses a non-negative decimal integer that must fill all of s.
 * Returns KG_EINVAL on anything else, KG_ERANGE above max. */
kg_err kg_str_to_u64(kg_str s, unsigned long long max, unsigned long long *out) KG_MUST_CHECK;

/* Writes the 2*n hex digits of in[0..n) to out (lower case, or upper case
 * when is_upper: percent-encoding's canonical form). out is borrowed and must
 * hold 2*n bytes; no NUL is written (callers that want a C string add one).
 * Returns 2*n. Cannot fail. */
size_t kg_hex_encode(const void *in, size_t n, char *out, bool is_upper);
/* The value of one hex digit (either case), -1 for any other byte. */
int kg_hex_value(unsigned char c);

/* kg_buf: an owned, growable byte buffer that always keeps a NUL after its
 * content so it can be handed to C APIs. */
typedef struct kg_buf {
	char *p;
	size_t n;
	size_t cap;
} kg_buf;

kg_err kg_buf_reserve(kg_buf *b, size_t extra) KG_MUST_CHECK;
kg_err kg_buf_append(kg_buf *b, const void *data, size_t len);
kg_err kg_buf_appends(kg_buf *b, kg_str s);
/* Appends v in decimal (the hot paths' Content-Length and status codes,
 * without printf's format parsing). */
kg_err kg_buf_append_u64(kg_buf *b, unsigned long long v);
#define KG_U64_DEC_MAX 20 /* 18446744073709551615 */
/* The number of decimal digits of v (1 for 0). */
size_t kg_u64_dec_len(unsigned long long v);
/* v in decimal, written so that its last digit is just before end (room
 * for kg_u64_dec_len(v) digits before it); returns where the digits begin.
 * For writing in place, as the access line does. */
char *kg_u64_dec_to(unsigned long long v, char *end);
/* v in decimal, written at the end of out; returns the digits (a view of
 * out). Cannot fail. */
kg_str kg_u64_dec(unsigned long long v, char out[KG_U64_DEC_MAX]);
kg_err kg_buf_printf(kg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
kg_err kg_buf_vprintf(kg_buf *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal, quotes included. */
kg_err kg_buf_append_json_string(kg_buf *b, kg_str s);
static inline kg_str kg_buf_str(const kg_buf *b)
{
	return (kg_str){ b->p, b->n };
}
static inline void kg_buf_clear(kg_buf *b)
{
	b->n = 0;
	if (b->p)
		b->p[0] = '\0';
}
/* kg_buf_appends with the common case inline: when b already has room (a
 * head writer reserves its estimate once, then puts piece after piece) the
 * bytes are copied without a call and without kg_buf_reserve's checks; else
 * it is kg_buf_appends (which grows b, KG_ENOMEM when it cannot). Always
 * inlined: gcc otherwise calls one out-of-line copy per piece where a
 * constant piece inlined is a few moves (measured in lib/head.c: about 40
 * instructions a piece, 16 pieces a request). */
static inline __attribute__((always_inline)) kg_err kg_buf_put(kg_buf *b, kg_str s)
{
	if (b->cap - b->n > s.n) { /* cap counts the NUL: room for s and it */
		if (s.n)
			memcpy(b->p + b->n, s.p, s.n);
		b->n += s.n;
		b->p[b->n] = '\0';
		return KG_OK;
	}
	return kg_buf_appends(b, s);
}
/* Frees the memory; when is_secret, wipes it first. */
void kg_buf_free(kg_buf *b, bool is_secret);

/* Appends the contents of the file at path to out. KG_EIO (errno set) when
 * it cannot be read; KG_ETOOBIG (errno EFBIG) beyond max bytes. */
kg_err kg_buf_read_file(kg_buf *out, const char *path, size_t max) KG_MUST_CHECK;

#endif
