/* test_store.c - the SQLite store: files and modes, kv, revocations, the
 * change log, migrations and the errors that name what failed. Each test
 * works in its own fresh directory under /tmp and removes it. */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "keygate/store.h"
#include "kgtest.h"

/* ---- helpers ---- */

struct tmp {
	char base[64];  /* mkdtemp result */
	char dir[128];  /* base/data: does not exist until the store creates it */
	char db[160];   /* dir/keygate.db */
};

static int tmp_make(struct tmp *t)
{
	snprintf(t->base, sizeof(t->base), "/tmp/kgtest-store-XXXXXX");
	if (!mkdtemp(t->base))
		return -1;
	snprintf(t->dir, sizeof(t->dir), "%s/data", t->base);
	snprintf(t->db, sizeof(t->db), "%s/keygate.db", t->dir);
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	/* a test may have taken write permission away from a directory */
	if (type == FTW_DP)
		chmod(path, 0700);
	return remove(path);
}

static void tmp_remove(struct tmp *t)
{
	chmod(t->base, 0700);
	nftw(t->base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static kg_store *open_ok(const char *dir)
{
	kg_store *s = NULL;
	kg_buf why = { 0 };
	kg_err err = kg_store_open_sqlite(dir, &s, &why);
	KG_CHECK(err == KG_OK && s, "open %s: %s (%s)", dir, kg_errname(err), why.p ? why.p : "");
	kg_buf_free(&why, false);
	return s;
}

static int file_mode(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

/* Collects changes as "op:ns/key" lines, and their seqs. */
struct seen {
	kg_buf text;
	int64_t seqs[64];
	int n;
	int stop_after; /* > 0: return KG_ECONFIG after that many */
};

static kg_err collect_change(void *data, const struct kg_change *c)
{
	struct seen *s = data;
	if (s->n < 64)
		s->seqs[s->n] = c->seq;
	s->n++;
	kg_buf_printf(&s->text, "%d:%.*s/%.*s;", (int)c->op, (int)c->ns.n, c->ns.p, (int)c->key.n, c->key.p);
	if (s->stop_after && s->n >= s->stop_after)
		return KG_ECONFIG;
	return KG_OK;
}

static kg_err collect_kv(void *data, kg_str key, kg_str value)
{
	kg_buf *b = data;
	return kg_buf_printf(b, "%.*s=%.*s;", (int)key.n, key.p, (int)value.n, value.p);
}

static kg_err collect_kv_ns(void *data, kg_str ns, kg_str key, kg_str value)
{
	kg_buf *b = data;
	return kg_buf_printf(b, "%.*s/%.*s=%.*s;", (int)ns.n, ns.p, (int)key.n, key.p, (int)value.n, value.p);
}

/* ---- tests ---- */

KG_TEST(test_open_creates_dir_0700_and_db_0600_whatever_the_umask)
{
	struct tmp t;
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	/* a umask that would strip the owner's bits: modes must not depend on it */
	mode_t old = umask(0277);
	kg_store *s = open_ok(t.dir);
	umask(old);
	if (!s)
		goto out;
	KG_CHECK(file_mode(t.dir) == 0700, "dir mode %o, want 700", file_mode(t.dir));
	KG_CHECK(file_mode(t.db) == 0600, "db mode %o, want 600", file_mode(t.db));
	KG_CHECK(kg_store_kv_put(s, KG_STR("ns"), KG_STR("k"), KG_STR("v"), true) == KG_OK, "put");
	char wal[200];
	snprintf(wal, sizeof(wal), "%s-wal", t.db);
	KG_CHECK(file_mode(wal) == 0600, "wal mode %o, want 600 (WAL mode on?)", file_mode(wal));
	KG_CHECK(strcmp(s->ops->name, "sqlite") == 0, "name %s", s->ops->name);
	kg_store_close(&s);
	KG_CHECK(s == NULL, "close must clear the pointer");
	kg_store_close(&s); /* NULL-safe */
out:
	tmp_remove(&t);
}

KG_TEST(test_open_tightens_an_existing_db_file_to_0600)
{
	struct tmp t;
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	mkdir(t.dir, 0755);
	int fd = open(t.db, O_CREAT | O_WRONLY, 0644);
	close(fd);
	chmod(t.db, 0644);
	kg_store *s = open_ok(t.dir);
	KG_CHECK(file_mode(t.db) == 0600, "db mode %o, want 600", file_mode(t.db));
	KG_CHECK(file_mode(t.dir) == 0755, "an existing dir is left alone, got %o", file_mode(t.dir));
	kg_store_close(&s);
	tmp_remove(&t);
}

static kg_err open_mode(const char *dir, enum kg_store_mode mode, kg_buf *why)
{
	kg_store *s = (kg_store *)why; /* must be reset to NULL on failure */
	kg_err err = kg_store_open_sqlite_mode(dir, mode, &s, why);
	KG_CHECK(err == KG_OK ? s != NULL : s == NULL, "*out %p after %s", (void *)s, kg_errname(err));
	if (err == KG_OK)
		kg_store_close(&s);
	return err;
}

KG_TEST(test_open_existing_creates_nothing_and_names_the_missing_store)
{
	struct tmp t;
	kg_buf why = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	kg_err err = open_mode(t.dir, KG_STORE_OPEN_EXISTING, &why);
	KG_CHECK(err == KG_ENOENT, "missing dir: %s, want ENOENT", kg_errname(err));
	KG_CHECK(why.p && strstr(why.p, t.db) && strstr(why.p, "does not exist"), "message: '%s'", why.p ? why.p : "");
	KG_CHECK(file_mode(t.dir) == -1, "the data directory was created");

	kg_buf_clear(&why);
	mkdir(t.dir, 0700);
	err = open_mode(t.dir, KG_STORE_OPEN_EXISTING, &why);
	KG_CHECK(err == KG_ENOENT && why.p && strstr(why.p, t.db), "missing file: %s '%s'", kg_errname(err),
	         why.p ? why.p : "");
	KG_CHECK(file_mode(t.db) == -1, "the database file was created");

	/* an empty file is no store either, and stays empty */
	kg_buf_clear(&why);
	close(open(t.db, O_CREAT | O_WRONLY, 0600));
	err = open_mode(t.dir, KG_STORE_OPEN_EXISTING, &why);
	KG_CHECK(err == KG_ENOENT && why.p && strstr(why.p, "empty"), "empty file: %s '%s'", kg_errname(err),
	         why.p ? why.p : "");
	struct stat sb;
	KG_CHECK(stat(t.db, &sb) == 0 && sb.st_size == 0, "the empty file was written to");

	/* once serve has made it, it opens */
	unlink(t.db);
	kg_store *s = open_ok(t.dir);
	kg_store_close(&s);
	kg_buf_clear(&why);
	err = open_mode(t.dir, KG_STORE_OPEN_EXISTING, &why);
	KG_CHECK(err == KG_OK, "existing store: %s '%s'", kg_errname(err), why.p ? why.p : "");
	kg_buf_free(&why, false);
	tmp_remove(&t);
}

KG_TEST(test_location_is_absolute_even_for_a_relative_dir)
{
	struct tmp t;
	char cwd[512], want[300];
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	KG_CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");
	KG_CHECK(chdir(t.base) == 0, "chdir");
	kg_store *s = open_ok("./data");
	snprintf(want, sizeof(want), "%s/data/keygate.db", t.base);
	KG_CHECK(s && strcmp(kg_store_location(s), want) == 0, "location '%s', want '%s'",
	         s ? kg_store_location(s) : "", want);
	kg_store_close(&s);
	KG_CHECK(chdir(cwd) == 0, "chdir back");
	tmp_remove(&t);
}

KG_TEST(test_a_dir_or_db_others_can_write_is_refused_with_the_fix)
{
	struct tmp t;
	kg_buf why = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	mkdir(t.dir, 0700);
	chmod(t.dir, 0777);
	for (int mode = 0; mode < 2; mode++) {
		kg_buf_clear(&why);
		kg_err err = open_mode(t.dir, mode ? KG_STORE_OPEN_EXISTING : KG_STORE_OPEN_OR_CREATE, &why);
		KG_CHECK(err == KG_ECONFIG, "0777 dir (mode %d): %s, want ECONFIG", mode, kg_errname(err));
		KG_CHECK(why.p && strstr(why.p, t.dir) && strstr(why.p, "chmod 700"), "message: '%s'",
		         why.p ? why.p : "");
	}
	KG_CHECK(file_mode(t.db) == -1, "a database was made in a refused directory");
	KG_CHECK(file_mode(t.dir) == 0777, "the refused directory was changed: %o", file_mode(t.dir));

	chmod(t.dir, 0700);
	kg_store *s = open_ok(t.dir);
	kg_store_close(&s);
	chmod(t.db, 0660);
	kg_buf_clear(&why);
	kg_err err = open_mode(t.dir, KG_STORE_OPEN_OR_CREATE, &why);
	KG_CHECK(err == KG_ECONFIG && why.p && strstr(why.p, t.db) && strstr(why.p, "chmod 600"),
	         "group-writable db: %s '%s'", kg_errname(err), why.p ? why.p : "");
	kg_buf_free(&why, false);
	tmp_remove(&t);
}

KG_TEST(test_a_dir_or_db_another_user_owns_is_refused)
{
	struct tmp t;
	kg_buf why = { 0 };
	if (geteuid() != 0) /* only root can give a file away */
		return;
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	mkdir(t.dir, 0700);
	KG_CHECK(chown(t.dir, 65534, 65534) == 0, "chown");
	kg_err err = open_mode(t.dir, KG_STORE_OPEN_OR_CREATE, &why);
	KG_CHECK(err == KG_ECONFIG && why.p && strstr(why.p, t.dir) && strstr(why.p, "owned by uid 65534") &&
	             strstr(why.p, "chown"),
	         "dir of nobody: %s '%s'", kg_errname(err), why.p ? why.p : "");
	KG_CHECK(file_mode(t.db) == -1, "a database was made in a refused directory");

	KG_CHECK(chown(t.dir, 0, 0) == 0, "chown back");
	kg_store *s = open_ok(t.dir);
	kg_store_close(&s);
	KG_CHECK(chown(t.db, 65534, 65534) == 0, "chown db");
	kg_buf_clear(&why);
	err = open_mode(t.dir, KG_STORE_OPEN_EXISTING, &why);
	KG_CHECK(err == KG_ECONFIG && why.p && strstr(why.p, t.db) && strstr(why.p, "owned by uid 65534"),
	         "db of nobody: %s '%s'", kg_errname(err), why.p ? why.p : "");
	kg_buf_free(&why, false);
	tmp_remove(&t);
}

KG_TEST(test_kv_put_get_add_del_scan)
{
	struct tmp t;
	kg_buf v = { 0 }, list = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	kg_store *s = open_ok(t.dir);
	if (!s)
		goto out;
	KG_CHECK(kg_store_kv_get(s, KG_STR("a"), KG_STR("x"), &v) == KG_ENOENT, "absent key must be ENOENT");
	KG_CHECK(kg_store_kv_put(s, KG_STR("a"), KG_STR("x"), KG_STR("1"), true) == KG_OK, "put x");
	KG_CHECK(kg_store_kv_put(s, KG_STR("a"), KG_STR("x"), KG_STR("2"), false) == KG_OK, "replace x");
	KG_CHECK(kg_store_kv_get(s, KG_STR("a"), KG_STR("x"), &v) == KG_OK && kg_str_eq(kg_buf_str(&v), KG_STR("2")),
	         "x is '%s', want 2", v.p ? v.p : "(null)");

	/* binary values with NULs and the empty value survive */
	static const char bin[] = { 'a', 0, 'b', (char)0xff };
	KG_CHECK(kg_store_kv_put(s, KG_STR("a"), KG_STR("bin"), (kg_str){ bin, 4 }, true) == KG_OK, "put bin");
	KG_CHECK(kg_store_kv_get(s, KG_STR("a"), KG_STR("bin"), &v) == KG_OK && v.n == 4 && memcmp(v.p, bin, 4) == 0,
	         "binary value differs (len %zu)", v.n);
	KG_CHECK(kg_store_kv_put(s, KG_STR("a"), KG_STR("empty"), KG_STR(""), true) == KG_OK, "put empty");
	KG_CHECK(kg_store_kv_get(s, KG_STR("a"), KG_STR("empty"), &v) == KG_OK && v.n == 0, "empty value: len %zu",
	         v.n);

	KG_CHECK(kg_store_kv_add(s, KG_STR("a"), KG_STR("y"), KG_STR("first")) == KG_OK, "first add");
	kg_err err = kg_store_kv_add(s, KG_STR("a"), KG_STR("y"), KG_STR("second"));
	KG_CHECK(err == KG_EEXIST, "second add: %s, want EEXIST", kg_errname(err));
	KG_CHECK(kg_store_kv_get(s, KG_STR("a"), KG_STR("y"), &v) == KG_OK &&
	                 kg_str_eq(kg_buf_str(&v), KG_STR("first")),
	         "the first add must win, got '%s'", v.p);

	KG_CHECK(kg_store_kv_put(s, KG_STR("b"), KG_STR("x"), KG_STR("other ns"), true) == KG_OK, "put b/x");
	KG_CHECK(kg_store_kv_scan(s, KG_STR("a"), collect_kv, &list) == KG_OK, "scan");
	/* %.*s stops at the NUL inside bin's value */
	KG_CHECK(strcmp(list.p, "bin=a;empty=;x=2;y=first;") == 0, "scan of a: '%s'", list.p);
	kg_buf_clear(&list);
	KG_CHECK(kg_store_kv_scan(s, KG_STR("b"), collect_kv, &list) == KG_OK, "scan b");
	KG_CHECK(strcmp(list.p, "x=other ns;") == 0, "scan of b: '%s'", list.p);
	kg_buf_clear(&list);
	KG_CHECK(kg_store_kv_scan(s, KG_STR("none"), collect_kv, &list) == KG_OK && list.n == 0,
	         "scan of an empty ns gave '%s'", list.p);

	KG_CHECK(kg_store_kv_del(s, KG_STR("a"), KG_STR("x")) == KG_OK, "del");
	KG_CHECK(kg_store_kv_get(s, KG_STR("a"), KG_STR("x"), &v) == KG_ENOENT, "deleted key still there");
	err = kg_store_kv_del(s, KG_STR("a"), KG_STR("x"));
	KG_CHECK(err == KG_ENOENT, "deleting an absent key: %s, want ENOENT", kg_errname(err));
	KG_CHECK(kg_store_kv_get(s, KG_STR("b"), KG_STR("x"), &v) == KG_OK, "delete must not cross namespaces");

	kg_buf_clear(&list);
	KG_CHECK(kg_store_kv_scan_all(s, collect_kv_ns, &list) == KG_OK, "scan_all");
	KG_CHECK(strcmp(list.p, "a/bin=a;a/empty=;a/y=first;b/x=other ns;") == 0, "scan_all: '%s'", list.p);
out:
	kg_store_close(&s);
	kg_buf_free(&v, false);
	kg_buf_free(&list, false);
	tmp_remove(&t);
}

KG_TEST(test_kv_rejects_names_and_values_it_cannot_hold)
{
	struct tmp t;
	kg_buf v = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	kg_store *s = open_ok(t.dir);
	if (!s)
		goto out;
	char *big = calloc(1, KG_STORE_MAX_VALUE_BYTES + 1);
	kg_err err = kg_store_kv_put(s, KG_STR(""), KG_STR("k"), KG_STR("v"), true);
	KG_CHECK(err == KG_EINVAL, "empty ns: %s", kg_errname(err));
	err = kg_store_kv_put(s, (kg_str){ "a\0b", 3 }, KG_STR("k"), KG_STR("v"), true);
	KG_CHECK(err == KG_EINVAL, "NUL in ns: %s", kg_errname(err));
	err = kg_store_kv_put(s, KG_STR("ns"), (kg_str){ big, KG_STORE_MAX_KEY_BYTES + 1 }, KG_STR("v"), true);
	KG_CHECK(err == KG_ETOOBIG, "long key: %s", kg_errname(err));
	err = kg_store_kv_put(s, KG_STR("ns"), KG_STR("k"), (kg_str){ big, KG_STORE_MAX_VALUE_BYTES + 1 }, true);
	KG_CHECK(err == KG_ETOOBIG, "big value: %s", kg_errname(err));
	err = kg_store_kv_put(s, KG_STR("ns"), KG_STR("k"), (kg_str){ big, KG_STORE_MAX_VALUE_BYTES }, true);
	KG_CHECK(err == KG_OK, "a value of exactly the cap: %s", kg_errname(err));
	err = kg_store_revoke(s, KG_STR(""), 1);
	KG_CHECK(err == KG_EINVAL, "empty revoked id: %s", kg_errname(err));
	bool is_revoked = true;
	err = kg_store_is_revoked(s, (kg_str){ big, KG_STORE_MAX_KEY_BYTES + 1 }, &is_revoked);
	KG_CHECK(err == KG_OK && !is_revoked, "an over-long id is simply not revoked: %s", kg_errname(err));
	/* nothing refused may reach the change log */
	int64_t last = -1;
	KG_CHECK(kg_store_changes_last(s, &last) == KG_OK && last == 1, "change log has %lld rows, want 1",
	         (long long)last);
	free(big);
out:
	kg_store_close(&s);
	kg_buf_free(&v, false);
	tmp_remove(&t);
}

KG_TEST(test_revoke_is_revoked_and_prune)
{
	struct tmp t;
	kg_buf list = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	kg_store *s = open_ok(t.dir);
	if (!s)
		goto out;
	bool is_revoked = true;
	KG_CHECK(kg_store_is_revoked(s, KG_STR("tok-a"), &is_revoked) == KG_OK && !is_revoked, "not yet revoked");
	KG_CHECK(kg_store_revoke(s, KG_STR("tok-a"), 1000) == KG_OK, "revoke a");
	KG_CHECK(kg_store_revoke(s, KG_STR("tok-b"), 3000) == KG_OK, "revoke b");
	KG_CHECK(kg_store_revoke(s, KG_STR("tok-c"), -5) == KG_OK, "revoke c (negative expiry)");
	KG_CHECK(kg_store_is_revoked(s, KG_STR("tok-a"), &is_revoked) == KG_OK && is_revoked, "a revoked");
	/* revoking again with an earlier expiry keeps the later one */
	KG_CHECK(kg_store_revoke(s, KG_STR("tok-b"), 2000) == KG_OK, "revoke b again");
	int64_t exp = 0;
	KG_CHECK(kg_store_revoked_get(s, KG_STR("tok-b"), &exp) == KG_OK && exp == 3000, "b expires %lld, want 3000",
	         (long long)exp);
	KG_CHECK(kg_store_revoked_get(s, KG_STR("tok-z"), &exp) == KG_ENOENT, "unknown id must be ENOENT");
	KG_CHECK(kg_store_revoked_scan(s, collect_kv, &list) == KG_OK, "revoked_scan");
	KG_CHECK(strcmp(list.p, "tok-a=1000;tok-b=3000;tok-c=-5;") == 0, "revoked_scan: '%s'", list.p);

	int64_t removed = -1;
	KG_CHECK(kg_store_prune(s, 1000, &removed) == KG_OK && removed == 1, "prune at 1000 removed %lld, want 1 (c)",
	         (long long)removed);
	KG_CHECK(kg_store_is_revoked(s, KG_STR("tok-a"), &is_revoked) == KG_OK && is_revoked,
	         "a expires at 1000: not yet prunable at 1000");
	KG_CHECK(kg_store_prune(s, 2500, &removed) == KG_OK && removed == 1, "prune at 2500 removed %lld, want 1",
	         (long long)removed);
	KG_CHECK(kg_store_is_revoked(s, KG_STR("tok-a"), &is_revoked) == KG_OK && !is_revoked, "a pruned");
	KG_CHECK(kg_store_is_revoked(s, KG_STR("tok-b"), &is_revoked) == KG_OK && is_revoked, "b kept");
out:
	kg_store_close(&s);
	kg_buf_free(&list, false);
	tmp_remove(&t);
}

KG_TEST(test_changes_since_lists_every_write_in_order)
{
	struct tmp t;
	struct seen all = { 0 }, tail = { 0 }, stopped = { .stop_after = 2 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	kg_store *s = open_ok(t.dir);
	if (!s)
		goto out;
	int64_t last = -1;
	KG_CHECK(kg_store_changes_last(s, &last) == KG_OK && last == 0, "fresh log: last %lld", (long long)last);
	KG_CHECK(kg_store_kv_put(s, KG_STR("n"), KG_STR("k1"), KG_STR("v"), true) == KG_OK, "put");
	KG_CHECK(kg_store_kv_add(s, KG_STR("n"), KG_STR("k2"), KG_STR("v")) == KG_OK, "add");
	KG_CHECK(kg_store_kv_add(s, KG_STR("n"), KG_STR("k2"), KG_STR("v")) == KG_EEXIST, "add again");
	KG_CHECK(kg_store_kv_del(s, KG_STR("n"), KG_STR("k1")) == KG_OK, "del");
	KG_CHECK(kg_store_kv_del(s, KG_STR("n"), KG_STR("nope")) == KG_ENOENT, "del absent");
	KG_CHECK(kg_store_revoke(s, KG_STR("tok"), 99) == KG_OK, "revoke");
	KG_CHECK(kg_store_kv_put(s, KG_STR("m"), KG_STR(""), KG_STR("v"), false) == KG_OK, "put empty key");

	KG_CHECK(kg_store_changes_since(s, 0, collect_change, &all, &last) == KG_OK, "changes_since 0");
	KG_CHECK(strcmp(all.text.p, "1:n/k1;1:n/k2;2:n/k1;3:revoked/tok;1:m/;") == 0,
	         "changes: '%s' (failed writes must log nothing)", all.text.p);
	for (int i = 1; i < all.n && i < 64; i++)
		KG_CHECK(all.seqs[i] > all.seqs[i - 1], "seq %d (%lld) not after %lld", i, (long long)all.seqs[i],
		         (long long)all.seqs[i - 1]);
	KG_CHECK(all.n == 5 && last == all.seqs[4], "last %lld, want %lld", (long long)last, (long long)all.seqs[4]);
	int64_t newest = 0;
	KG_CHECK(kg_store_changes_last(s, &newest) == KG_OK && newest == last, "changes_last %lld, want %lld",
	         (long long)newest, (long long)last);

	KG_CHECK(kg_store_changes_since(s, all.seqs[2], collect_change, &tail, &last) == KG_OK, "since the del");
	KG_CHECK(strcmp(tail.text.p, "3:revoked/tok;1:m/;") == 0, "tail: '%s'", tail.text.p);

	int64_t untouched = 12345;
	KG_CHECK(kg_store_changes_since(s, newest, collect_change, &tail, &untouched) == KG_OK && untouched == newest,
	         "nothing new: last must be 'after', got %lld", (long long)untouched);
	untouched = 12345;
	kg_err err = kg_store_changes_since(s, 0, collect_change, &stopped, &untouched);
	KG_CHECK(err == KG_ECONFIG && stopped.n == 2 && untouched == 12345,
	         "a callback error stops the scan and comes back: %s after %d", kg_errname(err), stopped.n);
	/* the store is usable after an interrupted scan */
	KG_CHECK(kg_store_kv_put(s, KG_STR("n"), KG_STR("k3"), KG_STR("v"), true) == KG_OK, "put after stop");
out:
	kg_store_close(&s);
	kg_buf_free(&all.text, false);
	kg_buf_free(&tail.text, false);
	kg_buf_free(&stopped.text, false);
	tmp_remove(&t);
}

KG_TEST(test_prune_trims_old_changes_but_keeps_the_newest)
{
	struct tmp t;
	struct seen after = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	kg_store *s = open_ok(t.dir);
	if (!s)
		goto out;
	for (int i = 0; i < 3; i++)
		KG_CHECK(kg_store_kv_put(s, KG_STR("n"), KG_STR("k"), KG_STR("v"), false) == KG_OK, "put %d", i);
	int64_t now = (int64_t)time(NULL), last = 0, removed = -1;
	KG_CHECK(kg_store_prune(s, now, &removed) == KG_OK && removed == 0, "recent changes stay");
	KG_CHECK(kg_store_changes_since(s, 0, collect_change, &after, &last) == KG_OK && after.n == 3,
	         "%d changes left after a prune at now, want 3", after.n);
	KG_CHECK(kg_store_prune(s, now + KG_STORE_CHANGES_KEEP_SECONDS + 60, &removed) == KG_OK, "prune later");
	after.n = 0;
	kg_buf_clear(&after.text);
	KG_CHECK(kg_store_changes_since(s, 0, collect_change, &after, &last) == KG_OK && after.n == 1 && last == 3,
	         "%d changes left (last %lld), want only the newest, 3", after.n, (long long)last);
	/* seqs are never reused */
	KG_CHECK(kg_store_kv_put(s, KG_STR("n"), KG_STR("k"), KG_STR("v"), true) == KG_OK, "put after trim");
	KG_CHECK(kg_store_changes_last(s, &last) == KG_OK && last == 4, "next seq %lld, want 4", (long long)last);
out:
	kg_store_close(&s);
	kg_buf_free(&after.text, false);
	tmp_remove(&t);
}

KG_TEST(test_reopen_keeps_data_and_does_not_migrate_again)
{
	struct tmp t;
	kg_buf v = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	kg_store *s = open_ok(t.dir);
	if (!s)
		goto out;
	KG_CHECK(kg_store_schema_version(s) == KG_STORE_SCHEMA_VERSION, "version %d", kg_store_schema_version(s));
	KG_CHECK(kg_store_kv_put(s, KG_STR("n"), KG_STR("k"), KG_STR("kept"), false) == KG_OK, "put non-durable");
	KG_CHECK(kg_store_revoke(s, KG_STR("tok"), 4000000000LL) == KG_OK, "revoke");
	kg_store_close(&s);

	/* migration 1 creates its tables without IF NOT EXISTS: running it
	 * again would make this open fail */
	s = open_ok(t.dir);
	if (!s)
		goto out;
	KG_CHECK(kg_store_schema_version(s) == 1, "version after reopen %d", kg_store_schema_version(s));
	KG_CHECK(kg_store_kv_get(s, KG_STR("n"), KG_STR("k"), &v) == KG_OK && kg_str_eq(kg_buf_str(&v), KG_STR("kept")),
	         "value lost across reopen");
	int64_t exp = 0, last = 0;
	KG_CHECK(kg_store_revoked_get(s, KG_STR("tok"), &exp) == KG_OK && exp == 4000000000LL,
	         "revocation lost (expiry %lld)", (long long)exp);
	KG_CHECK(kg_store_changes_last(s, &last) == KG_OK && last == 2, "change log %lld, want 2", (long long)last);
	kg_store_close(&s);

	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int version = -1;
	if (sqlite3_open_v2(t.db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		version = sqlite3_column_int(q, 0);
	KG_CHECK(version == 1, "user_version on disk %d, want 1", version);
	sqlite3_finalize(q);
	sqlite3_close(db);
out:
	kg_store_close(&s);
	kg_buf_free(&v, false);
	tmp_remove(&t);
}

KG_TEST(test_newer_schema_is_refused_with_both_versions)
{
	struct tmp t;
	kg_buf why = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	mkdir(t.dir, 0700);
	sqlite3 *db = NULL;
	int rc = sqlite3_open(t.db, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "CREATE TABLE future (x); PRAGMA user_version = 99", NULL, NULL, NULL);
	sqlite3_close(db);
	KG_CHECK(rc == SQLITE_OK, "making the future database: %s", sqlite3_errstr(rc));

	kg_store *s = (kg_store *)&why; /* must be reset to NULL */
	kg_err err = kg_store_open_sqlite(t.dir, &s, &why);
	KG_CHECK(err == KG_ESTORE && s == NULL, "open: %s, store %p", kg_errname(err), (void *)s);
	KG_CHECK(why.p && strstr(why.p, "database schema version 99 is newer than this keygate (1)"),
	         "message: '%s'", why.p ? why.p : "");
	KG_CHECK(why.p && strstr(why.p, t.db), "message does not name the file: '%s'", why.p ? why.p : "");
	kg_store_close(&s);
	kg_buf_free(&why, false);
	tmp_remove(&t);
}

KG_TEST(test_unwritable_place_is_named_in_the_error)
{
	struct tmp t;
	kg_buf why = { 0 };
	char dir[200];
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");

	/* under a regular file: fails even for root */
	snprintf(dir, sizeof(dir), "%s/file", t.base);
	int fd = open(dir, O_CREAT | O_WRONLY, 0600);
	close(fd);
	snprintf(dir, sizeof(dir), "%s/file/data", t.base);
	kg_store *s = NULL;
	kg_err err = kg_store_open_sqlite(dir, &s, &why);
	KG_CHECK(err != KG_OK && s == NULL, "open under a file succeeded");
	KG_CHECK(why.p && strstr(why.p, dir) && strstr(why.p, "Not a directory"), "message: '%s'",
	         why.p ? why.p : "");

	/* the data directory is itself a file */
	kg_buf_clear(&why);
	snprintf(dir, sizeof(dir), "%s/file", t.base);
	err = kg_store_open_sqlite(dir, &s, &why);
	KG_CHECK(err != KG_OK && why.p && strstr(why.p, dir), "data dir is a file: %s '%s'", kg_errname(err),
	         why.p ? why.p : "");

	/* a read-only parent; root is not stopped by modes, so only when not root */
	if (geteuid() != 0) {
		kg_buf_clear(&why);
		snprintf(dir, sizeof(dir), "%s/ro", t.base);
		mkdir(dir, 0500);
		snprintf(dir, sizeof(dir), "%s/ro/data", t.base);
		err = kg_store_open_sqlite(dir, &s, &why);
		KG_CHECK(err != KG_OK && why.p && strstr(why.p, dir) && strstr(why.p, "Permission denied"),
		         "read-only parent: %s '%s'", kg_errname(err), why.p ? why.p : "");
	}
	kg_store_close(&s);
	kg_buf_free(&why, false);
	tmp_remove(&t);
}

KG_TEST(test_a_file_that_is_not_a_database_is_named)
{
	struct tmp t;
	kg_buf why = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	mkdir(t.dir, 0700);
	FILE *f = fopen(t.db, "w");
	if (f) {
		for (int i = 0; i < 64; i++)
			fputs("this is not an SQLite database ", f);
		fclose(f);
	}
	kg_store *s = NULL;
	kg_err err = kg_store_open_sqlite(t.dir, &s, &why);
	KG_CHECK(err == KG_ESTORE && s == NULL, "open: %s", kg_errname(err));
	KG_CHECK(why.p && strstr(why.p, t.db) && strstr(why.p, "not a database"), "message: '%s'",
	         why.p ? why.p : "");
	kg_buf_free(&why, false);
	tmp_remove(&t);
}

KG_TEST(test_ping_answers_and_last_error_describes_failures)
{
	struct tmp t;
	kg_buf detail = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	kg_store *s = open_ok(t.dir);
	if (!s)
		goto out;
	kg_err err = kg_store_ping(s, &detail);
	KG_CHECK(err == KG_OK && detail.n == 0, "ping: %s '%s'", kg_errname(err), detail.p ? detail.p : "");
	kg_store_last_error(s, &detail);
	KG_CHECK(detail.n == 0, "no failure yet, last_error '%s'", detail.p);
out:
	kg_store_close(&s);
	kg_buf_free(&detail, false);
	tmp_remove(&t);
}

KG_TEST(test_a_failed_write_is_described_and_leaves_no_transaction_open)
{
	struct tmp t;
	kg_buf why = { 0 };
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	kg_store *s = open_ok(t.dir);
	if (!s)
		goto out;
	KG_CHECK(kg_store_kv_put(s, KG_STR("n"), KG_STR("k"), KG_STR("v"), true) == KG_OK, "put");
	/* someone else breaks the schema under us */
	sqlite3 *db = NULL;
	int rc = sqlite3_open(t.db, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "DROP TABLE kv", NULL, NULL, NULL);
	sqlite3_close(db);
	KG_CHECK(rc == SQLITE_OK, "drop: %s", sqlite3_errstr(rc));

	kg_err err = kg_store_kv_put(s, KG_STR("n"), KG_STR("k"), KG_STR("v2"), true);
	KG_CHECK(err == KG_ESTORE, "put on a dropped table: %s", kg_errname(err));
	kg_store_last_error(s, &why);
	KG_CHECK(why.p && strstr(why.p, t.db) && strstr(why.p, "kv_put") && strstr(why.p, "no such table: kv"),
	         "last_error: '%s'", why.p ? why.p : "");
	/* the failed transaction was rolled back: other writes still work and
	 * the failed put logged nothing */
	int64_t last = 0;
	KG_CHECK(kg_store_revoke(s, KG_STR("tok"), 1) == KG_OK, "revoke after a failed put");
	KG_CHECK(kg_store_changes_last(s, &last) == KG_OK && last == 2, "change log at %lld, want 2",
	         (long long)last);
out:
	kg_store_close(&s);
	kg_buf_free(&why, false);
	tmp_remove(&t);
}

/* Writers on one handle from several threads: the mutex keeps every
 * transaction whole, so the log has exactly one row per write. */
struct writer_arg {
	kg_store *s;
	int id;
	int failures;
};

#define WRITERS 4
#define WRITES_EACH 25

static void *writer_main(void *p)
{
	struct writer_arg *a = p;
	char key[32];
	for (int i = 0; i < WRITES_EACH; i++) {
		int n = snprintf(key, sizeof(key), "w%d-%d", a->id, i);
		kg_str k = { key, (size_t)n };
		if ((i % 2 ? kg_store_revoke(a->s, k, 1) : kg_store_kv_put(a->s, KG_STR("t"), k, k, false)) != KG_OK)
			a->failures++;
	}
	return NULL;
}

KG_TEST(test_one_handle_serves_many_threads)
{
	struct tmp t;
	struct writer_arg args[WRITERS];
	pthread_t th[WRITERS];
	KG_CHECK(tmp_make(&t) == 0, "mkdtemp failed");
	kg_store *s = open_ok(t.dir);
	if (!s)
		goto out;
	for (int i = 0; i < WRITERS; i++) {
		args[i] = (struct writer_arg){ .s = s, .id = i };
		pthread_create(&th[i], NULL, writer_main, &args[i]);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(th[i], NULL);
		KG_CHECK(args[i].failures == 0, "writer %d: %d failures", i, args[i].failures);
	}
	int64_t last = 0;
	KG_CHECK(kg_store_changes_last(s, &last) == KG_OK && last == WRITERS * WRITES_EACH, "log has %lld, want %d",
	         (long long)last, WRITERS * WRITES_EACH);
out:
	kg_store_close(&s);
	tmp_remove(&t);
}

int main(void)
{
	return kg_test_main();
}
