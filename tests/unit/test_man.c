/*
 * The manual pages cannot drift: every command cli_main dispatches has a
 * help text (the source of pzpgw(8)), every option its getopt table
 * accepts is named in that text, and both pages are made without a
 * missing description. Linked with -Wl,--wrap=getopt_long,--wrap=getopt
 * (Makefile): the wrappers record what a command accepts and jump back
 * before it runs.
 */
#define _DEFAULT_SOURCE /* open_memstream */
#include <ctype.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "config.h"

#define MAX_LONG 64

/* What the last command asked getopt to accept. */
static struct {
	bool seen;
	char optstring[64];
	const char *longs[MAX_LONG];
	size_t nlong;
} capture;
static jmp_buf capture_jmp;

int __wrap_getopt_long(int argc, char *const argv[], const char *optstring,
		       const struct option *longopts, int *longindex);
int __wrap_getopt(int argc, char *const argv[], const char *optstring);

int
__wrap_getopt_long(int argc, char *const argv[], const char *optstring,
		   const struct option *longopts, int *longindex)
{
	capture.seen = true;
	snprintf(capture.optstring, sizeof(capture.optstring), "%s", optstring);
	capture.nlong = 0;
	for (; longopts != NULL && longopts->name != NULL &&
	       capture.nlong < MAX_LONG;
	     longopts++)
		capture.longs[capture.nlong++] = longopts->name;
	longjmp(capture_jmp, 1);
}

int
__wrap_getopt(int argc, char *const argv[], const char *optstring)
{
	return __wrap_getopt_long(argc, argv, optstring, NULL, NULL);
}

/* Whether text names opt ("-c", "--config") as a whole option, not as a
 * part of a longer one ("--config" is not "-c", "--configure" not
 * "--config"). */
static bool
names_option(const char *text, const char *opt)
{
	size_t n = strlen(opt);

	for (const char *p = strstr(text, opt); p != NULL;
	     p = strstr(p + 1, opt)) {
		unsigned char before = p == text ? ' ' : (unsigned char)p[-1];
		unsigned char after = (unsigned char)p[n];

		if (isalnum(before) || before == '-')
			continue;
		if (isalnum(after) || after == '-' || after == '_')
			continue;
		return true;
	}
	return false;
}

/* The options of optstring and longs that usage does not name, into
 * out as "-x --name "; returns how many. */
static int
missing_options(const char *usage, const char *optstring,
		const char *const *longs, size_t nlong, char *out, size_t n)
{
	size_t used = 0;
	int missing = 0;
	char opt[80];

	out[0] = '\0';
	for (const char *p = optstring; *p != '\0'; p++) {
		if (*p == ':' || *p == '+' || *p == '-')
			continue;
		snprintf(opt, sizeof(opt), "-%c", *p);
		if (names_option(usage, opt))
			continue;
		missing++;
		if (used < n)
			used +=
			    (size_t)snprintf(out + used, n - used, "%s ", opt);
	}
	for (size_t i = 0; i < nlong; i++) {
		snprintf(opt, sizeof(opt), "--%s", longs[i]);
		if (names_option(usage, opt))
			continue;
		missing++;
		if (used < n)
			used +=
			    (size_t)snprintf(out + used, n - used, "%s ", opt);
	}
	return missing;
}

/* The checker itself: an option added to a getopt table without its
 * text is found. */
static void
test_missing_options(void **state)
{
	static const struct {
		const char *usage, *optstring;
		const char *longs[3];
		const char *want;
	} cases[] = {
	    {"pzpgw x [-c FILE]\n", "c:", {"config"}, "--config "},
	    {"pzpgw x [-c FILE]\n  -c, --config FILE  it\n",
	     "c:",
	     {"config"},
	     ""},
	    {"pzpgw x [--configure]\n", "", {"config"}, "--config "},
	    {"pzpgw x --out DIR\n", "o:", {"out"}, "-o "},
	    {"pzpgw x [-q]\n", "qc:", {NULL}, "-c "},
	    {"pzpgw x [--dry-run]\n", "", {"dry-run", "dry"}, "--dry "},
	    {"pzpgw x [--store FILE]\n  --store FILE\n",
	     "",
	     {"store", "wait"},
	     "--wait "},
	};
	char got[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t nlong = 0;

		while (nlong < 3 && cases[i].longs[nlong] != NULL)
			nlong++;
		missing_options(cases[i].usage, cases[i].optstring,
				cases[i].longs, nlong, got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, got,
				 cases[i].want);
	}
}

/* Every command has a help text, and every help text is a command (the
 * overview lists the texts). */
