/* es.c - Elasticsearch's security APIs on the wire: what every part of the
 * dialect shares. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keygate/b64.h"
#include "keygate/es.h"
#include "keygate/hmac.h"

kg_err kg_es_fail_set(struct kg_es_fail *f, int status, const char *type, const char *fmt, ...)
{
	va_list ap;
	kg_buf_clear(&f->reason);
	f->status = status;
	f->type = type;
	f->nvalidation = 0;
	va_start(ap, fmt);
	kg_err err = kg_buf_vprintf(&f->reason, fmt, ap);
	va_end(ap);
	return err ? err : KG_EINVAL;
}

kg_err kg_es_fail_validation_add(struct kg_es_fail *f, const char *fmt, ...)
{
	va_list ap;
	if (f->nvalidation == 0) {
		kg_buf_clear(&f->reason);
		f->status = 400;
		f->type = "action_request_validation_exception";
	}
	kg_err err = kg_buf_printf(&f->reason, "%s%u: ", f->nvalidation == 0 ? "Validation Failed: " : "",
	                           f->nvalidation + 1);
	if (!err) {
		va_start(ap, fmt);
		err = kg_buf_vprintf(&f->reason, fmt, ap);
		va_end(ap);
	}
	if (!err)
		err = kg_buf_append(&f->reason, ";", 1);
	f->nvalidation++;
	return err ? err : KG_EINVAL;
}

void kg_es_fail_free(struct kg_es_fail *f)
{
	kg_buf_free(&f->reason, false);
	memset(f, 0, sizeof(*f));
}

/* ---- Time values ---- */

/* Java's String.trim: drops every char <= ' ' at both ends. */
static kg_str java_trim(kg_str s)
{
	while (s.n && (unsigned char)s.p[0] <= ' ')
		s.p++, s.n--;
	while (s.n && (unsigned char)s.p[s.n - 1] <= ' ')
		s.n--;
	return s;
}

static bool ends_with_ci(kg_str s, const char *suffix)
{
	size_t n = strlen(suffix);
	return s.n >= n && kg_str_eq_ci((kg_str){ s.p + s.n - n, n }, (kg_str){ suffix, n });
}

/* Would Java's Double.parseDouble take s (trimmed)? Enough of its grammar
 * to pick ES's message: digits with a '.' or an exponent, or Infinity/NaN. */
static bool is_java_double(kg_str s)
{
	size_t i = 0, digits = 0;
	if (i < s.n && (s.p[i] == '+' || s.p[i] == '-'))
		i++;
	kg_str rest = { s.p + i, s.n - i };
	if (kg_str_eq(rest, KG_STR("Infinity")) || kg_str_eq(rest, KG_STR("NaN")))
		return true;
	while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9')
		i++, digits++;
	if (i < s.n && s.p[i] == '.') {
		i++;
		while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9')
			i++, digits++;
	}
	if (!digits)
		return false;
	if (i < s.n && (s.p[i] == 'e' || s.p[i] == 'E')) {
		i++;
		if (i < s.n && (s.p[i] == '+' || s.p[i] == '-'))
			i++;
		size_t e = 0;
		while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9')
			i++, e++;
		if (!e)
			return false;
	}
	if (i < s.n && strchr("fFdD", s.p[i]))
		i++;
	return i == s.n;
}

