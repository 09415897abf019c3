/*
 * message: the FHIR message Bundle a care plan travels in. A Bundle of
 * type "message" whose first entry is a MessageHeader naming the event
 * (our own CodeSystem), the sender and every receiver by URA, with focus
 * on the PZP resources in the Bundle.
 */
#ifndef GW_MESSAGE_H
#define GW_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "err.h"
#include "fjson.h"

/* The gateway's CodeSystem of message events. */
#define MESSAGE_EVENT_SYSTEM  "http://pzpgw.nl/fhir/CodeSystem/message-event"
#define MESSAGE_EVENT_SHARED  "pzp-shared"  /* PZP data shared */
#define MESSAGE_EVENT_UPDATED "pzp-updated" /* PZP data updated */
#define MESSAGE_URA_SYSTEM    "http://fhir.nl/fhir/NamingSystem/ura"
#define MESSAGE_MAX_RECEIVERS 64
/* Characters of a URA number (the same as CONFIG_URA_LEN). */
#define MESSAGE_URA_LEN 8

/* What the gateway needs from a message Bundle. Strings are borrowed from
 * the document. */
struct message_info {
	const char *id_system; /* Bundle.identifier.system, "" if none */
	const char *id_value;  /* Bundle.identifier.value */
	const char *event;     /* eventCoding.code */
	char sender[MESSAGE_URA_LEN + 1];
	char receivers[MESSAGE_MAX_RECEIVERS][MESSAGE_URA_LEN + 1];
	size_t nreceivers;
	char patient_key[65]; /* hex SHA-256 identifying the patient */
	bool signed_r4;	      /* Bundle.signature with data (R4) */
	bool signed_stu3;     /* Bundle.signature with blob (STU3) */
};

/*
 * Check that root is a message Bundle the gateway can carry and fill
 * info. Every problem is added to outcome (an OperationOutcome) as an
 * issue with the element's FHIRPath; returns GW_OK when there were none,
 * GW_INVALID otherwise.
 */
enum gw_err message_parse(const struct fj_node *root, struct message_info *info,
			  json_t *outcome);

/* The patient key of a Bundle (hex SHA-256 of the first Patient's first
 * identifier system|value, else of its fullUrl); "" when no Patient. */
void message_patient_key(const struct fj_node *bundle, char out[65]);

/* Size of a message identifier made here: "urn:uuid:" + 36 + NUL. */
#define MESSAGE_IDENT_LEN 46

/*
 * Wrap content (a Bundle of PZP resources, or one resource) into a new
 * message Bundle from sender to receivers, event MESSAGE_EVENT_*. Entries
 * get urn:uuid fullUrls where they have none, and the MessageHeader's
 * focus points at every resource. identifier: Bundle.identifier.value
 * (system urn:ietf:rfc:3986); with one, the fullUrls made are derived
 * from it, so wrapping the same content under the same identifier again
 * differs only in Bundle.timestamp; NULL: a new random urn:uuid and
 * random fullUrls. Caller frees *out with fj_doc_free. GW_INVALID (with
 * errbuf) when content is not a resource.
 */
enum gw_err message_wrap(const struct fj_node *content, const char *sender,
			 const char *const *receivers, size_t nreceivers,
			 const char *event, const char *identifier,
			 struct fj_doc **out, char *errbuf, size_t errlen);

/*
 * The identifier `pzpgw send` gives a message it wraps unless told one:
 * "urn:uuid:" and a UUID (version 8) made of the SHA-256 of the sender,
 * the event, the receivers (in any order) and content as parsed (not its
 * whitespace). Sending the same content to the same receivers again gets
 * the same identifier, which the gateway deduplicates on. out holds
 * MESSAGE_IDENT_LEN bytes. GW_NOMEM, GW_CRYPTO on failure.
 */
enum gw_err message_wrap_identifier(const struct fj_node *content,
				    const char *sender,
				    const char *const *receivers,
				    size_t nreceivers, const char *event,
				    char out[MESSAGE_IDENT_LEN]);

/*
 * Convert the envelope of the message Bundle doc->root in place between
 * the gateway's STU3 form (MessageHeader.event; each receiver named by
 * destination.endpoint "urn:ura:URA", a single one also by
 * MessageHeader.receiver; MessageHeader.timestamp) and its R4 form
 * (eventCoding, destination.receiver with the URA identifier,
 * Bundle.timestamp); to_r4 picks the direction. Only the envelope: the
 * resources are xf_convert's (transform.h). Each change is reported to
 * report (an OperationOutcome; may be NULL) as information. GW_OK (also
 * for a document that is not a message Bundle: nothing to do),
 * GW_INVALID (a message Bundle whose first entry is no MessageHeader) or
 * GW_NOMEM (doc may be partly converted: discard it).
 */
enum gw_err message_convert(struct fj_doc *doc, bool to_r4, json_t *report);

#endif
