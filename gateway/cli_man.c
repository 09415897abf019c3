/* The manual pages pzpgw(8) and pzpgw.conf(5) as roff, made from the help
 * texts and the configuration key tables (`pzpgw help --man 8|5`), so
 * that the committed pages cannot drift from the code (make check-man). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "util.h"
#include "version.h"

/* Blanks at the start of line s (of length len). */
static size_t
man_indent(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && s[i] == ' ')
		i++;
	return i;
}

/* Offset of the first run of two or more blanks in s[from..len), or len. */
static size_t
man_gap(const char *s, size_t from, size_t len)
{
	for (size_t i = from; i + 1 < len; i++)
		if (s[i] == ' ' && s[i + 1] == ' ')
			return i;
	return len;
}

/*
 * Plain text for roff: a backslash as \e, '-' as \- (a minus, so that
 * options and commands copied from the page work), and a line that would
 * start with '.' or '\'' kept from being read as a request. at_start:
 * the text begins an output line.
 */
static void
man_text(FILE *fp, const char *s, size_t len, bool at_start)
{
	for (size_t i = 0; i < len; i++) {
		if (at_start && i == 0 && (s[i] == '.' || s[i] == '\''))
			fputs("\\&", fp);
		if (s[i] == '\\')
			fputs("\\e", fp);
		else if (s[i] == '-')
			fputs("\\-", fp);
		else
			fputc(s[i], fp);
	}
}

static bool
man_word_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

/*
 * An option or synopsis term: words with a lower-case letter (commands,
 * options, literal values) in bold, words in capitals (FILE, URA,
 * YYYY-MM-DD) in italics, brackets and bars as they are.
 */
static void
man_term(FILE *fp, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t j = i;
		bool lower = false, upper = false;

		if (!man_word_char(s[i])) {
			man_text(fp, s + i, 1, i == 0);
			i++;
			continue;
		}
		while (j < len && man_word_char(s[j])) {
			lower |= islower((unsigned char)s[j]) != 0;
			upper |= isupper((unsigned char)s[j]) != 0;
			j++;
		}
		if (i == 0 && s[i] == '.')
			fputs("\\&", fp);
		fputs(upper && !lower ? "\\fI" : "\\fB", fp);
		man_text(fp, s + i, j - i, false);
		fputs("\\fR", fp);
		i = j;
	}
}

/* One line of s from *pos: its start and length; false at the end. */
static bool
man_next_line(const char *s, size_t *pos, const char **line, size_t *len)
{
	const char *nl;

	if (s[*pos] == '\0')
		return false;
	*line = s + *pos;
	nl = strchr(*line, '\n');
	*len = nl != NULL ? (size_t)(nl - *line) : strlen(*line);
	*pos += *len + (nl != NULL);
	return true;
}

/*
 * The help text of one command as a subsection: the synopsis (with its
 * continuation lines), the summary, then items as tagged paragraphs and
 * prose as paragraphs, following the layout struct cli_text describes.
 */
