#include <stdio.h>

#include "keygate/str.h"
#include "kgtest.h"

KG_TEST(test_eq_ci_ignores_ascii_case_only)
{
	KG_CHECK(kg_str_eq_ci(KG_STR("Content-Length"), KG_STR("content-length")), "case differs");
	KG_CHECK(!kg_str_eq_ci(KG_STR("Host"), KG_STR("Hos")), "length differs");
	KG_CHECK(!kg_str_eq_ci(KG_STR("a["), KG_STR("A{")), "non-letters must not fold");
}

KG_TEST(test_trim_removes_ows_only)
{
	kg_str s = kg_str_trim(KG_STR(" \t abc d \t"));
	KG_CHECK(kg_str_eq(s, KG_STR("abc d")), "got '%.*s'", (int)s.n, s.p);
	s = kg_str_trim(KG_STR("   "));
	KG_CHECK(s.n == 0, "all-space string should trim to empty, got %zu", s.n);
}

KG_TEST(test_to_u64_table)
{
	static const struct {
		const char *in;
		unsigned long long max;
		kg_err err;
		unsigned long long want;
	} cases[] = {
		{ "0", 100, KG_OK, 0 },
		{ "100", 100, KG_OK, 100 },
		{ "101", 100, KG_ERANGE, 0 },
		{ "18446744073709551615", ~0ULL, KG_OK, ~0ULL },
		{ "18446744073709551616", ~0ULL, KG_ERANGE, 0 },
		{ "", 100, KG_EINVAL, 0 },
		{ "-1", 100, KG_EINVAL, 0 },
		{ "1 ", 100, KG_EINVAL, 0 },
		{ "+1", 100, KG_EINVAL, 0 },
		{ "0x10", 100, KG_EINVAL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned long long v = 12345;
		kg_err err = kg_str_to_u64(kg_str_c(cases[i].in), cases[i].max, &v);
		KG_CHECK(err == cases[i].err, "'%s': got %s, want %s", cases[i].in, kg_errname(err),
		         kg_errname(cases[i].err));
		if (err == KG_OK)
			KG_CHECK(v == cases[i].want, "'%s': got %llu", cases[i].in, v);
	}
}

KG_TEST(test_hex_value_every_byte)
{
	for (int c = 0; c < 256; c++) {
		int want = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		KG_CHECK(kg_hex_value((unsigned char)c) == want, "byte %d: %d, want %d", c, kg_hex_value((unsigned char)c), want);
	}
}

KG_TEST(test_hex_encode_table)
{
	static const struct {
		const char *in;
		size_t n;
		bool is_upper;
		const char *want;
	} cases[] = {
		{ "", 0, false, "" },
		{ "\x00", 1, false, "00" },
		{ "\xff", 1, false, "ff" },
		{ "\xff", 1, true, "FF" },
		{ "\x0a\xb5", 2, false, "0ab5" },
		{ "\x0a\xb5", 2, true, "0AB5" },
		{ "\x01\x23\x45\x67\x89\xab\xcd\xef", 8, false, "0123456789abcdef" },
		{ "\x01\x23\x45\x67\x89\xab\xcd\xef", 8, true, "0123456789ABCDEF" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];
		memset(out, '#', sizeof(out));
		size_t n = kg_hex_encode(cases[i].in, cases[i].n, out, cases[i].is_upper);
		KG_CHECK(n == 2 * cases[i].n, "case %zu: returned %zu, want %zu", i, n, 2 * cases[i].n);
		KG_CHECK(memcmp(out, cases[i].want, 2 * cases[i].n) == 0, "case %zu: got '%.*s', want '%s'", i,
		         (int)(2 * cases[i].n), out, cases[i].want);
		KG_CHECK(out[2 * cases[i].n] == '#', "case %zu: wrote past 2*n bytes", i);
	}
}

KG_TEST(test_buf_grows_and_stays_nul_terminated)
{
	kg_buf b = { 0 };
	for (int i = 0; i < 1000; i++)
		KG_CHECK(kg_buf_printf(&b, "%d,", i) == KG_OK, "printf failed at %d", i);
	KG_CHECK(b.p[b.n] == '\0', "not NUL-terminated");
	KG_CHECK(strncmp(b.p, "0,1,2,", 6) == 0, "bad start");
	KG_CHECK(b.n == 3890, "length %zu", b.n);
	kg_buf_free(&b, true);
	KG_CHECK(b.p == NULL && b.n == 0, "free must reset");
}

KG_TEST(test_json_string_escapes_controls_and_quotes)
{
	kg_buf b = { 0 };
	KG_CHECK(kg_buf_append_json_string(&b, (kg_str){ "a\"b\\c\n\x01\x7f\xc3\xa9", 10 }) == KG_OK, "append");
	const char *want = "\"a\\\"b\\\\c\\u000a\\u0001\\u007f\xc3\xa9\"";
	KG_CHECK(strcmp(b.p, want) == 0, "got %s want %s", b.p, want);
	kg_buf_free(&b, false);
}

KG_TEST(test_has_prefix_ci)
{
	KG_CHECK(kg_str_has_prefix_ci(KG_STR("x-keygate-role"), KG_STR("X-Keygate-")), "prefix");
	KG_CHECK(!kg_str_has_prefix_ci(KG_STR("X-Key"), KG_STR("X-Keygate-")), "short");
}

KG_TEST(test_token_and_field_value_classes_every_byte)
{
	/* RFC 9110 5.6.2 tchar, byte by byte against the grammar */
	const char *extra = "!#$%&'*+-.^_`|~";
	for (int ch = 0; ch < 256; ch++) {
		char b = (char)ch;
		bool want_tchar = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		                  (ch && strchr(extra, ch));
		bool want_value = ch == '\t' || (ch >= 0x20 && ch != 0x7f);
		KG_CHECK(kg_str_is_token((kg_str){ &b, 1 }) == want_tchar, "byte 0x%02x as a token", ch);
		KG_CHECK(kg_str_is_field_value((kg_str){ &b, 1 }) == want_value, "byte 0x%02x in a field value", ch);
	}
	KG_CHECK(!kg_str_is_token(KG_STR("")), "an empty token");
	KG_CHECK(!kg_str_is_token(KG_STR("Bad Name")), "a space in a name");
	KG_CHECK(kg_str_is_token(KG_STR("X-Keygate_Role")), "underscores are token bytes");
	KG_CHECK(kg_str_is_field_value(KG_STR("")), "an empty value is a value");
	KG_CHECK(!kg_str_is_field_value((kg_str){ "a\0b", 3 }), "NUL in a value");
	KG_CHECK(!kg_str_is_field_value(KG_STR("a\r\nX-Injected: 1")), "CRLF in a value");
}

KG_TEST(test_append_u64_writes_decimal)
{
	static const struct {
		unsigned long long v;
		const char *want;
	} cases[] = { { 0, "0" }, { 7, "7" }, { 10, "10" }, { 404, "404" }, { 1234567890, "1234567890" },
		      { 18446744073709551615ULL, "18446744073709551615" } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_buf b = { 0 };
		KG_CHECK(kg_buf_appends(&b, KG_STR("x")) == KG_OK && kg_buf_append_u64(&b, cases[i].v) == KG_OK,
		         "append %llu", cases[i].v);
		KG_CHECK(b.n == 1 + strlen(cases[i].want) && strcmp(b.p + 1, cases[i].want) == 0, "%llu: got '%s'",
		         cases[i].v, b.p);
		kg_buf_free(&b, false);
	}
}

KG_TEST(test_u64_dec_matches_printf)
{
	static const unsigned long long v[] = { 0, 9, 10, 99, 100, 65535, 4294967296ULL, 18446744073709551615ULL };
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char digits[KG_U64_DEC_MAX], want[32];
		snprintf(want, sizeof(want), "%llu", v[i]);
		kg_str got = kg_u64_dec(v[i], digits);
		KG_CHECK(kg_str_eq(got, kg_str_c(want)), "%llu: got '%.*s'", v[i], (int)got.n, got.p);
	}
}

