/*
 * notify: the FHIR Task of notified pull (what a notified organisation is
 * told, and nothing more), built by the intake workers; the deliverer
 * posts it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "message.h"
#include "notify.h"
#include "util.h"

#define NOTIFY_DISPLAY "PZP data available"

/* The IG's searches (ACP-CapabilityStatementProvider, data-exchange),
 * for the patient by BSN (patient.identifier, as the organisation knows
 * the patient by BSN, not by this gateway's logical id); params follow
 * the patient parameter. */
static const struct {
	const char *type;
	const char *params;
} notify_searches[] = {
    {"Patient", ""},
    {"Procedure", "&code=http://snomed.info/sct|713603004"
		  "&_include=Procedure:encounter"},
    {"Consent", "&scope=http://terminology.hl7.org/CodeSystem/"
		"consentscope|treatment"
		"&category=http://snomed.info/sct|129125009"
		"&_include=Consent:actor"},
    {"Consent", "&scope=http://terminology.hl7.org/CodeSystem/"
		"consentscope|adr"
		"&category=http://terminology.hl7.org/CodeSystem/"
		"consentcategorycodes|acd&_include=Consent:actor"},
    {"Goal", ""},
    {"Observation", "&code=http://snomed.info/sct|153851000146100,"
		    "395091006,340171000146104,247751003"},
    {"DeviceUseStatement", "&_include=DeviceUseStatement:device"},
    {"Communication", ""},
    {"CommunicationRequest", ""},
    {"QuestionnaireResponse", "&questionnaire=https://fhir.iknl.nl/fhir/"
			      "Questionnaire/ACP-zib2020"},
};

static bool
notify_is_bsn(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > NOTIFY_BSN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

enum gw_err
notify_bsn(const struct fj_node *bundle, char out[NOTIFY_BSN_MAX + 1])
{
	const struct fj_node *entries = fj_get(bundle, "entry");

	out[0] = '\0';
	for (const struct fj_node *e = entries ? entries->u.kids.first : NULL;
	     e != NULL; e = e->next) {
		const struct fj_node *res = fj_get(e, "resource");
		const struct fj_node *ids;

		if (!fj_str_eq(fj_get(res, "resourceType"), "Patient"))
			continue;
		/* The message's patient is its first Patient (as for the
		   delivery order, message_patient_key). */
		ids = fj_get(res, "identifier");
		for (const struct fj_node *id = ids ? ids->u.kids.first : NULL;
		     id != NULL; id = id->next) {
			const char *v = fj_get_str(id, "value");

			if (fj_str_eq(fj_get(id, "system"),
				      NOTIFY_BSN_SYSTEM) &&
			    notify_is_bsn(v)) {
				util_strlcpy(out, v, NOTIFY_BSN_MAX + 1);
				return GW_OK;
			}
		}
		return GW_NOTFOUND;
	}
	return GW_NOTFOUND;
}

/* A Reference by identifier: {type, identifier {system, value}}. New
 * reference or NULL. */
static json_t *
notify_ref(const char *type, const char *system, const char *value)
{
	return json_pack("{s:s, s:{s:s, s:s}}", "type", type, "identifier",
			 "system", system, "value", value);
}

/* Task.input: one search per entry of notify_searches. New reference or
 * NULL. */
static json_t *
notify_inputs(const char *bsn)
{
	json_t *list = json_array();
	char url[512];

	if (list == NULL)
		return NULL;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(notify_searches); i++) {
		const char *type = notify_searches[i].type;
		json_t *in;
		int n;

		n = snprintf(url, sizeof(url), "%s?%s=%s|%s%s", type,
			     strcmp(type, "Patient") == 0
				 ? "identifier"
				 : "patient.identifier",
			     NOTIFY_BSN_SYSTEM, bsn, notify_searches[i].params);
		if (n < 0 || (size_t)n >= sizeof(url))
			goto fail;
		in = json_pack("{s:{s:[{s:s, s:s, s:s}]}, s:s}", "type",
			       "coding", "system", NOTIFY_SYSTEM, "code",
			       NOTIFY_INPUT, "display", "Search to run",
			       "valueUrl", url);
		if (in == NULL || json_array_append_new(list, in) != 0)
			goto fail;
	}
	return list;
fail:
	json_decref(list);
	return NULL;
}

enum gw_err
notify_task_write(const struct notify_task *t, struct buf *out, char sha256[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char when[32], ident[80];
	json_t *task = NULL, *inputs;
	enum gw_err err = GW_NOMEM;
	char *text = NULL;

	if (t->id == NULL || t->id[0] == '\0' || strlen(t->id) > 64 ||
	    !notify_is_bsn(t->bsn) || t->requester == NULL ||
	    !util_is_ura(t->requester) || t->owner == NULL ||
	    !util_is_ura(t->owner))
		return GW_INVALID;
	util_rfc3339(t->authored_ms / 1000, when, sizeof(when));
	snprintf(ident, sizeof(ident), "urn:uuid:%s", t->id);
	if ((inputs = notify_inputs(t->bsn)) == NULL)
		goto done;
	/* json_pack "o" steals inputs, also when it fails. */
	task = json_pack(
	    "{s:s, s:[{s:s, s:s}], s:s, s:s, s:{s:[{s:s, s:s, s:s}], s:s},"
	    " s:o, s:s, s:o, s:o, s:o}",
	    "resourceType", "Task", "identifier", "system", "urn:ietf:rfc:3986",
	    "value", ident, "status", "requested", "intent", "order", "code",
	    "coding", "system", NOTIFY_SYSTEM, "code", NOTIFY_CODE, "display",
	    NOTIFY_DISPLAY, "text", NOTIFY_DISPLAY, "for",
	    notify_ref("Patient", NOTIFY_BSN_SYSTEM, t->bsn), "authoredOn",
	    when, "requester",
	    notify_ref("Organization", MESSAGE_URA_SYSTEM, t->requester),
	    "owner", notify_ref("Organization", MESSAGE_URA_SYSTEM, t->owner),
	    "input", inputs);
	if (task == NULL)
		goto done;
	if ((text = json_dumps(task, JSON_COMPACT | JSON_PRESERVE_ORDER)) ==
	    NULL)
		goto done;
	if (EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) != 1)
		goto done;
	util_hex(md, mdlen, sha256);
	err = buf_adds(out, text);
done:
	free(text);
	json_decref(task);
	return err;
}