kg_err kg_es_time_parse(kg_str s, const char *setting, int64_t *ms, struct kg_es_fail *f)
{
	static const struct {
		const char *suffix;
		int64_t ms_per;  /* milliseconds per unit, or 0 for the sub-ms units */
		int64_t per_ms;  /* units per millisecond for those */
	} units[] = {
		{ "nanos", 0, 1000000 }, { "micros", 0, 1000 }, { "ms", 1, 0 }, { "s", 1000, 0 },
		{ "m", 60000, 0 },       { "h", 3600000, 0 },   { "d", 86400000, 0 },
	};
	/* ES lower-cases and trims the value before matching the unit, except
	 * for "m", matched case-sensitively on the value as given (M is months) */
	kg_str norm = java_trim(s);
	size_t u;
	for (u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (strcmp(units[u].suffix, "m") == 0 ? (s.n && s.p[s.n - 1] == 'm') : ends_with_ci(norm, units[u].suffix))
			break;
	}
	if (u == sizeof(units) / sizeof(units[0])) {
		/* a bare zero is the one value without a unit ES takes */
		bool is_zero = norm.n > 0;
		for (size_t i = 0; i < norm.n; i++)
			is_zero = is_zero && norm.p[i] == '0';
		if (is_zero) {
			*ms = 0;
			return KG_OK;
		}
		/* ES's magic -1 ("unset", any number of leading zeros) is a
		 * negative duration to keygate, like the others */
		bool is_minus_one = norm.n >= 2 && norm.p[0] == '-' && norm.p[norm.n - 1] == '1';
		for (size_t i = 1; is_minus_one && i + 1 < norm.n; i++)
			is_minus_one = norm.p[i] == '0';
		if (is_minus_one)
			return kg_es_fail_set(f, 400, "illegal_argument_exception",
			                      "failed to parse setting [%s] with value [%.*s] as a time value: negative "
			                      "durations are not supported",
			                      setting, (int)s.n, s.p);
		return kg_es_fail_set(f, 400, "illegal_argument_exception",
		                      "failed to parse setting [%s] with value [%.*s] as a time value: unit is missing or "
		                      "unrecognized",
		                      setting, (int)s.n, s.p);
	}
	size_t sl = strlen(units[u].suffix);
	kg_str num = java_trim((kg_str){ norm.p, norm.n >= sl ? norm.n - sl : 0 });
	/* Java's Long.parseLong: an optional sign, then decimal digits */
	bool is_negative = num.n && num.p[0] == '-';
	kg_str digits = (num.n && (num.p[0] == '-' || num.p[0] == '+')) ? (kg_str){ num.p + 1, num.n - 1 } : num;
	unsigned long long v = 0;
	kg_err err = kg_str_to_u64(digits, (unsigned long long)INT64_MAX + is_negative, &v);
	if (err == KG_EINVAL || err == KG_ERANGE) {
		/* ES: a long that does not parse but a double that does is a
		 * "fractional" value, even when it is only too long */
		if (err == KG_ERANGE || is_java_double(num))
			return kg_es_fail_set(f, 400, "illegal_argument_exception",
			                      "failed to parse [%.*s], fractional time values are not supported", (int)s.n,
			                      s.p);
		return kg_es_fail_set(f, 400, "illegal_argument_exception", "failed to parse [%.*s]", (int)s.n, s.p);
	}
	if (is_negative && v > 0)
		return kg_es_fail_set(f, 400, "illegal_argument_exception",
		                      "failed to parse setting [%s] with value [%.*s] as a time value: negative durations "
		                      "are not supported",
		                      setting, (int)s.n, s.p);
	if (units[u].ms_per == 0) {
		*ms = (int64_t)(v / (unsigned long long)units[u].per_ms);
	} else {
		/* ES would saturate at Long.MAX_VALUE ms; keygate refuses what it
		 * cannot add to a date */
		if (v > (unsigned long long)(INT64_MAX / units[u].ms_per))
			return kg_es_fail_set(f, 400, "illegal_argument_exception",
			                      "failed to parse setting [%s] with value [%.*s] as a time value: the value is "
			                      "too large",
			                      setting, (int)s.n, s.p);
		*ms = (int64_t)v * units[u].ms_per;
	}
	return KG_OK;
}

/* ---- Error bodies ---- */

/* The length of the UTF-8 sequence at p (n bytes available), or 0 when
 * it is not one: overlong forms, surrogates and values past U+10FFFF are
 * not UTF-8. */
