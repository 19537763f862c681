#include "keygate/password.h"
#include "kgtest.h"

/* Published vectors: OpenBSD's / Solar Designer's bcrypt tests, and hashes
 * from other implementations with the $2y$ and $2b$ prefixes. */
static const struct {
	const char *plain, *hash;
} vectors[] = {
	{ "U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW" },
	{ "U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK" },
	{ "U*U*U", "$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a" },
	{ "", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy" },
	{ "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored",
	  "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui" },
	{ "\xff\xff\xa3", "$2y$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e" },
	{ "\xff\xff\xa3", "$2b$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e" },
};

KG_TEST(test_known_answer_vectors_verify)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		bool ok = false;
		kg_err err = kg_bcrypt_verify(kg_str_c(vectors[i].plain), vectors[i].hash, &ok);
		KG_CHECK(err == KG_OK && ok, "vector %zu (%s): err %s ok %d", i, vectors[i].hash, kg_errname(err), ok);
		err = kg_bcrypt_verify(KG_STR("wrong"), vectors[i].hash, &ok);
		KG_CHECK(err == KG_OK && !ok, "vector %zu accepted a wrong password", i);
	}
}

KG_TEST(test_hash_then_verify_round_trip)
{
	kg_buf h = { 0 };
	KG_CHECK(kg_bcrypt_hash(KG_STR("hello"), 4, &h) == KG_OK, "hash");
	KG_CHECK(h.n == 60 && strncmp(h.p, "$2b$04$", 7) == 0, "hash %s", h.p);
	KG_CHECK(kg_bcrypt_is_valid_hash(h.p), "own hash must be valid");
	bool ok = false;
	KG_CHECK(kg_bcrypt_verify(KG_STR("hello"), h.p, &ok) == KG_OK && ok, "verify");
	KG_CHECK(kg_bcrypt_verify(KG_STR("hellO"), h.p, &ok) == KG_OK && !ok, "wrong password");
	kg_buf h2 = { 0 };
	KG_CHECK(kg_bcrypt_hash(KG_STR("hello"), 4, &h2) == KG_OK && strcmp(h.p, h2.p) != 0, "salts must differ");
	kg_buf_free(&h, true);
	kg_buf_free(&h2, true);
}

KG_TEST(test_cost_bounds_and_bad_input)
{
	kg_buf h = { 0 };
	KG_CHECK(kg_bcrypt_hash(KG_STR("x"), 3, &h) == KG_ERANGE, "cost 3");
	KG_CHECK(kg_bcrypt_hash(KG_STR("x"), 32, &h) == KG_ERANGE, "cost 32");
	KG_CHECK(kg_bcrypt_hash((kg_str){ "a\0b", 3 }, 4, &h) == KG_EINVAL, "NUL in a password");
	bool ok = true;
	static const char *const bad[] = {
		"", "not-a-hash", "$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
		"$2a$03$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
		"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe",
		"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe!",
		"$1$saltsalt$abcdefghijklmnopqrstuv",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		KG_CHECK(!kg_bcrypt_is_valid_hash(bad[i]), "valid: '%s'", bad[i]);
		KG_CHECK(kg_bcrypt_verify(KG_STR("x"), bad[i], &ok) == KG_EINVAL && !ok, "verify accepted '%s'", bad[i]);
	}
	kg_buf_free(&h, false);
}

int main(void)
{
	return kg_test_main();
}
