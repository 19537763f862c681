#include <stdalign.h>
#include <stdint.h>

#include "keygate/arena.h"
#include "kgtest.h"

KG_TEST(test_alloc_is_aligned_and_distinct)
{
	kg_arena a;
	kg_arena_init(&a, 128);
	char *prev = NULL;
	for (int i = 1; i < 200; i++) {
		char *p = kg_arena_alloc(&a, (size_t)i);
		KG_CHECK(p != NULL, "alloc %d failed", i);
		KG_CHECK(((uintptr_t)p % alignof(max_align_t)) == 0, "alloc %d misaligned", i);
		memset(p, i & 0xff, (size_t)i);
		KG_CHECK(p != prev, "same pointer twice");
		prev = p;
	}
	kg_arena_destroy(&a);
}

KG_TEST(test_large_alloc_gets_its_own_block)
{
	kg_arena a;
	kg_arena_init(&a, 64);
	char *p = kg_arena_alloc(&a, 100000);
	KG_CHECK(p != NULL, "large alloc failed");
	memset(p, 1, 100000);
	kg_arena_destroy(&a);
}

KG_TEST(test_reset_reuses_first_block)
{
	kg_arena a;
	kg_arena_init(&a, 4096);
	char *first = kg_arena_alloc(&a, 16);
	for (int i = 0; i < 100; i++)
		KG_CHECK(kg_arena_alloc(&a, 1000) != NULL, "alloc");
	kg_arena_reset(&a);
	char *again = kg_arena_alloc(&a, 16);
	KG_CHECK(again == first, "after reset the first block should be reused");
	kg_arena_destroy(&a);
}

KG_TEST(test_strdup_terminates)
{
	kg_arena a;
	kg_arena_init(&a, 0);
	kg_str s = kg_arena_strdup(&a, (kg_str){ "hello world", 5 });
	KG_CHECK(s.n == 5 && strcmp(s.p, "hello") == 0, "got '%s'", s.p);
	kg_arena_destroy(&a);
}

KG_TEST(test_huge_request_is_refused)
{
	kg_arena a;
	kg_arena_init(&a, 0);
	KG_CHECK(kg_arena_alloc(&a, SIZE_MAX - 8) == NULL, "SIZE_MAX allocation must fail");
	kg_arena_destroy(&a);
}

int main(void)
{
	return kg_test_main();
}
