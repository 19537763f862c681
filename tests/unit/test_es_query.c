/* The API key query DSL (lib/es_query.c): known answers over eight fixed key
 * documents for every query type, sort form, search_after and from/size, and
 * every refusal in ES's words. */
#include <stdio.h>
#include <string.h>

#include "keygate/es_query.h"
#include "kgtest.h"

/* 2026-01-01T00:00:00Z and following days */
#define D(n) (1767225600000LL + (n) * 86400000LL)
#define NOW D(10)

static const char *const doc_text[] = {
	"{\"id\":\"id1\",\"name\":\"alpha\",\"type\":\"rest\",\"creation\":1767225600000,\"invalidated\":false,"
	"\"username\":\"elastic\",\"realm\":\"reserved\",\"realm_type\":\"reserved\","
	"\"metadata\":{\"env\":\"prod\",\"tier\":1,\"tags\":[\"a\",\"b\"]},\"hash\":\"x\"}",
	"{\"id\":\"id2\",\"name\":\"beta\",\"type\":\"rest\",\"creation\":1767312000000,\"expiration\":1769904000000,"
	"\"invalidated\":false,\"username\":\"alice\",\"realm\":\"default_native\",\"metadata\":{\"env\":\"dev\"}}",
	"{\"id\":\"id3\",\"name\":\"Gamma\",\"type\":\"rest\",\"creation\":1767398400000,\"invalidated\":true,"
	"\"invalidation\":1767484800000,\"username\":\"alice\",\"realm\":\"default_native\","
	"\"metadata\":{\"env\":\"prod\",\"nested\":{\"k\":\"v\"}}}",
	"{\"id\":\"id4\",\"name\":\"delta-1\",\"type\":\"rest\",\"creation\":1767484800000,\"expiration\":1767571200000,"
	"\"invalidated\":false,\"username\":\"bob\",\"realm\":\"default_file\",\"metadata\":{}}",
	"{\"id\":\"id5\",\"name\":\"delta-2\",\"type\":\"rest\",\"creation\":1767571200000,\"invalidated\":false,"
	"\"username\":\"bob\",\"realm\":\"default_file\",\"metadata\":{\"tier\":2}}",
	"{\"id\":\"id6\",\"name\":\"epsilon\",\"type\":\"rest\",\"creation\":1767657600000,\"expiration\":1798761600000,"
	"\"invalidated\":false,\"username\":\"elastic\",\"realm\":\"reserved\",\"metadata\":{\"tier\":10}}",
	"{\"id\":\"id7\",\"name\":\"zeta\",\"type\":\"rest\",\"creation\":1767744000000,\"invalidated\":true,"
	"\"invalidation\":1767830400000,\"username\":\"alice\",\"realm\":\"default_native\",\"metadata\":{}}",
	"{\"id\":\"id8\",\"name\":\"eta key\",\"type\":\"rest\",\"creation\":1767744000000,\"invalidated\":false,"
	"\"username\":\"carol\",\"realm\":\"default_native\",\"metadata\":{\"env\":\"prod\"}}",
};
#define NDOCS (sizeof(doc_text) / sizeof(doc_text[0]))

static json_t *docs[NDOCS];

static void load_docs(void)
{
	if (docs[0])
		return;
	for (size_t i = 0; i < NDOCS; i++) {
		json_error_t e;
		docs[i] = json_loads(doc_text[i], 0, &e);
		if (!docs[i]) {
			printf("bad fixture %zu: %s\n", i, e.text);
			__builtin_trap();
		}
	}
}

/* The view: the id only, so answers are easy to compare. */
static json_t *id_view(const json_t *doc, void *data)
{
	(void)data;
	return json_pack("{s:O}", "id", json_object_get(doc, "id"));
}

