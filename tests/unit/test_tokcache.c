/* test_tokcache.c - the per-worker cache of validated Bearer tokens. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kgtest.h"

#include "keygate/tokcache.h"

#define OWNER 7
#define EPOCH 3

static bool hits(kg_tokcache *c, kg_str token, const char *want, int64_t now)
{
	size_t n = 0;
	const char *v = kg_tokcache_get(c, OWNER, token, EPOCH, now, &n);
	return v && n == strlen(want) && memcmp(v, want, n) == 0;
}

KG_TEST(test_a_put_token_hits_with_its_value_and_another_misses)
{
	kg_tokcache *c = NULL;
	KG_CHECK(kg_tokcache_new(16, &c) == KG_OK, "new");
	KG_CHECK(!hits(c, KG_STR("tok-a"), "A", 100), "empty at first");
	kg_tokcache_put(c, OWNER, KG_STR("tok-a"), EPOCH, 1000, "A", 1);
	KG_CHECK(hits(c, KG_STR("tok-a"), "A", 100), "a hit with its value");
	KG_CHECK(!hits(c, KG_STR("tok-b"), "A", 100), "another token misses");
	KG_CHECK(!hits(c, KG_STR("tok-"), "A", 100), "a prefix misses");
	KG_CHECK(!hits(c, KG_STR("tok-aa"), "A", 100), "a longer token misses");
	kg_tokcache_put(c, OWNER, KG_STR("tok-a"), EPOCH, 1000, "A2", 2);
	KG_CHECK(hits(c, KG_STR("tok-a"), "A2", 100) && kg_tokcache_count(c) == 1, "a second put replaces the first");
	kg_tokcache_free(&c);
	KG_CHECK(c == NULL, "freed");
	size_t n;
	KG_CHECK(!kg_tokcache_get(NULL, OWNER, KG_STR("tok-a"), EPOCH, 1, &n), "no cache: a miss");
	kg_tokcache_put(NULL, OWNER, KG_STR("tok-a"), EPOCH, 1, "x", 1);
}

static uint64_t same_hash(const unsigned char key[16], const void *in, size_t n)
{
	return 42;
}

KG_TEST(test_tokens_with_the_same_hash_are_told_apart_by_their_bytes)
{
	kg_tokcache *c = NULL;
	KG_CHECK(kg__tokcache_new_hashed(8, same_hash, &c) == KG_OK, "new");
	kg_tokcache_put(c, OWNER, KG_STR("token-one"), EPOCH, 1000, "1", 1);
	KG_CHECK(!hits(c, KG_STR("token-two"), "1", 10), "same hash and length, other bytes: a miss");
	KG_CHECK(!hits(c, KG_STR("token-on"), "1", 10), "same hash, shorter: a miss");
	kg_tokcache_put(c, OWNER, KG_STR("token-two"), EPOCH, 1000, "2", 1);
	kg_tokcache_put(c, OWNER, KG_STR("token-six"), EPOCH, 1000, "6", 1);
	KG_CHECK(hits(c, KG_STR("token-one"), "1", 10) && hits(c, KG_STR("token-two"), "2", 10) &&
	             hits(c, KG_STR("token-six"), "6", 10),
	         "three tokens in one bucket each get their own value");
	KG_CHECK(!hits(c, KG_STR("token-ten"), "1", 10), "a fourth misses");
	KG_CHECK(kg_tokcache_get(c, OWNER, KG_STR("token-two"), EPOCH + 1, 10, &(size_t){ 0 }) == NULL,
	         "a stale entry in the middle of a bucket is dropped");
	KG_CHECK(hits(c, KG_STR("token-one"), "1", 10) && hits(c, KG_STR("token-six"), "6", 10) && kg_tokcache_count(c) == 2,
	         "and the bucket's others stay");
	kg_tokcache_free(&c);
}

/* Tokens that land in one bucket (here: they fold alike, since bytes XORed
 * into the same place cancel out) must be told apart by the full
 * comparison wherever they differ. */
