/* store.c - what every kg_store implementation shares: closing, the thin
 * wrappers over the vtable, and the argument checks the interface promises. */
#include <string.h>

#include "keygate/store.h"

void kg_store_close(kg_store **s)
{
	if (!s || !*s)
		return;
	(*s)->ops->close(*s);
	*s = NULL;
}

kg_err kg__store_check_key(kg_str k, bool may_be_empty)
{
	if (k.n == 0)
		return may_be_empty ? KG_OK : KG_EINVAL;
	if (k.n > KG_STORE_MAX_KEY_BYTES)
		return KG_ETOOBIG;
	/* NUL would make a TEXT column ambiguous, and the cache joins ns and key
	 * with one. */
	if (memchr(k.p, '\0', k.n))
		return KG_EINVAL;
	return KG_OK;
}

kg_err kg__store_check_value(kg_str v)
{
	if (v.n > KG_STORE_MAX_VALUE_BYTES)
		return KG_ETOOBIG;
	if (v.n && !v.p)
		return KG_EINVAL;
	return KG_OK;
}

kg_err kg_store_ping(kg_store *s, kg_buf *detail)
{
	return s->ops->ping(s, detail);
}

kg_err kg_store_kv_get(kg_store *s, kg_str ns, kg_str key, kg_buf *value)
{
	return s->ops->kv_get(s, ns, key, value);
}

kg_err kg_store_kv_put(kg_store *s, kg_str ns, kg_str key, kg_str value, bool durable)
{
	return s->ops->kv_put(s, ns, key, value, durable);
}

kg_err kg_store_kv_add(kg_store *s, kg_str ns, kg_str key, kg_str value)
{
	return s->ops->kv_add(s, ns, key, value);
}

kg_err kg_store_kv_del(kg_store *s, kg_str ns, kg_str key)
{
	return s->ops->kv_del(s, ns, key);
}

kg_err kg_store_kv_scan(kg_store *s, kg_str ns, kg_kv_cb cb, void *data)
{
	return s->ops->kv_scan(s, ns, cb, data);
}

kg_err kg_store_kv_scan_all(kg_store *s, kg_kv_ns_cb cb, void *data)
{
	return s->ops->kv_scan_all(s, cb, data);
}

kg_err kg_store_revoke(kg_store *s, kg_str id, int64_t expires_at)
{
	return s->ops->revoke(s, id, expires_at);
}

kg_err kg_store_is_revoked(kg_store *s, kg_str id, bool *out)
{
	return s->ops->is_revoked(s, id, out);
}

kg_err kg_store_revoked_get(kg_store *s, kg_str id, int64_t *expires_at)
{
	return s->ops->revoked_get(s, id, expires_at);
}

kg_err kg_store_revoked_scan(kg_store *s, kg_kv_cb cb, void *data)
{
	return s->ops->revoked_scan(s, cb, data);
}

kg_err kg_store_prune(kg_store *s, int64_t now, int64_t *removed)
{
	int64_t dummy;
	return s->ops->prune(s, now, removed ? removed : &dummy);
}

kg_err kg_store_changes_since(kg_store *s, int64_t after, kg_change_cb cb, void *data, int64_t *last)
{
	int64_t dummy;
	return s->ops->changes_since(s, after, cb, data, last ? last : &dummy);
}

kg_err kg_store_changes_last(kg_store *s, int64_t *seq)
{
	return s->ops->changes_last(s, seq);
}

int kg_store_schema_version(kg_store *s)
{
	return s->ops->schema_version(s);
}

void kg_store_last_error(kg_store *s, kg_buf *out)
{
	if (s->ops->last_error)
		s->ops->last_error(s, out);
}

const char *kg_store_location(kg_store *s)
{
	return s->ops->location ? s->ops->location(s) : s->ops->name;
}