static size_t utf8_seq(const char *p, size_t n)
{
	unsigned char c = (unsigned char)p[0];
	size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
	if (!len || len > n)
		return 0;
	uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
	for (size_t k = 1; k < len; k++) {
		unsigned char d = (unsigned char)p[k];
		if ((d & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (d & 0x3Fu);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return len;
}

/* Appends s as a JSON string; bytes that are not UTF-8 become U+FFFD, so a
 * client's path or name quoted in a reason never makes the body invalid. */
static kg_err append_json_utf8(kg_buf *b, kg_str s)
{
	kg_buf clean = { 0 };
	kg_err err = KG_OK;
	size_t i = 0;
	while (i < s.n && !err) {
		size_t len = utf8_seq(s.p + i, s.n - i);
		bool ok = len > 0;
		if (ok) {
			err = kg_buf_append(&clean, s.p + i, len);
			i += len;
		} else {
			err = kg_buf_append(&clean, "\xEF\xBF\xBD", 3);
			i++;
		}
	}
	if (!err)
		err = kg_buf_append_json_string(b, kg_buf_str(&clean));
	kg_buf_free(&clean, false);
	return err;
}

/* "type":T,"reason":R<extra> */
static kg_err append_cause(kg_buf *out, const struct kg_es_fail *f, kg_str extra)
{
	kg_err err = kg_buf_printf(out, "\"type\":");
	if (!err)
		err = append_json_utf8(out, kg_str_c(f->type ? f->type : "exception"));
	if (!err)
		err = kg_buf_appends(out, KG_STR(",\"reason\":"));
	if (!err)
		err = append_json_utf8(out, kg_buf_str(&f->reason));
	if (!err && extra.n) {
		err = kg_buf_append(out, ",", 1);
		if (!err)
			err = kg_buf_appends(out, extra);
	}
	return err;
}

kg_err kg_es_error_json(kg_buf *out, const struct kg_es_fail *f, kg_str extra)
{
	kg_err err = kg_buf_appends(out, KG_STR("{\"error\":{\"root_cause\":[{"));
	if (!err)
		err = append_cause(out, f, extra);
	if (!err)
		err = kg_buf_appends(out, KG_STR("}],"));
	if (!err)
		err = append_cause(out, f, extra);
	if (!err)
		err = kg_buf_printf(out, "},\"status\":%d}", f->status);
	return err;
}

const char kg_es_www_authenticate_lines[] = "WWW-Authenticate: Basic realm=\"security\", charset=\"UTF-8\"\r\n"
                                            "WWW-Authenticate: Bearer realm=\"security\"\r\n"
                                            "WWW-Authenticate: ApiKey\r\n";

kg_err kg_es_error_401(kg_buf *out, kg_str reason, kg_str why)
{
	struct kg_es_fail f = { .status = 401, .type = "security_exception" };
	kg_buf extra = { 0 };
	kg_err err = kg_buf_appends(&f.reason, reason);
	if (!err && why.n) {
		err = kg_buf_appends(&extra, KG_STR("\"additional_unsuccessful_credentials\":"));
		kg_buf text = { 0 };
		if (!err)
			err = kg_buf_appends(&text, KG_STR("API key: "));
		if (!err)
			err = kg_buf_appends(&text, why);
		if (!err)
			err = append_json_utf8(&extra, kg_buf_str(&text));
		kg_buf_free(&text, false);
		if (!err)
			err = kg_buf_append(&extra, ",", 1);
	}
	if (!err)
		err = kg_buf_appends(&extra, KG_STR("\"header\":{\"WWW-Authenticate\":[\"Basic realm=\\\"security\\\", "
		                                    "charset=\\\"UTF-8\\\"\",\"Bearer realm=\\\"security\\\"\",\"ApiKey\"]}"));
	if (!err)
		err = kg_es_error_json(out, &f, kg_buf_str(&extra));
	kg_buf_free(&extra, false);
	kg_buf_free(&f.reason, false);
	return err;
}

/* ---- The ApiKey credential ---- */

kg_err kg_es_apikey_decode(kg_str value, char *buf, size_t cap, kg_str *id, kg_str *secret)
{
	/* Java's Base64 decoder takes the padding or leaves it out; keygate's
	 * decoder wants it, so it is put back (on the stack: the value is at
	 * most the encoding of a 64-byte id, ':' and a 256-byte secret) */
	char padded[4 * ((KG_ES_ID_MAX + 1 + KG_ES_SECRET_MAX + 2) / 3)];
	size_t outlen = 0;
	kg_err err = KG_EBADCRED;
	if (value.n == 0 || value.n > sizeof(padded) || value.n % 4 == 1)
		goto out;
	/* padding, when there is some, must be whole (as Java's decoder wants) */
	if (value.n % 4 && memchr(value.p, '=', value.n))
		goto out;
	memcpy(padded, value.p, value.n);
	size_t n = value.n;
	while (n % 4)
		padded[n++] = '=';
	if (n > sizeof(padded) ||
	    kg_b64_decode_to(KG_B64_STD, (kg_str){ padded, n }, (unsigned char *)buf, cap, &outlen) != KG_OK)
		goto out;
	const char *colon = memchr(buf, ':', outlen);
	if (!colon)
		goto out;
	size_t idn = (size_t)(colon - buf), sn = outlen - idn - 1;
	if (idn < 1 || idn > KG_ES_ID_MAX || sn < 1 || sn > KG_ES_SECRET_MAX)
		goto out;
	*id = (kg_str){ buf, idn };
	*secret = (kg_str){ colon + 1, sn };
	err = KG_OK;
out:
	OPENSSL_cleanse(padded, sizeof(padded));
	if (err && buf && cap)
		OPENSSL_cleanse(buf, cap);
	return err;
}

/* ---- Keys and secrets ---- */

static void b64url_raw(const unsigned char *in, size_t n, char *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
		size_t chars = n - i >= 3 ? 4 : n - i + 1;
		for (size_t k = 0; k < chars; k++)
			out[o++] = alphabet[(v >> (18 - 6 * k)) & 63];
	}
	out[o] = '\0';
}

kg_err kg_es_key_new(char id[KG_ES_ID_LEN + 1], char secret[KG_ES_SECRET_LEN + 1])
{
	unsigned char rnd[15 + 16];
	kg_err err = KG_EIO;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto out;
	b64url_raw(rnd, 15, id);
	b64url_raw(rnd + 15, 16, secret);
	err = KG_OK;
out:
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return err;
}

kg_err kg_es_encoded(kg_str id, kg_str secret, kg_buf *out)
{
	kg_buf plain = { 0 };
	kg_err err = kg_buf_appends(&plain, id);
	if (!err)
		err = kg_buf_append(&plain, ":", 1);
	if (!err)
		err = kg_buf_appends(&plain, secret);
	if (!err)
		err = kg_b64_encode(KG_B64_STD, plain.p, plain.n, out);
	kg_buf_free(&plain, true);
	return err;
}

/* Why a salted fast hash and not ES's PBKDF2: a slow hash protects secrets a
 * person chose, which an attacker holding the store could guess. A key's
 * secret is 128 random bits; no guess beats 2^127 HMACs, slow or fast, so
 * PBKDF2's thousands of rounds would only cost every uncached check (ES's
 * users pay tens of milliseconds) for no gain. The salt keeps two stores'
 * hashes of one secret apart; HMAC-SHA256 keyed by it is the one-way part. */
#define SECRET_HASH_PREFIX "s1$"

kg_err kg__es_secret_hash_salted(kg_str secret, const unsigned char salt[16], kg_buf *out)
{
	unsigned char key[32] = { 0 }, mac[32];
	char salt_text[23], mac_text[44];
	kg_err err = KG_EIO;
	/* HMAC zero-pads a short key to its block size, so salt followed by
	 * zeros is the same key as the 16-byte salt: the result is
	 * HMAC-SHA256(salt, secret), on keygate's per-thread MAC context */
	memcpy(key, salt, 16);
	if (!kg_hmac_sha256(key, secret.p, secret.n, NULL, 0, mac))
		goto out;
	b64url_raw(salt, 16, salt_text);
	b64url_raw(mac, 32, mac_text);
	err = kg_buf_printf(out, SECRET_HASH_PREFIX "%s$%s", salt_text, mac_text);
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(mac, sizeof(mac));
	return err;
}

kg_err kg_es_secret_hash(kg_str secret, kg_buf *out)
{
	unsigned char salt[16];
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return KG_EIO;
	return kg__es_secret_hash_salted(secret, salt, out);
}

bool kg_es_secret_decode(kg_str stored, unsigned char salt[16], unsigned char mac[32])
{
	/* "s1$" + 22 characters of salt + "$" + 43 of MAC */
	size_t n = 0;
	if (stored.n != 3 + 22 + 1 + 43 || !kg_str_has_prefix(stored, KG_STR(SECRET_HASH_PREFIX)) || stored.p[25] != '$')
		return false;
	if (kg_b64_decode_to(KG_B64_URL_RAW, (kg_str){ stored.p + 3, 22 }, salt, 16, &n) != KG_OK || n != 16)
		return false;
	return kg_b64_decode_to(KG_B64_URL_RAW, (kg_str){ stored.p + 26, 43 }, mac, 32, &n) == KG_OK && n == 32;
}

bool kg_es_secret_matches(const unsigned char salt[16], const unsigned char mac[32], kg_str secret)
{
	unsigned char key[32] = { 0 }, got[32];
	bool is_match = false;
	/* HMAC zero-pads a short key: the salt then zeros is the 16-byte salt */
	memcpy(key, salt, 16);
	if (kg_hmac_sha256(key, secret.p, secret.n, NULL, 0, got))
		is_match = CRYPTO_memcmp(got, mac, 32) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(key, sizeof(key));
	return is_match;
}

bool kg_es_secret_verify(kg_str stored, kg_str secret)
{
	unsigned char salt[16], mac[32];
	bool is_match = kg_es_secret_decode(stored, salt, mac) && kg_es_secret_matches(salt, mac, secret);
	OPENSSL_cleanse(mac, sizeof(mac));
	return is_match;
}

/* ---- Request bodies ---- */

/* Where ES's parser would point: line and column (1-based, in bytes) of
 * the index-th member of the top-level object, at its name or at its value.
 * jansson keeps members in the order of the text, and duplicates are
 * refused, so the index-th member seen by jansson is the index-th in the text. */
static void member_location(kg_str body, size_t index, bool is_value, int *line, int *col)
{
	int ln = 1, c = 1;
	int depth = 0;
	size_t keys = 0;
	bool in_string = false, is_escaped = false, expect_key = false, want_value = false;
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < body.n; i++) {
		char ch = body.p[i];
		if (in_string) {
			if (is_escaped)
				is_escaped = false;
			else if (ch == '\\')
				is_escaped = true;
			else if (ch == '"')
				in_string = false;
		} else if (want_value && ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n' && ch != ':') {
			*line = ln;
			*col = c;
			return;
		} else if (ch == '"') {
			in_string = true;
			if (depth == 1 && expect_key) {
				expect_key = false;
				if (keys++ == index) {
					*line = ln;
					*col = c;
					if (!is_value)
						return;
					want_value = true;
				}
			}
		} else if (ch == '{' || ch == '[') {
			depth++;
			expect_key = depth == 1 && ch == '{';
		} else if (ch == '}' || ch == ']') {
			depth--;
		} else if (ch == ',' && depth == 1) {
			expect_key = true;
		}
		if (ch == '\n') {
			ln++;
			c = 1;
		} else {
			c++;
		}
	}
}

/* Jackson's name for a value's first token, as ES's messages print it. */
const char *kg_es_token_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "START_OBJECT";
	case JSON_ARRAY: return "START_ARRAY";
	case JSON_STRING: return "VALUE_STRING";
	case JSON_INTEGER:
	case JSON_REAL: return "VALUE_NUMBER";
	case JSON_TRUE:
	case JSON_FALSE: return "VALUE_BOOLEAN";
	default: return "VALUE_NULL";
	}
}

