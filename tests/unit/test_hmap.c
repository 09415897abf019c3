/* Unit tests for hmap, the FHIR engine's hash map: string keys (borrowed
 * and owned, with lengths), pointer keys, growth and duplicates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hmap.h"

#define NKEYS 5000

static void
test_string_numbers(void **state)
{
	struct hmap m = HMAP_INIT(HMAP_STR);
	static char keys[NKEYS][16];

	(void)state;
	assert_int_equal(hmap_get_num(&m, "absent"), 0);
	assert_int_equal(hmap_get_num(&m, NULL), 0);
	for (size_t i = 0; i < NKEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
		assert_int_equal(hmap_put_num(&m, keys[i], i + 1), GW_OK);
	}
	assert_int_equal(m.count, NKEYS);
	assert_true(m.count * 2 <= m.cap);
	for (size_t i = 0; i < NKEYS; i++) {
		char probe[16];

		/* equal bytes at another address find the same key */
		snprintf(probe, sizeof(probe), "k%zu", i);
		if (hmap_get_num(&m, probe) != i + 1)
			fail_msg("key %s: got %zu, want %zu", probe,
				 hmap_get_num(&m, probe), i + 1);
	}
	assert_int_equal(hmap_get_num(&m, "k"), 0);
	/* put replaces */
	assert_int_equal(hmap_put_num(&m, keys[7], 99), GW_OK);
	assert_int_equal(hmap_get_num(&m, "k7"), 99);
	assert_int_equal(m.count, NKEYS);
	assert_int_equal(hmap_put_num(&m, NULL, 1), GW_INVALID);
	hmap_free(&m, NULL);
	assert_int_equal(m.cap, 0);
	assert_int_equal(hmap_get_num(&m, "k1"), 0);
	hmap_free(&m, NULL);
}

static void
test_lengths_and_insert(void **state)
{
	struct hmap m = HMAP_INIT(HMAP_STR);
	struct hmap_slot *s, *again;
	const char ab[] = "a\0b";

	(void)state;
	assert_int_equal(hmap_insert(&m, ab, 3, &s), GW_OK);
	assert_ptr_equal(s->key, ab);
	assert_null(s->val.ptr);
	s->val.num = 5;
	/* "a" is not "a\0b": keys are byte strings */
	assert_null(hmap_find(&m, "a", 1));
	assert_int_equal(hmap_insert(&m, "a", 1, &again), GW_OK);
	assert_int_equal(hmap_insert(&m, "a\0b", 3, &again), GW_EXISTS);
	assert_ptr_equal(again->key, ab);
	assert_int_equal(again->val.num, 5);
	assert_null(hmap_find(&m, "", 0));
	assert_int_equal(hmap_insert(&m, "", 0, &s), GW_OK);
	assert_non_null(hmap_find(&m, "", 0));
	assert_int_equal(hmap_insert(&m, NULL, 0, &s), GW_INVALID);
	assert_null(s);
	hmap_free(&m, NULL);
}

static void
test_owned_keys(void **state)
{
	struct hmap m = HMAP_INIT(HMAP_STR_OWN);
	char key[32];
	bool found;
	int one = 1;

	(void)state;
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "owned-%d", i);
		assert_int_equal(hmap_put(&m, key, i == 3 ? &one : NULL),
				 GW_OK);
	}
	/* the map holds copies: the caller's buffer may change */
	memset(key, 'x', sizeof(key) - 1);
	assert_ptr_equal(hmap_get(&m, "owned-3", &found), &one);
	assert_true(found);
	assert_null(hmap_get(&m, "owned-4", &found));
	assert_true(found);
	assert_null(hmap_get(&m, "owned-200", &found));
	assert_false(found);
	hmap_free(&m, NULL);
}

static int nfreed;

static void
count_free(void *p)
{
	nfreed++;
	free(p);
}

static void
test_pointer_keys(void **state)
{
	struct hmap m = HMAP_INIT(HMAP_PTR);
	static int objs[NKEYS];
	bool found;

	(void)state;
	for (size_t i = 0; i < NKEYS; i++) {
		int *v = malloc(sizeof(*v));

		assert_non_null(v);
		*v = (int)i;
		assert_int_equal(hmap_put(&m, &objs[i], v), GW_OK);
	}
	for (size_t i = 0; i < NKEYS; i++) {
		int *v = hmap_get(&m, &objs[i], &found);

		assert_true(found);
		assert_int_equal(*v, (int)i);
	}
	assert_null(hmap_get(&m, &m, &found));
	assert_false(found);
	assert_int_equal(hmap_put(&m, NULL, NULL), GW_INVALID);
	nfreed = 0;
	hmap_free(&m, count_free);
	assert_int_equal(nfreed, NKEYS);
	assert_int_equal(m.kind, HMAP_PTR);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_string_numbers),
	    cmocka_unit_test(test_lengths_and_insert),
	    cmocka_unit_test(test_owned_keys),
	    cmocka_unit_test(test_pointer_keys),
	};

	return cmocka_run_group_tests_name("hmap", tests, NULL, NULL);
}
