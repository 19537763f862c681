/* libFuzzer target: ES's file realm parsers (users, users_roles, roles.yml)
 * and the native realm's request bodies. The first byte picks the parser;
 * the rest is its input. */
#include <string.h>

#include "keygate/es_realm.h"
#include "keygate/password.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

#define BOB "bob:$2y$04$abcdefghijklmnopqrstuu5Jt7pYn9Rjx1oC4xDwIhR3DmHA4Ayqa\n"

static void check_realm(const kg_es_file_realm *r)
{
	for (size_t i = 0; i < kg_es_file_realm_user_count(r); i++) {
		const struct kg_es_file_user *u = kg_es_file_realm_user_at(r, i);
		if (!u || kg_es_file_realm_user(r, kg_str_c(u->name)) != u || !kg_bcrypt_is_valid_hash(u->hash) ||
		    strchr(u->name, ':'))
			__builtin_trap(); /* each user is whole and found again by its name */
		for (size_t k = 0; k < u->nroles; k++)
			if (!u->roles[k] || !u->roles[k][0])
				__builtin_trap();
	}
	const char *name;
	json_t *d;
	json_object_foreach((json_t *)kg_es_file_realm_roles(r), name, d) {
		if (!json_is_object(d) || kg_es_file_realm_role(r, kg_str_c(name)) != d)
			__builtin_trap(); /* every role is a descriptor, found by its name */
	}
}

static void check_fail(kg_err err, const struct kg_es_fail *f)
{
	if (err == KG_EINVAL && (f->status != 400 || !f->type || f->reason.n == 0))
		__builtin_trap(); /* a refusal says why, as ES would */
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	kg_config_errors errs = { 0 };
	struct kg_es_fail f = { 0 };
	struct kg_es_user_req req;
	kg_es_file_realm *r = NULL;
	kg_err err = KG_OK;
	json_t *role = NULL;

	switch (data[0] % 6) {
	case 0:
	case 1:
	case 2:
		if (kg_es_file_realm_new(&r))
			return 0;
		/* users_roles needs users to attach to: give it a fixed one */
		if (data[0] % 6 == 1 && kg_es_file_users_parse(r, "users", BOB, strlen(BOB), &errs) != KG_OK)
			__builtin_trap();
		err = (data[0] % 6 == 0   ? kg_es_file_users_parse
		       : data[0] % 6 == 1 ? kg_es_file_users_roles_parse
		                          : kg_es_file_roles_parse)(r, "fuzz", text, len, &errs);
		if (err == KG_ECONFIG && errs.n == 0)
			__builtin_trap(); /* a refusal must say why */
		if (err == KG_OK && errs.n)
			__builtin_trap(); /* success means no problem was reported */
		check_realm(r);
		kg_es_file_realm_free(&r);
		break;
	case 3:
		err = kg_es_user_parse(KG_STR("fuzz"), (kg_str){ text, len }, len & 1, &req, &f);
		check_fail(err, &f);
		if (err == KG_OK) {
			if (!json_is_object(req.doc) || json_object_get(req.doc, "password_hash") ||
			    (req.password_hash && !kg_bcrypt_is_valid_hash(req.password_hash)) ||
			    (req.has_password && req.password.n < 6))
				__builtin_trap();
			json_t *view = kg_es_user_view(req.doc);
			if (!view)
				__builtin_trap();
			json_decref(view);
		}
		kg_es_user_req_free(&req);
		break;
	case 4:
		err = kg_es_password_parse((kg_str){ text, len }, &req, &f);
		check_fail(err, &f);
		if (err == KG_OK && !req.has_password && !req.password_hash)
			__builtin_trap();
		kg_es_user_req_free(&req);
		break;
	default:
		err = kg_es_role_body_parse(KG_STR("r"), (kg_str){ text, len }, &role, &f);
		check_fail(err, &f);
		if (err == KG_OK && !json_is_object(role))
			__builtin_trap();
		json_decref(role);
		break;
	}
	kg_es_fail_free(&f);
	kg_config_errors_free(&errs);
	return 0;
}
