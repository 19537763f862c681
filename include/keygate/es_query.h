/* es_query.h - the query DSL of Elasticsearch's GET|POST /_security/_query/api_key,
 * run over stored API key documents. Pure: no sockets, no store.
 *
 * A request body becomes a kg_es_query (or ES's refusal, in ES's words); the
 * query then filters, sorts and pages an array of key documents (the shape of
 * namespace es.api_key) into ES's response {"total","count","api_keys"}.
 * Which keys the caller may see at all (manage_own_api_key sees only its own)
 * is the caller's business: it passes only those documents.
 *
 * Supported: bool (must, filter, should + minimum_should_match, must_not),
 * match_all, term, terms, match, prefix, wildcard, range, exists, ids and a
 * subset of simple_query_string; fields id, type, name, username, realm_name,
 * creation, expiration, invalidated, invalidation, metadata and metadata.<path>.
 * docs/elasticsearch.md ("Querying API keys") says what differs from ES. */
#ifndef KEYGATE_ES_QUERY_H
#define KEYGATE_ES_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keygate/err.h"
#include "keygate/es.h"
#include "keygate/str.h"

/* Caps on what a client controls. ES's own limits where it has them. */
#define KG_ES_QUERY_MAX_DEPTH 20       /* nesting of bool queries */
#define KG_ES_QUERY_MAX_CLAUSES 1024   /* query clauses in total (ES's max_clause_count) */
#define KG_ES_QUERY_MAX_TERMS 65536    /* values of one terms/ids query (ES's index.max_terms_count) */
#define KG_ES_QUERY_MAX_WINDOW 10000   /* from + size (ES's index.max_result_window) */
#define KG_ES_QUERY_MAX_PATTERN 1024   /* bytes of one prefix/wildcard pattern: bounds the matching work */
#define KG_ES_QUERY_MAX_SORT 16        /* sort keys */

typedef struct kg_es_query kg_es_query;

/* Builds the element of "api_keys" for one matching document: the caller
 * decides the view (without "hash", with or without "limited_by"). doc is
 * borrowed; returns an owned JSON object, or NULL when out of memory. */
typedef json_t *(*kg_es_query_view_fn)(const json_t *doc, void *data);

/* Parses a query request body (borrowed; empty means match all, first 10 by
 * creation). On KG_OK *out is an owned query (kg_es_query_free). On
 * KG_EINVAL f holds ES's 400 refusal (status, exception type, reason);
 * KG_ENOMEM otherwise. *out is NULL unless KG_OK. */
kg_err kg_es_query_parse(kg_str body, kg_es_query **out, struct kg_es_fail *f) KG_MUST_CHECK;

/* Runs q over docs[0..ndocs) (borrowed key documents), "now" being now_ms
 * (epoch ms, for date math such as "now-1d/d"). On KG_OK *result is an owned
 * {"total":N,"count":n,"api_keys":[view(doc)+"_sort"...]} ("_sort" only
 * when the request named a sort). KG_EINVAL with f filled when a refusal
 * depends on the data (none today, kept for the interface); KG_ENOMEM. */
kg_err kg_es_query_run(const kg_es_query *q, json_t *const *docs, size_t ndocs, int64_t now_ms,
                       kg_es_query_view_fn view, void *view_data, json_t **result,
                       struct kg_es_fail *f) KG_MUST_CHECK;

/* Frees *q and sets it to NULL. NULL-safe. */
void kg_es_query_free(kg_es_query **q);

#endif
