/* strength.c - password strength as AvalancheGo judged it: a zxcvbn
 * estimate (Debian's C zxcvbn) over the first 50 characters; below zxcvbn's
 * "fair" score, about 10^6 guesses, is too weak. Only the first 50 are
 * read because zxcvbn's time grows fast with length (AvalancheGo capped it
 * for the same reason: a DoS vector). */
#include <math.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <zxcvbn.h>

#include "keygate/password.h"

#define KG_STRENGTH_PREFIX 50

double kg_password_guesses_log10(kg_str pw)
{
	char buf[KG_STRENGTH_PREFIX + 1];
	size_t n = pw.n < KG_STRENGTH_PREFIX ? pw.n : KG_STRENGTH_PREFIX;
	memcpy(buf, pw.p, n);
	buf[n] = '\0';
	double bits = ZxcvbnMatch(buf, NULL, NULL); /* log2 of the guesses */
	OPENSSL_cleanse(buf, sizeof(buf));
	return bits * log10(2.0);
}

bool kg_password_is_weak(kg_str pw)
{
	return kg_password_guesses_log10(pw) < KG_PASSWORD_MIN_GUESSES_LOG10;
}
