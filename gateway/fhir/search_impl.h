/*
 * search internals shared by search.c (parsing, scope, canonical form),
 * search_match.c (matching and _include) and search_params.c (the
 * parameter definitions and the CapabilityStatement part).
 */
#ifndef GW_SEARCH_IMPL_H
#define GW_SEARCH_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "search.h"

/* The Dutch citizen service number's naming system. */
#define SEARCH_BSN_SYSTEM "http://fhir.nl/fhir/NamingSystem/bsn"

/* Longest resource type name and logical id read from a reference. */
#define SQ_REF_PART_MAX 64

enum sp_kind { SP_TOKEN, SP_REFERENCE, SP_DATE };

/* One search parameter of a resource type, as its SearchParameter
 * resource defines it (R4 unless said). */
struct sp_def {
	const char *name;
	/* Dotted element path below the resource (arrays are walked),
	   NULL for _lastUpdated (the stored meta.lastUpdated). */
	const char *path;
	/* reference: the one target type it may point to ("Patient" for
	   .where(resolve() is Patient)), NULL: several */
	const char *target;
	const char *definition; /* canonical URL of the SearchParameter */
	const char *doc;	/* CapabilityStatement documentation or NULL */
	enum sp_kind kind;
	bool in_ok; /* token: the :in modifier is supported */
};

/* One _include a type offers: "<type>:<name>[:target]". */
struct sp_include {
	const char *name;   /* the reference search parameter */
	const char *path;   /* where its references are */
	const char *target; /* the only target type, or NULL */
};

/* A resource type the Provider serves. */
struct sp_type {
	const char *type;
	bool search;		       /* search-type offered */
	const struct sp_def *params;   /* NULL-name terminated */
	const struct sp_include *incs; /* NULL-name terminated */
	const char *const *profiles;   /* NULL terminated */
};

/* The type's definition, or NULL. */
const struct sp_type *sp_type_find(const char *type);
/* The parameter name (without modifier) of t, or of every type (_id,
 * _lastUpdated), or NULL. */
const struct sp_def *sp_def_find(const struct sp_type *t, const char *name,
				 size_t len);
/* The _include name of t, or NULL. */
const struct sp_include *sp_include_find(const struct sp_type *t,
					 const char *name, size_t len);
/* The parameter definitions every type has. */
extern const struct sp_def sp_def_id, sp_def_last_updated;

/* One value of a parameter (an OR alternative). */
struct sq_value {
	/* token: system NULL: any system; "" (|code): no system. code
	   NULL: any code of the system (system|). :in: the value set URL
	   in code. */
	char *system;
	char *code;
	/* reference: rtype NULL: not given; rid the logical id; url an
	   absolute URL or a canonical (with any |version) as given */
	char *rtype;
	char *rid;
	char *url;
	/* date: prefix and the instants the value stands for */
	int prefix;
	int64_t lo, hi;
};

enum sq_mod { SQ_MOD_NONE, SQ_MOD_IN, SQ_MOD_TYPE };

/* Date prefixes (eq is the default). */
enum sq_prefix { SQ_EQ, SQ_NE, SQ_GT, SQ_LT, SQ_GE, SQ_LE, SQ_SA, SQ_EB };

/* One filtering parameter; several are ANDed, its values ORed. */
struct sq_param {
	const struct sp_def *def;
	enum sq_mod mod;
	const char *mod_type; /* :Type of a reference (static string) */
	/* chained: the parameter of the target type, and that type */
	const struct sp_def *chain;
	const char *chain_type;
	enum sq_mod chain_mod;
	struct sq_value *v;
	size_t nv;
	/* patient.identifier=<bsn>|N: the store already narrowed to that
	   patient, so a target that cannot be resolved still matches */
	bool bsn_scoped;
};

/* One accepted parameter as decoded, for the canonical form. */
struct sq_kv {
	char *name;
	char *value;
};

struct sq_include {
	const struct sp_include *inc;
	const char *target; /* the :Target given, else inc->target */
};

struct search_query {
	const char *type; /* static string from the table, NULL: system */
	struct sq_param *p;
	size_t np;
	struct sq_include inc[8];
	size_t ninc;
	struct sq_kv *kv;
	size_t nkv;
	size_t count;
	bool sort_desc;
	int64_t since;
	const char *patient_id; /* borrowed from a value of p */
	const char *patient_bsn;
	const char *id;
};

#endif
