/* main.c - subcommands: serve, config check, version, help. */
#include <stdio.h>
#include <string.h>

#include "keygate/config.h"
#include "cmds.h"
#include "kg.h"
#include "server.h"

extern char **environ;

static void usage(FILE *out)
{
	fprintf(out,
	        "keygate %s - an authenticating API gateway\n"
	        "\n"
	        "Usage:\n"
	        "  keygate serve [--config FILE] [FLAGS]   run the gateway\n"
	        "  keygate config check FILE               validate a config file, report every error\n"
	        "  keygate bcrypt PLAIN|-                  print a bcrypt hash for admin_password (--cost N)\n"
	        "  keygate bcrypt --check PLAIN HASH       check a password against a hash\n"
	        "  keygate token revoke [FLAGS] ID|TOKEN   revoke tokens (--all: every token issued until now) in\n"
	        "                                          the existing store of --data-dir/--config; never creates one\n"
	        "  keygate version                         print the version\n"
	        "  keygate --help                          this help\n"
	        "\n"
	        "Every setting is a YAML key in the config file, a flag, and a KEYGATE_* environment\n"
	        "variable; flags win over the environment, which wins over the file.\n"
	        "\n"
	        "Settings:\n",
	        kg__version);
	kg_config_print_help(out);
}

static int config_check(const char *path)
{
	kg_config *cfg = NULL;
	kg_config_errors errs = { 0 };
	int rc = 0;

	/* environment and flags are left out: this checks the file alone */
	if (kg_config_load(path, NULL, 0, NULL, &cfg, &errs) != KG_OK) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.v[i]);
		fprintf(stderr, "%s: %zu error%s\n", path, errs.n, errs.n == 1 ? "" : "s");
		rc = 1;
	} else {
		struct kg_runtime *rt = NULL;
		kg_buf why = { 0 };
		if (kg__runtime_build(cfg, &rt, &why) != KG_OK) {
			fprintf(stderr, "%s: %s\n", path, why.p ? why.p : "invalid");
			kg_config_free(&cfg);
			rc = 1;
		} else {
			printf("%s: ok\n", path);
			kg__runtime_release(rt);
		}
		kg_buf_free(&why, false);
	}
	kg_config_errors_free(&errs);
	return rc;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("keygate %s\n", kg__version);
		return 0;
	}
	if (strcmp(cmd, "bcrypt") == 0)
		return kg_cmd_bcrypt(argc - 1, argv + 1);
	if (strcmp(cmd, "token") == 0)
		return kg_cmd_token(argc - 1, argv + 1);
	if (strcmp(cmd, "config") == 0) {
		if (argc != 4 || strcmp(argv[2], "check") != 0) {
			fprintf(stderr, "usage: keygate config check FILE\n");
			return 2;
		}
		return config_check(argv[3]);
	}
	if (strcmp(cmd, "serve") == 0) {
		if (wants_help(argc - 2, argv + 2)) {
			usage(stdout);
			return 0;
		}
		struct kg_serve_args args = {
			.config_path = kg_config_path(environ, argc - 2, argv + 2),
			.envp = environ,
			.argc = argc - 2,
			.argv = argv + 2,
		};
		kg_config *cfg = NULL;
		kg_config_errors errs = { 0 };
		if (kg_config_load(args.config_path, args.envp, args.argc, args.argv, &cfg, &errs) != KG_OK) {
			for (size_t i = 0; i < errs.n; i++)
				fprintf(stderr, "keygate: %s\n", errs.v[i]);
			kg_config_errors_free(&errs);
			return 1;
		}
		kg_config_errors_free(&errs);
		return kg_serve(&args, cfg);
	}
	fprintf(stderr, "keygate: unknown command '%s' (try keygate --help)\n", cmd);
	return 2;
}
