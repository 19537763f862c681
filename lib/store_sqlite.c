/* store_sqlite.c - the embedded store: one SQLite database in data_dir.
 *
 * One connection, guarded by one mutex: SQLite serializes writers anyway, the
 * store is never on the hot path (the cache is), and a single mutex also keeps
 * each BEGIN..COMMIT and the cached prepared statements to one thread at a
 * time. Other processes (a second keygate, `keygate` CLI commands) open their
 * own connection; WAL lets their readers and our writer proceed together and
 * busy_timeout makes writers wait for each other rather than fail.
 *
 * Durability: synchronous=FULL, so a commit is on disk when the call returns
 * (revocations and secrets must survive a power cut). kv_put(durable=false)
 * switches the connection to NORMAL for its transaction: in WAL mode that
 * commit survives a crash of keygate but may be lost with the machine's power
 * until the next checkpoint or durable commit. Every other write switches
 * back to FULL first, and because WAL frames are synced in order, a durable
 * commit also makes every earlier non-durable one durable.
 *
 * prune() trims the change log to KG_STORE_CHANGES_KEEP_SECONDS, always
 * keeping the newest row; seq values are never reused (AUTOINCREMENT).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "keygate/store.h"

#define DB_NAME "keygate.db"
#define BUSY_TIMEOUT_MS 5000

/* Migration i takes the schema from version i to version i + 1. Append only:
 * a released migration is never edited, since databases already carry it. */
