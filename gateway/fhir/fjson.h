/*
 * fjson: the JSON model for FHIR documents. Unlike jansson it keeps every
 * number exactly as written (FHIR decimal precision is meaningful), the
 * line and column of every value, and member order; it rejects duplicate
 * keys and invalid UTF-8. Canonical output (RFC 8785 key order and string
 * escaping, numbers copied verbatim) is built in. jansson stays in use for
 * everything that is not a FHIR document.
 *
 * All nodes and strings of a document live in its arena and are freed
 * together by fj_doc_free; nodes are never freed one by one.
 */
#ifndef GW_FJSON_H
#define GW_FJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "fdecimal.h"

enum fj_type { FJ_NULL, FJ_BOOL, FJ_NUMBER, FJ_STRING, FJ_ARRAY, FJ_OBJECT };

struct fj_node {
	enum fj_type type;
	uint32_t line;	 /* 1-based position of the value in the */
	uint32_t col;	 /* input (col in bytes); 0 when built */
	const char *key; /* member name inside an object, else NULL */
	size_t keylen;
	struct fj_node *next; /* next member / element, NULL at the end */
	union {
		bool b;	 /* FJ_BOOL */
		struct { /* FJ_STRING: decoded UTF-8, NUL-terminated
				   (may contain NUL when keylen/len say so);
				   FJ_NUMBER: the text as written */
			const char *s;
			size_t len;
		} str;
		struct { /* FJ_ARRAY, FJ_OBJECT */
			struct fj_node *first;
			struct fj_node *last;
			size_t count;
		} kids;
	} u;
};

struct fj_doc {
	struct fj_node *root; /* NULL in a new empty document */
	/* the arena follows; private to fjson.c */
	void *arena;
};

/* Where and why parsing failed. */
struct fj_error {
	uint32_t line, col; /* 1-based */
	size_t offset;	    /* byte offset */
	char msg[160];
};

/* Parse flags. */
#define FJ_ALLOW_DUPLICATES 0x1u /* keep duplicate keys (default: reject) */

/* Deepest nesting accepted by the parser. */
#define FJ_MAX_DEPTH 128

/*
 * Parse len bytes of text (need not be NUL-terminated). On success *out
 * is a new document (caller frees with fj_doc_free). On failure *out is
 * NULL, err (may be NULL) says where, and the result is GW_PARSE (not
 * JSON, invalid UTF-8, duplicate key, nesting too deep) or GW_NOMEM.
 * Trailing whitespace is allowed, anything else after the value is not.
 */
enum gw_err fj_parse(const char *text, size_t len, unsigned flags,
		     struct fj_doc **out, struct fj_error *err);
/* fj_parse that gives up with GW_TEMP (*out NULL, err not set) once
 * util_mono_ms() reaches deadline_ms (looked at every few thousand
 * values); deadline_ms 0 is fj_parse. */
enum gw_err fj_parse_until(const char *text, size_t len, unsigned flags,
			   uint64_t deadline_ms, struct fj_doc **out,
			   struct fj_error *err);

/* A new empty document to build into (caller frees), or NULL. */
struct fj_doc *fj_doc_new(void);
/* Free the document and every node in it; NULL is a no-op. */
void fj_doc_free(struct fj_doc *doc);

/* Member key of object obj, or NULL (borrowed from the document). */
struct fj_node *fj_get(const struct fj_node *obj, const char *key);
/* String value of member key when it is a string, else NULL. */
const char *fj_get_str(const struct fj_node *obj, const char *key);
/* Element i of an array, or NULL. */
struct fj_node *fj_at(const struct fj_node *arr, size_t i);
/* True when n is a string equal to s. */
bool fj_str_eq(const struct fj_node *n, const char *s);

/*
 * Whether a and b are the same JSON value: member order ignored, strings
 * and keys byte for byte, numbers by value as mode says (FDEC_EXACT:
 * exactly from the text, or as the text when it has more digits than
 * FDEC_DIGITS; FDEC_DOUBLE: the same text or the same double).
 */
bool fj_equal(const struct fj_node *a, const struct fj_node *b,
	      enum fdec_mode mode);

/* Builders: new nodes in doc's arena, NULL without memory. Strings and
 * number text are copied. fj_new_number checks the text is a JSON
 * number (NULL otherwise). */
struct fj_node *fj_new_null(struct fj_doc *doc);
struct fj_node *fj_new_bool(struct fj_doc *doc, bool b);
struct fj_node *fj_new_number(struct fj_doc *doc, const char *text);
struct fj_node *fj_new_string(struct fj_doc *doc, const char *s);
struct fj_node *fj_new_stringn(struct fj_doc *doc, const char *s, size_t n);
struct fj_node *fj_new_object(struct fj_doc *doc);
struct fj_node *fj_new_array(struct fj_doc *doc);
/* Deep copy of n (possibly from another document) into doc. */
struct fj_node *fj_copy(struct fj_doc *doc, const struct fj_node *n);
/* Copy of n's nodes into doc that shares n's key and string bytes
 * (no copy of the text): the copy must not outlive n's document. For
 * a short-lived edited view of a document, e.g. converting an answer. */
struct fj_node *fj_copy_shared(struct fj_doc *doc, const struct fj_node *n);

/* Set obj[key] = val, replacing an existing member in place or
 * appending. val must be a fresh node of obj's document (not yet in a
 * container). */
enum gw_err fj_set(struct fj_doc *doc, struct fj_node *obj, const char *key,
		   struct fj_node *val);
/* Remove member key from obj; returns true when it was there. */
bool fj_remove(struct fj_node *obj, const char *key);
/* Append val (a fresh node) to array arr. */
void fj_append(struct fj_node *arr, struct fj_node *val);

/* Output flags. */
#define FJ_PRETTY 0x1u /* two-space indentation, newline-terminated */
#define FJ_CANONICAL                                                           \
	0x2u /* RFC 8785 member order and escaping, no
			     whitespace; numbers still verbatim */

/* Append the JSON text of n to out. GW_TOOBIG/GW_NOMEM from out, which
 * is then left as it was. */
enum gw_err fj_dump(const struct fj_node *n, unsigned flags, struct buf *out);
/* Like fj_dump, leaving out the members of n (an object) named in skip,
 * a NULL-terminated list; deeper members are all written. */
enum gw_err fj_dump_except(const struct fj_node *n, unsigned flags,
			   const char *const *skip, struct buf *out);

/* Order of two member names by UTF-16 code units, as FJ_CANONICAL sorts
 * them (RFC 8785): <0, 0, >0 like strcmp. */
int fj_key_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* Convert to jansson (numbers through their text: integers stay exact,
 * others become reals). New reference, NULL without memory. */
json_t *fj_to_jansson(const struct fj_node *n);
/* Convert from jansson into doc. NULL without memory. */
struct fj_node *fj_from_jansson(struct fj_doc *doc, const json_t *j);

#endif
