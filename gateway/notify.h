/*
 * notify: notified pull. When a message for an organisation this gateway
 * serves arrives, a FHIR R4 Task tells that organisation's system, at its
 * [peer] notify URL, that new PZP data for a patient can be pulled, and
 * which searches to run. It carries no clinical content.
 */
#ifndef GW_NOTIFY_H
#define GW_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* The gateway's CodeSystem of notification codes: the Task's code
 * (NOTIFY_CODE) and the type of each of its inputs (NOTIFY_INPUT). */
#define NOTIFY_SYSTEM	  "http://pzpgw.nl/fhir/CodeSystem/notification"
#define NOTIFY_CODE	  "pzp-data-available"
#define NOTIFY_INPUT	  "search"
#define NOTIFY_BSN_SYSTEM "http://fhir.nl/fhir/NamingSystem/bsn"
/* Longest BSN taken (a BSN has 9 digits; STORE_BSN_MAX). */
#define NOTIFY_BSN_MAX 16

/* What one Task says; strings borrowed. */
struct notify_task {
	const char *id;	       /* notice id: Task.identifier value */
	const char *bsn;       /* the patient's BSN (the message's index) */
	const char *requester; /* URA of the organisation that sent the data */
	const char *owner;     /* URA of the organisation notified */
	int64_t authored_ms;   /* ms since the epoch */
};

/*
 * Write the Task t describes as compact JSON to out (appended) and the
 * hex SHA-256 of what was written to sha256. Its inputs are the searches
 * of the IG (ACP-CapabilityStatementProvider) for the patient, relative to
 * this gateway's FHIR base. GW_OK, GW_NOMEM, GW_TOOBIG (out's maximum;
 * out may then hold part of the Task), or GW_INVALID when a field is
 * missing or not an id (letters, digits, '-', '.'), BSN or URA.
 */
enum gw_err notify_task_write(const struct notify_task *t, struct buf *out,
			      char sha256[65]);

#endif