/* Runs body; returns "total:id,id,..." or "ERR status type reason". */
static const char *run(const char *body)
{
	static char out[4096];
	struct kg_es_fail f = { 0 };
	kg_es_query *q = NULL;
	json_t *res = NULL;
	load_docs();
	kg_err err = kg_es_query_parse(kg_str_c(body), &q, &f);
	if (err == KG_OK)
		err = kg_es_query_run(q, docs, NDOCS, NOW, id_view, NULL, &res, &f);
	if (err) {
		snprintf(out, sizeof(out), "ERR %d %s %s", f.status, f.type ? f.type : "?", f.reason.p ? f.reason.p : "");
	} else {
		size_t n = (size_t)snprintf(out, sizeof(out), "%lld:", (long long)json_integer_value(json_object_get(res, "total")));
		json_t *keys = json_object_get(res, "api_keys"), *k;
		size_t i;
		if (json_integer_value(json_object_get(res, "count")) != (json_int_t)json_array_size(keys))
			snprintf(out, sizeof(out), "count differs from the list");
		else
			json_array_foreach(keys, i, k) {
				n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", i ? "," : "",
				                      json_string_value(json_object_get(k, "id")));
			}
	}
	json_decref(res);
	kg_es_query_free(&q);
	kg_es_fail_free(&f);
	return out;
}

/* The _sort of each answer, compact JSON, joined by ";". */
static const char *run_sort(const char *body)
{
	static char out[4096];
	struct kg_es_fail f = { 0 };
	kg_es_query *q = NULL;
	json_t *res = NULL;
	load_docs();
	out[0] = '\0';
	if (kg_es_query_parse(kg_str_c(body), &q, &f) || kg_es_query_run(q, docs, NDOCS, NOW, id_view, NULL, &res, &f)) {
		snprintf(out, sizeof(out), "ERR %s", f.reason.p ? f.reason.p : "");
	} else {
		size_t n = 0, i;
		json_t *k;
		json_array_foreach(json_object_get(res, "api_keys"), i, k) {
			json_t *s = json_object_get(k, "_sort");
			char *t = s ? json_dumps(s, JSON_COMPACT) : NULL;
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", i ? ";" : "", t ? t : "none");
			free(t);
		}
	}
	json_decref(res);
	kg_es_query_free(&q);
	kg_es_fail_free(&f);
	return out;
}

#define EXPECT(body, want)                                                                    \
	do {                                                                                  \
		const char *got_ = run(body);                                                 \
		KG_CHECK(strcmp(got_, (want)) == 0, "%s\n      got  %s\n      want %s", body, got_, want); \
	} while (0)

#define EXPECT_SORT(body, want)                                                               \
	do {                                                                                  \
		const char *got_ = run_sort(body);                                            \
		KG_CHECK(strcmp(got_, (want)) == 0, "%s\n      got  %s\n      want %s", body, got_, want); \
	} while (0)

KG_TEST(test_empty_body_is_match_all_first_ten_by_creation_then_id)
{
	EXPECT("", "8:id1,id2,id3,id4,id5,id6,id7,id8");
	EXPECT("{}", "8:id1,id2,id3,id4,id5,id6,id7,id8");
	EXPECT("{\"query\":{\"match_all\":{}}}", "8:id1,id2,id3,id4,id5,id6,id7,id8");
	EXPECT("{\"query\":{}}", "8:id1,id2,id3,id4,id5,id6,id7,id8");
	EXPECT_SORT("{\"size\":1}", "none"); /* _sort only when the request sorts */
}

KG_TEST(test_term_is_exact_and_case_sensitive_unless_asked)
{
	EXPECT("{\"query\":{\"term\":{\"name\":\"gamma\"}}}", "0:");
	EXPECT("{\"query\":{\"term\":{\"name\":\"Gamma\"}}}", "1:id3");
	EXPECT("{\"query\":{\"term\":{\"name\":{\"value\":\"gamma\",\"case_insensitive\":true}}}}", "1:id3");
	EXPECT("{\"query\":{\"term\":{\"username\":\"alice\"}}}", "3:id2,id3,id7");
	EXPECT("{\"query\":{\"term\":{\"realm_name\":\"default_file\"}}}", "2:id4,id5");
	EXPECT("{\"query\":{\"term\":{\"type\":\"rest\"}}}", "8:id1,id2,id3,id4,id5,id6,id7,id8");
	EXPECT("{\"query\":{\"term\":{\"invalidated\":true}}}", "2:id3,id7");
	EXPECT("{\"query\":{\"term\":{\"invalidated\":\"false\"}}}", "6:id1,id2,id4,id5,id6,id8");
	EXPECT("{\"query\":{\"term\":{\"creation\":1767398400000}}}", "1:id3");
	EXPECT("{\"query\":{\"term\":{\"creation\":\"2026-01-03\"}}}", "1:id3"); /* a day covers the day */
	EXPECT("{\"query\":{\"term\":{\"id\":\"id4\"}}}", "1:id4");
	EXPECT("{\"query\":{\"term\":{\"name\":{\"value\":\"beta\",\"boost\":2,\"_name\":\"x\"}}}}", "1:id2");
}

