/* `pzpgw check-config`: load a configuration the way the daemon does and
 * report every problem as file:line: message, then check that the
 * gateway's own certificates verify against its trust, then the warnings.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "config.h"
#include "tls.h"

static void
print_config_error(void *arg, const char *file, int line, const char *msg)
{
	int *count = arg;

	(*count)++;
	if (line > 0)
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

/* A warning: printed, not counted as an error (the exit stays 0). */
static void
print_config_warning(void *arg, const char *file, int line, const char *msg)
{
	(void)arg;
	(void)line;
	fprintf(stderr, "%s: warning: %s\n", file, msg);
}

int
cli_check_config(int argc, char **argv)
{
	const char *path = CONFIG_DEFAULT_PATH;
	struct config *cfg = NULL;
	int ch, errors = 0;
	enum gw_err err;

	optind = 1;
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		default:
			return cli_usage("check-config", "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage("check-config", "unexpected argument '%s'",
				 argv[optind]);
	err = config_load(path, print_config_error, &errors, &cfg);
	if (err == GW_NOTFOUND || err == GW_IO) {
		if (errors == 0)
			fprintf(stderr, "%s: %s\n", path, gw_strerror(err));
		return CLI_USAGE;
	}
	if (err != GW_OK) {
		fprintf(stderr, "%s: %d error%s\n", path, errors,
			errors == 1 ? "" : "s");
		return CLI_FAIL;
	}
	/* Only here, not at the daemon's start: a gateway whose own chain
	 * does not verify may still be meant to run (a CA being changed),
	 * but every peer that pins the CA will refuse it. */
	(void)tls_check_own_chains(cfg, print_config_error, &errors);
	config_warnings(cfg, print_config_warning, NULL);
	if (errors > 0) {
		fprintf(stderr, "%s: %d error%s\n", path, errors,
			errors == 1 ? "" : "s");
		config_free(cfg);
		return CLI_FAIL;
	}
	printf("%s: configuration ok (organisation %s, %zu peer%s)\n", path,
	       cfg->ura, cfg->npeers, cfg->npeers == 1 ? "" : "s");
	config_free(cfg);
	return CLI_OK;
}