static void
test_commands_have_texts(void **state)
{
	char *ov = NULL, *line, *save = NULL;
	size_t len = 0, ncmd = 0, ntext = 0;
	FILE *fp;
	bool listing = false;

	(void)state;
	for (const char *name; (name = cli_command_name(ncmd)) != NULL; ncmd++)
		if (cli_help_text(name) == NULL)
			fail_msg("command %s has no help text in cli_help.c "
				 "(so none in pzpgw.8)",
				 name);
	assert_true(ncmd > 10);

	fp = open_memstream(&ov, &len);
	assert_non_null(fp);
	cli_overview(fp);
	assert_int_equal(fclose(fp), 0);
	for (line = strtok_r(ov, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[32];
		bool found = false;

		if (strcmp(line, "Commands:") == 0) {
			listing = true;
			continue;
		}
		if (!listing || strncmp(line, "  ", 2) != 0)
			continue;
		if (sscanf(line, "%31s", name) != 1)
			continue;
		ntext++;
		for (size_t i = 0; cli_command_name(i) != NULL; i++)
			found |= strcmp(cli_command_name(i), name) == 0;
		if (!found)
			fail_msg("help text %s names no command of cli.c",
				 name);
	}
	free(ov);
	if (ntext != ncmd)
		fail_msg("got %zu help texts, want %zu (one per command)",
			 ntext, ncmd);
}

/* Run command name up to its getopt call (capture); stderr, where help
 * and version complain about the probe argument, goes to /dev/null.
 * Returns whether the command called getopt. */
static bool
probe(const char *name)
{
	/* "build": schemas reads its action before its options; the others
	 * call getopt before they look at any argument. */
	char *argv[] = {"pzpgw", (char *)name, "build", "--man-check-probe",
			NULL};
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);

	assert_true(saved >= 0 && null >= 0);
	memset(&capture, 0, sizeof(capture));
	fflush(stderr);
	dup2(null, STDERR_FILENO);
	if (setjmp(capture_jmp) == 0)
		(void)cli_main(4, argv);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(null);
	return capture.seen;
}

/* Every option a command's getopt table accepts is in its help text. */
static void
test_options_documented(void **state)
{
	size_t checked = 0, bad = 0;

	(void)state;
	for (size_t i = 0; cli_command_name(i) != NULL; i++) {
		const char *name = cli_command_name(i);
		const struct cli_text *t = cli_help_text(name);
		char missing[512];

		assert_non_null(t);
		if (!probe(name)) {
			/* Only these parse their arguments by hand. */
			if (strcmp(name, "help") != 0 &&
			    strcmp(name, "version") != 0)
				fail_msg("pzpgw %s did not call getopt", name);
			continue;
		}
		checked++;
		if (missing_options(t->usage, capture.optstring, capture.longs,
				    capture.nlong, missing,
				    sizeof(missing)) > 0) {
			print_error("pzpgw %s accepts %sbut its help text in "
				    "cli_help.c (and so pzpgw.8) does not name "
				    "it\n",
				    name, missing);
			bad++;
		}
	}
	if (bad > 0)
		fail_msg("%zu commands with undocumented options", bad);
	/* serve, check-config, canon, sign, verify, queue, schemas,
	 * validate, send, audit, inbox, transform at least. */
	if (checked < 12)
		fail_msg("got %zu commands through getopt, want 12 or more",
			 checked);
}

/* Both pages are made (no missing description) and name every command
 * and every key. */
static void
test_pages_complete(void **state)
{
	struct cli_text texts[64];
	struct config_key_doc d;
	char *page = NULL, want[128];
	size_t len = 0, n = 0;
	FILE *fp;

	(void)state;
	for (; cli_command_name(n) != NULL; n++) {
		assert_true(n < sizeof(texts) / sizeof(texts[0]));
		texts[n] = *cli_help_text(cli_command_name(n));
	}
	fp = open_memstream(&page, &len);
	assert_non_null(fp);
	assert_int_equal(cli_man_write(fp, 8, texts, n), CLI_OK);
	assert_int_equal(fclose(fp), 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "\n.SS %s\n", texts[i].name);
		/* roff writes '-' as "\-". */
		if (strchr(texts[i].name, '-') == NULL &&
		    strstr(page, want) == NULL)
			fail_msg("pzpgw.8 has no section %s", texts[i].name);
	}
	free(page);

	page = NULL;
	fp = open_memstream(&page, &len);
	assert_non_null(fp);
	assert_int_equal(cli_man_write(fp, 5, NULL, 0), CLI_OK);
	assert_int_equal(fclose(fp), 0);
	for (size_t i = 0; config_key_describe(i, &d); i++) {
		if (d.type[0] == '\0')
			fail_msg("[%s] %s has no type", d.section, d.name);
		if (!d.required && d.def[0] == '\0')
			fail_msg("[%s] %s: neither required nor a default "
				 "(def_doc \"none\" says there is none)",
				 d.section, d.name);
		snprintf(want, sizeof(want), "\n.B %s\n", d.name);
		if (strchr(d.name, '-') == NULL && strstr(page, want) == NULL)
			fail_msg("pzpgw.conf.5 has no key %s", d.name);
	}
	free(page);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_missing_options),
	    cmocka_unit_test(test_commands_have_texts),
	    cmocka_unit_test(test_options_documented),
	    cmocka_unit_test(test_pages_complete),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
