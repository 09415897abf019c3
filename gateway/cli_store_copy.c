/*
 * `pzpgw store copy`: one store's tables into another store (SQLite or
 * PostgreSQL, either way), with the check of every table printed. What
 * it prints is names, counts and digests, never content or a database
 * URI (which may carry a password).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "store.h"
#include "store_backup.h"
#include "store_copy.h"
#include "util.h"

enum { OPT_FROM = 256, OPT_TO, OPT_FORCE, OPT_FROM_PW, OPT_TO_PW };

static const struct option copy_opts[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"force", no_argument, NULL, OPT_FORCE},
    {"from-password-file", required_argument, NULL, OPT_FROM_PW},
    {"to-password-file", required_argument, NULL, OPT_TO_PW},
    {NULL, 0, NULL, 0},
};

/* A store named on the command line: "sqlite:PATH" (or a plain path) or
 * a postgresql:// (postgres://) URI. */
struct copy_end {
	const char *arg;
	const char *path; /* SQLite */
	const char *url;  /* PostgreSQL */
	const char *password_file;
};

static void
copy_end_parse(struct copy_end *e)
{
	if (strncmp(e->arg, "postgresql://", 13) == 0 ||
	    strncmp(e->arg, "postgres://", 11) == 0)
		e->url = e->arg;
	else if (strncmp(e->arg, "sqlite:", 7) == 0)
		e->path = e->arg + 7;
	else
		e->path = e->arg;
}

/* How an end is named in what the command prints. */
static const char *
copy_end_name(const struct copy_end *e)
{
	return e->url != NULL ? "the postgresql database" : e->path;
}

static int
copy_open(const struct copy_end *e, bool dest, struct store **s)
{
	struct store_options o = {0};
	enum gw_err err;

	o.quiet = true;
	o.path = e->path;
	o.pg_url = e->url;
	o.pg_password_file = e->password_file;
	/* The source is read only (a daemon may be running on it); the
	   destination is made when missing, its schema created. */
	o.readonly = !dest;
	o.create = dest;
	err = store_open(&o, s);
	if (err == GW_OK)
		return CLI_OK;
	if (err == GW_NOTFOUND)
		fprintf(stderr, "pzpgw store copy: no store at %s\n",
			copy_end_name(e));
	else if (err == GW_PERM && !dest)
		fprintf(stderr,
			"pzpgw store copy: %s: not a store, or one with an "
			"older schema (start the gateway on it once, or run "
			"pzpgw queue init, to migrate it)\n",
			copy_end_name(e));
	else
		fprintf(stderr, "pzpgw store copy: %s %s: %s\n",
			dest ? "destination" : "source", copy_end_name(e),
			err == GW_CONFIG ? "schema newer than this binary, or "
					   "unusable password file"
					 : gw_strerror(err));
	return err == GW_NOMEM || err == GW_IO || err == GW_TEMP ? CLI_USAGE
								 : CLI_FAIL;
}

static void
copy_print(FILE *fp, const struct store_copy_report *rep)
{
	for (size_t i = 0; i < rep->nsums; i++) {
		const struct store_copy_sum *s = &rep->sums[i];
		bool same = s->rows == s->dest_rows &&
			    s->counter == s->dest_counter &&
			    strcmp(s->sha256, s->dest_sha256) == 0;

		fprintf(fp, "%-13s rows=%lld sha256=%s", s->table,
			(long long)s->rows, s->sha256);
		if (s->counter > 0)
			fprintf(fp, " last_seq=%lld", (long long)s->counter);
		if (same)
			fprintf(fp, " equal\n");
		else
			fprintf(fp,
				" DIFFERS: destination rows=%lld sha256=%s "
				"last_seq=%lld\n",
				(long long)s->dest_rows,
				s->dest_sha256[0] ? s->dest_sha256 : "-",
				(long long)s->dest_counter);
	}
}

