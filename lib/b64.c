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

kg_err kg_b64_decode(enum kg_b64_alphabet a, kg_str in, size_t max, kg_buf *out)
{
	size_t n = in.n, pad = 0;

	kg_buf_clear(out);
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
	size_t dec = data / 4 * 3 + (rem == 2 ? 1 : rem == 3 ? 2 : 0);
	if (dec > max)
		return KG_ETOOBIG;
	/* OpenSSL wants the standard alphabet, padded: rebuild the input so */
	kg_buf tmp = { 0 };
	kg_err err = kg_buf_reserve(&tmp, data + 4);
	if (!err)
		err = kg_buf_reserve(out, dec + 3);
	if (err) {
		kg_buf_free(&tmp, false);
		return err;
	}
	for (size_t i = 0; i < data; i++) {
		char c = in.p[i];
		tmp.p[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	tmp.n = data;
	while (tmp.n % 4)
		tmp.p[tmp.n++] = '=';
	int got = EVP_DecodeBlock((unsigned char *)out->p, (const unsigned char *)tmp.p, (int)tmp.n);
	kg_buf_free(&tmp, true);
	if (got < 0) {
		kg_buf_clear(out);
		return KG_EINVAL;
	}
	out->n = dec; /* EVP_DecodeBlock counts the padding as zero bytes */
	out->p[out->n] = '\0';
	return KG_OK;
}
