/* es.c - Elasticsearch's security APIs on the wire: what every part of the
 * dialect shares. */
#include <stdarg.h>
#include <string.h>

#include "keygate/es.h"

kg_err kg_es_fail_set(struct kg_es_fail *f, int status, const char *type, const char *fmt, ...)
{
	va_list ap;
	kg_buf_clear(&f->reason);
	f->status = status;
	f->type = type;
	f->nvalidation = 0;
	va_start(ap, fmt);
	kg_err err = kg_buf_vprintf(&f->reason, fmt, ap);
	va_end(ap);
	return err ? err : KG_EINVAL;
}

kg_err kg_es_fail_validation_add(struct kg_es_fail *f, const char *fmt, ...)
{
	va_list ap;
	if (f->nvalidation == 0) {
		kg_buf_clear(&f->reason);
		f->status = 400;
		f->type = "action_request_validation_exception";
	}
	kg_err err = kg_buf_printf(&f->reason, "%s%u: ", f->nvalidation == 0 ? "Validation Failed: " : "",
	                           f->nvalidation + 1);
	if (!err) {
		va_start(ap, fmt);
		err = kg_buf_vprintf(&f->reason, fmt, ap);
		va_end(ap);
	}
	if (!err)
		err = kg_buf_append(&f->reason, ";", 1);
	f->nvalidation++;
	return err ? err : KG_EINVAL;
}

void kg_es_fail_free(struct kg_es_fail *f)
{
	kg_buf_free(&f->reason, false);
	memset(f, 0, sizeof(*f));
}
