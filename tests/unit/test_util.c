/*
 * util.c: random UUIDs (request and Bundle ids) are version 4, variant 1,
 * lower-case, and differ from each other, also across threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define NUUID 2000

/* Whether s is "xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx", lower-case. */
static bool
uuid_v4(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-'
			 : strchr("0123456789abcdef", s[i]) == NULL ||
			       s[i] == '\0')
			return false;
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static int
cmp_uuid(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void *
make_uuids(void *arg)
{
	char(*out)[37] = arg;

	for (size_t i = 0; i < NUUID / 2; i++)
		util_uuid(out[i]);
	return NULL;
}

static void
test_uuid(void **state)
{
	static char ids[NUUID][37];
	pthread_t t;

	(void)state;
	/* Half in this thread, half in another at the same time. */
	assert_int_equal(pthread_create(&t, NULL, make_uuids, ids), 0);
	make_uuids(ids + NUUID / 2);
	assert_int_equal(pthread_join(t, NULL), 0);
	for (size_t i = 0; i < NUUID; i++)
		if (!uuid_v4(ids[i]))
			fail_msg("got \"%s\", want a version 4 UUID", ids[i]);
	qsort(ids, NUUID, sizeof(ids[0]), cmp_uuid);
	for (size_t i = 1; i < NUUID; i++)
		if (strcmp(ids[i], ids[i - 1]) == 0)
			fail_msg("got \"%s\" twice, want distinct UUIDs",
				 ids[i]);
}

/* A child process (fork) never repeats its parent's UUIDs: util_uuid
 * keeps random bytes per thread, and the child starts with a copy. */
static void
test_uuid_fork(void **state)
{
	char mine[8][37], theirs[8][37], first[37];
	int fd[2];
	pid_t pid;
	int st = 0;

	(void)state;
	util_uuid(first); /* the pool is filled now */
	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (size_t i = 0; i < 8; i++)
			util_uuid(theirs[i]);
		_exit(write(fd[1], theirs, sizeof(theirs)) ==
			      (ssize_t)sizeof(theirs)
			  ? 0
			  : 1);
	}
	close(fd[1]);
	assert_int_equal(read(fd[0], theirs, sizeof(theirs)),
			 (ssize_t)sizeof(theirs));
	close(fd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(st, 0);
	for (size_t i = 0; i < 8; i++)
		util_uuid(mine[i]);
	for (size_t i = 0; i < 8; i++)
		for (size_t k = 0; k < 8; k++)
			if (strcmp(mine[i], theirs[k]) == 0)
				fail_msg("got \"%s\" in parent and child, "
					 "want different UUIDs",
					 mine[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uuid),
	    cmocka_unit_test(test_uuid_fork),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
