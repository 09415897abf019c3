/*
 * The systemd notify protocol without libsystemd: one datagram per state
 * change (READY=1, RELOADING=1, STOPPING=1, STATUS=..., WATCHDOG=1) to the
 * AF_UNIX socket named by $NOTIFY_SOCKET. Without that variable every call
 * is a no-op, so a daemon started by hand or in tests pays nothing.
 */
#ifndef GW_SDNOTIFY_H
#define GW_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "err.h"

/* Caller-owned state (sdnotify_init / sdnotify_cleanup). */
struct sdnotify {
	int fd; /* -1: off */
	struct sockaddr_un addr;
	socklen_t addr_len;
	/* WATCHDOG_USEC when set (and WATCHDOG_PID unset or this process),
	   else 0. */
	uint64_t watchdog_usec;
	bool warned; /* a failed send was logged: later ones are not */
};

/*
 * Read NOTIFY_SOCKET (an absolute path, or "@name" for an abstract socket),
 * WATCHDOG_USEC and WATCHDOG_PID from the environment. Returns GW_OK
 * (enabled, or off when NOTIFY_SOCKET is unset), or GW_CONFIG for an
 * unusable value and GW_IO when no socket can be made: n is then off and
 * the reason was logged (never fatal: the daemon runs without it).
 */
enum gw_err sdnotify_init(struct sdnotify *n);

/* Whether messages are sent at all. */
bool sdnotify_enabled(const struct sdnotify *n);

/*
 * Send one message, "KEY=value" lines joined by '\n', without blocking.
 * GW_OK when sent or when off; GW_IO when the send failed (logged once
 * per sdnotify, the caller carries on). msg must hold no patient data.
 */
enum gw_err sdnotify_send(struct sdnotify *n, const char *msg);

/* sdnotify_send of a formatted message (at most 1024 bytes: longer is
 * cut at a line end, never sent half). */
enum gw_err sdnotify_sendf(struct sdnotify *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The interval keep-alives should be sent at: half of WATCHDOG_USEC, in
 * microseconds; 0 when no watchdog is asked for. */
uint64_t sdnotify_watchdog_interval(const struct sdnotify *n);

/* CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it beside
 * MONOTONIC_USEC=. */
uint64_t sdnotify_monotonic_usec(void);

/* Close the socket; n is off afterwards. Safe on an off n. */
void sdnotify_cleanup(struct sdnotify *n);

#endif