static void
man_command(FILE *fp, const struct cli_text *t)
{
	enum { SYNOPSIS, SUMMARY, ITEM_TERM, ITEM, PROSE } state = SYNOPSIS;
	const char *line;
	size_t pos = 0, len;

	fputs(".SS ", fp);
	man_text(fp, t->name, strlen(t->name), false);
	fputs("\n.PP\n", fp);
	while (man_next_line(t->usage, &pos, &line, &len)) {
		size_t ind = man_indent(line, len), gap;

		if (ind == len)
			continue;
		if (line == t->usage) {
			/* The synopsis line itself. */
			man_term(fp, line, len);
			fputc('\n', fp);
			continue;
		}
		if (state == SYNOPSIS && ind > 2) {
			fputs(".br\n", fp);
			man_term(fp, line + ind, len - ind);
			fputc('\n', fp);
			continue;
		}
		if (state == SYNOPSIS) {
			/* The summary, after the synopsis. */
			fputs(".PP\n", fp);
			fputc(toupper((unsigned char)t->summary[0]), fp);
			man_text(fp, t->summary + 1, strlen(t->summary + 1),
				 false);
			fputs(".\n", fp);
			state = SUMMARY;
		}
		if (ind == 2) {
			gap = man_gap(line, ind, len);
			fputs(".TP\n", fp);
			man_term(fp, line + ind, gap - ind);
			fputc('\n', fp);
			state = ITEM_TERM;
			if (gap < len) {
				ind = gap + man_indent(line + gap, len - gap);
				man_text(fp, line + ind, len - ind, true);
				fputc('\n', fp);
				state = ITEM;
			}
			continue;
		}
		if (ind > 2 && state == ITEM_TERM && line[ind] == '[') {
			/* The term goes on; its description may follow. */
			gap = man_gap(line, ind, len);
			fputs(".br\n", fp);
			man_term(fp, line + ind, gap - ind);
			fputc('\n', fp);
			if (gap < len) {
				fputs(".br\n", fp);
				ind = gap + man_indent(line + gap, len - gap);
				man_text(fp, line + ind, len - ind, true);
				fputc('\n', fp);
				state = ITEM;
			}
			continue;
		}
		if (ind > 2 && (state == ITEM || state == ITEM_TERM)) {
			man_text(fp, line + ind, len - ind, true);
			fputc('\n', fp);
			state = ITEM;
			continue;
		}
		if (state != PROSE)
			fputs(".PP\n", fp);
		man_text(fp, line + ind, len - ind, true);
		fputc('\n', fp);
		state = PROSE;
	}
	if (state == SYNOPSIS) {
		fputs(".PP\n", fp);
		fputc(toupper((unsigned char)t->summary[0]), fp);
		man_text(fp, t->summary + 1, strlen(t->summary + 1), false);
		fputs(".\n", fp);
	}
}

/* Fixed roff text: written as it is. */
static void
man_raw(FILE *fp, const char *const *lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "%s\n", lines[i]);
}

static const char *const man8_head[] = {
    ".SH NAME",
    "pzpgw \\- exchange proactive care plans (PZP) between organisations",
    ".SH SYNOPSIS",
    ".B pzpgw",
    ".I command",
    ".RI [ options ]",
    ".RI [ arguments ]",
    ".br",
    ".B pzpgw help",
    ".RI [ command ]",
    ".br",
    ".B pzpgw",
    ".BR \\-\\-version | \\-\\-help",
    ".SH DESCRIPTION",
    ".B pzpgw",
    "exchanges Dutch proactive care plans (PZP, advance care planning) as",
    "FHIR messages between care organisations over mutual TLS.",
    "One binary is both the daemon",
    ".RB ( \"pzpgw serve\" )",
    "and the tools around it: checking a configuration, validating,",
    "converting between FHIR STU3 and R4, signing and verifying,",
    "sending, and inspecting the queue, the received data and the audit",
    "trail.",
    ".PP",
    "An organisation is identified by the URA number in its UZI server",
    "certificate. Every accepted message is stored (SQLite, WAL) before it",
    "is acknowledged, then delivered to the gateway serving each receiver,",
    "with retries, until it is delivered or goes to the dead letter state.",
    ".PP",
    "Each command takes its own options;",
    ".B pzpgw help",
    ".I command",
    "prints the same text as the section of this page.",
    ".SH OPTIONS",
    ".TP",
    ".BR \\-h \", \" \\-\\-help",
    "List the commands.",
    ".TP",
    ".BR \\-V \", \" \\-\\-version",
    "Print the version, as",
    ".B pzpgw version",
    "does.",
    ".SH COMMANDS",
};

