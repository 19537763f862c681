/* libFuzzer target: the Basic users file parser, and the name index behind
 * it (every parsed user is found again by name). */
#include "keygate/password.h"
#include "keygate/policy.h"
#include "keygate/users.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static kg_policy *policy;
	if (!policy && kg_policy_load_preset("bee", &policy) != KG_OK)
		__builtin_trap();
	kg_config_errors errs = { 0 };
	kg_users *u = NULL;
	kg_err err = kg_users_parse("fuzz", (const char *)data, size, policy, &u, &errs);
	if (err == KG_OK) {
		if (errs.n)
			__builtin_trap(); /* success means no problem was reported */
		for (size_t i = 0; i < kg_users_count(u); i++) {
			const struct kg_user *a = kg_users_at(u, i);
			if (!a || kg_users_find(u, a->name) != a || !a->roles || a->name.n == 0 ||
			    memchr(a->name.p, ':', a->name.n) || !kg_bcrypt_is_valid_hash(a->hash))
				__builtin_trap(); /* each user is whole and found again by its name */
		}
		kg_users_free(&u);
	} else if (err == KG_ECONFIG && errs.n == 0) {
		__builtin_trap(); /* a refusal must say why */
	}
	kg_config_errors_free(&errs);
	return 0;
}
