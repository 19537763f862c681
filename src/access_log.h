/* access_log.h - one line per request (access_log.c), buffered per worker
 * and written by the worker's log timer. */
#ifndef KG_ACCESS_LOG_H
#define KG_ACCESS_LOG_H

#include "keygate/err.h"

struct kg_conn;
struct kg_worker;

kg_err kg__access_log_open(const char *where);
void kg__access_log_close(void);
void kg__access_log(const struct kg_conn *c);
/* writes w's buffered lines now; _free also releases the buffer (worker exit) */
void kg__access_log_flush(struct kg_worker *w);
void kg__access_log_free(struct kg_worker *w);

#endif