KG_TEST(test_metadata_is_flattened_keywords)
{
	EXPECT("{\"query\":{\"term\":{\"metadata.env\":\"prod\"}}}", "3:id1,id3,id8");
	EXPECT("{\"query\":{\"term\":{\"metadata.tier\":1}}}", "1:id1");
	EXPECT("{\"query\":{\"term\":{\"metadata.tier\":\"2\"}}}", "1:id5");
	EXPECT("{\"query\":{\"term\":{\"metadata.tags\":\"b\"}}}", "1:id1");
	EXPECT("{\"query\":{\"term\":{\"metadata.nested.k\":\"v\"}}}", "1:id3");
	EXPECT("{\"query\":{\"term\":{\"metadata.nested\":\"v\"}}}", "0:");
	EXPECT("{\"query\":{\"term\":{\"metadata\":\"dev\"}}}", "1:id2"); /* the root: any leaf */
	/* text order: "10" < "2" */
	EXPECT("{\"query\":{\"range\":{\"metadata.tier\":{\"gte\":\"1\",\"lt\":\"2\"}}}}", "2:id1,id6");
	EXPECT("{\"query\":{\"exists\":{\"field\":\"metadata.tier\"}}}", "3:id1,id5,id6");
	EXPECT("{\"query\":{\"exists\":{\"field\":\"metadata\"}}}", "6:id1,id2,id3,id5,id6,id8");
}

KG_TEST(test_terms_match_prefix_wildcard)
{
	EXPECT("{\"query\":{\"terms\":{\"name\":[\"zeta\",\"alpha\",\"nope\"]}}}", "2:id1,id7");
	EXPECT("{\"query\":{\"terms\":{\"creation\":[1767744000000,\"2026-01-01\"]}}}", "3:id1,id7,id8");
	EXPECT("{\"query\":{\"terms\":{\"invalidated\":[true]}}}", "2:id3,id7");
	EXPECT("{\"query\":{\"terms\":{\"name\":[]}}}", "0:");
	EXPECT("{\"query\":{\"match\":{\"name\":\"eta key\"}}}", "1:id8"); /* keyword: the whole value */
	EXPECT("{\"query\":{\"match\":{\"name\":\"eta\"}}}", "0:");
	EXPECT("{\"query\":{\"match\":{\"name\":{\"query\":\"beta\",\"operator\":\"and\"}}}}", "1:id2");
	EXPECT("{\"query\":{\"prefix\":{\"name\":\"delta\"}}}", "2:id4,id5");
	EXPECT("{\"query\":{\"prefix\":{\"name\":{\"value\":\"GAM\",\"case_insensitive\":true}}}}", "1:id3");
	EXPECT("{\"query\":{\"prefix\":{\"name\":\"GAM\"}}}", "0:");
	EXPECT("{\"query\":{\"wildcard\":{\"name\":\"*ta*\"}}}", "5:id2,id4,id5,id7,id8");
	EXPECT("{\"query\":{\"wildcard\":{\"name\":\"delta-?\"}}}", "2:id4,id5");
	EXPECT("{\"query\":{\"wildcard\":{\"name\":{\"value\":\"g*A\",\"case_insensitive\":true}}}}", "1:id3");
	EXPECT("{\"query\":{\"wildcard\":{\"metadata.env\":\"pr*\"}}}", "3:id1,id3,id8");
}