KG_TEST(test_tokens_that_fold_alike_are_told_apart_by_their_bytes)
{
	enum { LEN = 200, VARIANTS = 4 };
	/* each variant swaps two bytes KG_TOKCACHE_FOLD apart: the same fold */
	static const size_t swap_at[VARIANTS] = { 0, 1, 50, LEN - KG_TOKCACHE_FOLD - 1 };
	char base[LEN], tok[VARIANTS][LEN], val[VARIANTS][2];
	kg_tokcache *c = NULL;
	KG_CHECK(kg_tokcache_new(64, &c) == KG_OK, "new");
	for (size_t i = 0; i < LEN; i++)
		base[i] = (char)('a' + i % 26);
	kg_tokcache_put(c, OWNER, (kg_str){ base, LEN }, EPOCH, 1000, "B", 1);
	for (size_t v = 0; v < VARIANTS; v++) {
		size_t at = swap_at[v];
		memcpy(tok[v], base, LEN);
		tok[v][at] = base[at + KG_TOKCACHE_FOLD];
		tok[v][at + KG_TOKCACHE_FOLD] = base[at];
		val[v][0] = (char)('0' + v);
		val[v][1] = '\0';
		KG_CHECK(memcmp(tok[v], base, LEN) != 0, "variant %zu differs", v);
		KG_CHECK(!hits(c, (kg_str){ tok[v], LEN }, "B", 10),
		         "a token folding like a cached one (bytes %zu and %zu swapped) is a miss", at, at + KG_TOKCACHE_FOLD);
	}
	for (size_t v = 0; v < VARIANTS; v++)
		kg_tokcache_put(c, OWNER, (kg_str){ tok[v], LEN }, EPOCH, 1000, val[v], 1);
	KG_CHECK(kg_tokcache_count(c) == 1 + VARIANTS, "each is its own entry: %zu", kg_tokcache_count(c));
	KG_CHECK(hits(c, (kg_str){ base, LEN }, "B", 10), "the first keeps its value");
	for (size_t v = 0; v < VARIANTS; v++)
		KG_CHECK(hits(c, (kg_str){ tok[v], LEN }, val[v], 10), "the one swapped at %zu gets its own value", swap_at[v]);
	KG_CHECK(!kg_tokcache_get(c, OWNER, (kg_str){ tok[2], LEN }, EPOCH + 1, 10, &(size_t){ 0 }),
	         "a stale one is dropped");
	KG_CHECK(hits(c, (kg_str){ base, LEN }, "B", 10) && hits(c, (kg_str){ tok[3], LEN }, val[3], 10) &&
	             !hits(c, (kg_str){ tok[2], LEN }, val[2], 10),
	         "and only that one");
	kg_tokcache_free(&c);
}

KG_TEST(test_a_bucket_holds_at_most_chain_max_tokens_and_a_lookup_compares_no_more)
{
	kg_tokcache *c = NULL;
	char tok[32];
	KG_CHECK(kg__tokcache_new_hashed(64, same_hash, &c) == KG_OK, "new");
	for (int i = 0; i < 3 * KG_TOKCACHE_CHAIN_MAX; i++) {
		snprintf(tok, sizeof(tok), "tok-%d", i);
		kg_tokcache_put(c, OWNER, kg_str_c(tok), EPOCH, 1000, tok, strlen(tok));
	}
	KG_CHECK(kg_tokcache_count(c) == KG_TOKCACHE_CHAIN_MAX, "one bucket: %d held, got %zu", KG_TOKCACHE_CHAIN_MAX,
	         kg_tokcache_count(c));
	for (int i = 0; i < 3 * KG_TOKCACHE_CHAIN_MAX; i++) {
		snprintf(tok, sizeof(tok), "tok-%d", i);
		KG_CHECK(hits(c, kg_str_c(tok), tok, 1) == (i < KG_TOKCACHE_CHAIN_MAX), "tok-%d: %s", i,
		         i < KG_TOKCACHE_CHAIN_MAX ? "the first ones are held" : "the later ones are not cached");
	}
	kg_tokcache_put(c, OWNER, KG_STR("tok-0"), EPOCH, 1000, "new", 3);
	KG_CHECK(hits(c, KG_STR("tok-0"), "new", 1) && kg_tokcache_count(c) == KG_TOKCACHE_CHAIN_MAX,
	         "a held token is still replaced in a full bucket");
	KG_CHECK(!kg_tokcache_get(c, OWNER, KG_STR("tok-1"), EPOCH + 1, 1, &(size_t){ 0 }), "a stale one is dropped");
	kg_tokcache_put(c, OWNER, KG_STR("tok-99"), EPOCH, 1000, "v", 1);
	KG_CHECK(hits(c, KG_STR("tok-99"), "v", 1), "which makes room in the bucket");
	kg_tokcache_free(&c);
}

