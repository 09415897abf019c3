/*
 * index: the stored form of a received R4 message for one local receiver
 * (issue 11): the patient's BSN and, per resource, its business key, a
 * logical id that is stable per (receiver, patient, type, key) and reveals nothing
 * without the store's secret, and the resource as the pull API serves it.
 */
#ifndef GW_INDEX_H
#define GW_INDEX_H

#include <stddef.h>

#include "err.h"
#include "fjson.h"
#include "store.h"

/* The NamingSystem of the Dutch citizen service number. */
#define INDEX_BSN_SYSTEM "http://fhir.nl/fhir/NamingSystem/bsn"
/* Bytes of the store's id secret (store_index_secret). */
#define INDEX_SECRET_LEN 32
/* Hex characters of a logical id (128 bits of the keyed hash). */
#define INDEX_ID_LEN 32

/* index_prepare flags. INDEX_BSN_ONLY: the receiver and the BSN, no
 * entries (an STU3 message, which issue 12 will convert and index). */
#define INDEX_BSN_ONLY 0x1u

/* One message's index for one receiver; owns everything its store_index
 * points into. */
struct index_set;

/*
 * Build the index of bundle (a parsed, validated message Bundle) for
 * receiver (a URA) with the store's secret (INDEX_SECRET_LEN bytes):
 * every entry except the MessageHeader and a relayed-signature
 * Provenance (sign_relay_keep) becomes one store_index_entry: key = the
 * resource's first identifier with system and value ("system|value"),
 * else the entry's fullUrl, else "Type/id"; id = index_logical_id of
 * (receiver, bsn, type, key); json = the resource with that id, meta.versionId
 * and meta.lastUpdated left out, and every Reference.reference (at any
 * depth, contained resources included) that names another resource of
 * the message (its fullUrl, "Type/id", or an absolute URL ending in it)
 * rewritten to "Type/<logical id>"; hidden when status is
 * entered-in-error. bsn is the first Patient's BSN identifier ("" when
 * none), sender the MessageHeader's sender URA ("" when none). Returns GW_OK and *out (caller frees with index_free), GW_NOMEM,
 * or GW_INVALID when bundle has no entries array.
 */
enum gw_err index_prepare(const struct fj_node *bundle, const char *receiver,
			  const unsigned char *secret, unsigned flags,
			  struct index_set **out);

/* The store_index of x, borrowed until index_free(x). */
const struct store_index *index_get(const struct index_set *x);

/* Free x; NULL is a no-op. */
void index_free(struct index_set *x);

/* The logical id of the resource (type, key) of patient bsn for receiver
 * under secret into out (INDEX_ID_LEN + 1 bytes): two halves of keyed
 * hashes (HMAC-SHA256, hex, truncated), the first of (receiver, bsn), the
 * second of (receiver, bsn, type, key); "" when it cannot be computed. A
 * resource is kept per patient: the same Practitioner sent for two
 * patients is two resources. */
void index_logical_id(const unsigned char *secret, const char *receiver,
		      const char *bsn, const char *type, const char *key,
		      char *out);

#endif
