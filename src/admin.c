/* admin.c - secrets kept in the store, and the one admin password (see
 * admin.h). */
#include <stdio.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keygate/b64.h"
#include "keygate/password.h"
#include "keygate/store.h"
#include "admin.h"

kg_err kg__stored_secret(struct kg_store *store, kg_str ns, const char *key, kg_buf *out, bool *is_new,
                         kg_err (*make)(kg_buf *fresh, void *arg), void *arg)
{
	kg_str k = kg_str_c(key);
	kg_err err = kg_store_kv_get(store, ns, k, out);
	*is_new = false;
	if (err != KG_ENOENT)
		return err;
	kg_buf fresh = { 0 };
	if ((err = make(&fresh, arg)) == KG_OK) {
		err = kg_store_kv_add(store, ns, k, kg_buf_str(&fresh));
		if (err == KG_OK) {
			*is_new = true;
			kg_buf_clear(out);
			err = kg_buf_appends(out, kg_buf_str(&fresh));
		} else if (err == KG_EEXIST) {
			err = kg_store_kv_get(store, ns, k, out);
		}
	}
	kg_buf_free(&fresh, true);
	return err;
}

/* A generated admin password: 24 characters of base64url (144 bits). Printed
 * once, to the terminal that started keygate; only its bcrypt hash is kept. */
static kg_err make_admin_hash(kg_buf *out, void *arg)
{
	const char *uses = arg;
	unsigned char raw[18];
	kg_buf plain = { 0 };
	kg_err err = RAND_bytes(raw, sizeof(raw)) == 1 ? KG_OK : KG_EIO;
	if (!err)
		err = kg_b64_encode(KG_B64_URL_RAW, raw, sizeof(raw), &plain);
	if (!err)
		err = kg_bcrypt_hash(kg_buf_str(&plain), 10, out);
	if (!err)
		fprintf(stderr,
		        "keygate: no admin password is set; generated one (shown once, only its hash is "
		        "stored):\n\n    %s\n\n%s\n\n",
		        plain.p, uses);
	OPENSSL_cleanse(raw, sizeof(raw));
	kg_buf_free(&plain, true);
	return err;
}

kg_err kg__admin_hash(const kg_config *cfg, struct kg_store *store, const char *uses, char *out, size_t cap,
                      kg_buf *why)
{
	kg_buf hash = { 0 };
	bool is_new;
	kg_err err = KG_OK;
	out[0] = '\0';
	if (cfg->admin_password[0]) {
		if (!kg_bcrypt_is_valid_hash(cfg->admin_password)) {
			kg_buf_printf(why, "admin_password: not a bcrypt hash ($2a$, $2b$ or $2y$ and 53 characters); "
			                   "make one with `keygate bcrypt PASSWORD`");
			return KG_ECONFIG;
		}
		snprintf(out, cap, "%s", cfg->admin_password);
	} else if (store) {
		/* kept where restricted mode has always kept it */
		err = kg__stored_secret(store, KG_STR("bee"), "admin_password_hash", &hash, &is_new, make_admin_hash,
		                        (void *)uses);
		if (err)
			kg_buf_printf(why, "admin password: cannot store or read it: %s", kg_strerror(err));
		else
			snprintf(out, cap, "%s", hash.p);
	}
	kg_buf_free(&hash, true);
	return err;
}
