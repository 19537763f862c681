/* libFuzzer target: the API key query DSL (lib/es_query.c) on any bytes.
 * A refusal is a 400 with a type and a reason; a query runs over a few fixed
 * key documents without crashing, and its answer keeps ES's shape:
 * count <= size, total >= count, count == the length of api_keys. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keygate/es_query.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char *const doc_text[] = {
	"{\"id\":\"a1\",\"name\":\"alpha\",\"type\":\"rest\",\"creation\":1767225600000,\"invalidated\":false,"
	"\"username\":\"elastic\",\"realm\":\"reserved\",\"metadata\":{\"env\":\"prod\",\"n\":1,\"t\":[\"x\",{\"y\":true}]}}",
	"{\"id\":\"b2\",\"name\":\"beta\",\"type\":\"rest\",\"creation\":1767312000000,\"expiration\":1769904000000,"
	"\"invalidated\":true,\"invalidation\":1767312000001,\"username\":\"alice\",\"realm\":\"default_native\","
	"\"metadata\":{}}",
	"{\"id\":\"c3\",\"name\":\"Gamma key\",\"type\":\"rest\",\"creation\":1767312000000,\"invalidated\":false,"
	"\"username\":\"bob\",\"realm\":\"default_file\",\"metadata\":{\"env\":null,\"deep\":{\"a\":{\"b\":2.5}}}}",
	"{\"id\":\"d4\",\"name\":5,\"metadata\":7}", /* malformed: must not crash either */
};
#define NDOCS (sizeof(doc_text) / sizeof(doc_text[0]))

static json_t *view(const json_t *doc, void *data)
{
	(void)data;
	return json_deep_copy(doc);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static json_t *docs[NDOCS];
	if (!docs[0])
		for (size_t i = 0; i < NDOCS; i++)
			if (!(docs[i] = json_loads(doc_text[i], 0, NULL)))
				__builtin_trap();
	struct kg_es_fail f = { 0 };
	kg_es_query *q = NULL;
	json_t *res = NULL;
	kg_err err = kg_es_query_parse((kg_str){ (const char *)data, size }, &q, &f);
	if (err == KG_EINVAL) {
		if (f.status != 400 || !f.type || !f.reason.p || !f.reason.n || q)
			__builtin_trap();
	} else if (err == KG_OK) {
		/* the size asked, read back from the body when it parses */
		json_int_t want = 10;
		json_t *body = json_loadb((const char *)data, size, 0, NULL);
		json_t *sz = json_object_get(body, "size");
		if (json_is_integer(sz))
			want = json_integer_value(sz);
		else if (json_is_string(sz))
			want = strtoll(json_string_value(sz), NULL, 10);
		json_decref(body);
		err = kg_es_query_run(q, docs, NDOCS, 1767225600000LL + (json_int_t)(size * 3600000), view, NULL, &res, &f);
		if (err == KG_OK) {
			json_int_t total = json_integer_value(json_object_get(res, "total"));
			json_int_t count = json_integer_value(json_object_get(res, "count"));
			json_t *keys = json_object_get(res, "api_keys");
			if (!json_is_array(keys) || count != (json_int_t)json_array_size(keys) || count > want ||
			    total < count || total > (json_int_t)NDOCS)
				__builtin_trap();
		} else if (err != KG_ENOMEM) {
			__builtin_trap();
		}
	} else if (err != KG_ENOMEM) {
		__builtin_trap();
	}
	json_decref(res);
	kg_es_query_free(&q);
	kg_es_fail_free(&f);
	return 0;
}
