/* store.h - durable state behind one interface.
 *
 * kg_store is a vtable: the SQLite implementation (store_sqlite.c) is the
 * embedded default; PostgreSQL (store_pg.c, a later issue) sits behind the
 * same calls. All calls are blocking and thread-safe: call them from the
 * libuv thread pool or at start-up, never from an event loop. The hot path
 * reads the kg_cache (cache.h), which is filled from the store and kept
 * current by replaying the change log.
 *
 * Data model (schema version 1):
 *   kv(ns, key, value, updated_at)       small named records: secrets (hashed or
 *                                        encrypted by the caller), settings
 *   revoked(id, expires_at)              revoked token ids; pruned after expiry
 *   changes(seq, ns, key, op, at)        append-only change log: every write
 *                                        above also appends here, in one transaction
 *                                        (a revocation logs ns "revoked", key id,
 *                                        op KG_CHANGE_REVOKE)
 *
 * Conventions shared by every implementation:
 * - ns must be non-empty; ns, key and revoked ids are at most
 *   KG_STORE_MAX_KEY_BYTES and contain no NUL byte (KG_EINVAL / KG_ETOOBIG);
 *   values are at most KG_STORE_MAX_VALUE_BYTES (KG_ETOOBIG).
 * - Callbacks (kg_kv_cb, kg_kv_ns_cb, kg_change_cb) run while the store is
 *   locked: they must not call the store. A callback that returns anything
 *   but KG_OK stops the iteration, and the call returns that error.
 * - Failures the backend reports come back as KG_ESTORE (KG_ENOMEM,
 *   KG_EUNAVAILABLE when the database stayed busy past the timeout);
 *   last_error says what happened.
 */
#ifndef KEYGATE_STORE_H
#define KEYGATE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "keygate/err.h"
#include "keygate/str.h"

typedef struct kg_store kg_store;

#define KG_STORE_SCHEMA_VERSION 1
#define KG_STORE_MAX_KEY_BYTES 1024
#define KG_STORE_MAX_VALUE_BYTES (1024 * 1024)
/* prune() drops change-log rows older than this. Caches replay the log every
 * few seconds; one that has not for half this long reloads everything
 * instead (cache.c), so trimming never hides a change from it. */
#define KG_STORE_CHANGES_KEEP_SECONDS (7 * 24 * 3600)
/* The namespace that change-log rows of revocations carry. */
#define KG_STORE_NS_REVOKED "revoked"

enum kg_change_op { KG_CHANGE_PUT = 1, KG_CHANGE_DEL = 2, KG_CHANGE_REVOKE = 3 };

struct kg_change {
	int64_t seq;
	kg_str ns;  /* borrowed for the callback's duration */
	kg_str key; /* borrowed for the callback's duration */
	enum kg_change_op op;
	int64_t at; /* unix seconds */
};

typedef kg_err (*kg_change_cb)(void *data, const struct kg_change *c);
/* key and value are borrowed for the callback's duration. */
typedef kg_err (*kg_kv_cb)(void *data, kg_str key, kg_str value);
typedef kg_err (*kg_kv_ns_cb)(void *data, kg_str ns, kg_str key, kg_str value);

struct kg_store_ops {
	const char *name; /* "sqlite", "postgresql" */
	void (*close)(kg_store *s);
	/* Health: KG_OK when the store answers; detail (owned by caller's buf) says why not. */
	kg_err (*ping)(kg_store *s, kg_buf *detail);
	/* Replaces the content of *value with the record's; KG_ENOENT when absent. */
	kg_err (*kv_get)(kg_store *s, kg_str ns, kg_str key, kg_buf *value);
	/* Inserts or replaces. durable: the commit reaches the disk before returning. */
	kg_err (*kv_put)(kg_store *s, kg_str ns, kg_str key, kg_str value, bool durable);
	/* Inserts only if absent (KG_EEXIST otherwise): first-start secret generation
	 * that several instances may race on. */
	kg_err (*kv_add)(kg_store *s, kg_str ns, kg_str key, kg_str value);
	/* KG_ENOENT (and nothing logged) when absent. */
	kg_err (*kv_del)(kg_store *s, kg_str ns, kg_str key);
	/* Every record of ns, in key order. */
	kg_err (*kv_scan)(kg_store *s, kg_str ns, kg_kv_cb cb, void *data);
	/* Revoking an id again keeps the later of the two expiry times. */
	kg_err (*revoke)(kg_store *s, kg_str id, int64_t expires_at);
	kg_err (*is_revoked)(kg_store *s, kg_str id, bool *out);
	kg_err (*revoked_scan)(kg_store *s, kg_kv_cb cb, void *data); /* value: expires_at as decimal */
	/* Deletes revocations whose expires_at < now; *removed counts them. Also
	 * drops change-log rows older than now - KG_STORE_CHANGES_KEEP_SECONDS. */
	kg_err (*prune)(kg_store *s, int64_t now, int64_t *removed);
	/* Calls cb for each change with seq > after, in order; *last gets the last seq seen
	 * (after itself when there was none). */
	kg_err (*changes_since)(kg_store *s, int64_t after, kg_change_cb cb, void *data, int64_t *last);
	int (*schema_version)(kg_store *s);