KG_TEST(test_range_on_dates_with_epoch_strings_and_now_math)
{
	EXPECT("{\"query\":{\"range\":{\"creation\":{\"gte\":1767484800000}}}}", "5:id4,id5,id6,id7,id8");
	EXPECT("{\"query\":{\"range\":{\"creation\":{\"gt\":\"1767484800000\",\"lte\":\"1767657600000\"}}}}",
	       "2:id5,id6");
	EXPECT("{\"query\":{\"range\":{\"creation\":{\"gte\":\"2026-01-02\",\"lt\":\"2026-01-04T00:00:00Z\"}}}}",
	       "2:id2,id3");
	/* lte a day rounds up to its end; gt a day to after its end */
	EXPECT("{\"query\":{\"range\":{\"creation\":{\"lte\":\"2026-01-02\"}}}}", "2:id1,id2");
	EXPECT("{\"query\":{\"range\":{\"creation\":{\"gt\":\"2026-01-06\"}}}}", "2:id7,id8");
	/* now is 2026-01-11 */
	EXPECT("{\"query\":{\"range\":{\"creation\":{\"gte\":\"now-5d/d\"}}}}", "3:id6,id7,id8");
	EXPECT("{\"query\":{\"range\":{\"expiration\":{\"lt\":\"now\"}}}}", "1:id4");
	EXPECT("{\"query\":{\"range\":{\"expiration\":{\"gte\":\"now+1M\"}}}}", "1:id6");
	EXPECT("{\"query\":{\"range\":{\"expiration\":{\"gte\":\"2026-01-01||+1M\"}}}}", "2:id2,id6");
	EXPECT("{\"query\":{\"range\":{\"invalidation\":{\"gte\":0}}}}", "2:id3,id7");
	EXPECT("{\"query\":{\"range\":{\"name\":{\"gte\":\"delta\",\"lt\":\"eta\"}}}}", "3:id4,id5,id6");
	EXPECT("{\"query\":{\"range\":{\"expiration\":{}}}}", "3:id2,id4,id6");
}

KG_TEST(test_exists_and_ids)
{
	EXPECT("{\"query\":{\"exists\":{\"field\":\"expiration\"}}}", "3:id2,id4,id6");
	EXPECT("{\"query\":{\"exists\":{\"field\":\"invalidation\"}}}", "2:id3,id7");
	EXPECT("{\"query\":{\"bool\":{\"must_not\":{\"exists\":{\"field\":\"expiration\"}}}}}",
	       "5:id1,id3,id5,id7,id8");
	EXPECT("{\"query\":{\"ids\":{\"values\":[\"id8\",\"id2\",\"nope\"]}}}", "2:id2,id8");
	EXPECT("{\"query\":{\"ids\":{}}}", "0:");
}

KG_TEST(test_bool_clauses_and_minimum_should_match)
{
	EXPECT("{\"query\":{\"bool\":{\"must\":[{\"term\":{\"username\":\"alice\"}}],"
	       "\"filter\":{\"term\":{\"invalidated\":false}}}}}", "1:id2");
	EXPECT("{\"query\":{\"bool\":{\"should\":[{\"term\":{\"name\":\"alpha\"}},{\"term\":{\"name\":\"beta\"}}]}}}",
	       "2:id1,id2");
	/* with a must clause, should clauses are optional */
	EXPECT("{\"query\":{\"bool\":{\"must\":{\"term\":{\"username\":\"bob\"}},"
	       "\"should\":{\"term\":{\"name\":\"nope\"}}}}}", "2:id4,id5");
	EXPECT("{\"query\":{\"bool\":{\"must\":{\"term\":{\"username\":\"bob\"}},"
	       "\"should\":{\"term\":{\"name\":\"nope\"}},\"minimum_should_match\":1}}}", "0:");
	EXPECT("{\"query\":{\"bool\":{\"should\":[{\"term\":{\"username\":\"alice\"}},{\"term\":{\"invalidated\":true}},"
	       "{\"term\":{\"metadata.env\":\"prod\"}}],\"minimum_should_match\":2}}}", "2:id3,id7");
	EXPECT("{\"query\":{\"bool\":{\"should\":[{\"term\":{\"username\":\"alice\"}},{\"term\":{\"invalidated\":true}},"
	       "{\"term\":{\"metadata.env\":\"prod\"}}],\"minimum_should_match\":\"-1\"}}}", "2:id3,id7");
	EXPECT("{\"query\":{\"bool\":{\"should\":[{\"term\":{\"username\":\"alice\"}},{\"term\":{\"invalidated\":true}},"
	       "{\"term\":{\"metadata.env\":\"prod\"}}],\"minimum_should_match\":\"100%\"}}}", "1:id3");
	EXPECT("{\"query\":{\"bool\":{\"should\":{\"term\":{\"name\":\"alpha\"}},\"minimum_should_match\":2}}}", "0:");
	EXPECT("{\"query\":{\"bool\":{\"must_not\":[{\"term\":{\"realm_name\":\"default_native\"}}]}}}",
	       "4:id1,id4,id5,id6");
	EXPECT("{\"query\":{\"bool\":{}}}", "8:id1,id2,id3,id4,id5,id6,id7,id8");
}

