/*
 * The pzpgw command line: one binary, subcommands. Each subcommand is a
 * function taking its own argc/argv (argv[0] is the subcommand name) and
 * returning the exit status: 0 success, 1 failure, 2 usage or I/O error.
 */
#ifndef GW_CLI_H
#define GW_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_OK	  0
#define CLI_FAIL  1
#define CLI_USAGE 2

/* Dispatch the whole command line; returns the process exit status. */
int cli_main(int argc, char **argv);

/* Print "pzpgw CMD: message" and CMD's usage to stderr; returns
 * CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parse "YYYY-MM-DD" (midnight UTC) or RFC 3339
 * "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)" into ms since the epoch
 * (cli_queue.c; also the audit's --since). */
bool cli_parse_time(const char *s, int64_t *out);

struct config;
struct store;
struct store_options;

/*
 * Open the store a command works on: the file given by --store
 * (store_path), else the [store] path of the configuration (config_path,
 * or CONFIG_DEFAULT_PATH when NULL). o gives create and readonly; the
 * path and quiet are set here. On success *s (caller frees with
 * store_free) and, when cfg is not NULL, *cfg: the configuration read
 * (NULL with --store; caller frees with config_free). Problems are said
 * on stderr as "pzpgw CMD: ..." (with hint after a missing store) and
 * give CLI_USAGE (cli_store.c).
 */
int cli_store_open(const char *cmd, const char *config_path,
		   const char *store_path, struct store_options *o,
		   const char *hint, struct store **s, struct config **cfg);

/* The default compiled-rules directory ($PZPGW_SCHEMAS, the source tree's
 * schemas/, /usr/share/pzpgw/schemas, ./schemas) into out
 * (cli_validate.c). */
void cli_default_schemas(char *out, size_t len);

/* The help text of one subcommand (cli_help.c's table). usage: the
 * synopsis line, lines continuing it (indented, starting with '['), then
 * items indented by two blanks with their description after two or more
 * blanks (deeper indented lines continue one), and unindented prose. The
 * manual page pzpgw(8) is made from it (cli_man.c). */
struct cli_text {
	const char *name;
	const char *summary;
	const char *usage;
};

/* The help text of command name, or NULL (cli_help.c). */
const struct cli_text *cli_help_text(const char *name);

/* The name of the i-th command cli_main dispatches, NULL past the last
 * (cli.c). */
const char *cli_command_name(size_t i);

/*
 * Write the manual page pzpgw(8) (section 8: texts[0..n-1], the help
 * texts) or pzpgw.conf(5) (section 5: the configuration key tables) to
 * fp as roff. Returns CLI_OK, or CLI_FAIL after naming on stderr a key
 * or command whose text is missing (cli_man.c).
 */
int cli_man_write(FILE *fp, int section, const struct cli_text *texts,
		  size_t n);

/* The overview of all commands (cli_help.c). */
void cli_overview(FILE *fp);

/* Subcommands, implemented by their modules. */
int cli_help(int argc, char **argv);	     /* cli_help.c */
int cli_serve(int argc, char **argv);	     /* serve.c */
int cli_check_config(int argc, char **argv); /* cli_check_config.c */
int cli_canon(int argc, char **argv);	     /* cli_sign.c */
int cli_sign(int argc, char **argv);	     /* cli_sign.c */
int cli_verify(int argc, char **argv);	     /* cli_sign.c */
int cli_queue(int argc, char **argv);	     /* cli_queue.c */
int cli_inbox(int argc, char **argv);	     /* cli_inbox.c */
int cli_validate(int argc, char **argv);     /* cli_validate.c */
int cli_schemas(int argc, char **argv);	     /* cli_schemas.c */
int cli_send(int argc, char **argv);	     /* cli_send.c */
int cli_audit(int argc, char **argv);	     /* cli_audit.c */
int cli_transform(int argc, char **argv);    /* cli_transform.c */
int cli_backup(int argc, char **argv);	     /* cli_backup.c */
int cli_restore(int argc, char **argv);	     /* cli_backup.c */
int cli_report(int argc, char **argv);	     /* cli_report.c */
int cli_store(int argc, char **argv);	     /* cli_store_copy.c */

#endif
