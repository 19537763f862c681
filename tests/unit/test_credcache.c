/* test_credcache.c - the verified-credential cache. */
#include "kgtest.h"

#include "keygate/credcache.h"

KG_TEST(test_a_put_credential_answers_its_value_until_the_ttl)
{
	kg_credcache *c = NULL;
	uint64_t v = 0;
	KG_CHECK(kg_credcache_new(100, 300, &c) == KG_OK, "new");
	KG_CHECK(!kg_credcache_get(c, KG_STR("elastic"), KG_STR("pw"), 1000, &v), "empty at first");
	kg_credcache_put(c, KG_STR("elastic"), KG_STR("pw"), 0xfeedULL, 1000);
	KG_CHECK(kg_credcache_get(c, KG_STR("elastic"), KG_STR("pw"), 1299, &v) && v == 0xfeedULL, "hit with its value");
	KG_CHECK(!kg_credcache_get(c, KG_STR("elastic"), KG_STR("pw"), 1300, &v), "expired at put + ttl");
	KG_CHECK(!kg_credcache_get(c, KG_STR("elastic"), KG_STR("pX"), 1000, &v), "another password misses");
	KG_CHECK(!kg_credcache_get(c, KG_STR("elasti"), KG_STR("cpw"), 1000, &v), "the user/password split counts");
	kg_credcache_put(c, KG_STR("elastic"), KG_STR("pw"), 7, 1000);
	KG_CHECK(kg_credcache_get(c, KG_STR("elastic"), KG_STR("pw"), 1001, &v) && v == 7, "a second put replaces");
	char long_name[KG_CREDCACHE_MAX_USER + 2];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	kg_credcache_put(c, kg_str_c(long_name), KG_STR("pw"), 1, 1000);
	KG_CHECK(!kg_credcache_get(c, kg_str_c(long_name), KG_STR("pw"), 1001, &v), "names beyond the cap are never cached");
	KG_CHECK(!kg_credcache_get(NULL, KG_STR("elastic"), KG_STR("pw"), 1001, &v), "no cache: a miss");
	kg_credcache_free(&c);
	KG_CHECK(c == NULL, "freed");
}

KG_TEST(test_clear_forgets_every_credential_and_forget_only_the_users)
{
	kg_credcache *c = NULL;
	uint64_t v = 0;
	KG_CHECK(kg_credcache_new(100, 300, &c) == KG_OK, "new");
	kg_credcache_put(c, KG_STR("joe"), KG_STR("pw1"), 1, 1000);
	kg_credcache_put(c, KG_STR("joe"), KG_STR("pw2"), 2, 1000);
	kg_credcache_put(c, KG_STR("ann"), KG_STR("pw"), 3, 1000);
	kg_credcache_forget(c, KG_STR("jo"));
	KG_CHECK(kg_credcache_get(c, KG_STR("joe"), KG_STR("pw1"), 1001, &v) && v == 1, "another name forgets nothing");
	kg_credcache_forget(c, KG_STR("joe"));
	KG_CHECK(!kg_credcache_get(c, KG_STR("joe"), KG_STR("pw1"), 1001, &v), "joe's first password forgotten");
	KG_CHECK(!kg_credcache_get(c, KG_STR("joe"), KG_STR("pw2"), 1001, &v), "joe's second password forgotten");
	KG_CHECK(kg_credcache_get(c, KG_STR("ann"), KG_STR("pw"), 1001, &v) && v == 3, "ann kept");
	kg_credcache_put(c, KG_STR("joe"), KG_STR("pw1"), 4, 1000);
	KG_CHECK(kg_credcache_get(c, KG_STR("joe"), KG_STR("pw1"), 1001, &v) && v == 4, "joe cached again after forget");
	kg_credcache_clear(c);
	KG_CHECK(!kg_credcache_get(c, KG_STR("joe"), KG_STR("pw1"), 1001, &v), "clear: joe gone");
	KG_CHECK(!kg_credcache_get(c, KG_STR("ann"), KG_STR("pw"), 1001, &v), "clear: ann gone");
	kg_credcache_clear(NULL);
	kg_credcache_forget(NULL, KG_STR("joe"));
	kg_credcache_free(&c);
}

int main(void)
{
	return kg_test_main();
}