static unsigned char seen[128];
static size_t seen_n;

static uint64_t recording_hash(const unsigned char key[16], const void *in, size_t n)
{
	seen_n = n < sizeof(seen) ? n : sizeof(seen);
	memcpy(seen, in, seen_n);
	return 7;
}

KG_TEST(test_the_bucket_hash_reads_the_length_and_the_token_folded)
{
	kg_tokcache *c = NULL;
	char tok[301];
	for (size_t i = 0; i < sizeof(tok); i++)
		tok[i] = (char)(i * 7 + 3);
	KG_CHECK(kg__tokcache_new_hashed(4, recording_hash, &c) == KG_OK, "new");
	/* every length around the word and fold boundaries, against byte i XORed into i % FOLD */
	for (size_t n = 1; n <= sizeof(tok); n++) {
		unsigned char want[8 + KG_TOKCACHE_FOLD] = { 0 };
		for (size_t j = 0; j < 8; j++)
			want[j] = (unsigned char)((uint64_t)n >> (8 * j));
		for (size_t i = 0; i < n; i++)
			want[8 + i % KG_TOKCACHE_FOLD] ^= (unsigned char)tok[i];
		seen_n = 0;
		kg_tokcache_put(c, OWNER, (kg_str){ tok, n }, EPOCH, 1000, "v", 1);
		KG_CHECK(seen_n == sizeof(want) && memcmp(seen, want, sizeof(want)) == 0,
		         "a token of %zu bytes: its length (LE64) and its %d-byte fold, got %zu bytes", n, KG_TOKCACHE_FOLD,
		         seen_n);
	}
	kg_tokcache_free(&c);
}

KG_TEST(test_an_entry_is_served_up_to_its_last_valid_instant_never_after)
{
	kg_tokcache *c = NULL;
	KG_CHECK(kg_tokcache_new(4, &c) == KG_OK, "new");
	kg_tokcache_put(c, OWNER, KG_STR("t"), EPOCH, 500, "v", 1);
	KG_CHECK(hits(c, KG_STR("t"), "v", 500), "at its last valid instant");
	KG_CHECK(!hits(c, KG_STR("t"), "v", 501), "one past it");
	KG_CHECK(kg_tokcache_count(c) == 0, "an expired entry met is dropped");
	KG_CHECK(!hits(c, KG_STR("t"), "v", 400), "and stays gone when the clock is back");
	kg_tokcache_free(&c);
}

KG_TEST(test_a_new_epoch_or_another_owner_misses_and_drops_the_entry)
{
	kg_tokcache *c = NULL;
	size_t n;
	KG_CHECK(kg_tokcache_new(4, &c) == KG_OK, "new");
	kg_tokcache_put(c, OWNER, KG_STR("t"), EPOCH, 500, "v", 1);
	KG_CHECK(!kg_tokcache_get(c, OWNER, KG_STR("t"), EPOCH + 1, 1, &n), "a revocation since (epoch + 1): a miss");
	KG_CHECK(!hits(c, KG_STR("t"), "v", 1), "and the entry is gone, even for the old epoch");
	kg_tokcache_put(c, OWNER, KG_STR("t"), EPOCH, 500, "v", 1);
	KG_CHECK(!kg_tokcache_get(c, OWNER + 1, KG_STR("t"), EPOCH, 1, &n), "another authenticator: a miss");
	KG_CHECK(kg_tokcache_count(c) == 0, "dropped");
	uint64_t a = kg_tokcache_owner_new(), b = kg_tokcache_owner_new();
	KG_CHECK(a && b && a != b, "owners are new each time (%llu, %llu)", (unsigned long long)a, (unsigned long long)b);
	kg_tokcache_free(&c);
}

