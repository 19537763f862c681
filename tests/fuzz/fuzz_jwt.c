/* libFuzzer target: kg_jwt_verify on arbitrary bytes. */
#include "keygate/jwt.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";
	kg_arena a;
	struct kg_jwt_claims c;
	const char *msg = NULL;
	kg_arena_init(&a, 0);
	if (kg_jwt_verify(key, (kg_str){ (const char *)data, size }, 1700000000, &a, &c, &msg) == KG_JWT_OK)
		(void)kg_jwt_allows_path(&c, KG_STR("/ext/info"));
	else if (!msg)
		__builtin_trap(); /* every refusal names its reason */
	kg_arena_destroy(&a);
	return 0;
}
