/*
 * sdnotify.c against a real AF_UNIX datagram socket standing in for
 * systemd: what arrives, byte for byte, for a path and an abstract
 * socket; the watchdog interval from WATCHDOG_USEC and WATCHDOG_PID; and
 * nothing at all (and no failure) without NOTIFY_SOCKET.
 */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sdnotify.h"

struct fx {
	char dir[64];
	char path[96];
	int fd; /* the stand-in for systemd */
};

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_sdnotify.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/notify", fx->dir);
	fx->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(fx->fd >= 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", fx->path);
	assert_int_equal(bind(fx->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	close(fx->fd);
	unlink(fx->path);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* The next datagram within ms, as a string; "" when none came. */
static void
recv_msg(int fd, int ms, char *out, size_t n)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t r;

	out[0] = '\0';
	if (poll(&p, 1, ms) != 1)
		return;
	r = recv(fd, out, n - 1, 0);
	assert_true(r >= 0);
	out[r] = '\0';
}

static void
test_path_socket(void **state)
{
	struct fx *fx = *state;
	struct sdnotify n;
	char got[2048];

	setenv("NOTIFY_SOCKET", fx->path, 1);
	assert_int_equal(sdnotify_init(&n), GW_OK);
	assert_true(sdnotify_enabled(&n));
	assert_int_equal(sdnotify_send(&n, "READY=1\nSTATUS=serving"), GW_OK);
	recv_msg(fx->fd, 2000, got, sizeof(got));
	if (strcmp(got, "READY=1\nSTATUS=serving") != 0)
		fail_msg("got \"%s\", want READY=1 and the STATUS line", got);
	assert_int_equal(sdnotify_sendf(&n, "RELOADING=1\nMONOTONIC_USEC=%llu",
					(unsigned long long)123456789),
			 GW_OK);
	recv_msg(fx->fd, 2000, got, sizeof(got));
	if (strcmp(got, "RELOADING=1\nMONOTONIC_USEC=123456789") != 0)
		fail_msg("got \"%s\", want RELOADING=1 with the time", got);
	/* No watchdog asked for: no interval. */
	assert_int_equal(sdnotify_watchdog_interval(&n), 0);
	sdnotify_cleanup(&n);
	assert_false(sdnotify_enabled(&n));
}

static void
test_abstract_socket(void **state)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char name[64], env[66], got[256];
	struct sdnotify n;
	socklen_t len;
	int fd;

	(void)state;
	/* "@name": a leading NUL and exactly the name's bytes, no
	   terminator (a different length is a different address). */
	snprintf(name, sizeof(name), "pzpgw-test-%ld", (long)getpid());
	memcpy(a.sun_path + 1, name, strlen(name));
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			  strlen(name));
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
	snprintf(env, sizeof(env), "@%s", name);
	setenv("NOTIFY_SOCKET", env, 1);
	assert_int_equal(sdnotify_init(&n), GW_OK);
	assert_int_equal(sdnotify_send(&n, "STOPPING=1"), GW_OK);
	recv_msg(fd, 2000, got, sizeof(got));
	if (strcmp(got, "STOPPING=1") != 0)
		fail_msg("got \"%s\", want STOPPING=1 on %s", got, env);
	sdnotify_cleanup(&n);
	close(fd);
}

static void
test_watchdog_env(void **state)
{
	static const struct {
		const char *usec, *pid; /* pid "self": this process */
		uint64_t want;		/* interval, us */
	} cases[] = {
	    {"30000000", NULL, 15000000},
	    {"30000000", "self", 15000000},
	    {"30000000", "1", 0}, /* another process's watchdog */
	    {"abc", NULL, 0},
	    {"0", NULL, 0},
	    {"-5", NULL, 0},
	    {NULL, NULL, 0},
	};
	struct fx *fx = *state;
	char self[32];

	snprintf(self, sizeof(self), "%ld", (long)getpid());
	setenv("NOTIFY_SOCKET", fx->path, 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sdnotify n;
		uint64_t got;

		if (cases[i].usec != NULL)
			setenv("WATCHDOG_USEC", cases[i].usec, 1);
		else
			unsetenv("WATCHDOG_USEC");
		if (cases[i].pid == NULL)
			unsetenv("WATCHDOG_PID");
		else
			setenv("WATCHDOG_PID",
			       strcmp(cases[i].pid, "self") == 0 ? self
								 : cases[i].pid,
			       1);
		assert_int_equal(sdnotify_init(&n), GW_OK);
		got = sdnotify_watchdog_interval(&n);
		if (got != cases[i].want)
			fail_msg("WATCHDOG_USEC=%s WATCHDOG_PID=%s: got %llu, "
				 "want %llu",
				 cases[i].usec ? cases[i].usec : "(unset)",
				 cases[i].pid ? cases[i].pid : "(unset)",
				 (unsigned long long)got,
				 (unsigned long long)cases[i].want);
		sdnotify_cleanup(&n);
	}
}

static void
test_off_and_failures(void **state)
{
	struct fx *fx = *state;
	struct sdnotify n;
	char got[256];

	/* Unset: off, every call a successful no-op, even the watchdog. */
	setenv("WATCHDOG_USEC", "1000000", 1);
	assert_int_equal(sdnotify_init(&n), GW_OK);
	assert_false(sdnotify_enabled(&n));
	assert_int_equal(sdnotify_send(&n, "READY=1"), GW_OK);
	assert_int_equal(sdnotify_watchdog_interval(&n), 0);
	sdnotify_cleanup(&n);
	/* Not a path systemd would give: refused, off. */
	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	assert_int_equal(sdnotify_init(&n), GW_CONFIG);
	assert_false(sdnotify_enabled(&n));
	/* The listener gone: the send fails, is said once, never fatal,
	   and the next one fails the same way. */
	setenv("NOTIFY_SOCKET", fx->path, 1);
	assert_int_equal(sdnotify_init(&n), GW_OK);
	unlink(fx->path);
	assert_int_equal(sdnotify_send(&n, "WATCHDOG=1"), GW_IO);
	assert_true(n.warned);
	assert_int_equal(sdnotify_send(&n, "WATCHDOG=1"), GW_IO);
	recv_msg(fx->fd, 50, got, sizeof(got));
	assert_string_equal(got, "");
	sdnotify_cleanup(&n);
}

static void
test_long_message_cut_at_line(void **state)
{
	struct fx *fx = *state;
	struct sdnotify n;
	char big[1500], got[2048];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	setenv("NOTIFY_SOCKET", fx->path, 1);
	assert_int_equal(sdnotify_init(&n), GW_OK);
	/* A STATUS= too long for the message: the whole line goes, the
	   READY=1 before it is still sent. */
	assert_int_equal(sdnotify_sendf(&n, "READY=1\nSTATUS=%s", big), GW_OK);
	recv_msg(fx->fd, 2000, got, sizeof(got));
	assert_string_equal(got, "READY=1");
	sdnotify_cleanup(&n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_path_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abstract_socket, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_watchdog_env, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_off_and_failures, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_long_message_cut_at_line,
					    setup, teardown),
	};

	log_init(LOG_TO_STDERR, false, "test_sdnotify");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