KG_TEST(test_simple_query_string_subset)
{
	EXPECT("{\"query\":{\"simple_query_string\":{\"query\":\"alpha zeta\"}}}", "2:id1,id7");
	EXPECT("{\"query\":{\"simple_query_string\":{\"query\":\"alice -zeta\",\"default_operator\":\"and\"}}}",
	       "2:id2,id3");
	EXPECT("{\"query\":{\"simple_query_string\":{\"query\":\"del*\",\"fields\":[\"name\"]}}}", "2:id4,id5");
	EXPECT("{\"query\":{\"simple_query_string\":{\"query\":\"\\\"eta key\\\"\",\"fields\":[\"na*\"]}}}", "1:id8");
	EXPECT("{\"query\":{\"simple_query_string\":{\"query\":\"prod\",\"fields\":[\"metadata.env\"]}}}",
	       "3:id1,id3,id8");
	EXPECT("{\"query\":{\"simple_query_string\":{\"query\":\"alpha\",\"fields\":[\"nope\"]}}}", "0:");
	EXPECT("{\"query\":{\"simple_query_string\":{\"query\":\"true\",\"fields\":[\"invalidated\"]}}}", "2:id3,id7");
}

KG_TEST(test_sort_forms_and_sort_values)
{
	EXPECT("{\"sort\":\"name\"}", "8:id3,id1,id2,id4,id5,id6,id8,id7");
	/* bytewise: "zeta" > "beta" > "Gamma" */
	EXPECT("{\"sort\":[\"username\",{\"name\":\"desc\"}]}", "8:id7,id2,id3,id5,id4,id8,id6,id1");
	EXPECT("{\"sort\":[{\"creation\":{\"order\":\"desc\"}}],\"size\":3}", "8:id7,id8,id6");
	EXPECT_SORT("{\"sort\":[{\"creation\":{\"order\":\"desc\"}}],\"size\":2}", "[1767744000000];[1767744000000]");
	EXPECT_SORT("{\"sort\":[\"name\"],\"size\":2}", "[\"Gamma\"];[\"alpha\"]");
	/* a key without expiration sorts last both ways, with ES's sentinel values */
	EXPECT("{\"sort\":[\"expiration\",\"_doc\"]}", "8:id4,id2,id6,id1,id3,id5,id7,id8");
	EXPECT_SORT("{\"sort\":[\"expiration\"],\"from\":2,\"size\":2}", "[1798761600000];[9223372036854775807]");
	EXPECT_SORT("{\"sort\":[{\"expiration\":\"desc\"}],\"from\":3,\"size\":1}", "[-9223372036854775808]");
	EXPECT_SORT("{\"sort\":[\"invalidated\",\"_doc\"],\"size\":1}", "[0,0]");
	EXPECT("{\"sort\":[{\"metadata.tier\":\"desc\"}],\"size\":3}", "8:id5,id6,id1");
	EXPECT("{\"sort\":[{\"_doc\":{\"order\":\"desc\"}}],\"size\":2}", "8:id8,id7");
}

KG_TEST(test_from_size_and_search_after_with_strings)
{
	EXPECT("{\"from\":2,\"size\":3}", "8:id3,id4,id5");
	EXPECT("{\"from\":\"7\",\"size\":\"5\"}", "8:id8");
	EXPECT("{\"size\":0}", "8:");
	EXPECT("{\"from\":9990,\"size\":10}", "8:");
	/* the ES REST test's form: values as strings, compared as the field's type */
	EXPECT("{\"sort\":[\"creation\",\"name\"],\"search_after\":[\"1767744000000\",\"eta key\"]}", "8:id7");
	EXPECT("{\"sort\":[\"creation\",\"name\"],\"search_after\":[\"1767225600000\",\"name\"],\"size\":2}",
	       "8:id2,id3");
	EXPECT("{\"sort\":[{\"creation\":\"desc\"}],\"search_after\":[1767484800000]}", "8:id3,id2,id1");
	EXPECT("{\"sort\":[\"name\"],\"search_after\":[\"delta-2\"],\"size\":2}", "8:id6,id8");
	EXPECT("{\"query\":{\"term\":{\"username\":\"alice\"}},\"sort\":[\"creation\"],\"search_after\":[1767312000000]}",
	       "3:id3,id7");
}

