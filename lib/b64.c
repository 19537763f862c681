#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "keygate/b64.h"

static int value_of(enum kg_b64_alphabet a, unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (a == KG_B64_STD ? '+' : '-'))
		return 62;
	if (c == (a == KG_B64_STD ? '/' : '_'))
		return 63;
	return -1;
}

kg_err kg_b64_encode(enum kg_b64_alphabet a, const void *data, size_t len, kg_buf *out)
{
	if (len > (size_t)1 << 30)
		return KG_ETOOBIG;
	size_t enc = 4 * ((len + 2) / 3);
	kg_err err = kg_buf_reserve(out, enc);
	if (err)
		return err;
	char *p = out->p + out->n;
	int n = EVP_EncodeBlock((unsigned char *)p, data, (int)len);
	if (n < 0)
		return KG_EINVAL;
	size_t m = (size_t)n;
	if (a == KG_B64_URL_RAW) {
		while (m && p[m - 1] == '=')
			m--;
		for (size_t i = 0; i < m; i++)
			p[i] = p[i] == '+' ? '-' : p[i] == '/' ? '_' : p[i];
	}
	out->n += m;
	out->p[out->n] = '\0';
	return KG_OK;
}

/* Checks that in is canonical base64 in alphabet a; *dec gets its decoded length. */
static kg_err validate(enum kg_b64_alphabet a, kg_str in, size_t *data_chars, size_t *dec)
{
	size_t n = in.n, pad = 0;
	if (a == KG_B64_STD) {
		if (n % 4)
			return KG_EINVAL;
		while (pad < 2 && n > pad && in.p[n - 1 - pad] == '=')
			pad++;
	} else if (n % 4 == 1) {
		return KG_EINVAL;
	}
	size_t data = n - pad; /* significant characters */
	for (size_t i = 0; i < data; i++)
		if (value_of(a, (unsigned char)in.p[i]) < 0)
			return KG_EINVAL;
	size_t rem = data % 4;
	if (a == KG_B64_STD && pad && rem != 4 - pad)
		return KG_EINVAL;
	/* the unused low bits of the last character must be zero (canonical form) */
	if (rem == 2 && (value_of(a, (unsigned char)in.p[data - 1]) & 0x0f))
		return KG_EINVAL;
	if (rem == 3 && (value_of(a, (unsigned char)in.p[data - 1]) & 0x03))
		return KG_EINVAL;
	*data_chars = data;
	*dec = data / 4 * 3 + (rem == 2 ? 1 : rem == 3 ? 2 : 0);
	return KG_OK;
}

kg_err kg_b64_decode_to(enum kg_b64_alphabet a, kg_str in, unsigned char *out, size_t cap, size_t *outlen)
{
	size_t data, dec;
	kg_err err = validate(a, in, &data, &dec);
	if (err)
		return err;
	if (dec > cap)
		return KG_ETOOBIG;
	/* OpenSSL wants the standard alphabet, padded, and writes whole 3-byte
	 * groups: rebuild the input so (on the stack when it is small, as tokens
	 * are) and decode it in one call */
	size_t padded = (data + 3) / 4 * 4;
	char stack_in[2048];
	unsigned char stack_out[1536];
	char *t = padded <= sizeof(stack_in) ? stack_in : malloc(padded);
	unsigned char *o = padded / 4 * 3 <= sizeof(stack_out) ? stack_out : malloc(padded / 4 * 3);
	err = KG_ENOMEM;
	if (!t || !o)
		goto out;
	for (size_t i = 0; i < data; i++) {
		char c = in.p[i];
		t[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	for (size_t i = data; i < padded; i++)
		t[i] = '=';
	err = KG_EINVAL;
	if (EVP_DecodeBlock(o, (const unsigned char *)t, (int)padded) != (int)(padded / 4 * 3))
		goto out;
	memcpy(out, o, dec);
	*outlen = dec;
	err = KG_OK;
out:
	/* both copies hold the secret when it is one (Basic credentials,
	 * tokens): wiped on every path, the caller's buffer is its own care */
	if (t) {
		OPENSSL_cleanse(t, padded);
		if (t != stack_in)
			free(t);
	}
	if (o) {
		OPENSSL_cleanse(o, padded / 4 * 3);
		if (o != stack_out)
			free(o);
	}
	return err;
}

kg_err kg_b64_decode(enum kg_b64_alphabet a, kg_str in, size_t max, kg_buf *out)
{
	size_t data, dec, got;
	kg_buf_clear(out);
	kg_err err = validate(a, in, &data, &dec);
	if (err)
		return err;
	if (dec > max)
		return KG_ETOOBIG;
	if ((err = kg_buf_reserve(out, dec)))
		return err;
	if ((err = kg_b64_decode_to(a, in, (unsigned char *)out->p, dec, &got)))
		return err;
	out->n = got;
	out->p[out->n] = '\0';
	return KG_OK;
}