static const char *const migrations[] = {
	/* 1: the initial schema */
	"CREATE TABLE kv ("
	"  ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
	"  updated_at INTEGER NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;"
	"CREATE TABLE revoked (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX revoked_expires_at ON revoked (expires_at);"
	"CREATE TABLE changes ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT, ns TEXT NOT NULL, key TEXT NOT NULL,"
	"  op INTEGER NOT NULL, at INTEGER NOT NULL);"
	"CREATE INDEX changes_at ON changes (at);",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == KG_STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* Every statement the store runs after opening, prepared once. */
#define STMT_LIST(X)                                                                        \
	X(BEGIN, "BEGIN IMMEDIATE")                                                         \
	X(COMMIT, "COMMIT")                                                                 \
	X(ROLLBACK, "ROLLBACK")                                                             \
	X(PING, "SELECT count(*) FROM sqlite_master")                                       \
	X(KV_GET, "SELECT value FROM kv WHERE ns = ?1 AND key = ?2")                        \
	X(KV_PUT, "INSERT INTO kv (ns, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)"     \
	          " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value,"            \
	          " updated_at = excluded.updated_at")                                      \
	X(KV_ADD, "INSERT INTO kv (ns, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)"     \
	          " ON CONFLICT (ns, key) DO NOTHING")                                      \
	X(KV_DEL, "DELETE FROM kv WHERE ns = ?1 AND key = ?2")                              \
	X(KV_SCAN, "SELECT key, value FROM kv WHERE ns = ?1 ORDER BY key")                  \
	X(KV_SCAN_ALL, "SELECT ns, key, value FROM kv ORDER BY ns, key")                    \
	X(REVOKE, "INSERT INTO revoked (id, expires_at) VALUES (?1, ?2)"                    \
	          " ON CONFLICT (id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)") \
	X(REVOKED_GET, "SELECT expires_at FROM revoked WHERE id = ?1")                      \
	X(REVOKED_SCAN, "SELECT id, expires_at FROM revoked ORDER BY id")                   \
	X(PRUNE_REVOKED, "DELETE FROM revoked WHERE expires_at < ?1")                       \
	X(PRUNE_CHANGES, "DELETE FROM changes WHERE at < ?1"                                \
	                 " AND seq < (SELECT max(seq) FROM changes)")                      \
	X(CHANGE_ADD, "INSERT INTO changes (ns, key, op, at) VALUES (?1, ?2, ?3, ?4)")     \
	X(CHANGES_SINCE, "SELECT seq, ns, key, op, at FROM changes WHERE seq > ?1 ORDER BY seq") \
	X(CHANGES_LAST, "SELECT coalesce(max(seq), 0) FROM changes")

enum stmt_id {
#define X(name, sql) ST_##name,
	STMT_LIST(X)
#undef X
	ST__COUNT
};

static const char *const stmt_sql[] = {
#define X(name, sql) [ST_##name] = sql,
	STMT_LIST(X)
#undef X
};

struct sqlite_store {
	kg_store base; /* first, so a kg_store * is a struct sqlite_store * */
	pthread_mutex_t lock; /* guards everything below */
	sqlite3 *db;
	sqlite3_stmt *stmt[ST__COUNT];
	char *path; /* absolute dir/keygate.db, for messages */
	int version;
	bool is_sync_full;
	char last_error[512];
};

static const struct kg_store_ops sqlite_ops;

static int64_t now_seconds(void)
{
	return (int64_t)time(NULL);
}

/* Records what failed (under the lock) and maps SQLite's code to ours. */
static kg_err fail(struct sqlite_store *st, const char *what, int rc)
{
	snprintf(st->last_error, sizeof(st->last_error), "%s: %s: %s", st->path, what,
	         st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return KG_ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return KG_EUNAVAILABLE;
	default:
		return KG_ESTORE;
	}
}

/* Reset promptly: a statement left mid-result holds a read transaction open,
 * which would stop WAL checkpoints. */
static void done(sqlite3_stmt *q)
{
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
}

/* Lengths were checked against KG_STORE_MAX_* before, so they fit an int. An
 * empty string gets a non-NULL pointer because SQLite binds NULL for NULL. */
static int bind_text(sqlite3_stmt *q, int i, kg_str v)
{
	return sqlite3_bind_text(q, i, v.n ? v.p : "", (int)v.n, SQLITE_STATIC);
}

static int bind_blob(sqlite3_stmt *q, int i, kg_str v)
{
	return sqlite3_bind_blob(q, i, v.n ? v.p : "", (int)v.n, SQLITE_STATIC);
}

static kg_str column(sqlite3_stmt *q, int i)
{
	const char *p = sqlite3_column_blob(q, i); /* before _bytes, as SQLite asks */
	int n = sqlite3_column_bytes(q, i);
	return (kg_str){ p ? p : "", p ? (size_t)n : 0 };
}

/* Runs a statement that returns no rows. */
static int run(sqlite3_stmt *q)
{
	int rc = sqlite3_step(q);
	done(q);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static kg_err set_sync(struct sqlite_store *st, bool is_full)
{
	if (st->is_sync_full == is_full)
		return KG_OK;
	/* not a cached statement: PRAGMA synchronous takes effect when prepared */
	int rc = sqlite3_exec(st->db, is_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
	                      NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return fail(st, "setting synchronous", rc);
	st->is_sync_full = is_full;
	return KG_OK;
}

/* Locks and opens a write transaction; on failure nothing stays held. */
static kg_err write_begin(struct sqlite_store *st, bool durable)
{
	pthread_mutex_lock(&st->lock);
	kg_err err = set_sync(st, durable);
	if (!err) {
		int rc = run(st->stmt[ST_BEGIN]);
		if (rc != SQLITE_OK)
			err = fail(st, "begin", rc);
	}
	if (err)
		pthread_mutex_unlock(&st->lock);
	return err;
}

/* Commits when err is KG_OK, else rolls back; unlocks; returns the outcome. */
static kg_err write_end(struct sqlite_store *st, kg_err err)
{
	if (!err) {
		int rc = run(st->stmt[ST_COMMIT]);
		if (rc != SQLITE_OK)
			err = fail(st, "commit", rc);
	}
	/* a failed COMMIT can leave the transaction open; roll it back too */
	if (err && !sqlite3_get_autocommit(st->db))
		(void)run(st->stmt[ST_ROLLBACK]);
	pthread_mutex_unlock(&st->lock);
	return err;
}

/* Appends to the change log, inside the caller's transaction. */
static kg_err log_change(struct sqlite_store *st, kg_str ns, kg_str key, enum kg_change_op op, int64_t at)
{
	sqlite3_stmt *q = st->stmt[ST_CHANGE_ADD];
	int rc = bind_text(q, 1, ns);
	if (rc == SQLITE_OK)
		rc = bind_text(q, 2, key);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(q, 3, (int)op);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(q, 4, at);
	if (rc == SQLITE_OK)
		rc = run(q);
	else
		done(q);
	return rc == SQLITE_OK ? KG_OK : fail(st, "appending to the change log", rc);
}

static kg_err check_ns_key(kg_str ns, kg_str key)
{
	kg_err err = kg__store_check_key(ns, false);
	return err ? err : kg__store_check_key(key, true);
}

static kg_err bind_ns_key(struct sqlite_store *st, sqlite3_stmt *q, kg_str ns, kg_str key, const char *what)
{
	int rc = bind_text(q, 1, ns);
	if (rc == SQLITE_OK)
		rc = bind_text(q, 2, key);
	return rc == SQLITE_OK ? KG_OK : fail(st, what, rc);
}

/* ---- the vtable ---- */

static void sq_close(kg_store *s)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->lock);
	free(st->path);
	free(st);
}

static kg_err sq_ping(kg_store *s, kg_buf *detail)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	kg_err err = KG_OK;
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *q = st->stmt[ST_PING];
	int rc = sqlite3_step(q);
	done(q);
	if (rc != SQLITE_ROW) {
		err = fail(st, "ping", rc);
		if (detail)
			kg_buf_printf(detail, "%s", st->last_error);
	}
	pthread_mutex_unlock(&st->lock);
	return err;
}