static int
copy_run(struct copy_end *from, struct copy_end *to, bool force)
{
	struct store *src = NULL, *dst = NULL;
	struct store_copy_report rep;
	uint64_t t0 = util_mono_ms();
	int rc, lock = -1;
	long holder = 0;
	enum gw_err err;

	if ((rc = copy_open(from, false, &src)) != CLI_OK)
		goto out;
	if (to->path != NULL) {
		/* A gateway running on the destination file would write
		   beside the copy: refused as pzpgw restore refuses. */
		err = store_lock_take(to->path, &lock, &holder);
		if (err == GW_EXISTS) {
			fprintf(stderr,
				"pzpgw store copy: a gateway (pid %ld) runs "
				"on %s: stop it first\n",
				holder, to->path);
			rc = CLI_FAIL;
			goto out;
		}
		if (err != GW_OK) {
			fprintf(stderr,
				"pzpgw store copy: %s: cannot take its lock: "
				"%s\n",
				to->path, gw_strerror(err));
			rc = CLI_USAGE;
			goto out;
		}
	}
	if ((rc = copy_open(to, true, &dst)) != CLI_OK)
		goto out;
	printf("copying %s%s%s to %s%s%s\n", store_backend(src),
	       from->path != NULL ? ":" : "",
	       from->path != NULL ? from->path : "", store_backend(dst),
	       to->path != NULL ? ":" : "", to->path != NULL ? to->path : "");
	fflush(stdout);
	err = store_copy_run(src, dst, force, &rep);
	rc = CLI_FAIL;
	switch (err) {
	case GW_OK:
		copy_print(stdout, &rep);
		printf("verified: every table equal on both sides (schema %d, "
		       "%.1f s); committed\n",
		       store_schema_version(dst),
		       (double)(util_mono_ms() - t0) / 1000.0);
		rc = CLI_OK;
		break;
	case GW_EXISTS:
		fprintf(stderr,
			"pzpgw store copy: the destination holds data (table "
			"%s): nothing copied; --force replaces it\n",
			rep.what);
		break;
	case GW_DENIED:
		fprintf(stderr,
			"pzpgw store copy: %s connection(s) of a gateway to "
			"the destination database: stop every gateway using "
			"it first; nothing copied\n",
			rep.what);
		break;
	case GW_INVALID:
		fprintf(stderr,
			"pzpgw store copy: table or column %s is not in the "
			"copy's table list (store_copy.c): nothing copied\n",
			rep.what);
		break;
	case GW_CONFIG:
		fprintf(stderr,
			"pzpgw store copy: the stores have different schema "
			"versions (%s): start the gateway (or pzpgw queue "
			"init) on the older one first\n",
			rep.what);
		break;
	case GW_PERM:
		if (rep.nsums > 0 && !rep.equal) {
			copy_print(stdout, &rep);
			fprintf(stderr,
				"pzpgw store copy: the destination differs "
				"from the source: rolled back, nothing "
				"copied\n");
			break;
		}
		/* fall through */
	default:
		fprintf(stderr,
			"pzpgw store copy: failed: %s (the destination's "
			"transaction is rolled back)\n",
			gw_strerror(err));
		break;
	}
out:
	store_free(dst);
	store_free(src);
	if (lock >= 0)
		close(lock);
	return rc;
}

int
cli_store(int argc, char **argv)
{
	struct copy_end from = {0}, to = {0};
	bool force = false;
	int ch;

	optind = 0; /* full reinitialisation (GNU), argv is permuted */
	while ((ch = getopt_long(argc, argv, "", copy_opts, NULL)) != -1) {
		switch (ch) {
		case OPT_FROM:
			from.arg = optarg;
			break;
		case OPT_TO:
			to.arg = optarg;
			break;
		case OPT_FORCE:
			force = true;
			break;
		case OPT_FROM_PW:
			from.password_file = optarg;
			break;
		case OPT_TO_PW:
			to.password_file = optarg;
			break;
		default:
			return cli_usage("store", "unknown option");
		}
	}
	/* The options first (GNU getopt moves the subcommand past
	   them), then the one subcommand. */
	if (optind >= argc)
		return cli_usage("store", "missing subcommand (copy)");
	if (strcmp(argv[optind], "copy") != 0)
		return cli_usage("store", "unknown subcommand '%s'",
				 argv[optind]);
	if (optind + 1 < argc)
		return cli_usage("store", "unexpected argument '%s'",
				 argv[optind + 1]);
	if (from.arg == NULL || to.arg == NULL)
		return cli_usage("store", "copy needs --from and --to");
	copy_end_parse(&from);
	copy_end_parse(&to);
	if ((from.path != NULL && from.path[0] == '\0') ||
	    (to.path != NULL && to.path[0] == '\0'))
		return cli_usage("store", "sqlite: needs a path");
	if (strcmp(from.arg, to.arg) == 0)
		return cli_usage("store",
				 "--from and --to name the same store");
	if ((from.password_file != NULL && from.url == NULL) ||
	    (to.password_file != NULL && to.url == NULL))
		return cli_usage("store",
				 "a password file goes with a postgresql:// "
				 "store");
	return copy_run(&from, &to, force);
}
