/*
 * rules_src: gathering conformance sources (files, folders, Bundles; JSON
 * or FHIR XML) into a rule set's pending resources, then compiling them.
 * The only caller of the XML reader (xmlfhir.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rules_impl.h"
#include "util.h"
#include "xmlfhir.h"

/* Largest conformance source file accepted (the R4 core bundles are
 * about 35 MB). */
#define RS_MAX_SOURCE (128u * 1024 * 1024)

static enum gw_err
rs_pending_add(struct rules_set *set, struct rs_pending **arr, size_t *n,
	       size_t *cap, struct hmap *map, const struct fj_node *res,
	       const char *file)
{
	const char *url = rs_canon(set, fj_get_str(res, "url"));
	struct rs_pending *p;

	if (url == NULL)
		return GW_OK; /* nothing can refer to it */
	if (hmap_get_num(map, url) != 0)
		return GW_OK; /* first one wins */
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;

		if ((p = realloc(*arr, ncap * sizeof(*p))) == NULL)
			return GW_NOMEM;
		*arr = p;
		*cap = ncap;
	}
	p = &(*arr)[*n];
	memset(p, 0, sizeof(*p));
	p->res = res;
	p->url = url;
	p->file = rs_intern(set, file);
	p->pkg = set->cur_pkg;
	(*n)++;
	return hmap_put_num(map, url, *n);
}

/* Record ImplementationGuide.global: R4 profile is a canonical, STU3 a
 * Reference(StructureDefinition); a "|version" tail is dropped, as
 * meta.profile lookups do. */
static enum gw_err
rs_add_globals(struct rules_set *set, const struct fj_node *ig)
{
	const struct fj_node *g = fj_get(ig, "global");

	if (g == NULL || g->type != FJ_ARRAY)
		return GW_OK;
	for (const struct fj_node *e = g->u.kids.first; e; e = e->next) {
		const struct fj_node *pn = fj_get(e, "profile");
		const char *type = fj_get_str(e, "type"), *prof = NULL, *bar;
		struct rs_global *ng;

		if (pn != NULL && pn->type == FJ_OBJECT)
			prof = fj_get_str(pn, "reference");
		else if (pn != NULL && pn->type == FJ_STRING)
			prof = pn->u.str.s;
		if (type == NULL || prof == NULL)
			continue;
		if (set->nglobals == set->capglobals) {
			size_t ncap = set->capglobals ? set->capglobals * 2 : 8;

			if ((ng = realloc(set->globals, ncap * sizeof(*ng))) ==
			    NULL)
				return GW_NOMEM;
			set->globals = ng;
			set->capglobals = ncap;
		}
		ng = &set->globals[set->nglobals];
		bar = strchr(prof, '|');
		ng->type = rs_intern(set, type);
		ng->profile = bar != NULL
				  ? rs_internn(set, prof, (size_t)(bar - prof))
				  : rs_intern(set, prof);
		if (ng->type == NULL || ng->profile == NULL)
			return GW_NOMEM;
		set->nglobals++;
	}
	return GW_OK;
}

static enum gw_err
rs_gather(struct rules_set *set, const struct fj_node *res, const char *file)
{
	const char *rt = fj_get_str(res, "resourceType");
	const struct fj_node *entries;
	enum gw_err err = GW_OK;

	if (rt == NULL)
		return GW_OK;
	if (strcmp(rt, "Bundle") == 0) {
		entries = fj_get(res, "entry");
		if (entries == NULL || entries->type != FJ_ARRAY)
			return GW_OK;
		for (const struct fj_node *e = entries->u.kids.first;
		     e && err == GW_OK; e = e->next) {
			const struct fj_node *r = fj_get(e, "resource");

			if (r != NULL && r->type == FJ_OBJECT)
				err = rs_gather(set, r, file);
		}
		return err;
	}
	if (strcmp(rt, "StructureDefinition") == 0)
		return rs_pending_add(set, &set->psd, &set->npsd, &set->cappsd,
				      &set->psd_url, res, file);
	if (strcmp(rt, "ValueSet") == 0)
		return rs_pending_add(set, &set->pvs, &set->npvs, &set->cappvs,
				      &set->pvs_url, res, file);
	if (strcmp(rt, "CodeSystem") == 0)
		return rs_add_codesystem(set, res);
	if (strcmp(rt, "ImplementationGuide") == 0)
		return rs_add_globals(set, res);
	return GW_OK;
}

