/* kgtest.h - the smallest test harness that says what differed.
 *
 *   KG_TEST(test_name) { KG_CHECK(x == 1, "x is %d", x); }
 *   int main(void) { return kg_test_main(); }
 *
 * Each test prints "ok NAME" or "not ok NAME: file:line: message"; the last
 * line is "# N passed, M failed". tests/run.sh adds the counts up.
 */
#ifndef KGTEST_H
#define KGTEST_H

#include <stdio.h>
#include <string.h>

typedef void (*kg_test_fn)(void);
struct kg_test_entry {
	const char *name;
	kg_test_fn fn;
};

#define KG_TEST_MAX 512
static struct kg_test_entry kg__tests[KG_TEST_MAX];
static int kg__ntests;
static int kg__failed_here;

#define KG_TEST(name)                                                         \
	static void name(void);                                               \
	__attribute__((constructor)) static void kg__reg_##name(void)         \
	{                                                                     \
		if (kg__ntests < KG_TEST_MAX)                                 \
			kg__tests[kg__ntests++] = (struct kg_test_entry){ #name, name }; \
	}                                                                     \
	static void name(void)

#define KG_CHECK(cond, ...)                                                   \
	do {                                                                  \
		if (!(cond)) {                                                \
			if (!kg__failed_here)                                 \
				printf("not ok %s: ", kg__current);           \
			else                                                  \
				printf("    also: ");                         \
			printf("%s:%d: ", __FILE__, __LINE__);                \
			printf(__VA_ARGS__);                                  \
			printf("\n");                                         \
			kg__failed_here = 1;                                  \
		}                                                             \
	} while (0)

/* Compares two byte strings and prints both in hex when they differ. */
#define KG_CHECK_MEM(got, want, len, what)                                    \
	do {                                                                  \
		const unsigned char *g_ = (const unsigned char *)(got);       \
		const unsigned char *w_ = (const unsigned char *)(want);      \
		if (memcmp(g_, w_, (len)) != 0) {                             \
			char gh_[2 * 256 + 1] = "", wh_[2 * 256 + 1] = "";    \
			for (size_t i_ = 0; i_ < (len) && i_ < 256; i_++) {  \
				snprintf(gh_ + 2 * i_, 3, "%02x", g_[i_]);    \
				snprintf(wh_ + 2 * i_, 3, "%02x", w_[i_]);    \
			}                                                     \
			KG_CHECK(0, "%s: got %s, want %s", what, gh_, wh_);   \
		}                                                             \
	} while (0)

static const char *kg__current = "";

static inline int kg_test_main(void)
{
	int passed = 0, failed = 0;
	for (int i = 0; i < kg__ntests; i++) {
		kg__current = kg__tests[i].name;
		kg__failed_here = 0;
		kg__tests[i].fn();
		if (kg__failed_here) {
			failed++;
		} else {
			passed++;
			printf("ok %s\n", kg__current);
		}
		fflush(stdout);
	}
	printf("# %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#endif
