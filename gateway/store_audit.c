/*
 * The audit trail's hash chain: the canonical serialisation of one record
 * and its SHA-256, shared by the backends (which chain records as they
 * append them) and by verification (which recomputes every link).
 */
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#include "store.h"
#include "util.h"

/* The canonical serialisation's length at most: the tag, every char
 * array whole, and 20 digits for each integer and each length. */
#define AUDIT_SER_MAX                                                          \
	(32 + sizeof(((struct store_audit_rec *)0)->ura) +                     \
	 sizeof(((struct store_audit_rec *)0)->cert_serial) +                  \
	 sizeof(((struct store_audit_rec *)0)->cert_issuer) +                  \
	 sizeof(((struct store_audit_rec *)0)->bsn) +                          \
	 sizeof(((struct store_audit_rec *)0)->interaction) +                  \
	 sizeof(((struct store_audit_rec *)0)->query) +                        \
	 sizeof(((struct store_audit_rec *)0)->request_id) +                   \
	 sizeof(((struct store_audit_rec *)0)->prev_hash) + 12 * (2 * 21 + 2))

/* The decimal digits of v at p; their number. */
static size_t
audit_dec(char *p, int64_t v)
{
	char tmp[24];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n = 0, len = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	if (v < 0)
		p[len++] = '-';
	while (n > 0)
		p[len++] = tmp[--n];
	return len;
}

/* Append "<length>:<bytes>\n" of s (at most max bytes of it) at out + at;
 * the new length. */
static size_t
audit_field(char *out, size_t at, const char *s, size_t max)
{
	size_t len = strnlen(s, max);

	at += audit_dec(out + at, (int64_t)len);
	out[at++] = ':';
	memcpy(out + at, s, len);
	at += len;
	out[at++] = '\n';
	return at;
}

static size_t
audit_int(char *out, size_t at, int64_t v)
{
	char num[24];

	return audit_field(out, at, num, audit_dec(num, v));
}

void
store_audit_hash(const struct store_audit_rec *rec, char out[65])
{
	static const char tag[] = "pzpgw-audit-1\n";
	unsigned char d[SHA256_DIGEST_LENGTH];
	char ser[AUDIT_SER_MAX];
	size_t at = sizeof(tag) - 1;

	/* Every field, so a record cannot be changed, moved (seq) or
	   re-linked (prev_hash) without its hash changing. The char arrays
	   are read to their size at most, terminated or not. Written out
	   whole, then hashed at once: fed field by field, the digest calls
	   were a tenth of the writer's time. */
	memcpy(ser, tag, at);
	at = audit_int(ser, at, rec->seq);
	at = audit_int(ser, at, rec->at);
	at = audit_field(ser, at, rec->ura, sizeof(rec->ura));
	at = audit_field(ser, at, rec->cert_serial, sizeof(rec->cert_serial));
	at = audit_field(ser, at, rec->cert_issuer, sizeof(rec->cert_issuer));
	at = audit_field(ser, at, rec->bsn, sizeof(rec->bsn));
	at = audit_field(ser, at, rec->interaction, sizeof(rec->interaction));
	at = audit_field(ser, at, rec->query, sizeof(rec->query));
	at = audit_int(ser, at, rec->count);
	at = audit_int(ser, at, rec->status);
	at = audit_field(ser, at, rec->request_id, sizeof(rec->request_id));
	at = audit_field(ser, at, rec->prev_hash, sizeof(rec->prev_hash));
	SHA256((const unsigned char *)ser, at, d);
	util_hex(d, sizeof(d), out);
}

bool
store_audit_is_pull(const struct store_audit_rec *rec)
{
	return strcmp(rec->interaction, "create") != 0 &&
	       strncmp(rec->interaction, "operator-", 9) != 0;
}