size_t kg_es_json_depth(const json_t *v, size_t limit)
{
	size_t max = 0, i;
	const char *k;
	json_t *x;
	if (!json_is_object(v) && !json_is_array(v))
		return 0;
	if (limit == 0)
		return 1; /* a container beyond the limit: what it holds does not matter */
	if (json_is_object(v)) {
		json_object_foreach ((json_t *)v, k, x) {
			size_t d = kg_es_json_depth(x, limit - 1);
			max = d > max ? d : max;
			if (max >= limit)
				break;
		}
	} else {
		json_array_foreach (v, i, x) {
			size_t d = kg_es_json_depth(x, limit - 1);
			max = d > max ? d : max;
			if (max >= limit)
				break;
		}
	}
	return max + 1;
}

enum field_kind { F_STRING, F_OBJECT, F_STRING_ARRAY, F_BOOLEAN };
struct field {
	const char *name;
	enum field_kind kind;
};

/* Loads body as the object ES's parser named parser expects, and picks its
 * members by the table (vals[i] borrowed from *root, NULL when absent). An
 * empty body is refused unless is_empty_ok, which leaves *root NULL. */
static kg_err load_body(kg_str body, const char *parser, const struct field *fields, size_t nfields, bool is_empty_ok,
                        json_t **root, json_t **vals, struct kg_es_fail *f)
{
	json_error_t jerr;
	*root = NULL;
	for (size_t i = 0; i < nfields; i++)
		vals[i] = NULL;
	if (body.n == 0) {
		if (is_empty_ok)
			return KG_OK;
		return kg_es_fail_set(f, 400, "parse_exception", "request body is required");
	}
	json_t *j = json_loadb(body.p, body.n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j)
		return kg_es_fail_set(f, 400, "x_content_parse_exception", "[%d:%d] %s", jerr.line, jerr.column, jerr.text);
	*root = j;
	if (!json_is_object(j))
		return kg_es_fail_set(f, 400, "x_content_parse_exception", "[1:1] [%s] Expected START_OBJECT but was: %s",
		                      parser, kg_es_token_name(j));
	const char *key;
	json_t *v;
	size_t index = 0;
	int line, col;
	json_object_foreach (j, key, v) {
		size_t i;
		for (i = 0; i < nfields && strcmp(fields[i].name, key) != 0; i++)
			;
		if (i == nfields || strlen(key) != json_object_iter_key_len(json_object_key_to_iter(key))) {
			member_location(body, index, false, &line, &col);
			return kg_es_fail_set(f, 400, "x_content_parse_exception", "[%d:%d] [%s] unknown field [%s]", line, col,
			                      parser, key);
		}
		bool is_ok = false;
		switch (fields[i].kind) {
		case F_STRING: is_ok = json_is_string(v); break;
		case F_OBJECT: is_ok = json_is_object(v); break;
		case F_STRING_ARRAY:
			/* ES takes one string for a one-element array */
			is_ok = json_is_string(v) || json_is_array(v);
			for (size_t k = 0; is_ok && json_is_array(v) && k < json_array_size(v); k++)
				is_ok = json_is_string(json_array_get(v, k));
			break;
		case F_BOOLEAN: is_ok = json_is_boolean(v) || json_is_string(v); break;
		}
		if (!is_ok) {
			member_location(body, index, true, &line, &col);
			return kg_es_fail_set(f, 400, "x_content_parse_exception",
			                      "[%d:%d] [%s] %s doesn't support values of type: %s", line, col, parser, key,
			                      kg_es_token_name(v));
		}
		if (fields[i].kind == F_BOOLEAN && json_is_string(v) && strcmp(json_string_value(v), "true") != 0 &&
		    strcmp(json_string_value(v), "false") != 0)
			return kg_es_fail_set(f, 400, "illegal_argument_exception",
			                      "Failed to parse value [%s] as only [true] or [false] are allowed.",
			                      json_string_value(v));
		/* metadata nests up to the cap; role_descriptors is a map of
		 * descriptors that each may */
		size_t cap = KG_ES_JSON_DEPTH_MAX + (strcmp(key, "role_descriptors") == 0);
		if (fields[i].kind == F_OBJECT && kg_es_json_depth(v, cap) > cap)
			return kg_es_fail_set(f, 400, "x_content_parse_exception", "[%s] [%s] is nested more than [%d] levels deep",
			                      parser, key, KG_ES_JSON_DEPTH_MAX);
		vals[i] = v;
		index++;
	}
	return KG_OK;
}

