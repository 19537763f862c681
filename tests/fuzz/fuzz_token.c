/* libFuzzer target: kg_token_open on arbitrary bytes, both formats. */
#include "keygate/token.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static kg_token_keys *keys;
	if (!keys) {
		const char *k[2] = { "hello", "fuzz" };
		if (kg_token_keys_new(k, 2, &keys) != KG_OK)
			return 0;
	}
	struct kg_token_claims c;
	if (kg_token_open(keys, (kg_str){ (const char *)data, size }, &c) == KG_OK) {
		/* whatever opened must be well-formed */
		if (strlen(c.id) != 32 || !c.role[0])
			__builtin_trap();
	}
	return 0;
}
