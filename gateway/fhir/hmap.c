/*
 * hmap: open-addressing hash map with string or pointer keys (see hmap.h).
 * Each slot keeps its key's hash, so growing never rehashes a key and a
 * probe compares bytes only when the hashes agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

#define HMAP_MIN_CAP 16u

/* FNV-1a over the bytes, with the high bits folded in: the table index
 * takes the low bits, and FNV's low bits see only the bytes' low bits. */
static uint32_t
hash_bytes(const void *key, size_t len)
{
	const unsigned char *s = key;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ s[i]) * 1099511628211ULL;
	return (uint32_t)(h ^ (h >> 32));
}

/* Pointers are aligned (low bits zero): mix every bit down. */
static uint32_t
hash_ptr(const void *p)
{
	uint64_t x = (uintptr_t)p;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (uint32_t)x;
}

static uint32_t
hash_key(const struct hmap *m, const void *key, size_t len)
{
	return m->kind == HMAP_PTR ? hash_ptr(key) : hash_bytes(key, len);
}

/* The slot of key (hash h), or the empty slot where it would go. */
static struct hmap_slot *
probe(const struct hmap *m, const void *key, size_t len, uint32_t h)
{
	size_t mask = m->cap - 1;
	struct hmap_slot *s;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		s = &m->slot[i];
		if (s->key == NULL)
			return s;
		if (m->kind == HMAP_PTR) {
			if (s->key == key)
				return s;
		} else if (s->hash == h && s->len == len &&
			   memcmp(s->key, key, len) == 0) {
			return s;
		}
	}
}

struct hmap_slot *
hmap_find(const struct hmap *m, const void *key, size_t len)
{
	struct hmap_slot *s;

	if (m->cap == 0 || key == NULL)
		return NULL;
	s = probe(m, key, len, hash_key(m, key, len));
	return s->key != NULL ? s : NULL;
}

/* Double the table (or make the first one); false without memory. */
static bool
grow(struct hmap *m)
{
	size_t ncap = m->cap == 0 ? HMAP_MIN_CAP : m->cap * 2;
	struct hmap_slot *ns = calloc(ncap, sizeof(*ns));

	if (ns == NULL)
		return false;
	for (size_t j = 0; j < m->cap; j++) {
		size_t i;

		if (m->slot[j].key == NULL)
			continue;
		for (i = m->slot[j].hash & (ncap - 1); ns[i].key != NULL;
		     i = (i + 1) & (ncap - 1))
			;
		ns[i] = m->slot[j];
	}
	free(m->slot);
	m->slot = ns;
	m->cap = ncap;
	return true;
}

enum gw_err
hmap_insert(struct hmap *m, const void *key, size_t len,
	    struct hmap_slot **slot)
{
	struct hmap_slot *s;
	uint32_t h;

	*slot = NULL;
	if (key == NULL)
		return GW_INVALID;
	if (m->kind == HMAP_PTR)
		len = 0;
	else if (len > UINT32_MAX)
		return GW_TOOBIG;
	h = hash_key(m, key, len);
	if (m->cap > 0) {
		s = probe(m, key, len, h);
		if (s->key != NULL) {
			*slot = s;
			return GW_EXISTS;
		}
	}
	if ((m->count + 1) * 2 > m->cap) {
		if (!grow(m))
			return GW_NOMEM;
	}
	s = probe(m, key, len, h);
	if (m->kind == HMAP_STR_OWN) {
		char *copy = malloc(len + 1);

		if (copy == NULL)
			return GW_NOMEM;
		memcpy(copy, key, len);
		copy[len] = '\0';
		key = copy;
	}
	s->key = key;
	s->len = (uint32_t)len;
	s->hash = h;
	memset(&s->val, 0, sizeof(s->val));
	m->count++;
	*slot = s;
	return GW_OK;
}

static size_t
key_len(const struct hmap *m, const void *key)
{
	return m->kind == HMAP_PTR ? 0 : strlen(key);
}

size_t
hmap_get_num(const struct hmap *m, const char *key)
{
	const struct hmap_slot *s;

	if (m->cap == 0 || key == NULL)
		return 0;
	s = hmap_find(m, key, strlen(key));
	return s != NULL ? s->val.num : 0;
}

enum gw_err
hmap_put_num(struct hmap *m, const char *key, size_t num)
{
	struct hmap_slot *s;
	enum gw_err err;

	if (key == NULL)
		return GW_INVALID;
	err = hmap_insert(m, key, key_len(m, key), &s);
	if (err != GW_OK && err != GW_EXISTS)
		return err;
	s->val.num = num;
	return GW_OK;
}

void *
hmap_get(const struct hmap *m, const void *key, bool *found)
{
	const struct hmap_slot *s = NULL;

	if (m->cap > 0 && key != NULL)
		s = hmap_find(m, key, key_len(m, key));
	if (found != NULL)
		*found = s != NULL;
	return s != NULL ? s->val.ptr : NULL;
}

enum gw_err
hmap_put(struct hmap *m, const void *key, void *val)
{
	struct hmap_slot *s;
	enum gw_err err;

	if (key == NULL)
		return GW_INVALID;
	err = hmap_insert(m, key, key_len(m, key), &s);
	if (err != GW_OK && err != GW_EXISTS)
		return err;
	s->val.ptr = val;
	return GW_OK;
}

void
hmap_free(struct hmap *m, void (*freeval)(void *))
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->slot[i].key == NULL)
			continue;
		if (freeval != NULL)
			freeval(m->slot[i].val.ptr);
		if (m->kind == HMAP_STR_OWN)
			free((void *)m->slot[i].key);
	}
	free(m->slot);
	m->slot = NULL;
	m->cap = m->count = 0;
}
