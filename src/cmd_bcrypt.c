/* cmd_bcrypt.c - `keygate bcrypt`, as `bee bcrypt` was:
 *   keygate bcrypt [--cost N] PLAIN|-        print a hash ("-": read the password from stdin)
 *   keygate bcrypt --check PLAIN|- HASH      exit 0 when they match, 1 when not */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "keygate/password.h"
#include "cmds.h"

#define KG_MAX_PASSWORD 1024

static int usage(void)
{
	fprintf(stderr, "usage: keygate bcrypt [--cost N] PLAIN|-\n"
	                "       keygate bcrypt --check PLAIN|- HASH\n");
	return 2;
}

/* The password from argv, or one line of stdin for "-". */
static bool read_password(const char *arg, kg_buf *out)
{
	if (strcmp(arg, "-") != 0)
		return kg_buf_appends(out, kg_str_c(arg)) == KG_OK;
	char line[KG_MAX_PASSWORD + 2];
	if (!fgets(line, sizeof(line), stdin)) {
		fprintf(stderr, "keygate bcrypt: no password on stdin\n");
		return false;
	}
	size_t n = strlen(line);
	bool ok = true;
	if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
		fprintf(stderr, "keygate bcrypt: password longer than %d bytes\n", KG_MAX_PASSWORD);
		ok = false;
	}
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (ok)
		ok = kg_buf_append(out, line, n) == KG_OK;
	OPENSSL_cleanse(line, sizeof(line));
	return ok;
}

int kg_cmd_bcrypt(int argc, char **argv)
{
	int cost = KG_BCRYPT_DEFAULT_COST, rc = 1;
	bool check = false;
	const char *args[2];
	int nargs = 0;
	kg_buf pw = { 0 }, hash = { 0 };

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--check") == 0) {
			check = true;
		} else if (strcmp(argv[i], "--cost") == 0 || strncmp(argv[i], "--cost=", 7) == 0) {
			const char *v = argv[i][6] == '=' ? argv[i] + 7 : (i + 1 < argc ? argv[++i] : "");
			unsigned long long c;
			if (kg_str_to_u64(kg_str_c(v), 99, &c) != KG_OK || c < KG_BCRYPT_MIN_COST || c > KG_BCRYPT_MAX_COST) {
				fprintf(stderr, "keygate bcrypt: --cost must be between %d and %d\n", KG_BCRYPT_MIN_COST,
				        KG_BCRYPT_MAX_COST);
				return 2;
			}
			cost = (int)c;
		} else if (argv[i][0] == '-' && argv[i][1] == '-') {
			return usage();
		} else if (nargs < 2) {
			args[nargs++] = argv[i];
		} else {
			return usage();
		}
	}
	if (nargs != (check ? 2 : 1))
		return usage();
	if (!read_password(args[0], &pw))
		goto out;
	if (check) {
		bool ok = false;
		if (kg_bcrypt_verify(kg_buf_str(&pw), args[1], &ok) != KG_OK) {
			fprintf(stderr, "keygate bcrypt: %s is not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)\n",
			        args[1]);
		} else if (ok) {
			printf("OK: password hash matches provided plain text\n");
			rc = 0;
		} else {
			fprintf(stderr, "password hash does not match provided plain text\n");
		}
		goto out;
	}
	if (kg_bcrypt_hash(kg_buf_str(&pw), cost, &hash) != KG_OK) {
		fprintf(stderr, "keygate bcrypt: cannot hash this password (NUL byte?)\n");
		goto out;
	}
	printf("%s\n", hash.p);
	rc = 0;
out:
	kg_buf_free(&pw, true);
	kg_buf_free(&hash, false);
	return rc;
}
