/* bee.c - Swarm Bee's /auth and /refresh protocol: bodies in, answers out.
 * Pure: src/api_bee.c does the I/O, the password check and the minting. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "keygate/auth.h"
#include "keygate/b64.h"
#include "keygate/bee.h"

static kg_err refuse(struct kg_bee_request *out, const char *message)
{
	out->status = 400;
	snprintf(out->message, sizeof(out->message), "%s", message);
	return KG_EINVAL;
}

kg_err kg_bee_parse_request(kg_str body, const kg_policy *policy, int64_t max_expiry_s, bool is_role_optional,
                            struct kg_bee_request *out)
{
	json_error_t jerr;
	json_t *j = json_loadb(body.p ? body.p : "", body.n, JSON_REJECT_DUPLICATES, &jerr);
	kg_err err = KG_OK;

	memset(out, 0, sizeof(*out));
	if (!j || !json_is_object(j)) {
		err = refuse(out, "Unmarshal json body");
		goto out;
	}
	json_t *r = json_object_get(j, "role"), *e = json_object_get(j, "expiry");
	if (!e || !json_is_integer(e) || json_integer_value(e) <= 0) {
		err = refuse(out, "Expiry duration must be a positive number");
		goto out;
	}
	if (json_integer_value(e) > max_expiry_s) {
		out->status = 400;
		snprintf(out->message, sizeof(out->message), "Expiry duration exceeds the maximum of %lld seconds",
		         (long long)max_expiry_s);
		err = KG_EINVAL;
		goto out;
	}
	out->expiry_s = json_integer_value(e);
	if (r && !json_is_null(r)) {
		const char *rs = json_is_string(r) ? json_string_value(r) : NULL;
		if (rs && kg_policy_role(policy, kg_str_c(rs)) && strlen(rs) <= KG_BEE_MAX_ROLE) {
			snprintf(out->role, sizeof(out->role), "%s", rs);
		} else {
			kg_buf roles = { 0 };
			for (size_t i = 0; i < kg_policy_role_count(policy); i++)
				kg_buf_printf(&roles, "%s%s", i ? ", " : "", kg_policy_role_name(policy, i));
			out->status = 400;
			snprintf(out->message, sizeof(out->message), "Unknown role '%.64s'; valid roles: %s",
			         rs ? rs : "(not a string)", roles.p ? roles.p : "(none)");
			kg_buf_free(&roles, false);
			err = KG_EINVAL;
			goto out;
		}
	} else if (!is_role_optional) {
		err = refuse(out, "A role is required");
		goto out;
	}
out:
	if (err)
		out->expiry_s = 0, out->role[0] = '\0';
	json_decref(j);
	return err;
}

kg_err kg_bee_basic_password(kg_str authorization, kg_buf *password)
{
	struct kg_cred cred = kg_cred_parse(authorization);
	kg_buf dec = { 0 };
	kg_err err = KG_EBADCRED;

	if (cred.kind != KG_CRED_BASIC || kg_b64_decode(KG_B64_STD, cred.value, KG_BEE_MAX_BASIC, &dec) != KG_OK)
		goto out;
	const char *colon = dec.n ? memchr(dec.p, ':', dec.n) : NULL;
	if (!colon)
		goto out;
	size_t off = (size_t)(colon - dec.p) + 1;
	err = kg_buf_append(password, dec.p + off, dec.n - off);
out:
	kg_buf_free(&dec, true);
	return err;
}

kg_err kg_bee_refresh_role(const kg_policy *policy, const char *held, const char *requested, char *out,
                           const char **message)
{
	if (!requested[0]) {
		snprintf(out, KG_BEE_MAX_ROLE + 1, "%s", held);
		return KG_OK;
	}
	kg_rolemask has = kg_policy_role_closure(policy, kg_policy_role(policy, kg_str_c(held)));
	kg_rolemask want = kg_policy_role(policy, kg_str_c(requested));
	if (!has || (want & has) != want) {
		*message = "A refreshed token cannot have a higher role than the presented one";
		return KG_EFORBIDDEN;
	}
	snprintf(out, KG_BEE_MAX_ROLE + 1, "%s", requested);
	return KG_OK;
}

kg_err kg_bee_key_json(kg_str token, kg_buf *out)
{
	kg_err err = kg_buf_appends(out, KG_STR("{\"key\":"));
	if (!err)
		err = kg_buf_append_json_string(out, token);
	if (!err)
		err = kg_buf_appends(out, KG_STR("}"));
	return err;
}
