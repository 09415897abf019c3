/*
 * hmap: the one hash map of the FHIR engine. Open addressing (linear
 * probing, at most half full), keyed by byte strings or by pointers, one
 * value (pointer or number) per key. No removal: maps are built, read and
 * freed whole.
 */
#ifndef GW_HMAP_H
#define GW_HMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum hmap_kind {
	/* String keys, borrowed: they must stay unchanged while the map
	 * lives. The zero value, so a zeroed struct hmap is an empty map of
	 * this kind. */
	HMAP_STR = 0,
	/* String keys, copied on insertion and freed with the map. */
	HMAP_STR_OWN,
	/* Pointer keys compared by address (never dereferenced); NULL is
	 * not a key. */
	HMAP_PTR,
};

struct hmap_slot {
	const void *key; /* NULL: empty slot */
	size_t len;	 /* string keys: length in bytes (no NUL counted) */
	size_t hash;
	union {
		void *ptr;
		size_t num;
	} val;
};

struct hmap {
	struct hmap_slot *slot;
	size_t cap; /* 0, or a power of two */
	size_t count;
	enum hmap_kind kind;
};

/* An empty map of kind k (struct hmap m = HMAP_INIT(HMAP_PTR);). */
#define HMAP_INIT(k)                                                           \
	{                                                                      \
		NULL, 0, 0, (k)                                                \
	}

/*
 * The slot holding key, or NULL when absent. String keys are the len bytes
 * at key (they may contain NUL); for HMAP_PTR len is ignored. The slot is
 * borrowed until the next insertion or hmap_free; its val may be changed,
 * its key and hash must not.
 */
struct hmap_slot *hmap_find(const struct hmap *m, const void *key, size_t len);

/*
 * Insert key unless present. GW_OK: a new slot (val zeroed) in *slot;
 * GW_EXISTS: the slot already holding key in *slot; GW_NOMEM: nothing
 * changed, *slot NULL. The key is borrowed (HMAP_STR, HMAP_PTR) or copied
 * (HMAP_STR_OWN).
 */
enum gw_err hmap_insert(struct hmap *m, const void *key, size_t len,
			struct hmap_slot **slot);

/* NUL-terminated string keys: the stored number (0 when absent or key is
 * NULL), and insert-or-replace of a number (GW_OK or GW_NOMEM). */
size_t hmap_get_num(const struct hmap *m, const char *key);
enum gw_err hmap_put_num(struct hmap *m, const char *key, size_t num);

/* NUL-terminated string or pointer keys (per the map's kind): the stored
 * pointer (NULL when absent; *found, when not NULL, says which), and
 * insert-or-replace of a pointer (GW_OK or GW_NOMEM). */
void *hmap_get(const struct hmap *m, const void *key, bool *found);
enum gw_err hmap_put(struct hmap *m, const void *key, void *val);

/* Free the map's storage (and its key copies for HMAP_STR_OWN); freeval,
 * when not NULL, is called on each stored pointer. The map is left empty,
 * of the same kind. NULL-safe. */
void hmap_free(struct hmap *m, void (*freeval)(void *));

#endif
