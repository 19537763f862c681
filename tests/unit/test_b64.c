#include "keygate/b64.h"
#include "kgtest.h"

/* RFC 4648 section 10 test vectors */
static const struct {
	const char *plain, *std, *url;
} vectors[] = {
	{ "", "", "" },
	{ "f", "Zg==", "Zg" },
	{ "fo", "Zm8=", "Zm8" },
	{ "foo", "Zm9v", "Zm9v" },
	{ "foob", "Zm9vYg==", "Zm9vYg" },
	{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
	{ ":hello", "OmhlbGxv", "OmhlbGxv" },
	{ "\xfb\xff", "+/8=", "-_8" },
};

KG_TEST(test_rfc4648_vectors_both_ways)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		kg_buf b = { 0 };
		size_t n = strlen(vectors[i].plain);
		KG_CHECK(kg_b64_encode(KG_B64_STD, vectors[i].plain, n, &b) == KG_OK && strcmp(b.p ? b.p : "", vectors[i].std) == 0,
		         "encode std '%s': got '%s'", vectors[i].plain, b.p);
		kg_buf_clear(&b);
		KG_CHECK(kg_b64_encode(KG_B64_URL_RAW, vectors[i].plain, n, &b) == KG_OK && strcmp(b.p ? b.p : "", vectors[i].url) == 0,
		         "encode url '%s': got '%s'", vectors[i].plain, b.p);
		KG_CHECK(kg_b64_decode(KG_B64_STD, kg_str_c(vectors[i].std), 100, &b) == KG_OK && b.n == n &&
		             memcmp(b.p, vectors[i].plain, n) == 0,
		         "decode std '%s'", vectors[i].std);
		KG_CHECK(kg_b64_decode(KG_B64_URL_RAW, kg_str_c(vectors[i].url), 100, &b) == KG_OK && b.n == n &&
		             memcmp(b.p, vectors[i].plain, n) == 0,
		         "decode url '%s'", vectors[i].url);
		kg_buf_free(&b, false);
	}
}

KG_TEST(test_non_canonical_input_is_refused)
{
	static const char *const bad_std[] = { "Zg=", "Zg", "Zh==", "Zm9=", "Z===", "Zm 9v", "Zm9v\n", "Zm-v", "====",
		                               "Zg==Zg==", "Zm9vY===" };
	static const char *const bad_url[] = { "Zg==", "Zh", "Z", "Zm+v", "Zm9vYmF" /* 7 chars: rem 3 ok? see below */ };
	kg_buf b = { 0 };
	for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++)
		KG_CHECK(kg_b64_decode(KG_B64_STD, kg_str_c(bad_std[i]), 100, &b) == KG_EINVAL, "std accepted '%s'", bad_std[i]);
	for (size_t i = 0; i < 4; i++)
		KG_CHECK(kg_b64_decode(KG_B64_URL_RAW, kg_str_c(bad_url[i]), 100, &b) == KG_EINVAL, "url accepted '%s'", bad_url[i]);
	KG_CHECK(kg_b64_decode(KG_B64_URL_RAW, KG_STR("Zm9vYmE"), 100, &b) == KG_OK && b.n == 5, "7 url chars decode to 5");
	kg_buf_free(&b, false);
}

KG_TEST(test_decode_cap)
{
	kg_buf b = { 0 };
	KG_CHECK(kg_b64_decode(KG_B64_STD, KG_STR("Zm9vYmFy"), 5, &b) == KG_ETOOBIG, "6 bytes over a cap of 5");
	KG_CHECK(kg_b64_decode(KG_B64_STD, KG_STR("Zm9vYmFy"), 6, &b) == KG_OK, "6 bytes at a cap of 6");
	kg_buf_free(&b, false);
}

int main(void)
{
	return kg_test_main();
}