static bool field_bool(const json_t *v)
{
	return json_is_true(v) || (json_is_string(v) && strcmp(json_string_value(v), "true") == 0);
}

/* A string field's value into out; ES's Strings.hasText decides what
 * counts as given, so blank is left empty. */
static kg_err field_text(const json_t *v, kg_buf *out)
{
	if (!v)
		return KG_OK;
	kg_str s = { json_string_value(v), json_string_length(v) };
	if (java_trim(s).n == 0)
		return KG_OK;
	return kg_buf_appends(out, s);
}

/* An ids value as an owned array (one string becomes one element). */
static json_t *ids_array(json_t *v)
{
	if (json_is_array(v))
		return json_incref(v);
	json_t *a = json_array();
	if (a && json_array_append(a, v) != 0) {
		json_decref(a);
		return NULL;
	}
	return a;
}

size_t kg_es_utf16_length(kg_str s)
{
	size_t n = 0;
	for (size_t i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if ((c & 0xC0) != 0x80)
			n += c >= 0xF0 ? 2 : 1;
	}
	return n;
}

/* MetadataUtils.containsReservedMetadata: a top-level key starting with '_'. */
bool kg_es_has_reserved_key(const json_t *metadata)
{
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)metadata, k, v) {
		if (k[0] == '_')
			return true;
	}
	return false;
}

/* now + the expiration time value, as an epoch-ms date. */
static kg_err expiration_at(const json_t *v, int64_t now_ms, int64_t *at, struct kg_es_fail *f)
{
	int64_t ms;
	kg_str s = { json_string_value(v), json_string_length(v) };
	kg_err err = kg_es_time_parse(s, "expiration", &ms, f);
	if (err)
		return err;
	if (ms > INT64_MAX - now_ms)
		return kg_es_fail_set(f, 400, "illegal_argument_exception",
		                      "failed to parse setting [expiration] with value [%.*s] as a time value: the value is "
		                      "too large",
		                      (int)s.n, s.p);
	*at = now_ms + ms;
	return KG_OK;
}

