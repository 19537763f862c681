#include "keygate/policy.h"
#include "kgtest.h"

/* one row per (Bee rule, method): a concrete path, the method, the lowest role allowed */
static const struct { const char *path, *method, *lowest, *pattern; } rows[] = {
	{ "/bytes/x1/y2", "GET", "consumer", "/bytes/*" },
	{ "/bytes/x1/y2", "HEAD", "consumer", "/bytes/*" },
	{ "/chunks/x1/y2", "GET", "consumer", "/chunks/*" },
	{ "/bzz/x1/y2", "GET", "consumer", "/bzz/*" },
	{ "/bzz/x1/y2", "HEAD", "consumer", "/bzz/*" },
	{ "/pss/subscribe/x1/y2", "GET", "consumer", "/pss/subscribe/*" },
	{ "/feeds/x1/y2", "GET", "consumer", "/feeds/*" },
	{ "/transactions/x1/y2", "GET", "consumer", "/transactions/*" },
	{ "/consumed", "GET", "consumer", "/consumed" },
	{ "/consumed/x1/y2", "GET", "consumer", "/consumed/*" },
	{ "/chunks/stream", "GET", "consumer", "/chunks/stream" },
	{ "/stewardship/x1/y2", "PUT", "consumer", "/stewardship/*" },
	{ "/rchash", "GET", "consumer", "/rchash" },
	{ "/bytes", "POST", "creator", "/bytes" },
	{ "/chunks", "POST", "creator", "/chunks" },
	{ "/bzz/x1/y2", "PATCH", "creator", "/bzz/*" },
	{ "/bzz", "POST", "creator", "/bzz" },
	{ "/tags", "GET", "creator", "/tags" },
	{ "/tags", "POST", "creator", "/tags" },
	{ "/tags/x1/y2", "GET", "creator", "/tags/*" },
	{ "/tags/x1/y2", "DELETE", "creator", "/tags/*" },
	{ "/tags/x1/y2", "PATCH", "creator", "/tags/*" },
	{ "/pins/x1/y2", "GET", "creator", "/pins/*" },
	{ "/pins/x1/y2", "DELETE", "creator", "/pins/*" },
	{ "/pins/x1/y2", "POST", "creator", "/pins/*" },
	{ "/pss/send/x1/y2", "POST", "creator", "/pss/send/*" },
	{ "/soc/x1/y2", "POST", "creator", "/soc/*" },
	{ "/feeds/x1/y2", "POST", "creator", "/feeds/*" },
	{ "/stewardship/x1/y2", "GET", "creator", "/stewardship/*" },
	{ "/chequebook/cashout/x1/y2", "POST", "accountant", "/chequebook/cashout/*" },
	{ "/chequebook/withdraw", "POST", "accountant", "/chequebook/withdraw" },
	{ "/chequebook/deposit", "POST", "accountant", "/chequebook/deposit" },
	{ "/transactions/x1/y2", "POST", "accountant", "/transactions/*" },
	{ "/transactions/x1/y2", "DELETE", "accountant", "/transactions/*" },
	{ "/pins", "GET", "maintainer", "/pins" },
	{ "/stamps", "GET", "maintainer", "/stamps" },
	{ "/stamps/x1/y2", "GET", "maintainer", "/stamps/*" },
	{ "/stamps/x1/y2", "POST", "maintainer", "/stamps/*" },
	{ "/stamps/topup/x1/y2", "PATCH", "maintainer", "/stamps/topup/*" },
	{ "/stamps/dilute/x1/y2", "PATCH", "maintainer", "/stamps/dilute/*" },
	{ "/stake", "GET", "maintainer", "/stake" },
	{ "/stake", "DELETE", "maintainer", "/stake" },
	{ "/stake/x1/y2", "POST", "maintainer", "/stake/*" },
	{ "/addresses", "GET", "maintainer", "/addresses" },
	{ "/blocklist", "GET", "maintainer", "/blocklist" },
	{ "/connect/x1/y2", "POST", "maintainer", "/connect/*" },
	{ "/peers", "GET", "maintainer", "/peers" },
	{ "/peers/x1/y2", "DELETE", "maintainer", "/peers/*" },
	{ "/pingpong/x1/y2", "POST", "maintainer", "/pingpong/*" },
	{ "/topology", "GET", "maintainer", "/topology" },
	{ "/welcome-message", "GET", "maintainer", "/welcome-message" },
	{ "/welcome-message", "POST", "maintainer", "/welcome-message" },
	{ "/balances", "GET", "maintainer", "/balances" },
	{ "/balances/x1/y2", "GET", "maintainer", "/balances/*" },
	{ "/accounting", "GET", "maintainer", "/accounting" },
	{ "/chequebook/cashout/x1/y2", "GET", "maintainer", "/chequebook/cashout/*" },
	{ "/chequebook/cheque/x1/y2", "GET", "maintainer", "/chequebook/cheque/*" },
	{ "/chequebook/cheque", "GET", "maintainer", "/chequebook/cheque" },
	{ "/chequebook/address", "GET", "maintainer", "/chequebook/address" },
	{ "/chequebook/balance", "GET", "maintainer", "/chequebook/balance" },
	{ "/wallet", "GET", "maintainer", "/wallet" },
	{ "/wallet/withdraw/x1/y2", "POST", "maintainer", "/wallet/withdraw/*" },
	{ "/chunks/x1/y2", "GET", "consumer", "/chunks/*" },
	{ "/chunks/x1/y2", "DELETE", "maintainer", "/chunks/*" },
	{ "/reservestate", "GET", "maintainer", "/reservestate" },
	{ "/chainstate", "GET", "maintainer", "/chainstate" },
	{ "/settlements/x1/y2", "GET", "maintainer", "/settlements/*" },
	{ "/settlements", "GET", "maintainer", "/settlements" },
	{ "/transactions", "GET", "maintainer", "/transactions" },
	{ "/redistributionstate", "GET", "maintainer", "/redistributionstate" },
	{ "/debugstore", "GET", "maintainer", "/debugstore" },
	{ "/debug/x1/y2", "GET", "maintainer", "/debug/*" },
	{ "/metrics", "GET", "maintainer", "/metrics" },
	{ "/node", "GET", "maintainer", "/node" },
	{ "/loggers", "GET", "maintainer", "/loggers" },
	{ "/loggers/x1/y2", "GET", "maintainer", "/loggers/*" },
	{ "/loggers/x1/y2", "PUT", "maintainer", "/loggers/*" },
	{ "/status", "GET", "maintainer", "/status" },
	{ "/status/peers", "GET", "maintainer", "/status/peers" },
	{ "/rchash/x1/y2", "GET", "maintainer", "/rchash/*" },
	{ "/batches", "GET", "maintainer", "/batches" },
	{ "/timesettlements", "GET", "maintainer", "/timesettlements" },
};

