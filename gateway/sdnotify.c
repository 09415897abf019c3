/*
 * The systemd notify protocol spoken directly: a datagram to
 * $NOTIFY_SOCKET per state change, and the watchdog interval from
 * $WATCHDOG_USEC. No libsystemd, so nothing to link and nothing to load.
 */
#define _DEFAULT_SOURCE /* MSG_NOSIGNAL, SOCK_CLOEXEC */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sdnotify.h"
#include "util.h"

/* Longest message built by sdnotify_sendf. */
#define SDNOTIFY_MSG_MAX 1024

/* WATCHDOG_USEC applies to this process: WATCHDOG_PID unset or ours. */
static bool
sdnotify_watchdog_ours(void)
{
	const char *pid = getenv("WATCHDOG_PID");
	long long v;

	if (pid == NULL || *pid == '\0')
		return true;
	if (util_parse_ll(pid, 1, INT32_MAX, &v) != GW_OK)
		return false;
	return (pid_t)v == getpid();
}

enum gw_err
sdnotify_init(struct sdnotify *n)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	size_t len;
	long long usec;

	memset(n, 0, sizeof(*n));
	n->fd = -1;
	if (path == NULL || *path == '\0')
		return GW_OK;
	len = strlen(path);
	/* An absolute path, or '@' for the abstract namespace (a leading
	   NUL in sun_path, not terminated). Nothing else is systemd's. */
	if ((path[0] != '/' && path[0] != '@') || len < 2 ||
	    len >= sizeof(n->addr.sun_path)) {
		log_warnx("event=sdnotify_off reason=\"NOTIFY_SOCKET is not an "
			  "absolute path or @name that fits\"");
		return GW_CONFIG;
	}
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, path, len);
	if (path[0] == '@') {
		n->addr.sun_path[0] = '\0';
		n->addr_len =
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		n->addr_len =
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
				1);
	}
	if (wd != NULL && *wd != '\0') {
		/* A bad value is ignored (no keep-alives) rather than
		   guessed: systemd then restarts a daemon that never says
		   anything, which is louder than a wrong rate. */
		if (util_parse_ll(wd, 1, INT64_MAX, &usec) == GW_OK &&
		    sdnotify_watchdog_ours())
			n->watchdog_usec = (uint64_t)usec;
		else if (!sdnotify_watchdog_ours())
			log_debug("event=sdnotify_watchdog_off "
				  "reason=\"WATCHDOG_PID is another process\"");
		else
			log_warnx("event=sdnotify_watchdog_off "
				  "reason=\"WATCHDOG_USEC is not a positive "
				  "number\"");
	}
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0) {
		log_warn("event=sdnotify_off reason=socket");
		n->watchdog_usec = 0;
		return GW_IO;
	}
	return GW_OK;
}

bool
sdnotify_enabled(const struct sdnotify *n)
{
	return n->fd >= 0;
}

enum gw_err
sdnotify_send(struct sdnotify *n, const char *msg)
{
	ssize_t w;
	size_t len = strlen(msg);

	if (n->fd < 0)
		return GW_OK;
	/* MSG_DONTWAIT: a full or stuck receiver must never stop the event
	   loop; systemd's socket is read promptly, so a drop is rare and
	   the next message (or keep-alive) says the same again. */
	do
		w = sendto(n->fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL,
			   (const struct sockaddr *)&n->addr, n->addr_len);
	while (w < 0 && errno == EINTR);
	if (w == (ssize_t)len)
		return GW_OK;
	if (!n->warned) {
		/* Once: a missing socket would otherwise fill the log at the
		   watchdog's rate. */
		n->warned = true;
		if (w < 0)
			log_warn("event=sdnotify_failed action=carrying_on");
		else
			log_warnx("event=sdnotify_failed reason=short_send "
				  "action=carrying_on");
	}
	return GW_IO;
}

enum gw_err
sdnotify_sendf(struct sdnotify *n, const char *fmt, ...)
{
	char msg[SDNOTIFY_MSG_MAX];
	va_list ap;
	int len;

	if (n->fd < 0)
		return GW_OK;
	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len < 0)
		return GW_INVALID;
	if ((size_t)len >= sizeof(msg)) {
		/* Whole lines only: a cut STATUS= is still a STATUS=, a cut
		   MONOTONIC_USEC= would be a wrong one. */
		char *nl = strrchr(msg, '\n');

		if (nl == NULL)
			return GW_INVALID;
		*nl = '\0';
	}
	return sdnotify_send(n, msg);
}

uint64_t
sdnotify_watchdog_interval(const struct sdnotify *n)
{
	return n->fd >= 0 ? n->watchdog_usec / 2 : 0;
}

uint64_t
sdnotify_monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void
sdnotify_cleanup(struct sdnotify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	n->watchdog_usec = 0;
}
