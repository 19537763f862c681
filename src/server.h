/* server.h - the entry point main.c calls for `keygate serve`. */
#ifndef KG_SERVER_H
#define KG_SERVER_H

#include "keygate/config.h"

/* What reload needs to rebuild the config exactly as at start-up. */
struct kg_serve_args {
	const char *config_path; /* borrowed, may be NULL */
	char *const *envp;
	int argc;
	char *const *argv;
};

/* Runs the daemon until SIGTERM/SIGINT; takes ownership of cfg. Returns the
 * process exit status. */
int kg_serve(const struct kg_serve_args *args, kg_config *cfg);

#endif
