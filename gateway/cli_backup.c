/*
 * `pzpgw backup` and `pzpgw restore`: an online copy of the store that is
 * checked before it is called a backup, and putting one back while no
 * gateway runs on the store. What they print is counts, never content.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "store.h"
#include "store_backup.h"
#include "util.h"

struct backup_args {
	const char *config;
	const char *store;
	bool force;
	const char *file; /* DEST or SRC */
};

enum { OPT_STORE = 256, OPT_FORCE };

/* Each command's own table, so that what it accepts is what its help
 * text (and manual page) lists. */
static const struct option backup_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"store", required_argument, NULL, OPT_STORE},
    {NULL, 0, NULL, 0},
};

static const struct option restore_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"store", required_argument, NULL, OPT_STORE},
    {"force", no_argument, NULL, OPT_FORCE},
    {NULL, 0, NULL, 0},
};

static void
backup_config_error(void *arg, const char *file, int line, const char *msg)
{
	if (line > 0)
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

static int
backup_parse(const char *cmd, int argc, char **argv, struct backup_args *a)
{
	const struct option *opts =
	    strcmp(cmd, "restore") == 0 ? restore_opts : backup_opts;
	int ch;

	memset(a, 0, sizeof(*a));
	optind = 0; /* full reinitialisation (GNU), argv is permuted */
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			a->config = optarg;
			break;
		case OPT_STORE:
			a->store = optarg;
			break;
		case OPT_FORCE:
			a->force = true;
			break;
		default:
			return cli_usage(cmd, "unknown option");
		}
	}
	if (a->config != NULL && a->store != NULL)
		return cli_usage(cmd, "give -c or --store, not both");
	if (optind >= argc)
		return cli_usage(cmd, "missing %s",
				 strcmp(cmd, "backup") == 0 ? "DEST" : "SRC");
	if (optind + 1 < argc)
		return cli_usage(cmd, "unexpected argument '%s'",
				 argv[optind + 1]);
	a->file = argv[optind];
	if (a->file[0] == '\0')
		return cli_usage(cmd, "empty file name");
	return CLI_OK;
}

/* The store's path from --store or the configuration, into out. */
static int
backup_store_path(const char *cmd, const struct backup_args *a, char *out,
		  size_t n)
{
	struct config *c = NULL;
	enum gw_err err;

	if (a->store != NULL) {
		if (util_strlcpy(out, a->store, n) >= n)
			return cli_usage(cmd, "store path too long");
		return CLI_OK;
	}
	err = config_load(a->config != NULL ? a->config : CONFIG_DEFAULT_PATH,
			  backup_config_error, NULL, &c);
	if (err != GW_OK) {
		fprintf(stderr, "pzpgw %s: configuration: %s\n", cmd,
			gw_strerror(err));
		return CLI_USAGE;
	}
	if (c->store_backend != NULL &&
	    strcmp(c->store_backend, "postgresql") == 0) {
		/* The database server's own tools copy it consistently. */
		fprintf(stderr,
			"pzpgw %s: the store is in PostgreSQL ([store] backend "
			"= postgresql): use PostgreSQL's own backup (pg_dump, "
			"pg_basebackup) instead\n",
			cmd);
		config_free(c);
		return CLI_USAGE;
	}
	if (c->store_path == NULL || util_strlcpy(out, c->store_path, n) >= n) {
		fprintf(stderr, "pzpgw %s: no usable [store] path\n", cmd);
		config_free(c);
		return CLI_USAGE;
	}
	config_free(c);
	return CLI_OK;
}

/* Rows per table, one line each. */
static void
backup_print_tables(const struct store_copy_info *info)
{
	for (size_t i = 0; i < info->ntables; i++)
		printf("  %-16s %lld\n", info->tables[i].name,
		       (long long)info->tables[i].rows);
}

int
cli_backup(int argc, char **argv)
{
	struct store_copy_info info;
	struct backup_args a;
	char store[4096], err[512] = "";
	enum gw_err e;
	int rc;

	if ((rc = backup_parse("backup", argc, argv, &a)) != CLI_OK)
		return rc;
	if ((rc = backup_store_path("backup", &a, store, sizeof(store))) !=
	    CLI_OK)
		return rc;
	e = store_backup(store, a.file, &info, err, sizeof(err));
	if (e == GW_INVALID) {
		/* The copy exists no more: nothing that failed its check
		   can be mistaken for a backup. */
		fprintf(stderr, "pzpgw backup: %s; no backup written\n", err);
		return CLI_FAIL;
	}
	if (e != GW_OK) {
		fprintf(stderr, "pzpgw backup: %s\n",
			err[0] ? err : gw_strerror(e));
		return CLI_USAGE;
	}
	printf("backup of %s written to %s: %llu bytes, schema %d, "
	       "integrity ok\n",
	       store, a.file, (unsigned long long)info.bytes, info.schema);
	backup_print_tables(&info);
	return CLI_OK;
}

int
cli_restore(int argc, char **argv)
{
	struct store_restore_info info;
	struct backup_args a;
	char store[4096], err[512] = "";
	long holder = 0;
	enum gw_err e;
	int rc;

	if ((rc = backup_parse("restore", argc, argv, &a)) != CLI_OK)
		return rc;
	if ((rc = backup_store_path("restore", &a, store, sizeof(store))) !=
	    CLI_OK)
		return rc;
	e = store_restore(a.file, store, a.force, &info, &holder, err,
			  sizeof(err));
	switch (e) {
	case GW_OK:
		break;
	case GW_EXISTS:
		fprintf(stderr,
			"pzpgw restore: %s (pid %ld holds %s%s): stop it "
			"first (systemctl stop pzpgw); nothing changed\n",
			err, holder, store, STORE_LOCK_SUFFIX);
		return CLI_FAIL;
	case GW_DENIED:
		fprintf(stderr,
			"pzpgw restore: %s; nothing changed. --force "
			"restores anyway (the current store is kept as "
			"%s.before-restore-<time>)\n",
			err, store);
		return CLI_FAIL;
	case GW_INVALID:
	case GW_CONFIG:
	case GW_NOTFOUND:
	case GW_PERM:
		fprintf(stderr, "pzpgw restore: %s; nothing changed\n", err);
		return CLI_FAIL;
	default:
		fprintf(stderr, "pzpgw restore: %s\n",
			err[0] ? err : gw_strerror(e));
		return CLI_USAGE;
	}
	printf("restored %s to %s: %llu bytes, schema %d, integrity ok\n",
	       a.file, store, (unsigned long long)info.src.bytes,
	       info.src.schema);
	backup_print_tables(&info.src);
	if (info.kept[0] != '\0')
		printf("the previous store is kept as %s\n", info.kept);
	if (info.only_in_old > 0)
		printf("it held %lld message(s) the backup lacks: they are "
		       "only in the kept store\n",
		       (long long)info.only_in_old);
	if (info.src.schema < STORE_SQLITE_SCHEMA)
		printf("schema %d is migrated to %d at the gateway's next "
		       "start (or by pzpgw queue init)\n",
		       info.src.schema, STORE_SQLITE_SCHEMA);
	return CLI_OK;
}