static kg_err sq_kv_get(kg_store *s, kg_str ns, kg_str key, kg_buf *value)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	kg_err err = check_ns_key(ns, key);
	if (err)
		return err;
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *q = st->stmt[ST_KV_GET];
	if (!(err = bind_ns_key(st, q, ns, key, "kv_get"))) {
		int rc = sqlite3_step(q);
		if (rc == SQLITE_ROW) {
			kg_str v = column(q, 0);
			kg_buf_clear(value);
			err = kg_buf_append(value, v.p, v.n);
		} else if (rc == SQLITE_DONE) {
			err = KG_ENOENT;
		} else {
			err = fail(st, "kv_get", rc);
		}
	}
	done(q);
	pthread_mutex_unlock(&st->lock);
	return err;
}

/* kv_put and kv_add: the same insert, replacing or not. */
static kg_err kv_write(struct sqlite_store *st, enum stmt_id id, kg_str ns, kg_str key, kg_str value,
                       bool durable)
{
	kg_err err = check_ns_key(ns, key);
	if (!err)
		err = kg__store_check_value(value);
	if (err)
		return err;
	int64_t now = now_seconds();
	if ((err = write_begin(st, durable)))
		return err;
	const char *what = id == ST_KV_ADD ? "kv_add" : "kv_put";
	sqlite3_stmt *q = st->stmt[id];
	err = bind_ns_key(st, q, ns, key, what);
	if (!err) {
		int rc = bind_blob(q, 3, value);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(q, 4, now);
		if (rc == SQLITE_OK)
			rc = run(q);
		if (rc != SQLITE_OK)
			err = fail(st, what, rc);
		else if (sqlite3_changes(st->db) == 0)
			err = KG_EEXIST; /* only ON CONFLICT DO NOTHING changes nothing */
	}
	done(q);
	if (!err)
		err = log_change(st, ns, key, KG_CHANGE_PUT, now);
	return write_end(st, err);
}

static kg_err sq_kv_put(kg_store *s, kg_str ns, kg_str key, kg_str value, bool durable)
{
	return kv_write((struct sqlite_store *)s, ST_KV_PUT, ns, key, value, durable);
}

static kg_err sq_kv_add(kg_store *s, kg_str ns, kg_str key, kg_str value)
{
	return kv_write((struct sqlite_store *)s, ST_KV_ADD, ns, key, value, true);
}

static kg_err sq_kv_del(kg_store *s, kg_str ns, kg_str key)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	kg_err err = check_ns_key(ns, key);
	if (err)
		return err;
	int64_t now = now_seconds();
	if ((err = write_begin(st, true)))
		return err;
	sqlite3_stmt *q = st->stmt[ST_KV_DEL];
	if (!(err = bind_ns_key(st, q, ns, key, "kv_del"))) {
		int rc = run(q);
		if (rc != SQLITE_OK)
			err = fail(st, "kv_del", rc);
		else if (sqlite3_changes(st->db) == 0)
			err = KG_ENOENT;
	}
	done(q);
	if (!err)
		err = log_change(st, ns, key, KG_CHANGE_DEL, now);
	return write_end(st, err);
}

static kg_err sq_kv_scan(kg_store *s, kg_str ns, kg_kv_cb cb, void *data)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	kg_err err = kg__store_check_key(ns, false);
	if (err)
		return err;
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *q = st->stmt[ST_KV_SCAN];
	int rc = bind_text(q, 1, ns);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		if ((err = cb(data, column(q, 0), column(q, 1))))
			break;
		rc = SQLITE_OK;
	}
	if (!err && rc != SQLITE_DONE)
		err = fail(st, "kv_scan", rc);
	done(q);
	pthread_mutex_unlock(&st->lock);
	return err;
}

