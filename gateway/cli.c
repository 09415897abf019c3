/* Dispatch of the pzpgw subcommands (their help texts: cli_help.c). */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "store.h"
#include "util.h"
#include "version.h"

/* Which function runs each subcommand; their texts are in cli_help.c. */
struct cli_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
};

static int cli_version(int argc, char **argv);

static const struct cli_cmd cli_cmds[] = {
    {"serve", cli_serve},     {"check-config", cli_check_config},
    {"canon", cli_canon},     {"sign", cli_sign},
    {"verify", cli_verify},   {"queue", cli_queue},
    {"schemas", cli_schemas}, {"validate", cli_validate},
    {"send", cli_send},	      {"audit", cli_audit},
    {"inbox", cli_inbox},     {"version", cli_version},
    {"help", cli_help},
};

static int
cli_version(int argc, char **argv)
{
	if (argc > 1)
		return cli_usage("version", "unexpected argument '%s'",
				 argv[1]);
	printf("pzpgw %s\n", PZPGW_VERSION);
	return CLI_OK;
}

int
cli_main(int argc, char **argv)
{
	const struct cli_cmd *c;

	if (argc < 2) {
		cli_overview(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		cli_overview(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		return cli_version(1, argv + 1);
	for (c = cli_cmds; c < cli_cmds + UTIL_ARRAY_LEN(cli_cmds); c++)
		if (strcmp(c->name, argv[1]) == 0)
			break;
	if (c == cli_cmds + UTIL_ARRAY_LEN(cli_cmds)) {
		fprintf(stderr, "pzpgw: unknown command '%s'\n\n", argv[1]);
		cli_overview(stderr);
		return CLI_USAGE;
	}
	/* Each command sees its own name as argv[0]. */
	return c->run(argc - 1, argv + 1);
}

static void
cli_config_error(void *arg, const char *file, int line, const char *msg)
{
	if (line > 0)
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

int
cli_store_open(const char *cmd, const char *config_path, const char *store_path,
	       struct store_options *o, const char *hint, struct store **s,
	       struct config **cfg)
{
	struct config *c = NULL;
	const char *path = store_path;
	enum gw_err err;

	if (cfg != NULL)
		*cfg = NULL;
	if (path == NULL) {
		err = config_load(config_path != NULL ? config_path
						      : CONFIG_DEFAULT_PATH,
				  cli_config_error, NULL, &c);
		if (err != GW_OK) {
			fprintf(stderr, "pzpgw %s: configuration: %s\n", cmd,
				gw_strerror(err));
			return CLI_USAGE;
		}
		path = c->store_path;
	}
	if (path == NULL)
		path = "(none)";
	o->path = path;
	o->quiet = true;
	err = store_open(o, s);
	if (err == GW_NOTFOUND)
		fprintf(stderr, "pzpgw %s: no store at %s%s\n", cmd, path,
			hint != NULL ? hint : "");
	else if (err == GW_PERM && o->readonly)
		fprintf(stderr,
			"pzpgw %s: store %s: not a store, or one with an "
			"older schema (the gateway, or pzpgw queue init, "
			"migrates it)\n",
			cmd, path);
	else if (err != GW_OK)
		fprintf(stderr, "pzpgw %s: store %s: %s\n", cmd, path,
			err == GW_CONFIG ? "schema newer than this binary"
					 : gw_strerror(err));
	if (err != GW_OK || cfg == NULL)
		config_free(c);
	else
		*cfg = c;
	return err == GW_OK ? CLI_OK : CLI_USAGE;
}
