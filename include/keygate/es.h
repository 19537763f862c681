/* es.h - Elasticsearch's security APIs on the wire: the pieces every part of
 * the Elasticsearch dialect shares. Pure: no sockets, no store.
 *
 * An ES refusal is a status, an exception type and a reason in ES's exact
 * words; clients and scripts match on all three. */
#ifndef KEYGATE_ES_H
#define KEYGATE_ES_H

#include <stdbool.h>
#include <stdint.h>

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

#endif
