#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "keygate/str.h"

static inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

enum { CH_TCHAR = 1, CH_VALUE = 2 };

/* tchar: ALPHA DIGIT ! # $ % & ' * + - . ^ _ ` | ~; a field value byte:
 * HTAB, SP..~ and obs-text (0x80..0xff) */
static const unsigned char char_class[256] = {
	['\t'] = CH_VALUE,
	[' '] = CH_VALUE, ['"'] = CH_VALUE, ['('] = CH_VALUE, [')'] = CH_VALUE, [','] = CH_VALUE, ['/'] = CH_VALUE,
	[':'] = CH_VALUE, [';'] = CH_VALUE, ['<'] = CH_VALUE, ['='] = CH_VALUE, ['>'] = CH_VALUE, ['?'] = CH_VALUE,
	['@'] = CH_VALUE, ['['] = CH_VALUE, ['\\'] = CH_VALUE, [']'] = CH_VALUE, ['{'] = CH_VALUE, ['}'] = CH_VALUE,
	['!'] = 3, ['#'] = 3, ['$'] = 3, ['%'] = 3, ['&'] = 3, ['\''] = 3, ['*'] = 3, ['+'] = 3, ['-'] = 3, ['.'] = 3,
	['^'] = 3, ['_'] = 3, ['`'] = 3, ['|'] = 3, ['~'] = 3,
	['0' ... '9'] = 3, ['A' ... 'Z'] = 3, ['a' ... 'z'] = 3,
	[0x80 ... 0xff] = CH_VALUE,
};

bool kg_str_is_token(kg_str s)
{
	unsigned char all = CH_TCHAR;
	for (size_t i = 0; i < s.n; i++)
		all &= char_class[(unsigned char)s.p[i]];
	return s.n > 0 && all;
}

bool kg_str_is_field_value(kg_str s)
{
	unsigned char all = CH_VALUE;
	for (size_t i = 0; i < s.n; i++)
		all &= char_class[(unsigned char)s.p[i]];
	return all != 0;
}

bool kg_str_eq_ci(kg_str a, kg_str b)
{
	if (a.n != b.n)
		return false;
	for (size_t i = 0; i < a.n; i++)
		if (lower(a.p[i]) != lower(b.p[i]))
			return false;
	return true;
}

bool kg_str_has_prefix_ci(kg_str s, kg_str prefix)
{
	return s.n >= prefix.n && kg_str_eq_ci((kg_str){ s.p, prefix.n }, prefix);
}

kg_str kg_str_trim(kg_str s)
{
	while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.n--;
	}
	while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
		s.n--;
	return s;
}

kg_err kg_str_to_u64(kg_str s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (s.n == 0)
		return KG_EINVAL;
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return KG_EINVAL;
		unsigned d = (unsigned)(s.p[i] - '0');
		if (v > (max - d) / 10)
			return KG_ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return KG_OK;
}

int kg_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t kg_hex_encode(const void *in, size_t n, char *out, bool is_upper)
{
	const char *digits = is_upper ? "0123456789ABCDEF" : "0123456789abcdef";
	const unsigned char *p = in;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	return 2 * n;
}

kg_err kg_buf_reserve(kg_buf *b, size_t extra)
{
	if (extra > ((size_t)-1) / 2 - b->n)
		return KG_ENOMEM;
	size_t need = b->n + extra + 1;
	if (need <= b->cap)
		return KG_OK;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return KG_ENOMEM;
	b->p = p;
	b->cap = cap;
	return KG_OK;
}

kg_err kg_buf_append(kg_buf *b, const void *data, size_t len)
{
	kg_err err = kg_buf_reserve(b, len);
	if (err)
		return err;
	if (len)
		memcpy(b->p + b->n, data, len);
	b->n += len;
	b->p[b->n] = '\0';
	return KG_OK;
}

kg_err kg_buf_appends(kg_buf *b, kg_str s)
{
	return kg_buf_append(b, s.p, s.n);
}

size_t kg_u64_dec_len(unsigned long long v)
{
	static const unsigned long long tens[20] = {
		1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000, 10000000000ULL,
		100000000000ULL, 1000000000000ULL, 10000000000000ULL, 100000000000000ULL, 1000000000000000ULL,
		10000000000000000ULL, 100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL
	};
	/* from the bit length (bithacks' IntegerLog10: 1233 / 4096 is just
	 * above log10(2)), one compare to correct it */
	unsigned long long w = v | 1;
	size_t t = (size_t)(((unsigned)(64 - __builtin_clzll(w))) * 1233u >> 12);
	return t + 1 - (w < tens[t]);
}

/* two digits per division */
char *kg_u64_dec_to(unsigned long long v, char *end)
{
	static const char pairs[] = "0001020304050607080910111213141516171819"
	                            "2021222324252627282930313233343536373839"
	                            "4041424344454647484950515253545556575859"
	                            "6061626364656667686970717273747576777879"
	                            "8081828384858687888990919293949596979899";
	char *o = end;
	while (v >= 100) {
		unsigned long long r = v % 100;
		v /= 100;
		o -= 2;
		memcpy(o, pairs + 2 * r, 2);
	}
	if (v >= 10) {
		o -= 2;
		memcpy(o, pairs + 2 * v, 2);
	} else {
		*--o = (char)('0' + v);
	}
	return o;
}

kg_str kg_u64_dec(unsigned long long v, char out[KG_U64_DEC_MAX])
{
	char *o = kg_u64_dec_to(v, out + KG_U64_DEC_MAX);
	return (kg_str){ o, (size_t)(out + KG_U64_DEC_MAX - o) };
}

kg_err kg_buf_append_u64(kg_buf *b, unsigned long long v)
{
	char tmp[KG_U64_DEC_MAX];
	return kg_buf_put(b, kg_u64_dec(v, tmp));
}

kg_err kg_buf_vprintf(kg_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return KG_EINVAL;
	kg_err err = kg_buf_reserve(b, (size_t)n);
	if (err)
		return err;
	vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
	b->n += (size_t)n;
	return KG_OK;
}

kg_err kg_buf_printf(kg_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kg_err err = kg_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return err;
}

kg_err kg_buf_append_json_string(kg_buf *b, kg_str s)
{
	kg_err err = kg_buf_reserve(b, s.n + 2);
	if (err)
		return err;
	b->p[b->n++] = '"';
	for (size_t i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		char esc[6];
		size_t len = 0;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			len = 2;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(esc, "\\u00", 4);
			kg_hex_encode(&c, 1, esc + 4, false);
			len = 6;
		} else {
			esc[0] = (char)c;
			len = 1;
		}
		if ((err = kg_buf_append(b, esc, len)))
			return err;
	}
	return kg_buf_append(b, "\"", 1);
}

void kg_buf_free(kg_buf *b, bool is_secret)
{
	if (b->p && is_secret)
		OPENSSL_cleanse(b->p, b->cap);
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

kg_err kg_buf_read_file(kg_buf *out, const char *path, size_t max)
{
	FILE *f = fopen(path, "rb");
	kg_err err = KG_OK;
	char chunk[8192];
	size_t n, total = 0;

	if (!f)
		return KG_EIO;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		total += n;
		if (total > max) {
			errno = EFBIG;
			err = KG_ETOOBIG;
			break;
		}
		if ((err = kg_buf_append(out, chunk, n)))
			break;
	}
	if (!err && ferror(f)) {
		if (!errno)
			errno = EIO;
		err = KG_EIO;
	}
	int saved = errno;
	fclose(f);
	errno = saved;
	return err;
}
