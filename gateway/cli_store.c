/*
 * The store as the command line opens it (queue, inbox, audit): from
 * --store or the configuration, with one set of error lines. Apart from
 * cli.c, which dispatches to these commands, so no call goes back.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "store.h"

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
		if (c->store_backend != NULL &&
		    strcmp(c->store_backend, "postgresql") == 0) {
			o->pg_url = c->store_url;
			o->pg_password_file = c->store_password_file;
		}
	} else if (strncmp(path, "postgresql://", 13) == 0 ||
		   strncmp(path, "postgres://", 11) == 0) {
		/* --store with a database URI: the password from libpq's
		   own sources (PGPASSFILE, ~/.pgpass), never the command
		   line. */
		o->pg_url = path;
	}
	if (path == NULL)
		path = "(none)";
	o->path = path;
	o->quiet = true;
	err = store_open(o, s);
	/* Name a database by its backend: the URI is not repeated. */
	if (o->pg_url != NULL)
		path = "(postgresql)";
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
