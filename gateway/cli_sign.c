/*
 * The canon, sign and verify subcommands: PZP-JWS from the command line,
 * on files, with the same code the daemon uses.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "canon.h"
#include "cli.h"
#include "config.h"
#include "fjson.h"
#include "sign.h"
#include "util.h"

#define SIGN_CLI_MAX_INPUT (64u * 1024 * 1024)
#define SIGN_CLI_MAX_CRLS  16

/* Read and parse a JSON file; on failure print why and return the exit
 * status (CLI_USAGE for I/O, CLI_FAIL for content). */
static int
sign_cli_load(const char *cmd, const char *path, struct fj_doc **out)
{
	struct fj_error ferr;
	char *text = NULL;
	size_t len = 0;
	enum gw_err err;

	*out = NULL;
	if ((err = util_read_file(path, SIGN_CLI_MAX_INPUT, &text, &len)) !=
	    GW_OK) {
		fprintf(stderr, "pzpgw %s: %s: %s\n", cmd, path,
			gw_strerror(err));
		return err == GW_TOOBIG ? CLI_FAIL : CLI_USAGE;
	}
	memset(&ferr, 0, sizeof(ferr));
	err = fj_parse(text, len, 0, out, &ferr);
	free(text);
	if (err == GW_NOMEM) {
		fprintf(stderr, "pzpgw %s: out of memory\n", cmd);
		return CLI_USAGE;
	}
	if (err != GW_OK) {
		fprintf(stderr, "pzpgw %s: %s:%u:%u: %s\n", cmd, path,
			ferr.line, ferr.col, ferr.msg);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* Load the configuration file for -c; prints why it failed. */
static int
sign_cli_config(const char *cmd, const char *path, struct config **out)
{
	enum gw_err err = config_load(path, NULL, NULL, out);

	if (err != GW_OK) {
		fprintf(stderr, "pzpgw %s: %s: %s (see pzpgw check-config)\n",
			cmd, path, gw_strerror(err));
		return CLI_USAGE;
	}
	return CLI_OK;
}

/* Write len bytes to stdout; CLI_USAGE when that fails. */
static int
sign_cli_stdout(const char *cmd, const char *p, size_t len)
{
	if (fwrite(p, 1, len, stdout) != len || fflush(stdout) != 0) {
		fprintf(stderr, "pzpgw %s: cannot write output\n", cmd);
		return CLI_USAGE;
	}
	return CLI_OK;
}

int
cli_canon(int argc, char **argv)
{
	static const struct option longopts[] = {{NULL, 0, NULL, 0}};
	struct fj_doc *doc = NULL;
	struct fj_error ferr;
	struct buf out;
	enum gw_err err;
	int rc;

	optind = 1;
	if (getopt_long(argc, argv, "", longopts, NULL) != -1)
		return cli_usage("canon", "unknown option");
	if (argc - optind != 1)
		return cli_usage("canon", "one FILE expected");
	if ((rc = sign_cli_load("canon", argv[optind], &doc)) != CLI_OK)
		return rc;
	buf_init(&out, SIGN_CLI_MAX_INPUT * 2);
	memset(&ferr, 0, sizeof(ferr));
	err = canon_resource(doc->root, &out, &ferr);
	if (err == GW_INVALID) {
		fprintf(stderr, "pzpgw canon: %s:%u:%u: %s\n", argv[optind],
			ferr.line, ferr.col, ferr.msg);
		rc = CLI_FAIL;
	} else if (err != GW_OK) {
		fprintf(stderr, "pzpgw canon: %s\n", gw_strerror(err));
		rc = CLI_USAGE;
	} else {
		rc = sign_cli_stdout("canon", out.data, out.len);
	}
	buf_cleanup(&out);
	fj_doc_free(doc);
	return rc;
}

/* Unix seconds or an RFC 3339 time. */
static bool
sign_cli_time(const char *s, int64_t *out)
{
	long long v;

	if (util_parse_ll(s, 1, 253402300799LL, &v) == GW_OK) {
		*out = v;
		return true;
	}
	return sign_time_parse(s, out);
}

int
cli_sign(int argc, char **argv)
{
	enum {
		O_KEY = 256,
		O_CERT,
		O_CHAIN,
		O_PURPOSE,
		O_FHIR,
		O_ALG,
		O_PROV,
		O_TIME
	};
	static const struct option longopts[] = {
	    {"key", required_argument, NULL, O_KEY},
	    {"cert", required_argument, NULL, O_CERT},
	    {"chain", required_argument, NULL, O_CHAIN},
	    {"purpose", required_argument, NULL, O_PURPOSE},
	    {"fhir", required_argument, NULL, O_FHIR},
	    {"alg", required_argument, NULL, O_ALG},
	    {"provenance", required_argument, NULL, O_PROV},
	    {"time", required_argument, NULL, O_TIME},
	    {"config", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0}};
	const char *key = NULL, *cert = NULL, *chain = NULL, *alg = NULL;
	const char *prov_path = NULL, *cfg_path = NULL;
	struct config *cfg = NULL;
	struct sign_opts opts = {SIGN_FHIR_R4, SIGN_PURPOSE_VERIFICATION, 0};
	struct sign_key *k = NULL;
	struct sign_output so = {NULL, {0}, 0};
	struct fj_doc *doc = NULL, *prov = NULL;
	struct buf out, pbuf;
	char errbuf[512];
	enum gw_err err;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfg_path = optarg;
			break;
		case O_KEY:
			key = optarg;
			break;
		case O_CERT:
			cert = optarg;
			break;
		case O_CHAIN:
			chain = optarg;
			break;
		case O_ALG:
			alg = optarg;
			break;
		case O_PROV:
			prov_path = optarg;
			break;
		case O_PURPOSE:
			if (strcmp(optarg, "verification") == 0)
				opts.purpose = SIGN_PURPOSE_VERIFICATION;
			else if (strcmp(optarg, "author") == 0)
				opts.purpose = SIGN_PURPOSE_AUTHOR;
			else
				return cli_usage("sign",
						 "--purpose is verification or "
						 "author");
			break;
		case O_FHIR:
			if (strcmp(optarg, "r4") == 0)
				opts.fhir = SIGN_FHIR_R4;
			else if (strcmp(optarg, "stu3") == 0)
				opts.fhir = SIGN_FHIR_STU3;
			else
				return cli_usage("sign",
						 "--fhir is r4 or stu3");
			break;
		case O_TIME:
			if (!sign_cli_time(optarg, &opts.when))
				return cli_usage("sign",
						 "--time wants unix seconds or "
						 "an RFC 3339 time");
			break;
		default:
			return cli_usage("sign", "unknown option");
		}
	}
	if (argc - optind != 1)
		return cli_usage("sign", "one FILE expected");
	if (prov_path != NULL && opts.fhir != SIGN_FHIR_R4)
		return cli_usage("sign", "--provenance needs --fhir r4");
	if (cfg_path != NULL &&
	    (rc = sign_cli_config("sign", cfg_path, &cfg)) != CLI_OK)
		return rc;
	if (cfg != NULL) {
		/* [signing], which defaults to [listen]'s key and certificate */
		key = key != NULL ? key : cfg->sign_key;
		cert = cert != NULL ? cert : cfg->sign_cert;
		chain = chain != NULL ? chain : cfg->sign_chain;
		alg = alg != NULL ? alg : cfg->sign_alg;
	}
	if (key == NULL || cert == NULL) {
		config_free(cfg);
		return cli_usage("sign", "--key and --cert (or -c) required");
	}

	buf_init(&out, SIGN_CLI_MAX_INPUT * 2);
	buf_init(&pbuf, SIGN_CLI_MAX_INPUT);
	if ((err = sign_key_load(key, cert, chain, alg, &k, errbuf,
				 sizeof(errbuf))) != GW_OK) {
		fprintf(stderr, "pzpgw sign: %s\n", errbuf);
		rc = err == GW_NOTFOUND || err == GW_IO ? CLI_USAGE : CLI_FAIL;
		goto done;
	}
	if ((rc = sign_cli_load("sign", argv[optind], &doc)) != CLI_OK)
		goto done;
	if ((err = sign_bundle(k, doc, &opts, &so, errbuf, sizeof(errbuf))) !=
	    GW_OK) {
		fprintf(stderr, "pzpgw sign: %s: %s\n", argv[optind], errbuf);
		rc = err == GW_NOMEM ? CLI_USAGE : CLI_FAIL;
		goto done;
	}
	if (prov_path != NULL) {
		if (sign_provenance_new(doc->root, &prov, errbuf,
					sizeof(errbuf)) != GW_OK) {
			fprintf(stderr, "pzpgw sign: %s\n", errbuf);
			rc = CLI_FAIL;
			goto done;
		}
		if (fj_dump(prov->root, FJ_PRETTY, &pbuf) != GW_OK ||
		    util_write_file(prov_path, pbuf.data, pbuf.len, 0644) !=
			GW_OK) {
			fprintf(stderr, "pzpgw sign: cannot write %s\n",
				prov_path);
			rc = CLI_USAGE;
			goto done;
		}
	}
	if (fj_dump(doc->root, FJ_PRETTY, &out) != GW_OK) {
		fprintf(stderr, "pzpgw sign: output too large\n");
		rc = CLI_USAGE;
		goto done;
	}
	rc = sign_cli_stdout("sign", out.data, out.len);
done:
	sign_output_cleanup(&so);
	buf_cleanup(&out);
	buf_cleanup(&pbuf);
	fj_doc_free(prov);
	fj_doc_free(doc);
	sign_key_free(k);
	config_free(cfg);
	return rc;
}

