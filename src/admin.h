/* admin.h - secrets a dialect keeps in the store, and the one admin
 * password: Bee's POST /auth password and Elasticsearch's `elastic` user's
 * are the same bcrypt hash (admin_password, or generated on first start). */
#ifndef KG_ADMIN_H
#define KG_ADMIN_H

#include "kg.h"

/* The record (ns, key) of store in *out; when absent, make() draws one and
 * the first instance to store it wins (several may start at once). *is_new:
 * this call stored it. */
kg_err kg__stored_secret(struct kg_store *store, kg_str ns, const char *key, kg_buf *out, bool *is_new,
                         kg_err (*make)(kg_buf *fresh, void *arg), void *arg);

/* The admin password's bcrypt hash into out (cap bytes): admin_password when
 * set (checked to be bcrypt), else the stored one, generated and printed
 * once to stderr when there is none; uses says where it is used (printed
 * with it). Without a store and a setting, out is "" (nothing matches it). */
kg_err kg__admin_hash(const kg_config *cfg, struct kg_store *store, const char *uses, char *out, size_t cap,
                      kg_buf *why);

#endif
