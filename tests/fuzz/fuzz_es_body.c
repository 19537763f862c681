/* libFuzzer target: the create, update, bulk update and invalidate bodies
 * of ES's key APIs (the first byte picks the parser). A refusal is an ES
 * error whose body is JSON; an accepted request keeps ES's rules. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keygate/es.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

#define NOW 1767225600000LL

static bool has_reserved_key(const json_t *metadata)
{
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)metadata, k, v)
		if (k[0] == '_')
			return true;
	return false;
}

static void check_refusal(kg_err err, const struct kg_es_fail *f)
{
	if (err != KG_EINVAL)
		__builtin_trap();
	if (f->status != 400 || !f->type || f->reason.n == 0)
		__builtin_trap();
	kg_buf out = { 0 };
	json_error_t jerr;
	if (kg_es_error_json(&out, f, KG_STR_NULL) != KG_OK)
		__builtin_trap();
	json_t *j = json_loadb(out.p, out.n, 0, &jerr);
	if (!j || json_integer_value(json_object_get(j, "status")) != 400)
		__builtin_trap();
	json_decref(j);
	kg_buf_free(&out, false);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (size == 0)
		return 0;
	kg_str in = { (const char *)data + 1, size - 1 };
	struct kg_es_fail f = { 0 };
	kg_err err;
	switch (data[0] % 4) {
	case 0: {
		struct kg_es_create c;
		err = kg_es_create_parse(in, NOW, &c, &f);
		if (err == KG_OK) {
			if (c.name.n == 0 || c.name.p[0] == '_' || (unsigned char)c.name.p[0] <= ' ' ||
			    (unsigned char)c.name.p[c.name.n - 1] <= ' ' || c.name.n > 4 * KG_ES_NAME_MAX ||
			    (c.expiration_ms != 0 && c.expiration_ms < NOW) || (c.metadata && has_reserved_key(c.metadata)) ||
			    (c.role_descriptors && !json_is_object(c.role_descriptors)))
				__builtin_trap();
		} else if (err != KG_ENOMEM) {
			check_refusal(err, &f);
		}
		kg_es_create_free(&c);
		break;
	}
	case 1:
	case 2: {
		struct kg_es_update u;
		bool is_bulk = data[0] % 4 == 2;
		err = kg_es_update_parse(in, is_bulk, NOW, &u, &f);
		if (err == KG_OK) {
			if ((u.metadata && has_reserved_key(u.metadata)) || (u.has_expiration && u.expiration_ms < NOW) ||
			    (is_bulk && (json_array_size(u.ids) == 0 || json_array_size(u.ids) > KG_ES_IDS_MAX)) ||
			    (!is_bulk && u.ids))
				__builtin_trap();
		} else if (err != KG_ENOMEM) {
			check_refusal(err, &f);
		}
		kg_es_update_free(&u);
		break;
	}
	default: {
		struct kg_es_invalidate inv;
		err = kg_es_invalidate_parse(in, &inv, &f);
		if (err == KG_OK) {
			bool has_user = inv.username.n || inv.realm_name.n;
			if ((!inv.ids && !inv.name.n && !has_user && !inv.is_owner) || (inv.ids && inv.name.n) ||
			    ((inv.ids || inv.name.n) && has_user) || (inv.is_owner && has_user))
				__builtin_trap();
			for (size_t i = 0; inv.ids && i < json_array_size(inv.ids); i++)
				if (json_string_length(json_array_get(inv.ids, i)) == 0)
					__builtin_trap();
		} else if (err != KG_ENOMEM) {
			check_refusal(err, &f);
		}
		kg_es_invalidate_free(&inv);
		break;
	}
	}
	kg_es_fail_free(&f);
	return 0;
}
