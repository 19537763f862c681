/* libFuzzer target: Elasticsearch's privileges bodies (lib/es_priv.c): the
 * PUT /_security/privilege body and the has_privileges body. A refusal is
 * always a 400 with a reason; what is accepted is stored in a set, viewed,
 * and evaluated against a permission without crashing, and a superuser has
 * every privilege it asked about that exists. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keygate/es_priv.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void check_refusal(kg_err err, const struct kg_es_fail *f)
{
	if (err == KG_ENOMEM)
		return;
	if (err != KG_EINVAL || f->status != 400 || !f->type || !f->reason.p || f->reason.n == 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	kg_str body = { (const char *)data, size };
	struct kg_es_fail f = { 0 };
	json_t *docs = NULL, *set = json_object();
	if (!set)
		return 0;

	kg_err err = kg_es_privileges_parse(body, &docs, &f);
	if (err) {
		check_refusal(err, &f);
	} else {
		size_t i;
		json_t *d;
		json_array_foreach (docs, i, d)
			if (kg_es_privs_set_add(set, d) == KG_EINVAL)
				__builtin_trap(); /* a parsed document is always storable */
		json_decref(kg_es_privileges_put_answer(docs, NULL));
		json_decref(kg_es_privs_view(set, KG_STR(""), KG_STR("")));
		json_decref(kg_es_privs_view(set, KG_STR("app*"), KG_STR("read,write")));
		json_decref(kg_es_privs_delete_answer(set, KG_STR("app"), KG_STR("a,,b")));
	}
	kg_es_fail_free(&f);

	struct kg_es_has_privs req;
	struct kg_es_fail g = { 0 };
	err = kg_es_has_privileges_parse(body, "fuzzer", &req, &g);
	if (err) {
		check_refusal(err, &g);
	} else {
		json_t *su = json_pack("{s:o}", "superuser", kg_es_role_superuser());
		kg_es_perm *p = NULL;
		if (su && kg_es_perm_compile(su, &p) == KG_OK) {
			json_t *ans = NULL;
			struct kg_es_fail h = { 0 };
			err = kg_es_has_privileges_eval(&req, p, set, "fuzzer", &ans, &h);
			if (err)
				check_refusal(err, &h);
			else if (ans && !json_is_true(json_object_get(ans, "has_all_requested")))
				__builtin_trap(); /* a superuser holds everything that exists (restricted indices too) */
			json_decref(ans);
			kg_es_fail_free(&h);
		}
		kg_es_perm_free(&p);
		json_decref(su);
	}
	kg_es_has_privileges_free(&req);
	kg_es_fail_free(&g);

	json_t *rd = json_loadb((const char *)data, size, 0, NULL);
	json_t *up = NULL;
	if (rd && kg_es_user_privileges(rd, &up) == KG_OK && !up)
		__builtin_trap();
	json_decref(up);
	json_decref(rd);
	json_decref(docs);
	json_decref(set);
	return 0;
}
