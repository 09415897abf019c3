/* Dispatch of the pzpgw subcommands (their help texts: cli_help.c). */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
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
    {"inbox", cli_inbox},     {"transform", cli_transform},
    {"backup", cli_backup},   {"restore", cli_restore},
    {"report", cli_report},   {"store", cli_store},
    {"version", cli_version}, {"help", cli_help},
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

const char *
cli_command_name(size_t i)
{
	return i < UTIL_ARRAY_LEN(cli_cmds) ? cli_cmds[i].name : NULL;
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
	/* "pzpgw COMMAND --help" (or -h) alone: that command's help, as
	   "pzpgw help COMMAND"; no command takes -h or --help itself. */
	if (argc == 3 &&
	    (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
		char *help[] = {"help", argv[1], NULL};

		return cli_help(2, help);
	}
	/* Each command sees its own name as argv[0]. */
	return c->run(argc - 1, argv + 1);
}
