/* libFuzzer target: the policy YAML loader, then a decision on the result. */
#include "keygate/policy.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	kg_policy *p = NULL;
	kg_config_errors errs = { 0 };
	if (kg_policy_load_yaml("fuzz", (const char *)data, size, &p, &errs) == KG_OK) {
		(void)kg_policy_allowed(p, KG_STR("GET"), KG_STR("/bytes/abc"));
		(void)kg_policy_is_public(p, KG_STR("/v1/health"));
		kg_policy_free(&p);
	} else if (errs.n == 0) {
		__builtin_trap(); /* a refused policy always says why */
	}
	kg_config_errors_free(&errs);
	return 0;
}
