#include <stdio.h>

#include "keygate/password.h"
#include "kgtest.h"

KG_TEST(test_weak_and_strong_passwords)
{
	static const struct {
		const char *pw;
		bool weak;
	} cases[] = {
		{ "", true },
		{ "password", true },
		{ "123456", true },
		{ "qwerty", true },
		{ "letmein1", true },
		{ "aaaaaaaaaaaaaaaaaaaa", true },
		{ "Str0ng-Passw0rd-for-keygate-2026!", false },
		{ "correct horse battery staple", false },
		{ "x7#Kp2$vQ9", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double g = kg_password_guesses_log10(kg_str_c(cases[i].pw));
		KG_CHECK(kg_password_is_weak(kg_str_c(cases[i].pw)) == cases[i].weak, "'%s': 10^%.1f guesses, %s expected",
		         cases[i].pw, g, cases[i].weak ? "weak" : "strong");
	}
}

KG_TEST(test_only_the_first_50_characters_count)
{
	char weak_then_strong[120];
	/* 50 weak characters then a strong tail: the tail is never read */
	snprintf(weak_then_strong, sizeof(weak_then_strong), "%s%s", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	         "x7#Kp2$vQ9-Z!m4");
	KG_CHECK(kg_password_is_weak(kg_str_c(weak_then_strong)), "a strong tail after 50 characters must not count");
	char long_input[100001];
	memset(long_input, 'q', sizeof(long_input) - 1);
	long_input[sizeof(long_input) - 1] = '\0';
	KG_CHECK(kg_password_is_weak(kg_str_c(long_input)), "a huge input is judged on its prefix, quickly");
}

int main(void)
{
	return kg_test_main();
}