static kg_err sq_kv_scan_all(kg_store *s, kg_kv_ns_cb cb, void *data)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	kg_err err = KG_OK;
	int rc;
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *q = st->stmt[ST_KV_SCAN_ALL];
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		if ((err = cb(data, column(q, 0), column(q, 1), column(q, 2))))
			break;
	if (!err && rc != SQLITE_DONE)
		err = fail(st, "kv_scan_all", rc);
	done(q);
	pthread_mutex_unlock(&st->lock);
	return err;
}

static kg_err sq_revoke(kg_store *s, kg_str id, int64_t expires_at)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	kg_err err = kg__store_check_key(id, false);
	if (err)
		return err;
	int64_t now = now_seconds();
	if ((err = write_begin(st, true)))
		return err;
	sqlite3_stmt *q = st->stmt[ST_REVOKE];
	int rc = bind_text(q, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(q, 2, expires_at);
	if (rc == SQLITE_OK)
		rc = run(q);
	done(q);
	if (rc != SQLITE_OK)
		err = fail(st, "revoke", rc);
	if (!err)
		err = log_change(st, KG_STR(KG_STORE_NS_REVOKED), id, KG_CHANGE_REVOKE, now);
	return write_end(st, err);
}

static kg_err sq_revoked_get(kg_store *s, kg_str id, int64_t *expires_at)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	kg_err err = kg__store_check_key(id, false);
	if (err)
		return err;
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *q = st->stmt[ST_REVOKED_GET];
	int rc = bind_text(q, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*expires_at = sqlite3_column_int64(q, 0);
	else if (rc == SQLITE_DONE)
		err = KG_ENOENT;
	else
		err = fail(st, "revoked_get", rc);
	done(q);
	pthread_mutex_unlock(&st->lock);
	return err;
}

static kg_err sq_is_revoked(kg_store *s, kg_str id, bool *out)
{
	int64_t expires_at;
	kg_err err = sq_revoked_get(s, id, &expires_at);
	if (err == KG_ENOENT || err == KG_OK) {
		*out = err == KG_OK;
		return KG_OK;
	}
	/* an id the store could never hold is simply not revoked */
	if (err == KG_ETOOBIG || (err == KG_EINVAL && id.n)) {
		*out = false;
		return KG_OK;
	}
	return err;
}

static kg_err sq_revoked_scan(kg_store *s, kg_kv_cb cb, void *data)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	kg_err err = KG_OK;
	int rc;
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *q = st->stmt[ST_REVOKED_SCAN];
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		char num[24];
		int n = snprintf(num, sizeof(num), "%" PRId64, (int64_t)sqlite3_column_int64(q, 1));
		if ((err = cb(data, column(q, 0), (kg_str){ num, (size_t)n })))
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = fail(st, "revoked_scan", rc);
	done(q);
	pthread_mutex_unlock(&st->lock);
	return err;
}

static kg_err sq_prune(kg_store *s, int64_t now, int64_t *removed)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	int64_t horizon = now >= INT64_MIN + KG_STORE_CHANGES_KEEP_SECONDS ? now - KG_STORE_CHANGES_KEEP_SECONDS
	                                                                   : INT64_MIN;
	int64_t n = 0;
	kg_err err = write_begin(st, true);
	if (err)
		return err;
	sqlite3_stmt *q = st->stmt[ST_PRUNE_REVOKED];
	int rc = sqlite3_bind_int64(q, 1, now);
	if (rc == SQLITE_OK)
		rc = run(q);
	done(q);
	if (rc == SQLITE_OK) {
		n = sqlite3_changes(st->db);
		q = st->stmt[ST_PRUNE_CHANGES];
		rc = sqlite3_bind_int64(q, 1, horizon);
		if (rc == SQLITE_OK)
			rc = run(q);
		done(q);
	}
	if (rc != SQLITE_OK)
		err = fail(st, "prune", rc);
	err = write_end(st, err);
	*removed = err ? 0 : n;
	return err;
}