KG_TEST(test_refusals_in_es_words)
{
	static const struct {
		const char *body, *want;
	} cases[] = {
		{ "{\"query\":{\"term\":{\"hash\":\"x\"}}}",
		  "ERR 400 illegal_argument_exception Field [hash] is not allowed for querying or aggregation" },
		{ "{\"query\":{\"exists\":{\"field\":\"limited_by\"}}}",
		  "ERR 400 illegal_argument_exception Field [limited_by] is not allowed for querying or aggregation" },
		{ "{\"query\":{\"prefix\":{\"na*\":\"x\"}}}",
		  "ERR 400 illegal_argument_exception Field name pattern [na*] is not allowed for querying or aggregation" },
		{ "{\"sort\":[\"hash\"]}",
		  "ERR 400 illegal_argument_exception Field [hash] is not allowed for querying or aggregation" },
		{ "{\"query\":{\"match_phrase\":{\"name\":\"x\"}}}",
		  "ERR 400 illegal_argument_exception Query type [match_phrase] is not currently supported in this context" },
		{ "{\"query\":{\"bool\":{\"must\":[{\"query_string\":{\"query\":\"x\"}}]}}}",
		  "ERR 400 illegal_argument_exception Query type [query_string] is not currently supported in this context" },
		{ "{\"query\":{\"nope\":{}}}", "ERR 400 parsing_exception unknown query [nope]" },
		{ "{\"query\":{\"terms\":{\"name\":{\"index\":\"i\",\"id\":\"1\",\"path\":\"p\"}}}}",
		  "ERR 400 illegal_argument_exception terms query with terms lookup is not currently supported in this context" },
		{ "{\"query\":{\"range\":{\"creation\":{\"gte\":1,\"relation\":\"within\"}}}}",
		  "ERR 400 illegal_argument_exception range query with relation is not currently supported in this context" },
		{ "{\"query\":{\"prefix\":{\"creation\":\"1\"}}}",
		  "ERR 400 query_shard_exception Can only use prefix queries on keyword, text and wildcard fields - not on "
		  "[creation_time] which is of type [date]" },
		{ "{\"query\":{\"wildcard\":{\"invalidated\":\"t*\"}}}",
		  "ERR 400 query_shard_exception Can only use wildcard queries on keyword, text and wildcard fields - not on "
		  "[api_key_invalidated] which is of type [boolean]" },
		{ "{\"query\":{\"range\":{\"creation\":{\"gte\":\"yesterday\"}}}}",
		  "ERR 400 parse_exception failed to parse date field [yesterday] with format "
		  "[strict_date_optional_time||epoch_millis]" },
		{ "{\"query\":{\"term\":{\"invalidated\":\"yes\"}}}",
		  "ERR 400 illegal_argument_exception Can't parse boolean value [yes], expected [true] or [false]" },
		{ "{\"query\":{\"term\":{\"name\":\"a\",\"username\":\"b\"}}}",
		  "ERR 400 parsing_exception [term] query doesn't support multiple fields, found [name] and [username]" },
		{ "{\"query\":{\"term\":{\"name\":{\"value\":\"a\",\"fuzz\":1}}}}",
		  "ERR 400 parsing_exception [term] query does not support [fuzz]" },
		{ "{\"query\":{\"bool\":{\"musts\":[]}}}", "ERR 400 parsing_exception [bool] query does not support [musts]" },
		{ "{\"foo\":1}", "ERR 400 x_content_parse_exception [query_api_key_request_payload] unknown field [foo]" },
		{ "{\"from\":\"x\"}",
		  "ERR 400 x_content_parse_exception [query_api_key_request_payload] failed to parse field [from]" },
		{ "{\"from\":-1,\"size\":-2}",
		  "ERR 400 action_request_validation_exception Validation Failed: 1: [from] parameter cannot be negative but "
		  "was [-1];2: [size] parameter cannot be negative but was [-2];" },
		{ "{\"from\":9000,\"size\":1001}",
		  "ERR 400 illegal_argument_exception Result window is too large, from + size must be less than or equal to: "
		  "[10000] but was [10001]. See the scroll api for a more efficient way to request large data sets. This "
		  "limit can be set by changing the [index.max_result_window] index level setting." },
		{ "{\"search_after\":[1]}", "ERR 400 illegal_argument_exception Sort must contain at least one field." },
		{ "{\"sort\":[\"name\",\"creation\"],\"search_after\":[\"a\"]}",
		  "ERR 400 illegal_argument_exception search_after has 1 value(s) but sort has 2." },
		{ "{\"sort\":[\"name\"],\"search_after\":[\"a\"],\"from\":1}",
		  "ERR 400 illegal_argument_exception `from` parameter must be set to 0 when `search_after` is used." },
		{ "{\"sort\":[{\"name\":{\"order\":\"up\"}}]}", "ERR 400 illegal_argument_exception Unknown SortOrder [up]" },
		{ "{\"sort\":[5]}", "ERR 400 illegal_argument_exception mal-formatted sort object" },
		{ "{\"aggs\":{}}",
		  "ERR 400 illegal_argument_exception keygate does not support [aggs] in an API key query; query the keys "
		  "and count them on the client" },
		{ "[1]", "ERR 400 x_content_parse_exception [query_api_key_request_payload] Expected START_OBJECT but found "
		         "[START_ARRAY]" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		EXPECT(cases[i].body, cases[i].want);
	const char *got = run("{\"query\":");
	KG_CHECK(strncmp(got, "ERR 400 x_content_parse_exception [", 35) == 0, "not JSON: got %s", got);
	got = run("{\"size\":1,\"size\":2}");
	KG_CHECK(strncmp(got, "ERR 400 x_content_parse_exception", 33) == 0, "duplicate key: got %s", got);
}

/* The caps: nesting, clauses, terms. */
KG_TEST(test_caps_refuse_with_400)
{
	char buf[200000];
	size_t n = 0;
	for (int i = 0; i < KG_ES_QUERY_MAX_DEPTH; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"bool\":{\"must\":");
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"match_all\":{}}");
	for (int i = 0; i < KG_ES_QUERY_MAX_DEPTH; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "}}");
	char body[200100];
	snprintf(body, sizeof(body), "{\"query\":%s}", buf);
	EXPECT(body, "8:id1,id2,id3,id4,id5,id6,id7,id8"); /* 20 levels: fine */
	snprintf(body, sizeof(body), "{\"query\":{\"bool\":{\"must\":%s}}}", buf);
	EXPECT(body, "ERR 400 illegal_argument_exception The nested depth of the query exceeds the maximum nested depth "
	             "for queries of [20]");

	n = (size_t)snprintf(body, sizeof(body), "{\"query\":{\"bool\":{\"should\":[");
	for (int i = 0; i < KG_ES_QUERY_MAX_CLAUSES; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s{\"term\":{\"name\":\"n%d\"}}", i ? "," : "", i);
	snprintf(body + n, sizeof(body) - n, "]}}}");
	EXPECT(body, "ERR 400 too_many_nested_clauses Query contains too many nested clauses; maxClauseCount is set to 1024");

	static char big[65537 * 4 + 100];
	n = (size_t)snprintf(big, sizeof(big), "{\"query\":{\"terms\":{\"name\":[");
	for (int i = 0; i <= KG_ES_QUERY_MAX_TERMS; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"\"", i ? "," : "");
	snprintf(big + n, sizeof(big) - n, "]}}}");
	EXPECT(big, "ERR 400 illegal_argument_exception The number of terms [65537] used in the Terms Query request has "
	            "exceeded the allowed maximum of [65536]. This maximum can be set by changing the "
	            "[index.max_terms_count] index level setting.");
}

int main(void)
{
	int r = kg_test_main();
	for (size_t i = 0; i < NDOCS; i++)
		json_decref(docs[i]);
	return r;
}
