/* libFuzzer target: ES time values (kg_es_time_parse) on any bytes. A value
 * is a non-negative count of milliseconds; a refusal is a 400 whose body is
 * JSON; a plain "<digits>ms" means exactly that many milliseconds. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keygate/es.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	kg_str in = { (const char *)data, size };
	struct kg_es_fail f = { 0 };
	int64_t ms = -1;
	kg_buf out = { 0 };
	kg_err err = kg_es_time_parse(in, "expiration", &ms, &f);
	if (err == KG_OK) {
		if (ms < 0)
			__builtin_trap();
		/* digits then "ms", nothing else: the number itself */
		if (size > 2 && size < 19 && memcmp(data + size - 2, "ms", 2) == 0) {
			bool is_digits = true;
			int64_t v = 0;
			for (size_t i = 0; i + 2 < size; i++) {
				is_digits = is_digits && data[i] >= '0' && data[i] <= '9';
				v = v * 10 + (data[i] - '0');
			}
			if (is_digits && v != ms)
				__builtin_trap();
		}
	} else if (err == KG_EINVAL) {
		if (f.status != 400 || !f.type || f.reason.n == 0)
			__builtin_trap();
		json_error_t jerr;
		if (kg_es_error_json(&out, &f, KG_STR_NULL) != KG_OK)
			__builtin_trap();
		json_t *j = json_loadb(out.p, out.n, 0, &jerr);
		if (!j)
			__builtin_trap(); /* a client's bytes quoted in the reason keep the body JSON */
		json_decref(j);
	} else if (err != KG_ENOMEM) {
		__builtin_trap();
	}
	kg_buf_free(&out, false);
	kg_es_fail_free(&f);
	return 0;
}