static bool
rs_has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static enum gw_err
rs_gather_file(struct rules_set *set, const char *path, char *errbuf,
	       size_t errlen)
{
	char *text = NULL;
	size_t len = 0, i = 0;
	struct fj_doc *doc = NULL;
	struct fj_error ferr;
	struct fj_doc **nd;
	enum gw_err err;

	if ((err = util_read_file(path, RS_MAX_SOURCE, &text, &len)) != GW_OK) {
		snprintf(errbuf, errlen, "%s: %s", path, gw_strerror(err));
		return err;
	}
	while (i < len && (text[i] == ' ' || text[i] == '\t' ||
			   text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i < len && text[i] == '<') {
		char xerr[256] = "";

		err =
		    xmlfhir_to_fjson(text, len, set, &doc, xerr, sizeof(xerr));
		if (err != GW_OK)
			snprintf(errbuf, errlen, "%s: %s", path, xerr);
	} else {
		err = fj_parse(text, len, 0, &doc, &ferr);
		if (err != GW_OK)
			snprintf(errbuf, errlen, "%s:%u:%u: %s", path,
				 (unsigned)ferr.line, (unsigned)ferr.col,
				 ferr.msg);
	}
	free(text);
	if (err != GW_OK)
		return err;
	if (set->nsrcdocs == set->capsrcdocs) {
		size_t ncap = set->capsrcdocs ? set->capsrcdocs * 2 : 32;

		/* An array of pointers: the pointer type named. */
		if ((nd = realloc(set->srcdocs,
				  ncap * sizeof(struct fj_doc *))) == NULL) {
			fj_doc_free(doc);
			return GW_NOMEM;
		}
		set->srcdocs = nd;
		set->capsrcdocs = ncap;
	}
	set->srcdocs[set->nsrcdocs++] = doc;
	if (doc->root == NULL || doc->root->type != FJ_OBJECT)
		return GW_OK;
	err = rs_gather(set, doc->root, path);
	if (err != GW_OK)
		snprintf(errbuf, errlen, "%s: %s", path, gw_strerror(err));
	return err;
}

static enum gw_err
rs_gather_path(struct rules_set *set, const char *path, int depth, char *errbuf,
	       size_t errlen)
{
	struct stat sb;
	char **names = NULL, full[4096];
	size_t n = 0;
	enum gw_err err = GW_OK;

	if (stat(path, &sb) != 0) {
		snprintf(errbuf, errlen, "%s: not found", path);
		return GW_NOTFOUND;
	}
	if (!S_ISDIR(sb.st_mode))
		return rs_gather_file(set, path, errbuf, errlen);
	if (depth > 4 ||
	    (err = util_dir_names(path, NULL, NULL, &names, &n)) == GW_IO) {
		snprintf(errbuf, errlen, "%s: cannot read directory", path);
		return GW_IO;
	}
	for (size_t i = 0; i < n && err == GW_OK; i++) {
		int len = snprintf(full, sizeof(full), "%s/%s", path, names[i]);

		if (len < 0 || (size_t)len >= sizeof(full))
			continue;
		if (stat(full, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode))
			err = rs_gather_path(set, full, depth + 1, errbuf,
					     errlen);
		else if (rs_has_suffix(names[i], ".json") ||
			 rs_has_suffix(names[i], ".xml")) {
			err = rs_gather_file(set, full, errbuf, errlen);
			/* in a folder, a file that is not FHIR (JSON or
			 * XML) is passed over with a warning */
			if (err == GW_PARSE) {
				rs_warn(set, "%s (skipped)", errbuf);
				err = GW_OK;
				if (errlen > 0)
					errbuf[0] = '\0';
			}
		}
	}
	util_names_free(names, n);
	return err;
}

enum gw_err
rs_add_paths(struct rules_set *set, const char *const *paths, size_t n,
	     char *errbuf, size_t errlen)
{
	enum gw_err err = GW_OK;

	if (errlen > 0)
		errbuf[0] = '\0';
	for (size_t i = 0; i < n && err == GW_OK; i++)
		err = rs_gather_path(set, paths[i], 0, errbuf, errlen);
	/* structures first: value sets do not depend on them */
	for (size_t i = 0; i < set->npsd && err == GW_OK; i++) {
		enum gw_err e = rs_compile_sd(set, i);

		if (e == GW_NOMEM)
			err = e;
	}
	for (size_t i = 0; i < set->npvs && err == GW_OK; i++) {
		enum gw_err e = rs_compile_vs(set, i);

		if (e == GW_NOMEM)
			err = e;
	}
	if (err == GW_NOMEM && errlen > 0 && errbuf[0] == '\0')
		snprintf(errbuf, errlen, "out of memory");
	rs_free_sources(set);
	return err;
}

enum gw_err
rules_add_path(struct rules_set *set, const char *path, char *errbuf,
	       size_t errlen)
{
	return rs_add_paths(set, &path, 1, errbuf, errlen);
}
