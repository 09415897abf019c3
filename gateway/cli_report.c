/*
 * `pzpgw report`: usage insight from the store: options, then
 * report_collect (report.c) reads and counts, report_write prints.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "report.h"
#include "store.h"

#define REPORT_CMD "report"

enum { OPT_STORE = 256, OPT_FROM, OPT_TO, OPT_BY, OPT_FORMAT, OPT_EXACT };

static const struct option report_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"store", required_argument, NULL, OPT_STORE},
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"by", required_argument, NULL, OPT_BY},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"exact", no_argument, NULL, OPT_EXACT},
    {NULL, 0, NULL, 0},
};

int
cli_report(int argc, char **argv)
{
	const char *config = NULL, *store_path = NULL;
	int64_t from = 0, to = 0;
	enum report_by by = REPORT_BY_NONE;
	enum report_format fmt = REPORT_TEXT;
	bool exact = false;
	struct store_options o = {.readonly = true};
	struct store *s = NULL;
	struct config *cfg = NULL;
	struct report *r = NULL;
	enum gw_err err;
	int c, rc;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:", report_opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case OPT_STORE:
			store_path = optarg;
			break;
		case OPT_FROM:
		case OPT_TO:
			if (!cli_parse_time(optarg,
					    c == OPT_FROM ? &from : &to))
				return cli_usage(REPORT_CMD,
						 "bad time '%s' (YYYY-MM-DD "
						 "or RFC 3339)",
						 optarg);
			break;
		case OPT_BY:
			if (strcmp(optarg, "day") == 0)
				by = REPORT_BY_DAY;
			else if (strcmp(optarg, "hour") == 0)
				by = REPORT_BY_HOUR;
			else if (strcmp(optarg, "week") == 0)
				by = REPORT_BY_WEEK;
			else if (strcmp(optarg, "month") == 0)
				by = REPORT_BY_MONTH;
			else
				return cli_usage(REPORT_CMD,
						 "--by is hour, day, week or "
						 "month");
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "text") == 0)
				fmt = REPORT_TEXT;
			else if (strcmp(optarg, "json") == 0)
				fmt = REPORT_JSON;
			else if (strcmp(optarg, "csv") == 0)
				fmt = REPORT_CSV;
			else
				return cli_usage(REPORT_CMD,
						 "--format is text, json or "
						 "csv");
			break;
		case OPT_EXACT:
			exact = true;
			break;
		case ':':
			return cli_usage(REPORT_CMD, "%s needs a value",
					 argv[optind - 1]);
		default:
			return cli_usage(REPORT_CMD, "unknown option '%s'",
					 argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage(REPORT_CMD, "unexpected argument '%s'",
				 argv[optind]);
	if (config != NULL && store_path != NULL)
		return cli_usage(REPORT_CMD,
				 "-c and --store exclude each other");
	if (from != 0 && to != 0 && to <= from)
		return cli_usage(REPORT_CMD, "--to must be after --from");
	rc = cli_store_open(REPORT_CMD, config, store_path, &o, NULL, &s, &cfg);
	if (rc != CLI_OK)
		return rc;
	err = report_new(from, to, by, &r);
	if (err == GW_OK)
		err = report_collect(r, s);
	if (err == GW_OK)
		err = report_write(r, stdout, fmt, exact, cfg);
	if (err != GW_OK) {
		fprintf(stderr, "pzpgw %s: %s\n", REPORT_CMD, gw_strerror(err));
		rc = CLI_USAGE;
	}
	report_free(r);
	config_free(cfg);
	store_free(s);
	return rc;
}