KG_TEST(test_a_full_cache_evicts_and_spares_the_entries_in_use)
{
	kg_tokcache *c = NULL;
	char tok[32];
	KG_CHECK(kg_tokcache_new(8, &c) == KG_OK, "new");
	for (int i = 0; i < 8; i++) {
		snprintf(tok, sizeof(tok), "tok-%d", i);
		kg_tokcache_put(c, OWNER, kg_str_c(tok), EPOCH, 1000, tok, strlen(tok));
	}
	KG_CHECK(kg_tokcache_count(c) == 8, "8 held, got %zu", kg_tokcache_count(c));
	KG_CHECK(hits(c, KG_STR("tok-0"), "tok-0", 1) && hits(c, KG_STR("tok-1"), "tok-1", 1), "0 and 1 used again");
	for (int i = 8; i < 100; i++) {
		snprintf(tok, sizeof(tok), "tok-%d", i);
		kg_tokcache_put(c, OWNER, kg_str_c(tok), EPOCH, 1000, tok, strlen(tok));
		KG_CHECK(kg_tokcache_count(c) <= 8, "never more than its capacity: %zu", kg_tokcache_count(c));
		if (i == 8)
			KG_CHECK(hits(c, KG_STR("tok-0"), "tok-0", 1) && !hits(c, KG_STR("tok-2"), "tok-2", 1),
			         "the first eviction spares the used entry 0 and takes the oldest unused one, 2");
		if (i < 14)
			hits(c, KG_STR("tok-0"), "tok-0", 1); /* kept in use */
	}
	KG_CHECK(hits(c, KG_STR("tok-99"), "tok-99", 1), "the newest is held");
	int held = 0;
	for (int i = 0; i < 100; i++) {
		snprintf(tok, sizeof(tok), "tok-%d", i);
		held += hits(c, kg_str_c(tok), tok, 1);
	}
	KG_CHECK(held == 8, "8 of 100 held, got %d", held);
	kg_tokcache_free(&c);
}

KG_TEST(test_tokens_and_values_beyond_the_caps_are_never_cached)
{
	kg_tokcache *c = NULL;
	static char big[KG_TOKCACHE_MAX_TOKEN + 1], val[KG_TOKCACHE_MAX_VALUE + 1];
	memset(big, 'a', sizeof(big));
	memset(val, 'v', sizeof(val));
	KG_CHECK(kg_tokcache_new(4, &c) == KG_OK, "new");
	kg_tokcache_put(c, OWNER, (kg_str){ big, sizeof(big) }, EPOCH, 10, "v", 1);
	kg_tokcache_put(c, OWNER, KG_STR("t"), EPOCH, 10, val, sizeof(val));
	kg_tokcache_put(c, OWNER, KG_STR(""), EPOCH, 10, "v", 1);
	KG_CHECK(kg_tokcache_count(c) == 0, "nothing held, got %zu", kg_tokcache_count(c));
	kg_tokcache_put(c, OWNER, (kg_str){ big, sizeof(big) - 1 }, EPOCH, 10, val, sizeof(val) - 1);
	size_t n = 0;
	KG_CHECK(kg_tokcache_get(c, OWNER, (kg_str){ big, sizeof(big) - 1 }, EPOCH, 1, &n) && n == sizeof(val) - 1,
	         "at the caps: held");
	KG_CHECK(kg_tokcache_new(0, &(kg_tokcache *){ NULL }) == KG_EINVAL, "capacity 0 refused");
	kg_tokcache_free(&c);
}

KG_TEST(test_each_thread_gets_its_own_cache_until_freed)
{
	kg_tokcache *a = kg_tokcache_of_thread();
	KG_CHECK(a && a == kg_tokcache_of_thread(), "made once, then the same");
	kg_tokcache_thread_free();
	kg_tokcache_thread_free();
}

static void *take_cache(void *main_cache)
{
	kg_tokcache *c = kg_tokcache_of_thread();
	if (c && c != main_cache)
		kg_tokcache_put(c, OWNER, KG_STR("a token"), EPOCH, 10, "v", 1);
	return c && c != main_cache && kg_tokcache_count(c) == 1 ? c : NULL;
	/* not freed here: the thread's exit frees it (make test-asan's leak
	 * check fails this test when it does not) */
}

KG_TEST(test_a_threads_cache_is_its_own_and_freed_at_its_exit)
{
	kg_tokcache *mine = kg_tokcache_of_thread();
	pthread_t t;
	void *theirs = NULL;
	KG_CHECK(mine && pthread_create(&t, NULL, take_cache, mine) == 0, "thread started");
	KG_CHECK(pthread_join(t, &theirs) == 0 && theirs, "the thread had a cache of its own, not the main thread's");
	KG_CHECK(kg_tokcache_count(mine) == 0, "the main thread's cache saw nothing of the other's");
	kg_tokcache_thread_free();
}

int main(void)
{
	return kg_test_main();
}