int
cli_verify(int argc, char **argv)
{
	enum { O_TRUST = 256, O_CRL, O_URA, O_PROV, O_SKEW, O_QUIET };
	static const struct option longopts[] = {
	    {"trust", required_argument, NULL, O_TRUST},
	    {"crl", required_argument, NULL, O_CRL},
	    {"expect-ura", required_argument, NULL, O_URA},
	    {"provenance", required_argument, NULL, O_PROV},
	    {"skew", required_argument, NULL, O_SKEW},
	    {"quiet", no_argument, NULL, O_QUIET},
	    {"config", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0}};
	const char *trust_path = NULL, *prov_path = NULL, *cfg_path = NULL;
	struct config *cfg = NULL;
	const char *crls[SIGN_CLI_MAX_CRLS];
	size_t ncrl = 0;
	struct sign_verify_opts opts = {NULL, NULL, 300, 0};
	struct sign_trust *trust = NULL;
	struct sign_result res;
	struct fj_doc *doc = NULL, *prov = NULL;
	char errbuf[512], when[32], hex[2 * SIGN_HASH_LEN + 1];
	bool quiet = false;
	long long v;
	enum gw_err err;
	int ch, rc;

	memset(&res, 0, sizeof(res));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "qc:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfg_path = optarg;
			break;
		case O_TRUST:
			trust_path = optarg;
			break;
		case O_CRL:
			if (ncrl == SIGN_CLI_MAX_CRLS)
				return cli_usage("verify", "too many --crl");
			crls[ncrl++] = optarg;
			break;
		case O_URA:
			if (!util_is_ura(optarg))
				return cli_usage("verify",
						 "--expect-ura wants 8 digits");
			opts.expect_ura = optarg;
			break;
		case O_PROV:
			prov_path = optarg;
			break;
		case O_SKEW:
			if (util_parse_ll(optarg, 0, 86400, &v) != GW_OK)
				return cli_usage("verify",
						 "--skew wants 0..86400 "
						 "seconds");
			opts.skew = v;
			break;
		case 'q':
		case O_QUIET:
			quiet = true;
			break;
		default:
			return cli_usage("verify", "unknown option");
		}
	}
	if (argc - optind != 1)
		return cli_usage("verify", "one FILE expected");
	if (cfg_path != NULL &&
	    (rc = sign_cli_config("verify", cfg_path, &cfg)) != CLI_OK)
		return rc;
	if (cfg != NULL) {
		/* the organisation listener's trust anchors and CRL */
		if (trust_path == NULL)
			trust_path = cfg->tls_trust;
		if (ncrl == 0 && cfg->tls_crl != NULL)
			crls[ncrl++] = cfg->tls_crl;
	}
	if (trust_path == NULL) {
		config_free(cfg);
		return cli_usage("verify", "--trust (or -c) is required");
	}
	if (sign_trust_new(trust_path, crls, ncrl, &trust, errbuf,
			   sizeof(errbuf)) != GW_OK) {
		fprintf(stderr, "pzpgw verify: %s\n", errbuf);
		rc = CLI_USAGE;
		goto done;
	}
	opts.trust = trust;
	if ((rc = sign_cli_load("verify", argv[optind], &doc)) != CLI_OK)
		goto done;
	if (prov_path != NULL &&
	    (rc = sign_cli_load("verify", prov_path, &prov)) != CLI_OK)
		goto done;
	err = sign_verify(doc->root, prov != NULL ? prov->root : NULL, &opts,
			  &res);
	if (err == GW_OK) {
		if (!quiet) {
			util_rfc3339(res.sigt, when, sizeof(when));
			util_hex(res.hash, SIGN_HASH_LEN, hex);
			printf("valid: signer URA %s, %s, %s signature, sigT "
			       "%s, sha256 %s\n",
			       res.ura, sign_alg_name(res.alg),
			       sign_purpose_name(res.purpose), when, hex);
		}
		rc = CLI_OK;
	} else if (err == GW_CRYPTO) {
		fprintf(stderr, "pzpgw verify: %s: invalid (%s): %s\n",
			argv[optind], sign_check_name(res.check), res.reason);
		rc = CLI_FAIL;
	} else {
		fprintf(stderr, "pzpgw verify: %s\n", gw_strerror(err));
		rc = CLI_USAGE;
	}
done:
	sign_result_cleanup(&res);
	fj_doc_free(prov);
	fj_doc_free(doc);
	sign_trust_free(trust);
	config_free(cfg);
	return rc;
}
