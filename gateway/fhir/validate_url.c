/*
 * validate_url: URLs that must not appear in real data. The hosts
 * example.org and example.com (RFC 2606) exist for documentation; the HL7
 * validator reports a reference or uri/url value naming them as an error
 * unless it is told it validates examples (validate_opts
 * .allow_example_urls, `pzpgw validate --allow-example-urls`).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "validate_impl.h"

/* True when the absolute URL s has host example.org or example.com, or
 * a name below them. */
static bool
example_host(const char *s)
{
	static const char *const hosts[] = {"example.org", "example.com"};
	const char *h = strstr(s, "://");
	size_t n;

	if (h == NULL || strcspn(s, ":/?#") != (size_t)(h - s))
		return false;
	h += 3;
	/* skip user info: "user@host" */
	n = strcspn(h, "/?#");
	for (size_t i = 0; i < n; i++)
		if (h[i] == '@') {
			h += i + 1;
			n -= i + 1;
			i = (size_t)-1;
		}
	n = strcspn(h, ":/?#");
	if (n > 0 && h[n - 1] == '.')
		n--; /* a fully qualified name's trailing dot */
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		size_t hl = strlen(hosts[i]);

		if (n == hl && strncasecmp(h, hosts[i], hl) == 0)
			return true;
		if (n > hl && h[n - hl - 1] == '.' &&
		    strncasecmp(h + n - hl, hosts[i], hl) == 0)
			return true;
	}
	return false;
}

static void
report(struct vrun *r, const struct fj_node *at, const char *url)
{
	v_issue(r, FHIR_ERROR, "invalid", at,
		"example URLs are not allowed outside examples ('%.100s': "
		"example.org and example.com are for documentation; "
		"validate an example with --allow-example-urls)",
		url);
}

/* A uri or url value (not canonical: profiles and value sets are judged
 * by whether they are known) that names an example host, unless it is a
 * definition loaded into the rules (a test IG's CodeSystem) or an
 * extension's url (judged as an extension). */
void
v_check_example_url(struct vrun *r, const struct rules_element *el,
		    const char *type, const struct fj_node *v)
{
	const char *s, *path = el != NULL ? el->path : NULL;
	size_t pl;

	if (r->allow_examples || v == NULL || v->type != FJ_STRING ||
	    (strcmp(type, "uri") != 0 && strcmp(type, "url") != 0))
		return;
	s = v->u.str.s;
	if (!example_host(s))
		return;
	if (path != NULL && (pl = strlen(path)) >= 12 &&
	    strcmp(path + pl - 12, "xtension.url") == 0)
		return;
	if (rules_known_url(r->ctx->set, s))
		return;
	report(r, v, s);
}

/* Reference.reference naming an example host. */
void
v_check_example_ref(struct vrun *r, const struct fj_node *ref)
{
	const struct fj_node *s;
	size_t old;

	if (r->allow_examples || ref == NULL ||
	    (s = fj_get(ref, "reference")) == NULL || s->type != FJ_STRING ||
	    !example_host(s->u.str.s))
		return;
	old = v_path_add(r, ".", "reference", 9);
	report(r, s, s->u.str.s);
	v_path_pop(r, old);
}
