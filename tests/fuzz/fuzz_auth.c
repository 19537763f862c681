/* libFuzzer target: credential classification, Basic decoding and base64 of any header. */
#include "keygate/auth.h"
#include "keygate/b64.h"
#include "keygate/users.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	kg_str in = { (const char *)data, size };
	struct kg_cred c = kg_cred_parse(in);
	if (c.value.n > size || (c.value.n && (c.value.p < in.p || c.value.p + c.value.n > in.p + size)))
		__builtin_trap(); /* the value must stay inside the header */
	char bbuf[KG_USER_MAX_NAME + KG_USER_MAX_PASSWORD + 2];
	kg_str user, password;
	if (kg_basic_decode(c.value, bbuf, sizeof(bbuf), &user, &password) == KG_OK &&
	    (user.n == 0 || user.n > KG_USER_MAX_NAME || password.n > KG_USER_MAX_PASSWORD ||
	     memchr(user.p, ':', user.n) || user.p != bbuf || password.p != user.p + user.n + 1))
		__builtin_trap(); /* user:password split at the first colon, inside the buffer, within the caps */
	kg_buf out = { 0 }, again = { 0 };
	for (int a = 0; a < 2; a++) {
		if (kg_b64_decode((enum kg_b64_alphabet)a, in, 1 << 20, &out) == KG_OK) {
			/* canonical: decoding then encoding gives the input back */
			kg_buf_clear(&again);
			if (kg_b64_encode((enum kg_b64_alphabet)a, out.p, out.n, &again) != KG_OK || again.n != size ||
			    (size && memcmp(again.p, data, size) != 0))
				__builtin_trap();
		}
	}
	kg_buf_free(&out, false);
	kg_buf_free(&again, false);
	return 0;
}