/* kg_u64_dec_len counts the digits from the bit length and one compare:
 * every power of ten, one below it and one above, against printf */
KG_TEST(test_u64_dec_len_and_digits_at_every_power_of_ten)
{
	unsigned long long p = 1;
	for (int k = 0; k < 20; k++, p *= 10) {
		unsigned long long v[] = { p - 1, p, p + 1 };
		for (size_t i = 0; i < 3; i++) {
			char want[32], digits[KG_U64_DEC_MAX];
			int n = snprintf(want, sizeof(want), "%llu", v[i]);
			kg_str got = kg_u64_dec(v[i], digits);
			KG_CHECK(kg_u64_dec_len(v[i]) == (size_t)n, "%llu: %zu digits, want %d", v[i], kg_u64_dec_len(v[i]), n);
			KG_CHECK(kg_str_eq(got, kg_str_c(want)), "%llu: got '%.*s'", v[i], (int)got.n, got.p);
		}
	}
}

/* kg_buf_put copies inline only when the piece and the NUL fit: at the edge
 * of the capacity it grows the buffer instead of writing past it. */
KG_TEST(test_buf_put_grows_at_the_capacity_edge)
{
	for (size_t room = 0; room < 6; room++) {
		kg_buf b = { 0 };
		KG_CHECK(kg_buf_reserve(&b, 60) == KG_OK && b.cap == 64, "reserve 60: cap %zu", b.cap);
		memset(b.p, 'a', b.cap);
		b.n = b.cap - 1 - room; /* room bytes left before the NUL's place */
		b.p[b.n] = '\0';
		KG_CHECK(kg_buf_put(&b, KG_STR("xyz")) == KG_OK, "room %zu: put failed", room);
		KG_CHECK(b.n == 63 - room + 3 && b.n < b.cap && b.p[b.n] == '\0' && memcmp(b.p + b.n - 3, "xyz", 3) == 0,
		         "room %zu: n %zu cap %zu", room, b.n, b.cap);
		KG_CHECK(room >= 3 ? b.cap == 64 : b.cap == 128, "room %zu: cap %zu (grown only when short)", room,
		         b.cap);
		kg_buf_free(&b, false);
	}
	kg_buf e = { 0 };
	KG_CHECK(kg_buf_put(&e, KG_STR("")) == KG_OK && e.p && e.n == 0 && e.p[0] == '\0',
	         "an empty put on an empty buffer leaves a NUL-terminated buffer");
	kg_buf_free(&e, false);
}

int main(void)
{
	return kg_test_main();
}
