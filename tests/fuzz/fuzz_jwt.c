/* libFuzzer target: kg_jwt_verify. The first byte chooses the mode: a raw
 * token, or claims bytes that get a valid header and HS256 signature, so the
 * claims parsers behind the signature check are reached too. */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "keygate/b64.h"
#include "keygate/jwt.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";
	kg_arena a;
	struct kg_jwt_claims c;
	const char *msg = NULL;
	kg_buf tok = { 0 };
	if (size == 0)
		return 0;
	if (data[0] & 1) {
		unsigned char mac[32];
		unsigned int len = 0;
		if (kg_buf_appends(&tok, KG_STR("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.")) ||
		    kg_b64_encode(KG_B64_URL_RAW, data + 1, size - 1, &tok) ||
		    !HMAC(EVP_sha256(), key, 32, (unsigned char *)tok.p, tok.n, mac, &len) || kg_buf_append(&tok, ".", 1) ||
		    kg_b64_encode(KG_B64_URL_RAW, mac, len, &tok)) {
			kg_buf_free(&tok, false);
			return 0;
		}
	} else if (kg_buf_append(&tok, data + 1, size - 1)) {
		return 0;
	}
	kg_arena_init(&a, 0);
	enum kg_jwt_result r = kg_jwt_verify(key, kg_buf_str(&tok), 1700000000, &a, &c, &msg);
	if (r == KG_JWT_OK) {
		(void)kg_jwt_allows_path(&c, KG_STR("/ext/info"));
		for (size_t i = 0; i < c.nendpoints; i++)
			if (c.endpoints[i].n && !c.endpoints[i].p)
				__builtin_trap();
	} else if (!msg) {
		__builtin_trap(); /* every refusal names its reason */
	}
	kg_arena_destroy(&a);
	kg_buf_free(&tok, false);
	return 0;
}
