/* libFuzzer target: the ApiKey credential (kg_es_apikey_decode), stored
 * secret hashes (kg_es_secret_verify) and the get API's query string on any
 * bytes. A decoded credential is within the caps, points into the buffer
 * and encodes back to a credential that decodes to the same id and secret;
 * a refusal leaves the buffer wiped; a malformed hash never verifies. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keygate/es.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void check_get(kg_str in)
{
	struct kg_es_get g;
	struct kg_es_fail f = { 0 };
	kg_err err = kg_es_get_params(in, &g, &f);
	if (err == KG_OK) {
		/* ES's rules hold for what is accepted */
		if (((g.id.n || g.name.n) && (g.username.n || g.realm_name.n)) ||
		    (g.is_owner && (g.username.n || g.realm_name.n)) || (g.id.n && g.name.n))
			__builtin_trap();
	} else if (err == KG_EINVAL) {
		kg_buf out = { 0 };
		json_error_t jerr;
		if (f.status != 400 || kg_es_error_json(&out, &f, KG_STR_NULL) != KG_OK)
			__builtin_trap();
		json_t *j = json_loadb(out.p, out.n, 0, &jerr);
		if (!j)
			__builtin_trap();
		json_decref(j);
		kg_buf_free(&out, false);
	} else if (err != KG_ENOMEM) {
		__builtin_trap();
	}
	kg_es_get_free(&g);
	kg_es_fail_free(&f);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	kg_str in = { (const char *)data, size };
	char buf[400];
	kg_str id, secret;
	memset(buf, 0x5a, sizeof(buf));
	kg_err err = kg_es_apikey_decode(in, buf, sizeof(buf), &id, &secret);
	if (err == KG_OK) {
		if (id.n < 1 || id.n > KG_ES_ID_MAX || secret.n < 1 || secret.n > KG_ES_SECRET_MAX || id.p != buf ||
		    secret.p != id.p + id.n + 1 || memchr(id.p, ':', id.n))
			__builtin_trap();
		kg_buf enc = { 0 };
		char buf2[400];
		kg_str id2, secret2;
		if (kg_es_encoded(id, secret, &enc) != KG_OK ||
		    kg_es_apikey_decode(kg_buf_str(&enc), buf2, sizeof(buf2), &id2, &secret2) != KG_OK ||
		    !kg_str_eq(id, id2) || !kg_str_eq(secret, secret2))
			__builtin_trap();
		kg_buf_free(&enc, true);
		/* a secret verifies against its own hash and not against a changed one */
		kg_buf h = { 0 };
		if (kg_es_secret_hash(secret, &h) != KG_OK || !kg_es_secret_verify(kg_buf_str(&h), secret))
			__builtin_trap();
		h.p[h.n - 1] = h.p[h.n - 1] == 'A' ? 'B' : 'A';
		if (kg_es_secret_verify(kg_buf_str(&h), secret))
			__builtin_trap();
		kg_buf_free(&h, false);
	} else if (err == KG_EBADCRED) {
		for (size_t i = 0; i < sizeof(buf); i++)
			if (buf[i] != 0)
				__builtin_trap(); /* a refused credential leaves nothing behind */
	} else {
		__builtin_trap();
	}
	/* the input as a stored hash: only a well-formed one can match */
	if (kg_es_secret_verify(in, KG_STR("secret")) && (size != 69 || memcmp(data, "s1$", 3) != 0))
		__builtin_trap();
	check_get(in);
	return 0;
}
