/* cmd_token.c - `keygate token revoke`: revocation that Bee never had.
 *
 *   keygate token revoke [FLAGS] ID|TOKEN...   revoke single tokens
 *   keygate token revoke [FLAGS] --all         revoke every token issued until now
 *
 * FLAGS are serve's (--config, --data-dir, --token-encryption-key, ...) so the
 * command finds the same store and keys; the key serve generated is read from
 * the store. The revocation is written to the store, which must exist (this
 * command never creates one) and is named in every message; running servers
 * pick it up within a second. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "keygate/config.h"
#include "keygate/store.h"
#include "keygate/token.h"
#include "cmds.h"

extern char **environ;

static bool is_token_id(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* Splits argv into serve flags (with their values) and positional words. */
static int split_args(int argc, char **argv, char **flags, int *nflags, char **words, int *nwords, bool *all)
{
	*nflags = *nwords = 0;
	*all = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--all") == 0) {
			*all = true;
		} else if (strncmp(a, "--", 2) == 0) {
			flags[(*nflags)++] = argv[i];
			const struct kg_setting *s = strcmp(a, "--config") == 0 ? NULL : kg_setting_find(a);
			bool takes_value = strcmp(a, "--config") == 0 ||
			                   (s && s->type != KG_SET_BOOL && s->type != KG_SET_TRIBOOL);
			if (!strchr(a, '=') && takes_value && i + 1 < argc)
				flags[(*nflags)++] = argv[++i];
		} else {
			words[(*nwords)++] = argv[i];
		}
	}
	return 0;
}

/* The keys that open the tokens to revoke: the configured ones, then the key
 * serve generated and keeps in the store (used when none is configured), so
 * a token from either opens without repeating --token-encryption-key. */
static kg_err load_keys(const kg_config *cfg, kg_store *store, kg_token_keys **keys)
{
	size_t n = cfg->token_encryption_keys.n;
	const char **all = calloc(n + 1, sizeof(*all));
	kg_buf stored = { 0 };
	kg_err err = KG_ENOMEM;
	if (!all)
		goto out;
	for (size_t i = 0; i < n; i++)
		all[i] = cfg->token_encryption_keys.v[i];
	err = kg_store_kv_get(store, KG_STR("bee"), KG_STR("token_encryption_key"), &stored);
	if (err == KG_OK && stored.p && stored.p[0])
		all[n++] = stored.p;
	else if (err != KG_ENOENT && err != KG_OK)
		goto out;
	err = n ? kg_token_keys_new(all, n, keys) : KG_ENOENT;
out:
	free(all);
	kg_buf_free(&stored, true);
	return err;
}

int kg_cmd_token(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "revoke") != 0) {
		fprintf(stderr, "usage: keygate token revoke [FLAGS] ID|TOKEN...\n"
		                "       keygate token revoke [FLAGS] --all\n");
		return 2;
	}
	char **flags = calloc((size_t)argc, sizeof(char *)), **words = calloc((size_t)argc, sizeof(char *));
	int nflags, nwords, rc = 1;
	bool all;
	kg_config *cfg = NULL;
	kg_config_errors errs = { 0 };
	kg_store *store = NULL;
	kg_token_keys *keys = NULL;
	kg_buf why = { 0 };

	if (!flags || !words)
		goto out;
	split_args(argc - 2, argv + 2, flags, &nflags, words, &nwords, &all);
	if (all == (nwords > 0)) {
		fprintf(stderr, "keygate token revoke: give token ids or tokens, or --all\n");
		rc = 2;
		goto out;
	}
	const char *path = kg_config_path(environ, nflags, flags);
	if (kg_config_load(path, environ, nflags, flags, &cfg, &errs) != KG_OK) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "keygate: %s\n", errs.v[i]);
		goto out;
	}
	/* never creates: a revocation written to a new, empty store (run from
	 * the wrong directory, or with the wrong data_dir) would end nothing */
	if (kg_store_open_sqlite_mode(cfg->data_dir, KG_STORE_OPEN_EXISTING, &store, &why) != KG_OK) {
		fprintf(stderr, "keygate token revoke: %s; nothing revoked\n", why.p ? why.p : "cannot open the store");
		goto out;
	}
	const char *where = kg_store_location(store);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (all) {
		char v[32];
		snprintf(v, sizeof(v), "%lld", (long long)now_ms);
		if (kg_store_kv_put(store, KG_STR("bee"), KG_STR("revoked_before_ms"), kg_str_c(v), true) != KG_OK) {
			fprintf(stderr, "keygate token revoke: cannot write the revocation to the store %s\n", where);
			goto out;
		}
		struct tm tm;
		char when[32] = "now";
		if (gmtime_r(&ts.tv_sec, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("revoked every keygate-format token issued before %s in the store %s; running servers "
		       "apply it within a second\n"
		       "(Bee-format tokens carry no issue time: rotate token_encryption_key to end them all)\n",
		       when, where);
		rc = 0;
		goto out;
	}
	rc = 0;
	for (int i = 0; i < nwords; i++) {
		char id[33];
		int64_t expires = ts.tv_sec + cfg->token_max_expiry_ms / 1000;
		if (is_token_id(words[i])) {
			snprintf(id, sizeof(id), "%s", words[i]);
		} else {
			struct kg_token_claims cl;
			if (!keys && load_keys(cfg, store, &keys) != KG_OK) {
				fprintf(stderr,
				        "keygate token revoke: no token encryption key configured or in the store %s to "
				        "read %.12s...\n",
				        where, words[i]);
				rc = 1;
				continue;
			}
			if (kg_token_open(keys, kg_str_c(words[i]), &cl) != KG_OK) {
				fprintf(stderr,
				        "keygate token revoke: %.12s...: not a token the keys (configured, or stored in %s) "
				        "open, nor a 32-hex-digit id\n",
				        words[i], where);
				rc = 1;
				continue;
			}
			snprintf(id, sizeof(id), "%s", cl.id);
			expires = cl.expires_ms / 1000 + 1;
		}
		if (kg_store_revoke(store, kg_str_c(id), expires) != KG_OK) {
			fprintf(stderr, "keygate token revoke: %s: cannot write the revocation to the store %s\n", id,
			        where);
			rc = 1;
			continue;
		}
		printf("revoked %s in the store %s\n", id, where);
	}
out:
	kg_token_keys_free(&keys);
	kg_store_close(&store);
	kg_config_free(&cfg);
	kg_config_errors_free(&errs);
	kg_buf_free(&why, false);
	free(flags);
	free(words);
	return rc;
}