kg_err kg_es_create_parse(kg_str body, int64_t now_ms, struct kg_es_create *out, struct kg_es_fail *f)
{
	static const struct field fields[] = {
		{ "name", F_STRING },
		{ "role_descriptors", F_OBJECT },
		{ "expiration", F_STRING },
		{ "metadata", F_OBJECT },
	};
	json_t *root, *v[4];
	memset(out, 0, sizeof(*out));
	kg_err err = load_body(body, "api_key_request", fields, 4, false, &root, v, f);
	if (err)
		goto out;
	if (!v[0]) {
		err = kg_es_fail_set(f, 400, "illegal_argument_exception", "Required [name]");
		goto out;
	}
	if (v[2] && (err = expiration_at(v[2], now_ms, &out->expiration_ms, f)))
		goto out;
	/* an expiration that lands on 0 would read as "never" */
	if (v[2] && out->expiration_ms == 0)
		out->expiration_ms = 1;
	if ((err = kg_buf_appends(&out->name, (kg_str){ json_string_value(v[0]), json_string_length(v[0]) })))
		goto out;
	out->role_descriptors = json_incref(v[1]);
	out->metadata = json_incref(v[3]);
	/* AbstractCreateApiKeyRequest.validate, in its order; every problem
	 * numbered in one answer. The caller adds the role descriptors'
	 * problems to f after these (es_role.c) */
	kg_str name = kg_buf_str(&out->name);
	if (name.n == 0) {
		err = kg_es_fail_validation_add(f, "api key name is required");
	} else {
		if (kg_es_utf16_length(name) > KG_ES_NAME_MAX)
			err = kg_es_fail_validation_add(f, "api key name may not be more than [%d] characters long",
			                                KG_ES_NAME_MAX);
		if (java_trim(name).n != name.n)
			err = kg_es_fail_validation_add(f, "api key name may not begin or end with whitespace");
		if (name.p[0] == '_')
			err = kg_es_fail_validation_add(f, "api key name may not begin with an underscore");
	}
	if (out->metadata && kg_es_has_reserved_key(out->metadata))
		err = kg_es_fail_validation_add(f, "API key metadata keys may not start with [_]");
out:
	json_decref(root);
	return err;
}

void kg_es_create_free(struct kg_es_create *c)
{
	kg_buf_free(&c->name, false);
	json_decref(c->role_descriptors);
	json_decref(c->metadata);
	memset(c, 0, sizeof(*c));
}

kg_err kg_es_update_parse(kg_str body, bool is_bulk, int64_t now_ms, struct kg_es_update *out, struct kg_es_fail *f)
{
	static const struct field fields[] = {
		{ "role_descriptors", F_OBJECT },
		{ "metadata", F_OBJECT },
		{ "expiration", F_STRING },
		{ "ids", F_STRING_ARRAY },
	};
	json_t *root, *v[4];
	memset(out, 0, sizeof(*out));
	/* the single update's body is optional; the bulk one names its ids */
	kg_err err = load_body(body, is_bulk ? "bulk_update_api_key_request" : "update_api_key_request_payload", fields,
	                       is_bulk ? 4 : 3, !is_bulk, &root, v, f);
	if (err)
		goto out;
	if (is_bulk && !v[3]) {
		err = kg_es_fail_set(f, 400, "illegal_argument_exception", "Required [ids]");
		goto out;
	}
	if (v[2]) {
		if ((err = expiration_at(v[2], now_ms, &out->expiration_ms, f)))
			goto out;
		out->has_expiration = true;
	}
	out->role_descriptors = json_incref(v[0]);
	out->metadata = json_incref(v[1]);
	if (is_bulk && !(out->ids = ids_array(v[3]))) {
		err = KG_ENOMEM;
		goto out;
	}
	/* BaseUpdateApiKeyRequest.validate then the bulk one's ids check */
	if (out->metadata && kg_es_has_reserved_key(out->metadata))
		err = kg_es_fail_validation_add(f, "API key metadata keys may not start with [_]");
	if (is_bulk && json_array_size(out->ids) == 0)
		err = kg_es_fail_validation_add(f, "Field [ids] cannot be empty");
	if (is_bulk && json_array_size(out->ids) > KG_ES_IDS_MAX)
		err = kg_es_fail_validation_add(f, "Field [ids] may not name more than [%d] API keys", KG_ES_IDS_MAX);
out:
	json_decref(root);
	return err;
}

void kg_es_update_free(struct kg_es_update *u)
{
	json_decref(u->role_descriptors);
	json_decref(u->metadata);
	json_decref(u->ids);
	memset(u, 0, sizeof(*u));
}