	/* Added with the cache (cache.h needs them to load and replay): */
	/* Every record of every namespace, ordered by ns then key. */
	kg_err (*kv_scan_all)(kg_store *s, kg_kv_ns_cb cb, void *data);
	/* *expires_at of a revoked id; KG_ENOENT when it is not (or no longer) revoked. */
	kg_err (*revoked_get)(kg_store *s, kg_str id, int64_t *expires_at);
	/* *seq: the newest change's seq, 0 when the log is empty. A cache records
	 * it before loading, then replays from it. */
	kg_err (*changes_last)(kg_store *s, int64_t *seq);
	/* Appends to out a description of the most recent failure ("" if none). */
	void (*last_error)(kg_store *s, kg_buf *out);
	/* Where the store is, for logs and messages (no secret in it): the
	 * absolute path of the SQLite file. Borrowed, valid until close. */
	const char *(*location)(kg_store *s);
};

struct kg_store {
	const struct kg_store_ops *ops;
};

enum kg_store_mode {
	KG_STORE_OPEN_OR_CREATE, /* serve: a missing store is created */
	KG_STORE_OPEN_EXISTING,  /* admin commands: never creates anything */
};

/* Opens the SQLite store in dir (a relative dir is taken against the working
 * directory; messages and location() name it absolute).
 * KG_STORE_OPEN_OR_CREATE: dir is created 0700 when missing, the database
 * file dir/keygate.db is created 0600 (and set to 0600 if it exists).
 * KG_STORE_OPEN_EXISTING: KG_ENOENT, nothing created, when dir or the file is
 * missing or the file holds no schema yet, so a command run with the wrong
 * data_dir changes nothing instead of writing to a new, unread store.
 * Either mode refuses (KG_ECONFIG) a dir or database file that another user
 * owns or that group or others can write: the file holds the secrets.
 * Then WAL mode, synchronous=FULL, migrations applied, each in its own
 * transaction. *out is owned by the caller (kg_store_close). On failure,
 * errmsg (the caller's buffer) gets a sentence naming the directory or file,
 * the cause and, for ownership or mode, the fix. A database whose schema is
 * newer than KG_STORE_SCHEMA_VERSION is refused (KG_ESTORE). */
kg_err kg_store_open_sqlite_mode(const char *dir, enum kg_store_mode mode, kg_store **out, kg_buf *errmsg)
    KG_MUST_CHECK;

/* kg_store_open_sqlite_mode(dir, KG_STORE_OPEN_OR_CREATE, out, errmsg). */
kg_err kg_store_open_sqlite(const char *dir, kg_store **out, kg_buf *errmsg) KG_MUST_CHECK;

/* s->ops->location(s): where the store is, for messages. Borrowed. */
const char *kg_store_location(kg_store *s);

/* Closes s and sets *s to NULL. Safe on NULL. */
void kg_store_close(kg_store **s);

/* Thin wrappers over s->ops (store.c); same contracts as the ops above. */
kg_err kg_store_ping(kg_store *s, kg_buf *detail);
kg_err kg_store_kv_get(kg_store *s, kg_str ns, kg_str key, kg_buf *value) KG_MUST_CHECK;
kg_err kg_store_kv_put(kg_store *s, kg_str ns, kg_str key, kg_str value, bool durable) KG_MUST_CHECK;
kg_err kg_store_kv_add(kg_store *s, kg_str ns, kg_str key, kg_str value) KG_MUST_CHECK;
kg_err kg_store_kv_del(kg_store *s, kg_str ns, kg_str key);
kg_err kg_store_kv_scan(kg_store *s, kg_str ns, kg_kv_cb cb, void *data) KG_MUST_CHECK;
kg_err kg_store_kv_scan_all(kg_store *s, kg_kv_ns_cb cb, void *data) KG_MUST_CHECK;
kg_err kg_store_revoke(kg_store *s, kg_str id, int64_t expires_at) KG_MUST_CHECK;
kg_err kg_store_is_revoked(kg_store *s, kg_str id, bool *out) KG_MUST_CHECK;
kg_err kg_store_revoked_get(kg_store *s, kg_str id, int64_t *expires_at) KG_MUST_CHECK;
kg_err kg_store_revoked_scan(kg_store *s, kg_kv_cb cb, void *data) KG_MUST_CHECK;
kg_err kg_store_prune(kg_store *s, int64_t now, int64_t *removed);
kg_err kg_store_changes_since(kg_store *s, int64_t after, kg_change_cb cb, void *data,
                              int64_t *last) KG_MUST_CHECK;
kg_err kg_store_changes_last(kg_store *s, int64_t *seq) KG_MUST_CHECK;
int kg_store_schema_version(kg_store *s);
void kg_store_last_error(kg_store *s, kg_buf *out);

/* Checks the shared argument conventions above; for implementations. */
kg_err kg__store_check_key(kg_str k, bool may_be_empty);
kg_err kg__store_check_value(kg_str v);

#endif