static const char *const man8_tail[] = {
    ".SH EXIT STATUS",
    "0 when the command did what it was asked, 1 when it refused or a",
    "check failed (the reason on standard error), 2 on a usage error or an",
    "input or output error. The sections above say more where a command",
    "differs.",
    ".SH ENVIRONMENT",
    ".TP",
    ".B PZPGW_SCHEMAS",
    "Directory of the compiled rules for the commands that validate or",
    "convert, before the source tree's",
    ".I schemas/",
    "and",
    ".IR /usr/share/pzpgw/schemas .",
    ".TP",
    ".B PZPGW_GATEWAY",
    "The gateway",
    ".B pzpgw send",
    "posts to when",
    ".B \\-\\-gateway",
    "is not given.",
    ".TP",
    ".B NOTIFY_SOCKET",
    "Set by systemd for a",
    ".B Type=notify",
    "service:",
    ".B pzpgw serve",
    "sends READY=1 once it listens with the store open, RELOADING=1 and",
    "READY=1 around a reload, STOPPING=1 when it stops, and STATUS= lines.",
    ".TP",
    ".B WATCHDOG_USEC",
    "Set by systemd with",
    ".BR WatchdogSec= :",
    "the event loop sends WATCHDOG=1 every half of it, so a wedged loop is",
    "restarted.",
    ".SH FILES",
    ".TP",
    ".I /etc/pzpgw/pzpgw.conf",
    "The configuration; see",
    ".BR pzpgw.conf (5).",
    ".TP",
    ".I /var/lib/pzpgw/pzpgw.db",
    "The store (the default of [store] path), with its",
    ".I \\-wal",
    "file and its",
    ".I .created",
    "marker beside it, and",
    ".IR pzpgw.db.lock ,",
    "locked by the running daemon (so",
    ".B pzpgw restore",
    "and a second daemon refuse).",
    ".TP",
    ".I /usr/share/pzpgw/schemas",
    "The compiled validation rules.",
    ".SH SEE ALSO",
    ".BR pzpgw.conf (5),",
    ".BR systemctl (1),",
    ".BR journalctl (1),",
    ".BR sqlite3 (1)",
};

static const char *const man5_head[] = {
    ".SH NAME",
    "pzpgw.conf \\- configuration file of the pzpgw gateway",
    ".SH SYNOPSIS",
    ".I /etc/pzpgw/pzpgw.conf",
    ".SH DESCRIPTION",
    ".BR pzpgw (8)",
    "reads one INI file:",
    ".B pzpgw serve",
    "at start and at SIGHUP,",
    ".B pzpgw check\\-config",
    "to check it, and the commands that work on the store or sign with",
    ".BR \\-c .",
    "Lines are",
    ".BI [ section ]",
    "headers and",
    ".IB key \" = \" value",
    "pairs;",
    ".B #",
    "or",
    ".B ;",
    "starts a comment, inline after a blank.",
    "Sizes take k, M or G (512k, 10M); durations ms, s, m, h or d (250ms,",
    "30s, 7d). Relative paths are taken against the directory of the file.",
    "An unknown section or key, a repeated one, a value out of its range",
    "and a missing required key are errors, each reported as",
    ".IR file : line : \" message\" ;",
    "the daemon does not start on a file with errors, and at SIGHUP keeps",
    "the configuration it has.",
    ".PP",
    "Files named here (certificates, keys, trust, CRL) and the",
    "configuration itself must not be writable by group or others, nor sit",
    "in such a directory; private keys must not be readable by them.",
    ".SH SECTIONS",
};

static const char *const man5_tail[] = {
    ".SH EXAMPLE",
    "The gateway of a hospital (URA 90000001) takes care plans from the",
    "hospital's EHR (URA 90000002) and delivers those for a GP practice",
    "(URA 90000003) to the gateway that serves the practice, run by a",
    "regional exchange whose server certificate carries URA 90000009:",
    ".PP",
    ".RS 4",
    ".nf",
    "[organisation]",
    "ura = 90000001",
    "name = Hospital gateway",
    "",
    "[listen]",
    "address = 0.0.0.0",
    "certificate = /etc/pzpgw/tls/server.crt",
    "key = /etc/pzpgw/tls/server.key",
    "trust = /etc/pzpgw/tls/uzi\\-ca.pem",
    "environment = production",
    "",
    "[peer 90000002]",
    "name = Hospital EHR",
    "allow = push, validate",
    "",
    "[peer 90000003]",
    "name = GP practice",
    "endpoint = https://gw.exchange.example.nl:8443/fhir",
    "server_ura = 90000009",
    ".fi",
    ".RE",
    ".PP",
    ".B pzpgw check\\-config \\-c",
    ".I FILE",
    "prints every problem of a file, and with",
    ".B \\-\\-probe",
    "also tries every endpoint.",
    ".SH FILES",
    ".TP",
    ".I /etc/pzpgw/pzpgw.conf",
    "The default configuration file.",
    ".SH SEE ALSO",
    ".BR pzpgw (8)",
};