kg_err kg_es_invalidate_parse(kg_str body, struct kg_es_invalidate *out, struct kg_es_fail *f)
{
	/* ES 8's parser knows ids; "id" is its REST-compatibility (v7) field,
	 * which keygate takes always: scripts written for 7.x still send it */
	static const struct field fields[] = {
		{ "realm_name", F_STRING }, { "username", F_STRING },    { "name", F_STRING },
		{ "owner", F_BOOLEAN },     { "ids", F_STRING_ARRAY },   { "id", F_STRING },
	};
	json_t *root, *v[6];
	memset(out, 0, sizeof(*out));
	kg_err err = load_body(body, "invalidate_api_key", fields, 6, false, &root, v, f);
	if (err)
		goto out;
	if (v[5] && v[4]) {
		err = kg_es_fail_set(f, 400, "illegal_argument_exception",
		                     "Must use either [id] or [ids], not both at the same time");
		goto out;
	}
	if ((err = field_text(v[0], &out->realm_name)) || (err = field_text(v[1], &out->username)) ||
	    (err = field_text(v[2], &out->name)))
		goto out;
	out->is_owner = field_bool(v[3]);
	if (v[5] && java_trim((kg_str){ json_string_value(v[5]), json_string_length(v[5]) }).n)
		out->ids = ids_array(v[5]);
	else if (v[4])
		out->ids = ids_array(v[4]);
	if ((v[4] || (v[5] && java_trim((kg_str){ json_string_value(v[5]), json_string_length(v[5]) }).n)) && !out->ids) {
		err = KG_ENOMEM;
		goto out;
	}
	/* the ids are checked on their own first, as ES's constructor does */
	if (out->ids) {
		size_t n = json_array_size(out->ids);
		if (n == 0) {
			err = kg_es_fail_validation_add(f, "Field [ids] cannot be an empty array");
			goto out;
		}
		if (n > KG_ES_IDS_MAX) {
			err = kg_es_fail_validation_add(f, "Field [ids] may not name more than [%d] API keys", KG_ES_IDS_MAX);
			goto out;
		}
		kg_buf blanks = { 0 };
		size_t nblank = 0;
		for (size_t i = 0; i < n && !err; i++) {
			json_t *e = json_array_get(out->ids, i);
			if (java_trim((kg_str){ json_string_value(e), json_string_length(e) }).n == 0)
				err = kg_buf_printf(&blanks, "%s%zu", nblank++ ? ", " : "", i);
		}
		if (!err && nblank)
			err = kg_es_fail_validation_add(
			    f, "Field [ids] must not contain blank id, but got blank %s at index %s: [%s]", nblank == 1 ? "id" : "ids",
			    nblank == 1 ? "position" : "positions", blanks.p);
		kg_buf_free(&blanks, false);
		if (err)
			goto out;
	}
	/* InvalidateApiKeyRequest.validate, in its order */
	bool has_realm_or_user = out->realm_name.n || out->username.n;
	if (!has_realm_or_user && !out->ids && !out->name.n && !out->is_owner)
		err = kg_es_fail_validation_add(f, "One of [api key id(s), api key name, username, realm name] must be "
		                                   "specified if [owner] flag is false");
	if ((out->ids || out->name.n) && has_realm_or_user)
		err = kg_es_fail_validation_add(f, "username or realm name must not be specified when the api key id(s) or "
		                                   "api key name are specified");
	if (out->is_owner && has_realm_or_user)
		err = kg_es_fail_validation_add(f, "neither username nor realm-name may be specified when invalidating owned "
		                                   "API keys");
	if (out->ids && out->name.n)
		err = kg_es_fail_validation_add(f, "only one of [api key id(s), api key name] can be specified");
out:
	json_decref(root);
	return err;
}

void kg_es_invalidate_free(struct kg_es_invalidate *inv)
{
	json_decref(inv->ids);
	kg_buf_free(&inv->name, false);
	kg_buf_free(&inv->username, false);
	kg_buf_free(&inv->realm_name, false);
	memset(inv, 0, sizeof(*inv));
}

/* ---- The get API's query string ---- */

static bool is_utf8(kg_str s)
{
	for (size_t i = 0, len; i < s.n; i += len)
		if (!(len = utf8_seq(s.p + i, s.n - i)))
			return false;
	return true;
}