static const char *const ladder[] = { "consumer", "creator", "accountant", "maintainer" };

static int rank(const char *role)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(ladder[i], role) == 0)
			return i;
	return -1;
}

static kg_policy *bee(void)
{
	kg_policy *p = NULL;
	kg_err err = kg_policy_load_preset("bee", &p);
	KG_CHECK(err == KG_OK, "preset bee: %s", kg_errname(err));
	return err ? NULL : p;
}

static bool allows(kg_policy *p, const char *role, const char *method, const char *path)
{
	return kg_policy_allows(p, kg_policy_role(p, kg_str_c(role)), kg_str_c(method), kg_str_c(path));
}

KG_TEST(test_each_rule_lowest_role_passes_and_the_one_below_is_refused)
{
	kg_policy *p = bee();
	for (size_t i = 0; p && i < sizeof(rows) / sizeof(rows[0]); i++) {
		int r = rank(rows[i].lowest);
		KG_CHECK(allows(p, rows[i].lowest, rows[i].method, rows[i].path), "%s %s (%s): %s refused", rows[i].method,
		         rows[i].path, rows[i].pattern, rows[i].lowest);
		for (int up = r + 1; up < 4; up++)
			KG_CHECK(allows(p, ladder[up], rows[i].method, rows[i].path), "%s %s: %s (above %s) refused",
			         rows[i].method, rows[i].path, ladder[up], rows[i].lowest);
		if (r > 0)
			KG_CHECK(!allows(p, ladder[r - 1], rows[i].method, rows[i].path), "%s %s (%s): %s allowed", rows[i].method,
			         rows[i].path, rows[i].pattern, ladder[r - 1]);
		/* the optional /v1 prefix */
		char v1[256];
		snprintf(v1, sizeof(v1), "/v1%s", rows[i].path);
		KG_CHECK(allows(p, rows[i].lowest, rows[i].method, v1), "%s %s refused", rows[i].method, v1);
		/* auditor: reads everything, writes nothing */
		bool is_read = strcmp(rows[i].method, "GET") == 0 || strcmp(rows[i].method, "HEAD") == 0;
		KG_CHECK(allows(p, "auditor", rows[i].method, rows[i].path) == is_read, "auditor %s %s", rows[i].method,
		         rows[i].path);
	}
	kg_policy_free(&p);
}

KG_TEST(test_bees_own_test_cases)
{
	kg_policy *p = bee();
	if (!p)
		return;
	KG_CHECK(allows(p, "maintainer", "POST", "/pingpong/someone"), "maintainer POST /pingpong/someone");
	KG_CHECK(allows(p, "creator", "POST", "/bzz"), "creator POST /bzz?name=x");
	KG_CHECK(!allows(p, "consumer", "POST", "/pingpong/x"), "consumer POST /pingpong/x");
	KG_CHECK(!allows(p, "maintainer", "POST", "/i-dont-exist"), "maintainer POST /i-dont-exist");
	KG_CHECK(!allows(p, "maintainer", "DELETE", "/pingpong/someone"), "maintainer DELETE /pingpong/someone");
	KG_CHECK(allows(p, "consumer", "GET", "/bzz/ref/path/deeper"), "/bzz/*/* is the prefix /bzz/");
	KG_CHECK(allows(p, "maintainer", "GET", "/rchash/1/2"), "/rchash/* (Bee misspelt it /rcash/*)");
	KG_CHECK(!allows(p, "maintainer", "GET", "/rcash/1"), "the misspelling is not a route");
	KG_CHECK(!allows(p, "consumer", "GET", "/bytes"), "/bytes/* does not cover /bytes");
	kg_policy_free(&p);
}

KG_TEST(test_roles_and_inheritance)
{
	kg_policy *p = bee();
	if (!p)
		return;
	KG_CHECK(kg_policy_role_count(p) == 5, "consumer, creator, accountant, maintainer, auditor");
	kg_rolemask m = kg_policy_role_closure(p, kg_policy_role(p, KG_STR("maintainer")));
	for (int i = 0; i < 4; i++)
		KG_CHECK(m & kg_policy_role(p, kg_str_c(ladder[i])), "maintainer includes %s", ladder[i]);
	KG_CHECK(!(m & kg_policy_role(p, KG_STR("auditor"))), "maintainer does not include auditor");
	kg_policy_free(&p);
}

int main(void)
{
	return kg_test_main();
}