/* The key tables as one subsection per section, in table order. */
static int
man_keys(FILE *fp)
{
	struct config_key_doc d;
	const char *section = "";
	int status = CLI_OK;

	for (size_t i = 0; config_key_describe(i, &d); i++) {
		if (d.doc == NULL || d.doc[0] == '\0') {
			fprintf(stderr,
				"pzpgw help: [%s] %s has no description in "
				"the key table (config.c)\n",
				d.section, d.name);
			status = CLI_FAIL;
			continue;
		}
		if (strcmp(d.section, section) != 0) {
			const char *sd = config_section_doc(d.section);

			section = d.section;
			if (strcmp(section, "peer") == 0)
				fputs(".SS \"[peer \\fIURA\\fR]\"\n", fp);
			else
				fprintf(fp, ".SS [%s]\n", section);
			if (sd == NULL) {
				fprintf(stderr,
					"pzpgw help: section [%s] has no "
					"description (config.c)\n",
					section);
				status = CLI_FAIL;
			} else {
				fputs(".PP\n", fp);
				man_text(fp, sd, strlen(sd), true);
				fputc('\n', fp);
			}
		}
		fputs(".TP\n.B ", fp);
		man_text(fp, d.name, strlen(d.name), false);
		fputc('\n', fp);
		man_text(fp, d.doc, strlen(d.doc), true);
		fputs("\n.br\nType: ", fp);
		man_text(fp, d.type, strlen(d.type), false);
		if (d.bounds[0] != '\0') {
			fputs("; range ", fp);
			man_text(fp, d.bounds, strlen(d.bounds), false);
		}
		fputs(". ", fp);
		if (d.required) {
			fputs("Required.\n", fp);
		} else {
			fputs("Default: ", fp);
			man_text(fp, d.def[0] != '\0' ? d.def : "none",
				 strlen(d.def[0] != '\0' ? d.def : "none"),
				 false);
			fputs(".\n", fp);
		}
	}
	return status;
}

int
cli_man_write(FILE *fp, int section, const struct cli_text *texts, size_t n)
{
	int status = CLI_OK;

	fputs(".\\\" Made by `pzpgw help --man ", fp);
	if (section == 8) {
		fputs("8` from the help texts (gateway/cli_help.c);\n"
		      ".\\\" do not edit: `make man` writes it again.\n",
		      fp);
		fprintf(fp,
			".TH PZPGW 8 \"\" \"pzpgw %s\" \"System Manager's "
			"Manual\"\n",
			PZPGW_VERSION);
		fputs(".nh\n.ad l\n", fp);
		man_raw(fp, man8_head, UTIL_ARRAY_LEN(man8_head));
		for (size_t i = 0; i < n; i++) {
			if (texts[i].summary == NULL ||
			    texts[i].usage == NULL) {
				fprintf(stderr,
					"pzpgw help: command %s has no help "
					"text (cli_help.c)\n",
					texts[i].name);
				status = CLI_FAIL;
				continue;
			}
			man_command(fp, &texts[i]);
		}
		man_raw(fp, man8_tail, UTIL_ARRAY_LEN(man8_tail));
	} else {
		fputs("5` from the configuration key tables\n"
		      ".\\\" (gateway/config.c); do not edit: `make man` "
		      "writes it again.\n",
		      fp);
		fprintf(fp,
			".TH PZPGW.CONF 5 \"\" \"pzpgw %s\" \"File Formats "
			"Manual\"\n",
			PZPGW_VERSION);
		fputs(".nh\n.ad l\n", fp);
		man_raw(fp, man5_head, UTIL_ARRAY_LEN(man5_head));
		status = man_keys(fp);
		man_raw(fp, man5_tail, UTIL_ARRAY_LEN(man5_tail));
	}
	if (fflush(fp) != 0 || ferror(fp)) {
		fprintf(stderr, "pzpgw help: cannot write the page\n");
		return CLI_USAGE;
	}
	return status;
}