static kg_err sq_changes_since(kg_store *s, int64_t after, kg_change_cb cb, void *data, int64_t *last)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	kg_err err = KG_OK;
	int64_t seen = after;
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *q = st->stmt[ST_CHANGES_SINCE];
	int rc = sqlite3_bind_int64(q, 1, after);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct kg_change c = {
			.seq = sqlite3_column_int64(q, 0),
			.ns = column(q, 1),
			.key = column(q, 2),
			.op = (enum kg_change_op)sqlite3_column_int(q, 3),
			.at = sqlite3_column_int64(q, 4),
		};
		if ((err = cb(data, &c)))
			break;
		seen = c.seq;
		rc = SQLITE_OK;
	}
	if (!err && rc != SQLITE_DONE)
		err = fail(st, "changes_since", rc);
	done(q);
	pthread_mutex_unlock(&st->lock);
	if (!err)
		*last = seen;
	return err;
}

static kg_err sq_changes_last(kg_store *s, int64_t *seq)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	kg_err err = KG_OK;
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *q = st->stmt[ST_CHANGES_LAST];
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*seq = sqlite3_column_int64(q, 0);
	else
		err = fail(st, "changes_last", rc);
	done(q);
	pthread_mutex_unlock(&st->lock);
	return err;
}

static int sq_schema_version(kg_store *s)
{
	return ((struct sqlite_store *)s)->version; /* fixed once opened */
}

static const char *sq_location(kg_store *s)
{
	return ((struct sqlite_store *)s)->path; /* fixed once opened */
}

static void sq_last_error(kg_store *s, kg_buf *out)
{
	struct sqlite_store *st = (struct sqlite_store *)s;
	pthread_mutex_lock(&st->lock);
	kg_buf_printf(out, "%s", st->last_error);
	pthread_mutex_unlock(&st->lock);
}

static const struct kg_store_ops sqlite_ops = {
	.name = "sqlite",
	.close = sq_close,
	.ping = sq_ping,
	.kv_get = sq_kv_get,
	.kv_put = sq_kv_put,
	.kv_add = sq_kv_add,
	.kv_del = sq_kv_del,
	.kv_scan = sq_kv_scan,
	.revoke = sq_revoke,
	.is_revoked = sq_is_revoked,
	.revoked_scan = sq_revoked_scan,
	.prune = sq_prune,
	.changes_since = sq_changes_since,
	.schema_version = sq_schema_version,
	.kv_scan_all = sq_kv_scan_all,
	.revoked_get = sq_revoked_get,
	.changes_last = sq_changes_last,
	.last_error = sq_last_error,
	.location = sq_location,
};

/* ---- opening ---- */

static int read_user_version(sqlite3 *db, int *version)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		*version = sqlite3_column_int(q, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(q);
	return rc;
}

static kg_err too_new(const char *path, int version, kg_buf *errmsg)
{
	kg_buf_printf(errmsg, "%s: database schema version %d is newer than this keygate (%d)", path, version,
	              KG_STORE_SCHEMA_VERSION);
	return KG_ESTORE;
}

/* Brings the schema to KG_STORE_SCHEMA_VERSION, one transaction per step.
 * The version is re-read inside each transaction because another process
 * opening the same database may have migrated it in the meantime. */
