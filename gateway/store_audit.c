/*
 * The audit trail's hash chain: the canonical serialisation of one record
 * and its SHA-256, shared by the backends (which chain records as they
 * append them) and by verification (which recomputes every link).
 */
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "store.h"
#include "util.h"

/* Feed "<length>:<bytes>\n" of s (at most max bytes of it) to md. */
static void
audit_field(EVP_MD_CTX *md, const char *s, size_t max)
{
	size_t len = strnlen(s, max);
	char head[32];
	int w = snprintf(head, sizeof(head), "%zu:", len);

	(void)EVP_DigestUpdate(md, head, (size_t)w);
	(void)EVP_DigestUpdate(md, s, len);
	(void)EVP_DigestUpdate(md, "\n", 1);
}

static void
audit_int(EVP_MD_CTX *md, int64_t v)
{
	char num[32];

	snprintf(num, sizeof(num), "%" PRId64, v);
	audit_field(md, num, sizeof(num));
}

void
store_audit_hash(const struct store_audit_rec *rec, char out[65])
{
	static const char tag[] = "pzpgw-audit-1\n";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	/* Out of memory: a hash that matches nothing, so verify fails
	   rather than passes. */
	util_strlcpy(out, "-", 65);
	if (md == NULL)
		return;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	(void)EVP_DigestUpdate(md, tag, sizeof(tag) - 1);
	/* Every field, so a record cannot be changed, moved (seq) or
	   re-linked (prev_hash) without its hash changing. The char arrays
	   are read to their size at most, terminated or not. */
	audit_int(md, rec->seq);
	audit_int(md, rec->at);
	audit_field(md, rec->ura, sizeof(rec->ura));
	audit_field(md, rec->cert_serial, sizeof(rec->cert_serial));
	audit_field(md, rec->cert_issuer, sizeof(rec->cert_issuer));
	audit_field(md, rec->bsn, sizeof(rec->bsn));
	audit_field(md, rec->interaction, sizeof(rec->interaction));
	audit_field(md, rec->query, sizeof(rec->query));
	audit_int(md, rec->count);
	audit_int(md, rec->status);
	audit_field(md, rec->request_id, sizeof(rec->request_id));
	audit_field(md, rec->prev_hash, sizeof(rec->prev_hash));
	if (EVP_DigestFinal_ex(md, d, &dlen) == 1 && dlen == 32)
		util_hex(d, dlen, out);
out:
	EVP_MD_CTX_free(md);
}

bool
store_audit_is_pull(const struct store_audit_rec *rec)
{
	return strcmp(rec->interaction, "create") != 0 &&
	       strncmp(rec->interaction, "operator-", 9) != 0;
}
