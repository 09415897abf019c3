/*
 * rules_sd: compiling StructureDefinitions (JSON model, R4 or STU3) into
 * rules_structure: ElementDefinitions, STU3 choice renames, differential
 * ids, extension contexts; differential-only ones through rules_snap.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_impl.h"
#include "util.h"

/* ---- ElementDefinition ---- */

static bool
rs_get_uint(const struct fj_node *obj, const char *key, uint32_t *out)
{
	const struct fj_node *n = fj_get(obj, key);
	long long v;

	if (n == NULL)
		return false;
	if (n->type == FJ_STRING && strcmp(n->u.str.s, "*") == 0) {
		*out = RULES_UNBOUNDED;
		return true;
	}
	if (n->type != FJ_NUMBER && n->type != FJ_STRING)
		return false;
	if (util_parse_ll(n->u.str.s, 0, UINT32_MAX - 1, &v) != GW_OK)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Add string s (interned) to a growable list in the arena. */
static enum gw_err
rs_list_add(struct rules_set *set, const char ***list, size_t *n, const char *s)
{
	const char **nl;

	if (s == NULL)
		return GW_OK;
	for (size_t i = 0; i < *n; i++)
		if ((*list)[i] == s)
			return GW_OK;
	if ((nl = rs_alloc(set, (*n + 1) * sizeof(*nl))) == NULL)
		return GW_NOMEM;
	if (*n > 0)
		memcpy(nl, *list, *n * sizeof(*nl));
	nl[(*n)++] = s;
	*list = nl;
	return GW_OK;
}

static enum gw_err
rs_add_strings(struct rules_set *set, const struct fj_node *n,
	       const char ***list, size_t *count)
{
	enum gw_err err = GW_OK;

	if (n == NULL)
		return GW_OK;
	if (n->type == FJ_STRING)
		return rs_list_add(set, list, count, rs_canon(set, n->u.str.s));
	if (n->type != FJ_ARRAY)
		return GW_OK;
	for (const struct fj_node *k = n->u.kids.first; k && err == GW_OK;
	     k = k->next)
		if (k->type == FJ_STRING)
			err = rs_list_add(set, list, count,
					  rs_canon(set, k->u.str.s));
	return err;
}

/* The type code, using the fhir-type extension R4 puts on System.*
 * codes of id/url elements. */
static const char *
rs_type_code(struct rules_set *set, const struct fj_node *t)
{
	const struct fj_node *ext = fj_get(t, "extension");
	const struct fj_node *code = fj_get(t, "code");

	for (const struct fj_node *e =
		 ext && ext->type == FJ_ARRAY ? ext->u.kids.first : NULL;
	     e != NULL; e = e->next) {
		const char *url = fj_get_str(e, "url");
		const char *v = fj_get_str(e, "valueUrl");

		if (v == NULL)
			v = fj_get_str(e, "valueUri");
		if (url != NULL && v != NULL &&
		    strcmp(url, "http://hl7.org/fhir/StructureDefinition/"
				"structuredefinition-fhir-type") == 0)
			return rs_intern(set, v);
	}
	if (code != NULL && code->type == FJ_STRING)
		return rs_internn(set, code->u.str.s, code->u.str.len);
	return NULL;
}

static enum gw_err
rs_types(struct rules_set *set, const struct fj_node *arr,
	 struct rules_element *el)
{
	size_t n = 0;
	struct rules_type *types;
	enum gw_err err;

	if (arr == NULL || arr->type != FJ_ARRAY || arr->u.kids.count == 0)
		return GW_OK;
	types = rs_alloc(set, arr->u.kids.count * sizeof(*types));
	if (types == NULL)
		return GW_NOMEM;
	for (const struct fj_node *t = arr->u.kids.first; t; t = t->next) {
		const char *code = rs_type_code(set, t);
		struct rules_type *rt = NULL;

		if (code == NULL)
			continue;
		/* STU3 repeats the code for every profile */
		for (size_t i = 0; i < n; i++)
			if (types[i].code == code)
				rt = &types[i];
		if (rt == NULL) {
			rt = &types[n++];
			rt->code = code;
		}
		if ((err = rs_add_strings(set, fj_get(t, "profile"),
					  &rt->profiles, &rt->nprofiles)) !=
			GW_OK ||
		    (err = rs_add_strings(set, fj_get(t, "targetProfile"),
					  &rt->targets, &rt->ntargets)) !=
			GW_OK)
			return err;
	}
	el->types = types;
	el->ntypes = n;
	return GW_OK;
}

static enum rules_disc
rs_disc_type(const char *s)
{
	if (s == NULL || strcmp(s, "value") == 0)
		return RULES_DISC_VALUE;
	if (strcmp(s, "pattern") == 0)
		return RULES_DISC_PATTERN;
	if (strcmp(s, "type") == 0)
		return RULES_DISC_TYPE;
	if (strcmp(s, "profile") == 0)
		return RULES_DISC_PROFILE;
	return RULES_DISC_EXISTS;
}

static enum gw_err
rs_slicing(struct rules_set *set, const struct fj_node *sl,
	   struct rules_element *el)
{
	const struct fj_node *d = fj_get(sl, "discriminator");
	const char *rules = fj_get_str(sl, "rules");
	struct rules_slicing *s;
	size_t n = 0;

	if ((s = rs_alloc(set, sizeof(*s))) == NULL)
		return GW_NOMEM;
	if (d != NULL && d->type == FJ_ARRAY && d->u.kids.count > 0) {
		s->disc = rs_alloc(set, d->u.kids.count * sizeof(*s->disc));
		if (s->disc == NULL)
			return GW_NOMEM;
		for (const struct fj_node *k = d->u.kids.first; k;
		     k = k->next) {
			struct rules_discriminator *x = &s->disc[n];

			if (k->type == FJ_STRING) {
				/* STU3: a path; @type / @profile */
				const char *p = k->u.str.s;

				if (strcmp(p, "@type") == 0) {
					x->type = RULES_DISC_TYPE;
					p = "$this";
				} else if (strcmp(p, "@profile") == 0) {
					x->type = RULES_DISC_PROFILE;
					p = "$this";
				} else {
					x->type = RULES_DISC_VALUE;
				}
				x->path = rs_intern(set, p);
			} else if (k->type == FJ_OBJECT) {
				x->type = rs_disc_type(fj_get_str(k, "type"));
				x->path = rs_get_istr(set, k, "path");
			} else {
				continue;
			}
			if (x->path == NULL)
				return GW_NOMEM;
			n++;
		}
	}
	s->ndisc = n;
	rs_get_bool(sl, "ordered", &s->ordered);
	if (rules != NULL && strcmp(rules, "closed") == 0)
		s->rules = RULES_SLICE_CLOSED;
	else if (rules != NULL && strcmp(rules, "openAtEnd") == 0)
		s->rules = RULES_SLICE_OPEN_AT_END;
	else
		s->rules = RULES_SLICE_OPEN;
	el->slicing = s;
	return GW_OK;
}

static enum gw_err
rs_constraints(struct rules_set *set, const struct fj_node *arr,
	       const char *source, struct rules_element *el)
{
	struct rules_constraint *c;
	size_t n = 0;

	if (arr == NULL || arr->type != FJ_ARRAY || arr->u.kids.count == 0)
		return GW_OK;
	if ((c = rs_alloc(set, arr->u.kids.count * sizeof(*c))) == NULL)
		return GW_NOMEM;
	for (const struct fj_node *k = arr->u.kids.first; k; k = k->next) {
		const char *sev = fj_get_str(k, "severity");

		c[n].key = rs_get_istr(set, k, "key");
		if (c[n].key == NULL)
			continue;
		c[n].error = sev == NULL || strcmp(sev, "error") == 0;
		c[n].human = rs_get_istr(set, k, "human");
		c[n].expression = rs_get_istr(set, k, "expression");
		c[n].source = rs_canon(set, fj_get_str(k, "source"));
		if (c[n].source == NULL)
			c[n].source = source;
		n++;
	}
	el->constraints = c;
	el->nconstraints = n;
	return GW_OK;
}

/* fixedX / patternX member: prefix followed by an upper-case letter. */
static bool
rs_is_choice(const struct fj_node *m, const char *prefix)
{
	size_t n = strlen(prefix);

	return m->keylen > n && strncmp(m->key, prefix, n) == 0 &&
	       m->key[n] >= 'A' && m->key[n] <= 'Z';
}

enum gw_err
rs_element_from_json(struct rules_set *set, const struct fj_node *ed,
		     const char *source, struct rules_element *out,
		     unsigned *has)
{
	const struct fj_node *n, *base, *bind;
	const char *s;
	bool b;
	enum gw_err err;

	memset(out, 0, sizeof(*out));
	*has = 0;
	if (ed == NULL || ed->type != FJ_OBJECT)
		return GW_INVALID;
	out->path = rs_get_istr(set, ed, "path");
	out->id = rs_get_istr(set, ed, "id");
	if (out->path == NULL)
		return GW_INVALID;
	if (out->id == NULL)
		out->id = out->path;
	else
		*has |= RS_HAS_ID;
	if ((out->slice_name = rs_get_istr(set, ed, "sliceName")) != NULL)
		*has |= RS_HAS_SLICENAME;
	out->max = RULES_UNBOUNDED;
	if (rs_get_uint(ed, "min", &out->min))
		*has |= RS_HAS_MIN;
	if (rs_get_uint(ed, "max", &out->max))
		*has |= RS_HAS_MAX;
	out->base_max = out->max;
	if ((base = fj_get(ed, "base")) != NULL)
		rs_get_uint(base, "max", &out->base_max);
	if ((n = fj_get(ed, "type")) != NULL) {
		*has |= RS_HAS_TYPE;
		if ((err = rs_types(set, n, out)) != GW_OK)
			return err;
	}
	if ((s = fj_get_str(ed, "contentReference")) != NULL) {
		const char *hash = strchr(s, '#');

		*has |= RS_HAS_CONTENTREF;
		out->content_ref = rs_intern(set, hash ? hash + 1 : s);
	}
	for (n = ed->u.kids.first; n != NULL; n = n->next) {
		if (rs_is_choice(n, "fixed")) {
			*has |= RS_HAS_FIXED;
			if ((out->fixed = rs_copy_member(set, n)) == NULL)
				return GW_NOMEM;
		} else if (rs_is_choice(n, "pattern")) {
			*has |= RS_HAS_PATTERN;
			if ((out->pattern = rs_copy_member(set, n)) == NULL)
				return GW_NOMEM;
		} else if (rs_is_choice(n, "minValue")) {
			*has |= RS_HAS_MINVALUE;
			if ((out->min_value = rs_copy_member(set, n)) == NULL)
				return GW_NOMEM;
		} else if (rs_is_choice(n, "maxValue")) {
			*has |= RS_HAS_MAXVALUE;
			if ((out->max_value = rs_copy_member(set, n)) == NULL)
				return GW_NOMEM;
		}
	}
	if (rs_get_uint(ed, "maxLength", &out->max_length))
		*has |= RS_HAS_MAXLENGTH;
	if (out->max_length == RULES_UNBOUNDED)
		out->max_length = 0; /* "*" is not a length */
	if ((bind = fj_get(ed, "binding")) != NULL) {
		const char *st = fj_get_str(bind, "strength");
		const char *vs = fj_get_str(bind, "valueSet");
		const struct fj_node *ref;

		*has |= RS_HAS_BINDING;
		if (vs == NULL)
			vs = fj_get_str(bind, "valueSetUri");
		if (vs == NULL && (ref = fj_get(bind, "valueSetReference")))
			vs = fj_get_str(ref, "reference");
		out->valueset = rs_canon(set, vs);
		if (st == NULL)
			out->strength = RULES_BIND_NONE;
		else if (strcmp(st, "required") == 0)
			out->strength = RULES_BIND_REQUIRED;
		else if (strcmp(st, "extensible") == 0)
			out->strength = RULES_BIND_EXTENSIBLE;
		else if (strcmp(st, "preferred") == 0)
			out->strength = RULES_BIND_PREFERRED;
		else
			out->strength = RULES_BIND_EXAMPLE;
	}
	if ((n = fj_get(ed, "slicing")) != NULL && n->type == FJ_OBJECT) {
		*has |= RS_HAS_SLICING;
		if ((err = rs_slicing(set, n, out)) != GW_OK)
			return err;
	}
	if ((n = fj_get(ed, "constraint")) != NULL) {
		*has |= RS_HAS_CONSTRAINT;
		if ((err = rs_constraints(set, n, source, out)) != GW_OK)
			return err;
	}
	if (rs_get_bool(ed, "isModifier", &b)) {
		*has |= RS_HAS_MODIFIER;
		out->is_modifier = b;
	}
	if (rs_get_bool(ed, "mustSupport", &b)) {
		*has |= RS_HAS_MUSTSUPPORT;
		out->must_support = b;
	}
	return GW_OK;
}

/* ---- compiling ---- */

/* The compiled structure for url, compiling a pending source first;
 * NULL when unknown. */
static const struct rules_structure *
rs_need_structure(struct rules_set *set, const char *url)
{
	const struct rules_structure *st = rules_structure(set, url);
	char tmp[1024];
	size_t v;

	if (st != NULL)
		return st;
	v = hmap_get_num(&set->psd_url,
			 rs_strip_version(url, tmp, sizeof(tmp)));
	if (v == 0 || rs_compile_sd(set, v - 1) != GW_OK)
		return NULL;
	return rules_structure(set, url);
}

/* rs_resolver.structure for snapshot generation: profiled types are
 * compiled on demand, like bases. */
static const struct rules_structure *
rs_resolve_structure(void *arg, const char *url)
{
	return rs_need_structure(arg, url);
}

/* Is path an element path of the base definitions (following datatypes
 * from the root type)? */
static bool
rs_base_has_path(struct rules_set *set, const char *path)
{
	char url[512], cur[1024];
	const struct rules_structure *st;
	const char *seg = strchr(path, '.'), *next;
	size_t curlen;
	int n;

	if (seg == NULL)
		return false;
	n = snprintf(url, sizeof(url),
		     "http://hl7.org/fhir/StructureDefinition/%.*s",
		     (int)(seg - path), path);
	if (n < 0 || (size_t)n >= sizeof(url) ||
	    (st = rs_need_structure(set, url)) == NULL)
		return false;
	curlen = (size_t)(seg - path);
	memcpy(cur, path, curlen);
	cur[curlen] = '\0';
	for (int depth = 0; seg != NULL && depth < 32; depth++, seg = next) {
		const struct rules_element *found = NULL;
		bool has_kids = false;
		size_t sl;

		next = strchr(seg + 1, '.');
		sl = next ? (size_t)(next - seg) : strlen(seg);
		if (curlen + sl >= sizeof(cur))
			return false;
		memcpy(cur + curlen, seg, sl);
		curlen += sl;
		cur[curlen] = '\0';
		for (size_t i = 0; i < st->nelements && found == NULL; i++)
			if (st->elements[i].slice_name == NULL &&
			    strcmp(st->elements[i].path, cur) == 0)
				found = &st->elements[i];
		if (found == NULL)
			return false;
		if (next == NULL)
			return true;
		for (size_t i = 0; i < st->nelements && !has_kids; i++)
			has_kids =
			    strncmp(st->elements[i].path, cur, curlen) == 0 &&
			    st->elements[i].path[curlen] == '.';
		if (has_kids)
			continue;
		/* children of a datatype element: go on in its type */
		if (found->ntypes != 1)
			return false;
		n = snprintf(url, sizeof(url),
			     "http://hl7.org/fhir/StructureDefinition/%s",
			     found->types[0].code);
		if (n < 0 || (size_t)n >= sizeof(url) ||
		    (st = rs_need_structure(set, url)) == NULL ||
		    st->type == NULL || strlen(st->type) >= sizeof(cur))
			return false;
		curlen = strlen(st->type);
		memcpy(cur, st->type, curlen + 1);
	}
	return false;
}

/*
 * STU3 snapshots name a choice constrained to one type by that type
 * ("Observation.valueQuantity.unit"); the rules always use the [x] form.
 * A renamed segment is recognised by the base definitions knowing
 * "prefix[x]" and not the name itself. Path and id are rewritten
 * segment by segment (ids carry slice names after ':').
 */
static enum gw_err
rs_unrename(struct rules_set *set, struct rules_element *el)
{
	char np[1024], ni[1024], probe[1100];
	const char *p = el->path, *i = el->id;
	size_t npl = 0, nil = 0;
	bool changed = false;

	if (strchr(p, '.') == NULL)
		return GW_OK;
	for (int seg = 0; *p != '\0' || *i != '\0'; seg++) {
		size_t pl = strcspn(p, "."), il = strcspn(i, ".");
		size_t namel = strcspn(i, ".:");
		const char *u = NULL;

		if (namel > il)
			namel = il;
		if (npl + pl + 8 >= sizeof(np) || nil + il + 8 >= sizeof(ni))
			return GW_OK;
		if (seg > 0) {
			for (const char *c = p + 1; c < p + pl; c++)
				if (*c >= 'A' && *c <= 'Z') {
					u = c;
					break;
				}
		}
		if (u != NULL && memchr(p, '[', pl) == NULL) {
			int a = snprintf(probe, sizeof(probe), "%.*s.%.*s",
					 (int)npl, np, (int)pl, p);
			int b;

			if (a > 0 && (size_t)a < sizeof(probe) &&
			    !rs_base_has_path(set, probe)) {
				b = snprintf(probe, sizeof(probe),
					     "%.*s.%.*s[x]", (int)npl, np,
					     (int)(u - p), p);
				if (b > 0 && (size_t)b < sizeof(probe) &&
				    rs_base_has_path(set, probe)) {
					/* rename this segment */
					npl = (size_t)b;
					memcpy(np, probe, npl + 1);
					nil += (size_t)snprintf(
					    ni + nil, sizeof(ni) - nil,
					    "%s%.*s[x]%.*s", seg ? "." : "",
					    (int)(u - p), p, (int)(il - namel),
					    i + namel);
					changed = true;
					goto next;
				}
			}
		}
		npl += (size_t)snprintf(np + npl, sizeof(np) - npl, "%s%.*s",
					seg ? "." : "", (int)pl, p);
		nil += (size_t)snprintf(ni + nil, sizeof(ni) - nil, "%s%.*s",
					seg ? "." : "", (int)il, i);
	next:
		p += pl;
		i += il;
		if (*p == '.')
			p++;
		if (*i == '.')
			i++;
		if ((*p == '\0') != (*i == '\0'))
			return GW_OK; /* id and path disagree: leave it */
	}
	if (!changed)
		return GW_OK;
	if ((el->path = rs_intern(set, np)) == NULL ||
	    (el->id = rs_intern(set, ni)) == NULL)
		return GW_NOMEM;
	return GW_OK;
}

/*
 * Differential elements without an id (older profiles give only path and
 * sliceName): make the id from the slices in force, as the element order
 * implies. A slice of path P is in force from its sliceName element until
 * P appears again without one; it applies to the elements below P.
 */
static enum gw_err
rs_diff_ids(struct rules_set *set, struct rules_element *diff,
	    const unsigned *has, size_t n)
{
	const char **apath = NULL, **aname = NULL;
	size_t na = 0;
	enum gw_err err = GW_OK;
	char id[2048];

	for (size_t k = 0; k < n; k++)
		if (!(has[k] & RS_HAS_ID))
			break;
		else if (k + 1 == n)
			return GW_OK;
	if ((apath = calloc(n + 1, sizeof(*apath))) == NULL ||
	    (aname = calloc(n + 1, sizeof(*aname))) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		const char *p = diff[k].path;
		size_t plen = strlen(p), ilen = 0;

		/* this path again ends its slices and those below it */
		for (size_t a = 0; a < na;) {
			if (strncmp(apath[a], p, plen) == 0 &&
			    (apath[a][plen] == '\0' || apath[a][plen] == '.')) {
				apath[a] = apath[--na];
				aname[a] = aname[na];
			} else {
				a++;
			}
		}
		if (diff[k].slice_name != NULL) {
			apath[na] = p;
			aname[na++] = diff[k].slice_name;
		}
		if (has[k] & RS_HAS_ID)
			continue;
		/* rebuild: each prefix of the path with its slice */
		for (const char *seg = p; seg != NULL;) {
			const char *dot = strchr(seg, '.');
			size_t end = dot ? (size_t)(dot - p) : plen;
			const char *name = NULL;
			int w;

			for (size_t a = 0; a < na; a++)
				if (strlen(apath[a]) == end &&
				    strncmp(apath[a], p, end) == 0)
					name = aname[a];
			w = snprintf(id + ilen, sizeof(id) - ilen, "%.*s%s%s",
				     (int)(end - (size_t)(seg - p)), seg,
				     name ? ":" : "", name ? name : "");
			if (w < 0 || (size_t)w >= sizeof(id) - ilen)
				break;
			ilen += (size_t)w;
			if (dot == NULL)
				break;
			if (ilen + 1 < sizeof(id))
				id[ilen++] = '.';
			id[ilen] = '\0';
			seg = dot + 1;
		}
		if ((diff[k].id = rs_intern(set, id)) == NULL) {
			err = GW_NOMEM;
			goto out;
		}
	}
out:
	free(apath);
	free(aname);
	return err;
}

/* major * 100 + minor of a FHIR version code ("4.0.1" -> 400), -1 when
 * it is not one. */
static int
rs_fhir_version(const char *v)
{
	char *end;
	long major, minor = 0;

	if (v == NULL || v[0] < '0' || v[0] > '9')
		return -1;
	major = strtol(v, &end, 10);
	if (*end == '.' && end[1] >= '0' && end[1] <= '9')
		minor = strtol(end + 1, &end, 10);
	if (major > 99 || minor > 99)
		return -1;
	return (int)(major * 100 + minor);
}

/* Whether context c (an R4 context object) applies to the set's FHIR
 * version: the structuredefinition-fhir-version-specific-use extension
 * limits it to startFhirVersion..endFhirVersion (either may be absent),
 * compared by major.minor. */
static bool
rs_context_in_version(const struct rules_set *set, const struct fj_node *c)
{
	const struct fj_node *ext = fj_get(c, "extension");
	int mine = set->fhir == RULES_STU3 ? 300 : 400;

	if (ext == NULL || ext->type != FJ_ARRAY)
		return true;
	for (const struct fj_node *e = ext->u.kids.first; e; e = e->next) {
		const char *url = fj_get_str(e, "url");
		const struct fj_node *sub = fj_get(e, "extension");

		if (url == NULL ||
		    strcmp(url, "http://hl7.org/fhir/StructureDefinition/"
				"structuredefinition-fhir-version-specific-"
				"use") != 0 ||
		    sub == NULL || sub->type != FJ_ARRAY)
			continue;
		for (const struct fj_node *x = sub->u.kids.first; x;
		     x = x->next) {
			const char *su = fj_get_str(x, "url");
			int v = rs_fhir_version(fj_get_str(x, "valueCode"));

			if (su == NULL || v < 0)
				continue;
			if (strcmp(su, "startFhirVersion") == 0 && mine < v)
				return false;
			if (strcmp(su, "endFhirVersion") == 0 && mine > v)
				return false;
		}
	}
	return true;
}

/*
 * The contexts of an extension definition: R4 context[] {type,
 * expression}; STU3 contextType plus context[] strings. Unknown context
 * types are kept as FHIRPath (not checked). A context for other FHIR
 * versions only (version-specific use) is left out; when that leaves
 * none, one that matches no element stands for "not in this version",
 * so that the extension is not taken as allowed anywhere.
 */
static enum gw_err
rs_contexts(struct rules_set *set, const struct fj_node *res,
	    struct rules_structure *st)
{
	const struct fj_node *ctx = fj_get(res, "context");
	const char *stu3type = fj_get_str(res, "contextType");
	size_t n = 0;
	bool skipped = false;

	if (ctx == NULL || ctx->type != FJ_ARRAY || ctx->u.kids.count == 0)
		return GW_OK;
	st->contexts = rs_alloc(set, ctx->u.kids.count * sizeof(*st->contexts));
	if (st->contexts == NULL)
		return GW_NOMEM;
	for (const struct fj_node *c = ctx->u.kids.first; c != NULL;
	     c = c->next) {
		const char *type = stu3type, *expr = NULL;
		struct rules_context *out = &st->contexts[n];

		if (c->type == FJ_OBJECT) {
			type = fj_get_str(c, "type");
			expr = fj_get_str(c, "expression");
			if (!rs_context_in_version(set, c)) {
				skipped = true;
				continue;
			}
		} else if (c->type == FJ_STRING) {
			expr = c->u.str.s;
		}
		if (type == NULL || expr == NULL || expr[0] == '\0')
			continue;
		if (strcmp(type, "element") == 0 ||
		    strcmp(type, "resource") == 0 ||
		    strcmp(type, "datatype") == 0)
			out->type = RULES_CTX_ELEMENT;
		else if (strcmp(type, "extension") == 0)
			out->type = RULES_CTX_EXTENSION;
		else
			out->type = RULES_CTX_FHIRPATH;
		if ((out->expr = rs_intern(set, expr)) == NULL)
			return GW_NOMEM;
		n++;
	}
	if (n == 0 && skipped) {
		st->contexts[0].type = RULES_CTX_ELEMENT;
		if ((st->contexts[0].expr =
			 rs_intern(set, RULES_CTX_NONE_HERE)) == NULL)
			return GW_NOMEM;
		n = 1;
	}
	st->ncontexts = n;
	return GW_OK;
}

enum gw_err
rs_compile_sd(struct rules_set *set, size_t idx)
{
	struct rs_pending *p = &set->psd[idx];
	const struct fj_node *res = p->res, *elems, *snap;
	struct rules_structure *st;
	struct rules_element *diff = NULL;
	unsigned *has = NULL;
	const char *der;
	size_t n = 0;
	enum gw_err err = GW_OK;
	int saved_pkg = set->cur_pkg;
	const struct rs_resolver resolver = {rs_resolve_structure, set};

	if (p->state == 2)
		return GW_OK;
	if (p->state == 3)
		return GW_NOTFOUND;
	if (p->state == 1)
		return GW_INVALID; /* being compiled: a cycle */
	p->state = 1;
	if ((st = rs_alloc(set, sizeof(*st))) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	st->url = p->url;
	st->version = rs_get_istr(set, res, "version");
	st->name = rs_get_istr(set, res, "name");
	st->type = rs_get_istr(set, res, "type");
	st->kind = rs_get_istr(set, res, "kind");
	st->base = rs_canon(set, fj_get_str(res, "baseDefinition"));
	st->fhir = set->fhir;
	rs_get_bool(res, "abstract", &st->abstract);
	der = fj_get_str(res, "derivation");
	st->constraint = der != NULL && strcmp(der, "constraint") == 0;
	if ((err = rs_contexts(set, res, st)) != GW_OK)
		goto out;
	if (st->type == NULL) {
		err = GW_INVALID;
		rs_warn(set, "%s: no type", p->url);
		goto out;
	}

	snap = fj_get(res, "snapshot");
	elems = snap ? fj_get(snap, "element") : NULL;
	if (elems != NULL && elems->type == FJ_ARRAY &&
	    elems->u.kids.count > 0) {
		st->elements =
		    rs_alloc(set, elems->u.kids.count * sizeof(*diff));
		if (st->elements == NULL) {
			err = GW_NOMEM;
			goto out;
		}
		for (const struct fj_node *e = elems->u.kids.first; e;
		     e = e->next) {
			unsigned h;

			err = rs_element_from_json(set, e, st->url,
						   &st->elements[n], &h);
			if (err == GW_INVALID)
				continue; /* not an element: skipped */
			if (err != GW_OK ||
			    (set->fhir == RULES_STU3 &&
			     (err = rs_unrename(set, &st->elements[n])) !=
				 GW_OK))
				goto out;
			n++;
		}
		st->nelements = n;
	} else {
		const struct rules_structure *base;
		const struct fj_node *d = fj_get(res, "differential");

		elems = d ? fj_get(d, "element") : NULL;
		if (st->base == NULL) {
			err = GW_INVALID;
			rs_warn(set, "%s: neither snapshot nor base", p->url);
			goto out;
		}
		if ((base = rs_need_structure(set, st->base)) == NULL) {
			err = GW_NOTFOUND;
			rs_warn(set, "%s: base %s not available (or circular)",
				p->url, st->base);
			goto out;
		}
		set->cur_pkg = p->pkg;
		if (elems != NULL && elems->type == FJ_ARRAY &&
		    elems->u.kids.count > 0) {
			diff = calloc(elems->u.kids.count, sizeof(*diff));
			has = calloc(elems->u.kids.count, sizeof(*has));
			if (diff == NULL || has == NULL) {
				err = GW_NOMEM;
				goto out;
			}
			for (const struct fj_node *e = elems->u.kids.first; e;
			     e = e->next) {
				err = rs_element_from_json(set, e, st->url,
							   &diff[n], &has[n]);
				if (err == GW_INVALID)
					continue;
				if (err != GW_OK)
					goto out;
				n++;
			}
		}
		if ((err = rs_diff_ids(set, diff, has, n)) != GW_OK)
			goto out;
		err = rs_snapshot(set, &resolver, base, diff, has, n, st->url,
				  &st->elements, &st->nelements);
		if (err != GW_OK) {
			rs_warn(set, "%s: snapshot generation failed: %s",
				p->url, gw_strerror(err));
			goto out;
		}
	}
	set->cur_pkg = p->pkg;
	err = rs_add_structure(set, st);
	if (err == GW_EXISTS)
		err = GW_OK;
out:
	set->cur_pkg = saved_pkg;
	free(diff);
	free(has);
	p->state = err == GW_OK ? 2 : 3;
	return err;
}
