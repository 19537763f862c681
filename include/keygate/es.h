/* es.h - Elasticsearch's security APIs on the wire: the pieces every part of
 * the Elasticsearch dialect shares. Pure: no sockets, no store.
 *
 * An ES refusal is a status, an exception type and a reason in ES's exact
 * words; clients and scripts match on all three. */
#ifndef KEYGATE_ES_H
#define KEYGATE_ES_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "keygate/err.h"
#include "keygate/str.h"

/* An ES error as the client will see it. */
struct kg_es_fail {
	int status;       /* 400, 401, 403, 404, 409, 500 */
	const char *type; /* static: "action_request_validation_exception", "illegal_argument_exception", ... */
	kg_buf reason;    /* ES's wording; free with kg_es_fail_free */
	unsigned nvalidation; /* problems numbered so far (action_request_validation_exception) */
};

/* Sets f to one error (replacing what it held): KG_EINVAL, or KG_ENOMEM. */
kg_err kg_es_fail_set(struct kg_es_fail *f, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds one numbered problem to a 400 action_request_validation_exception:
 * the reason reads "Validation Failed: 1: <first>;2: <second>;" as ES's
 * ValidationException writes it. KG_EINVAL, or KG_ENOMEM. */
kg_err kg_es_fail_validation_add(struct kg_es_fail *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void kg_es_fail_free(struct kg_es_fail *f);

/* Java's String.length of UTF-8 text: its UTF-16 units, which is what ES's
 * length limits count (a character beyond U+FFFF counts twice). */
size_t kg_es_utf16_length(kg_str s);

/* Jackson's name for the token a JSON value starts with ("START_OBJECT",
 * "VALUE_STRING", ...), as ES's parse messages print it. */
const char *kg_es_token_name(const json_t *v);
/* MetadataUtils.containsReservedMetadata: a top-level key starting with '_'
 * (reserved for the system in every ES metadata object). */
bool kg_es_has_reserved_key(const json_t *metadata);
/* Nesting depth of v (0 for a scalar, 1 + the deepest member for a
 * container), counted no further than needed: a result above limit means
 * deeper than limit, whatever the exact depth. */
size_t kg_es_json_depth(const json_t *v, size_t limit);

/* ---- Sizes ES enforces, and keygate's caps on what ES leaves open ---- */
#define KG_ES_NAME_MAX 256        /* api key name, in characters (ES counts UTF-16 units; see es.c) */
#define KG_ES_ID_MAX 64           /* an id in an ApiKey credential (keygate's are 20) */
#define KG_ES_SECRET_MAX 256      /* a secret in an ApiKey credential (keygate's are 22) */
#define KG_ES_JSON_DEPTH_MAX 20   /* nesting of metadata and role descriptors */
#define KG_ES_IDS_MAX 10000       /* ids in one invalidate or bulk update (ES: unbounded) */
#define KG_ES_ID_LEN 20           /* keygate's key ids: 15 random bytes, URL-safe base64 */
#define KG_ES_SECRET_LEN 22       /* keygate's secrets: 16 random bytes, URL-safe base64 */

/* ---- Time values (ES's TimeValue.parseTimeValue) ---- */

/* Parses an ES time value: an integer and a unit nanos, micros, ms, s, m
 * (lower case only: M is months to ES), h or d (units case-insensitive
 * otherwise, spaces around number and unit allowed), or a bare 0. nanos and
 * micros round down to whole milliseconds as ES's getMillis does. setting
 * (borrowed, e.g. "expiration") names the value in ES's messages. Refused
 * with 400 illegal_argument_exception in ES's words: no or unknown unit,
 * fractions ("1.5h"; ES's parser refuses them too), negative values (ES keeps
 * -1 as a magic "unset"; keygate refuses it: an expiration of -1 would make a
 * key born expired), and values whose milliseconds do not fit in int64.
 * *ms >= 0 on success. KG_EINVAL (f filled) or KG_ENOMEM. */
kg_err kg_es_time_parse(kg_str s, const char *setting, int64_t *ms, struct kg_es_fail *f) KG_MUST_CHECK;

/* ---- Error bodies ---- */

/* Writes ES's error body for f to out (appending):
 *   {"error":{"root_cause":[{"type":T,"reason":R<extra>}],"type":T,"reason":R<extra>},"status":S}
 * extra (borrowed, may be empty) is zero or more JSON members without braces,
 * e.g. "additional_unsuccessful_credentials":"API key: ...","header":{...};
 * ES writes an exception's metadata and headers both in the root cause and
 * at the top, so it goes in both places. Bytes of the reason that are not
 * UTF-8 become U+FFFD so the body is always JSON. KG_ENOMEM only. */
kg_err kg_es_error_json(kg_buf *out, const struct kg_es_fail *f, kg_str extra) KG_MUST_CHECK;

/* ES's 401 reasons, printf formats taking (int)len, ptr of the path or name. */
#define KG_ES_REASON_MISSING "missing authentication credentials for REST request [%.*s]"
#define KG_ES_REASON_BAD_CREDENTIALS \
	"unable to authenticate with provided credentials and anonymous access is not allowed for this request"
#define KG_ES_REASON_BAD_USER "unable to authenticate user [%.*s] for REST request [%.*s]"

/* The three WWW-Authenticate header lines ES sends with every 401, in its
 * order, each ending in CRLF: a static string for the response head. */
extern const char kg_es_www_authenticate_lines[];

/* Writes the 401 security_exception body for reason: the WWW-Authenticate
 * values in "header" in both places, and, when why is non-empty (borrowed,
 * e.g. "api key is expired"), "additional_unsuccessful_credentials":
 * "API key: <why>" as recent ES does. KG_ENOMEM only. */
kg_err kg_es_error_401(kg_buf *out, kg_str reason, kg_str why) KG_MUST_CHECK;

/* ---- The ApiKey credential ---- */

/* Decodes what follows "ApiKey " in an Authorization header: standard base64
 * (padding optional, as Java's decoder takes it; canonical trailing bits) of
 * "id:secret", split at the first ':'. buf (cap bytes, borrowed) receives the
 * decoded bytes and *id / *secret point into it. KG_EBADCRED for anything
 * else, an id outside 1..KG_ES_ID_MAX bytes or a secret outside
 * 1..KG_ES_SECRET_MAX bytes, or a decoding that does not fit in cap; buf is
 * then wiped. */
kg_err kg_es_apikey_decode(kg_str value, char *buf, size_t cap, kg_str *id, kg_str *secret) KG_MUST_CHECK;

/* ---- Keys and secrets ---- */

/* Makes a new key: id = 15 random bytes, secret = 16 random bytes, each as
 * URL-safe base64 without padding, NUL-terminated (20 and 22 characters).
 * KG_EIO when the random generator fails. */
kg_err kg_es_key_new(char id[KG_ES_ID_LEN + 1], char secret[KG_ES_SECRET_LEN + 1]) KG_MUST_CHECK;

/* Appends the "encoded" credential: standard base64 of "id:secret" with
 * padding (60 characters for keygate's sizes). KG_ENOMEM, KG_ETOOBIG. */
kg_err kg_es_encoded(kg_str id, kg_str secret, kg_buf *out) KG_MUST_CHECK;

/* Appends the stored form of secret: "s1$<salt>$<mac>", salt 16 random bytes
 * and mac = HMAC-SHA256(key = salt, secret), both URL-safe base64 without
 * padding (a salted fast hash: see es.c for why that is enough). KG_EIO
 * (random generator), KG_ENOMEM. */
kg_err kg_es_secret_hash(kg_str secret, kg_buf *out) KG_MUST_CHECK;

/* True when stored (a kg_es_secret_hash output) matches secret; compared in
 * constant time. False for any malformed stored value. */
bool kg_es_secret_verify(kg_str stored, kg_str secret) KG_MUST_CHECK;

/* kg_es_secret_verify in two steps, for a caller that keeps the decoded
 * form: decode a stored value into its salt and MAC (false when it is not a
 * kg_es_secret_hash output), then check a secret against them (HMAC-SHA256,
 * constant-time compare, buffers wiped). */
bool kg_es_secret_decode(kg_str stored, unsigned char salt[16], unsigned char mac[32]) KG_MUST_CHECK;
bool kg_es_secret_matches(const unsigned char salt[16], const unsigned char mac[32], kg_str secret) KG_MUST_CHECK;

/* Internal (unit tests): kg_es_secret_hash with a given salt. */
kg_err kg__es_secret_hash_salted(kg_str secret, const unsigned char salt[16], kg_buf *out) KG_MUST_CHECK;

/* ---- Request bodies of the key APIs ----
 * Each parser takes the body as the client sent it (borrowed) and refuses as
 * ES does: not JSON or not an object -> 400 parse_exception; a field ES's
 * parser does not know -> 400 x_content_parse_exception
 * "[L:C] [<parser>] unknown field [<name>]"; a field of the wrong JSON type ->
 * 400 x_content_parse_exception "[L:C] [<parser>] <field> doesn't support
 * values of type: <TOKEN>"; then the request's validation
 * (action_request_validation_exception, numbered, ES's order). json_t results
 * are owned by the struct. The caller frees the struct with the matching
 * _free whatever the result: after a validation refusal it is still filled,
 * so the caller can validate role_descriptors (es_role.c) and add their
 * problems to the same f, numbered after these, as ES lists them. */

struct kg_es_create {
	kg_buf name;               /* 1..256 characters */
	int64_t expiration_ms;     /* epoch ms; 0: never expires */
	json_t *role_descriptors;  /* an object, or NULL when absent; not validated here (es_role.c) */
	json_t *metadata;          /* an object, or NULL when absent */
};

/* POST|PUT /_security/api_key. now_ms: the request's time, for expiration. */
kg_err kg_es_create_parse(kg_str body, int64_t now_ms, struct kg_es_create *out, struct kg_es_fail *f) KG_MUST_CHECK;
void kg_es_create_free(struct kg_es_create *c);

struct kg_es_update {
	json_t *role_descriptors; /* object or NULL (absent: keep; {}: clear) */
	json_t *metadata;         /* object or NULL (absent: keep; {}: clear) */
	bool has_expiration;      /* expiration present */
	int64_t expiration_ms;    /* epoch ms when has_expiration */
	json_t *ids;              /* bulk only: array of 1..KG_ES_IDS_MAX non-empty strings */
};

/* PUT /_security/api_key/<id> (is_bulk false; the body may be empty) and
 * POST /_security/api_key/_bulk_update (is_bulk true; "ids" required). */
kg_err kg_es_update_parse(kg_str body, bool is_bulk, int64_t now_ms, struct kg_es_update *out,
                          struct kg_es_fail *f) KG_MUST_CHECK;
void kg_es_update_free(struct kg_es_update *u);

struct kg_es_invalidate {
	json_t *ids;         /* array of non-empty strings ("id" becomes a one-element array), or NULL */
	kg_buf name;         /* empty when absent (ES treats blank as absent) */
	kg_buf username;
	kg_buf realm_name;
	bool is_owner;
};

/* DELETE /_security/api_key. */
kg_err kg_es_invalidate_parse(kg_str body, struct kg_es_invalidate *out, struct kg_es_fail *f) KG_MUST_CHECK;
void kg_es_invalidate_free(struct kg_es_invalidate *inv);

struct kg_es_get {
	kg_buf id, name, username, realm_name; /* percent-decoded; empty when absent or blank */
	bool is_owner, is_active_only, with_limited_by;
};

/* GET /_security/api_key: the query string (without '?', borrowed). Values
 * are percent-decoded ('+' is a space, as ES's RestUtils decodes); a
 * parameter ES does not know is refused as ES's REST layer refuses it (400
 * illegal_argument_exception "request [/_security/api_key] contains
 * unrecognized parameter: [x]"); booleans are "true", "false" or empty
 * (true), anything else 400 as ES's Booleans.parseBoolean says. */
kg_err kg_es_get_params(kg_str query, struct kg_es_get *out, struct kg_es_fail *f) KG_MUST_CHECK;
void kg_es_get_free(struct kg_es_get *g);

/* Strict percent-decoding of one query value into out (replacing it): %XX
 * with two hex digits, '+' as space when is_form. KG_EINVAL for a bad
 * escape, a NUL, or a result that is not UTF-8. */
kg_err kg_es_percent_decode(kg_str in, bool is_form, kg_buf *out) KG_MUST_CHECK;

/* ---- Key documents for output ---- */

/* The element get and query return for a stored key document (the es.api_key
 * shape): id, name, type, creation, expiration?, invalidated, invalidation?,
 * username, realm, realm_type, metadata, role_descriptors, keygate's last_used (epoch
 * ms, when the document has it), and limited_by
 * ([ {...} ]) only when with_limited_by; never the hash. Returns owned, NULL
 * on no memory. */
json_t *kg_es_key_view(const json_t *doc, bool with_limited_by);

/* True when the key is neither invalidated nor expired at now_ms. */
bool kg_es_key_is_active(const json_t *doc, int64_t now_ms);

#endif