kg_err kg_es_percent_decode(kg_str in, bool is_form, kg_buf *out)
{
	kg_buf_clear(out);
	kg_err err = kg_buf_reserve(out, in.n);
	if (err)
		return err;
	for (size_t i = 0; i < in.n; i++) {
		char c = in.p[i];
		if (c == '%') {
			int hi = i + 2 < in.n ? kg_hex_value((unsigned char)in.p[i + 1]) : -1;
			int lo = hi >= 0 ? kg_hex_value((unsigned char)in.p[i + 2]) : -1;
			if (lo < 0)
				return KG_EINVAL;
			/* a NUL would cut the value short wherever it is used as a C string */
			if (in.p[i + 1] == '0' && in.p[i + 2] == '0')
				return KG_EINVAL;
			out->p[out->n++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '\0') {
			return KG_EINVAL;
		} else {
			out->p[out->n++] = is_form && c == '+' ? ' ' : c;
		}
	}
	out->p[out->n] = '\0';
	return is_utf8(kg_buf_str(out)) ? KG_OK : KG_EINVAL;
}

kg_err kg_es_get_params(kg_str query, struct kg_es_get *out, struct kg_es_fail *f)
{
	static const char *const names[] = { "id",    "name",       "username",        "realm_name",
		                             "owner", "active_only", "with_limited_by", "with_profile_uid",
		                             "pretty", "human",      "error_trace",     "filter_path" };
	enum { NNAMES = sizeof(names) / sizeof(names[0]) };
	bool seen[NNAMES] = { false };
	kg_buf key = { 0 }, val = { 0 };
	kg_err err = KG_OK;
	memset(out, 0, sizeof(*out));
	size_t i = 0;
	while (i < query.n && !err) {
		const char *amp = memchr(query.p + i, '&', query.n - i);
		size_t end = amp ? (size_t)(amp - query.p) : query.n;
		kg_str pair = { query.p + i, end - i };
		i = end + 1;
		if (pair.n == 0)
			continue;
		const char *eq = memchr(pair.p, '=', pair.n);
		kg_str k = { pair.p, eq ? (size_t)(eq - pair.p) : pair.n };
		kg_str v = eq ? (kg_str){ eq + 1, pair.n - k.n - 1 } : KG_STR("");
		if (kg_es_percent_decode(k, true, &key) != KG_OK || kg_es_percent_decode(v, true, &val) != KG_OK) {
			err = kg_es_fail_set(f, 400, "illegal_argument_exception",
			                     "invalid percent-encoding in the query string of request [/_security/api_key]");
			break;
		}
		size_t n;
		for (n = 0; n < NNAMES && strcmp(names[n], key.p) != 0; n++)
			;
		if (n == NNAMES || strlen(key.p) != key.n) {
			err = kg_es_fail_set(f, 400, "illegal_argument_exception",
			                     "request [/_security/api_key] contains unrecognized parameter: [%s]", key.p);
			break;
		}
		/* ES keeps the last of repeated parameters; an API that decides
		 * whose keys to show refuses the ambiguity instead */
		if (seen[n]) {
			err = kg_es_fail_set(f, 400, "illegal_argument_exception",
			                     "request [/_security/api_key] contains parameter [%s] more than once", key.p);
			break;
		}
		seen[n] = true;
		kg_buf *text = n == 0 ? &out->id : n == 1 ? &out->name : n == 2 ? &out->username : n == 3 ? &out->realm_name
		                                                                                           : NULL;
		bool *flag = n == 4 ? &out->is_owner : n == 5 ? &out->is_active_only : n == 6 ? &out->with_limited_by : NULL;
		if (text) {
			/* Strings.hasText: blank is as good as absent */
			if (java_trim(kg_buf_str(&val)).n)
				err = kg_buf_appends(text, kg_buf_str(&val));
		} else if (flag || n == 7 || n == 8 || n == 9 || n == 10) {
			/* RestRequest.paramAsBoolean: empty is true */
			bool b = val.n == 0 || strcmp(val.p, "true") == 0;
			if (!b && strcmp(val.p, "false") != 0) {
				err = kg_es_fail_set(f, 400, "illegal_argument_exception",
				                     "Failed to parse value [%s] as only [true] or [false] are allowed.", val.p);
				break;
			}
			if (flag)
				*flag = b;
		}
	}
	if (err)
		goto out;
	/* GetApiKeyRequest.validate, in its order */
	bool has_realm_or_user = out->realm_name.n || out->username.n;
	if ((out->id.n || out->name.n) && has_realm_or_user)
		err = kg_es_fail_validation_add(f, "username or realm name must not be specified when the api key id or api "
		                                   "key name is specified");
	if (out->is_owner && has_realm_or_user)
		err = kg_es_fail_validation_add(f, "neither username nor realm-name may be specified when retrieving owned "
		                                   "API keys");
	if (out->id.n && out->name.n)
		err = kg_es_fail_validation_add(f, "only one of [api key id, api key name] can be specified");
out:
	kg_buf_free(&key, false);
	kg_buf_free(&val, false);
	return err;
}

void kg_es_get_free(struct kg_es_get *g)
{
	kg_buf_free(&g->id, false);
	kg_buf_free(&g->name, false);
	kg_buf_free(&g->username, false);
	kg_buf_free(&g->realm_name, false);
	memset(g, 0, sizeof(*g));
}

/* ---- Key documents for output ---- */

json_t *kg_es_key_view(const json_t *doc, bool with_limited_by)
{
	/* the fields in ES's order; absent optional ones are left out, the
	 * maps default to {} as ES prints them */
	static const char *const order[] = { "id",       "name",  "type",       "creation", "expiration",
		                             "invalidated", "invalidation", "username", "realm", "realm_type",
		                             "metadata", "role_descriptors" };
	json_t *view = json_object();
	if (!view)
		return NULL;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		json_t *v = json_object_get(doc, order[i]);
		bool is_map = strcmp(order[i], "metadata") == 0 || strcmp(order[i], "role_descriptors") == 0;
		json_t *copy;
		if (strcmp(order[i], "invalidation") == 0 && !json_is_true(json_object_get(doc, "invalidated")))
			continue;
		if (v)
			copy = json_deep_copy(v);
		else if (is_map)
			copy = json_object();
		else if (strcmp(order[i], "invalidated") == 0)
			copy = json_false();
		else if (strcmp(order[i], "type") == 0)
			copy = json_string("rest");
		else
			continue;
		if (json_object_set_new(view, order[i], copy) != 0)
			goto fail;
	}
	/* keygate's own: when the key was last used (epoch ms), when it has been */
	json_t *used = json_object_get(doc, "last_used");
	if (json_is_integer(used) && json_object_set_new(view, "last_used", json_integer(json_integer_value(used))) != 0)
		goto fail;
	if (with_limited_by) {
		json_t *lb = json_object_get(doc, "limited_by");
		json_t *arr = json_array();
		if (!arr || json_object_set_new(view, "limited_by", arr) != 0 ||
		    json_array_append_new(arr, lb ? json_deep_copy(lb) : json_object()) != 0)
			goto fail;
	}
	return view;
fail:
	json_decref(view);
	return NULL;
}

bool kg_es_key_is_active(const json_t *doc, int64_t now_ms)
{
	if (json_is_true(json_object_get(doc, "invalidated")))
		return false;
	json_t *exp = json_object_get(doc, "expiration");
	/* a key expires at its expiration instant, as ES's "expiration <= now" */
	return !json_is_integer(exp) || json_integer_value(exp) > now_ms;
}
