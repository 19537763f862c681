/* libFuzzer target: Elasticsearch role descriptors (lib/es_role.c) on any
 * JSON. Normalising must refuse with an answerable ES error or give a normal
 * form that normalises to itself; compiling anything must not crash, and
 * what a compiled permission grants must be an intersection (a key never
 * gets more than its owner). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keygate/es_role.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static char *dump(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	if (!s)
		__builtin_trap();
	return s;
}

static void check_refusal(kg_err err, const struct kg_es_fail *f)
{
	if (err == KG_ENOMEM)
		return;
	if (err != KG_EINVAL || f->status != 400 || !f->type || !f->reason.p || f->reason.n == 0)
		__builtin_trap(); /* every refusal is a 400 with a reason */
}

/* Probes a compiled permission and its intersection with itself and with
 * superuser: the intersection never grants what either side refuses. */
static void probe(const json_t *map)
{
	kg_es_perm *p = NULL, *key = NULL;
	json_t *su = json_pack("{s:o}", "superuser", kg_es_role_superuser());
	if (!su)
		return;
	/* an empty key map means the owner's permission, so compare only a non-empty one */
	if (json_object_size(map) > 0 && kg_es_perm_compile(map, &p) == KG_OK &&
	    kg_es_perm_compile_key(map, su, &key) == KG_OK) {
		static const char *const actions[] = { "cluster:admin/xpack/security/api_key/create",
			                               "cluster:admin/xpack/security/user/put", "cluster:monitor/health",
			                               "cluster:admin/xpack/security/user/authenticate" };
		for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
			if (kg_es_perm_cluster(key, actions[i]) != kg_es_perm_cluster(p, actions[i]))
				__builtin_trap(); /* limited by superuser = itself */
		static const char *const paths[] = { "/", "/a/b", "" };
		for (size_t i = 0; i < 3; i++) {
			kg_str path = kg_str_c(paths[i]);
			bool is_allowed = kg_es_perm_app(p, KG_STR("keygate"), KG_STR("GET"), path);
			if (kg_es_perm_app(key, KG_STR("keygate"), KG_STR("GET"), path) != is_allowed)
				__builtin_trap();
			(void)kg_es_perm_index(p, path, "read");
		}
	}
	kg_es_perm_free(&p);
	kg_es_perm_free(&key);
	json_decref(su);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	json_error_t jerr;
	json_t *in = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
	if (!in)
		return 0;
	for (int for_key = 0; for_key < 2; for_key++) {
		struct kg_es_fail f = { 0 }, g = { 0 };
		json_t *once = NULL, *twice = NULL;
		kg_err err = kg_es_roles_normalise(in, for_key, &once, &f);
		if (err) {
			check_refusal(err, &f);
		} else {
			err = kg_es_roles_normalise(once, for_key, &twice, &g);
			if (err == KG_OK) {
				char *a = dump(once), *b = dump(twice);
				if (strcmp(a, b) != 0)
					__builtin_trap(); /* the normal form is a fixed point */
				free(a);
				free(b);
			} else if (err != KG_ENOMEM) {
				__builtin_trap(); /* a normal form is always accepted */
			}
			probe(once);
		}
		/* one descriptor on its own, named "r" */
		json_t *one = NULL;
		kg_es_fail_free(&g);
		err = kg_es_role_normalise("r", in, for_key, &one, &g);
		if (err)
			check_refusal(err, &g);
		json_decref(one);
		json_decref(once);
		json_decref(twice);
		kg_es_fail_free(&f);
		kg_es_fail_free(&g);
	}
	probe(in); /* compile arbitrary JSON: refusal or a permission, never a crash */
	json_decref(in);
	return 0;
}