static kg_err migrate(struct sqlite_store *st, kg_buf *errmsg)
{
	int version = 0;
	int rc = read_user_version(st->db, &version);
	if (rc != SQLITE_OK)
		goto sqlite_error;
	while (version < KG_STORE_SCHEMA_VERSION) {
		char set[64];
		if ((rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
			goto sqlite_error;
		if ((rc = read_user_version(st->db, &version)) != SQLITE_OK)
			goto rollback;
		if (version < 0 || version >= KG_STORE_SCHEMA_VERSION) {
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			break;
		}
		snprintf(set, sizeof(set), "PRAGMA user_version = %d", version + 1);
		if ((rc = sqlite3_exec(st->db, migrations[version], NULL, NULL, NULL)) != SQLITE_OK ||
		    (rc = sqlite3_exec(st->db, set, NULL, NULL, NULL)) != SQLITE_OK ||
		    (rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
			kg_buf_printf(errmsg, "%s: migrating the schema to version %d: %s", st->path, version + 1,
			              sqlite3_errmsg(st->db));
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return KG_ESTORE;
		}
		version++;
	}
	if (version < 0) {
		kg_buf_printf(errmsg, "%s: invalid database schema version %d", st->path, version);
		return KG_ESTORE;
	}
	if (version > KG_STORE_SCHEMA_VERSION)
		return too_new(st->path, version, errmsg);
	st->version = version;
	return KG_OK;

rollback:
	kg_buf_printf(errmsg, "%s: %s", st->path, sqlite3_errmsg(st->db));
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return KG_ESTORE;
sqlite_error:
	kg_buf_printf(errmsg, "%s: %s", st->path, sqlite3_errmsg(st->db));
	return rc == SQLITE_BUSY ? KG_EUNAVAILABLE : KG_ESTORE;
}

/* Appends dir made absolute (against the working directory, symlinks left
 * as they are) to out: messages and logs name the store unambiguously, since
 * the default data_dir is relative and a command run from elsewhere would
 * otherwise find, or make, a different store. */
static kg_err absolute_dir(const char *dir, kg_buf *out)
{
	char cwd[4096];
	if (dir[0] == '/')
		return kg_buf_printf(out, "%s", dir);
	if (!getcwd(cwd, sizeof(cwd)))
		return kg_buf_printf(out, "%s", dir);
	while (dir[0] == '.' && dir[1] == '/')
		dir += 2;
	if (strcmp(dir, ".") == 0)
		return kg_buf_printf(out, "%s", cwd);
	return kg_buf_printf(out, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", dir);
}

/* The store holds secrets (the token encryption key, the Avalanche signing
 * key, password hashes): a directory or database file that another user owns
 * or can write lets that user read them or swap the database for one with
 * secrets of their choosing. Refused, not repaired: keygate cannot know who
 * has already read or changed it. */
static kg_err check_owner_and_mode(const char *what, const char *path, const struct stat *sb, kg_buf *errmsg)
{
	uid_t me = geteuid();
	if (sb->st_uid != me) {
		kg_buf_printf(errmsg,
		              "%s %s is owned by uid %u, not by uid %u that keygate runs as: another user could read "
		              "or replace its secrets; chown %u %s (or run keygate as its owner)",
		              what, path, (unsigned)sb->st_uid, (unsigned)me, (unsigned)me, path);
		return KG_ECONFIG;
	}
	if (sb->st_mode & (S_IWGRP | S_IWOTH)) {
		kg_buf_printf(errmsg,
		              "%s %s can be written by group or others (mode %04o): they could replace its "
		              "secrets; chmod %s %s",
		              what, path, (unsigned)(sb->st_mode & 07777), S_ISDIR(sb->st_mode) ? "700" : "600", path);
		return KG_ECONFIG;
	}
	return KG_OK;
}

/* Creates dir (0700) when missing and may_create; checks an existing one. */
static kg_err make_dir(const char *dir, bool may_create, kg_buf *errmsg)
{
	struct stat sb;
	if (may_create && mkdir(dir, 0700) == 0) {
		/* mkdir's mode passes through the umask; the result must not */
		if (chmod(dir, 0700) != 0)
			goto error;
		return KG_OK;
	}
	if (may_create && errno != EEXIST)
		goto error;
	if (stat(dir, &sb) != 0) {
		if (!may_create && errno == ENOENT) {
			kg_buf_printf(errmsg,
			              "no store at %s/%s: the data directory %s does not exist (only serve creates a "
			              "store; give the data_dir of the keygate to change with --data-dir or --config)",
			              dir, DB_NAME, dir);
			return KG_ENOENT;
		}
		goto error;
	}
	if (!S_ISDIR(sb.st_mode)) {
		kg_buf_printf(errmsg, "data directory %s exists and is not a directory", dir);
		return KG_EIO;
	}
	return check_owner_and_mode("data directory", dir, &sb, errmsg);
error:
	kg_buf_printf(errmsg, "cannot %s data directory %s: %s", may_create ? "create" : "open", dir, strerror(errno));
	return KG_EIO;
}

/* Creates the database file 0600 before SQLite sees it (when may_create), so
 * it never exists with looser permissions, and takes read access away from
 * group and others on an existing one (secrets live here).
 * O_NOFOLLOW: a symlink planted in data_dir must not redirect our writes. */
static kg_err make_db_file(const char *path, bool may_create, kg_buf *errmsg)
{
	struct stat sb;
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (may_create ? O_CREAT : 0), 0600);
	if (fd < 0) {
		if (!may_create && errno == ENOENT) {
			kg_buf_printf(errmsg, "no store at %s: the database file does not exist (only serve creates a "
			                      "store; give the data_dir of the keygate to change with --data-dir or --config)",
			              path);
			return KG_ENOENT;
		}
		goto error;
	}
	if (fstat(fd, &sb) != 0)
		goto error;
	if (!S_ISREG(sb.st_mode)) {
		kg_buf_printf(errmsg, "database %s is not a regular file", path);
		close(fd);
		return KG_EIO;
	}
	kg_err err = check_owner_and_mode("database", path, &sb, errmsg);
	if (err) {
		close(fd);
		return err;
	}
	if ((sb.st_mode & 07777) != 0600 && fchmod(fd, 0600) != 0)
		goto error;
	close(fd);
	return KG_OK;
error:
	kg_buf_printf(errmsg, "cannot open or create database %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return KG_EIO;
}

kg_err kg_store_open_sqlite(const char *dir, kg_store **out, kg_buf *errmsg)
{
	return kg_store_open_sqlite_mode(dir, KG_STORE_OPEN_OR_CREATE, out, errmsg);
}

kg_err kg_store_open_sqlite_mode(const char *dir, enum kg_store_mode mode, kg_store **out, kg_buf *errmsg)
{
	struct sqlite_store *st = NULL;
	kg_buf path = { 0 }, abs = { 0 };
	sqlite3_stmt *q = NULL;
	bool may_create = mode == KG_STORE_OPEN_OR_CREATE;
	kg_err err;
	int rc;

	*out = NULL;
	if (!dir || !*dir) {
		kg_buf_printf(errmsg, "no data directory given");
		return KG_EINVAL;
	}
	if ((err = absolute_dir(dir, &abs)))
		goto out;
	if ((err = make_dir(abs.p, may_create, errmsg)))
		goto out;
	if ((err = kg_buf_printf(&path, "%s/%s", abs.p, DB_NAME)))
		goto out;
	if ((err = make_db_file(path.p, may_create, errmsg)))
		goto out;

	st = calloc(1, sizeof(*st));
	if (!st) {
		kg_buf_printf(errmsg, "%s: out of memory", path.p);
		err = KG_ENOMEM;
		goto out;
	}
	st->base.ops = &sqlite_ops;
	st->path = path.p;
	path = (kg_buf){ 0 };
	st->is_sync_full = true;
	pthread_mutex_init(&st->lock, NULL);

	/* NOMUTEX: our own lock serializes every use of the connection */
	rc = sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		goto sqlite_error;
	sqlite3_extended_result_codes(st->db, 1);
	if ((rc = sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS)) != SQLITE_OK)
		goto sqlite_error;
	if (!may_create) {
		/* an empty file (a start that died before its first migration, or
		 * one made by hand) holds no keys or revocations: writing to it
		 * would change nothing any server reads; checked before
		 * switching to WAL, which writes a header */
		int version = 0;
		if ((rc = read_user_version(st->db, &version)) != SQLITE_OK)
			goto sqlite_error;
		if (version == 0) {
			kg_buf_printf(errmsg, "no store at %s: the file is empty, not a keygate store", st->path);
			err = KG_ENOENT;
			goto out;
		}
	}
	/* journal_mode answers with the mode it ended up in */
	if ((rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &q, NULL)) != SQLITE_OK)
		goto sqlite_error;
	if ((rc = sqlite3_step(q)) != SQLITE_ROW)
		goto sqlite_error;
	if (sqlite3_stricmp((const char *)sqlite3_column_text(q, 0), "wal") != 0) {
		kg_buf_printf(errmsg, "%s: cannot switch to WAL mode (journal mode is %s)", st->path,
		              (const char *)sqlite3_column_text(q, 0));
		err = KG_ESTORE;
		goto out;
	}
	sqlite3_finalize(q);
	q = NULL;
	rc = sqlite3_exec(st->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto sqlite_error;
	if ((err = migrate(st, errmsg)))
		goto out;
	for (int i = 0; i < ST__COUNT; i++) {
		rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL);
		if (rc != SQLITE_OK)
			goto sqlite_error;
	}
	*out = &st->base;
	st = NULL;
	err = KG_OK;
	goto out;

sqlite_error:
	if (st->db)
		kg_buf_printf(errmsg, "%s: %s", st->path, sqlite3_errmsg(st->db));
	else
		kg_buf_printf(errmsg, "%s: %s", st->path, sqlite3_errstr(rc));
	err = (rc & 0xff) == SQLITE_NOMEM ? KG_ENOMEM : KG_ESTORE;
out:
	sqlite3_finalize(q);
	if (st)
		sq_close(&st->base);
	kg_buf_free(&path, false);
	kg_buf_free(&abs, false);
	return err;
}
