/* key=value event log to syslog or stderr. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

/* Atomic: a reload (log_init on the loop thread) may change them while
 * intake workers log. */
static atomic_int log_to = LOG_TO_STDERR;
static atomic_bool log_verbose;
static const char *log_ident = "pzpgw";
static char log_node[260]; /* " node=NAME" or "" */

void
log_set_node(const char *node)
{
	log_node[0] = '\0';
	if (node != NULL && node[0] != '\0')
		snprintf(log_node, sizeof(log_node), " node=%s", node);
}

void
log_init(enum log_target target, bool debug, const char *ident)
{
	/* Set once: a reload passes the same ident, and workers read it. */
	if (ident != NULL && ident != log_ident)
		log_ident = ident;
	if (log_to == LOG_TO_SYSLOG && target != LOG_TO_SYSLOG)
		closelog();
	if (target == LOG_TO_SYSLOG && log_to != LOG_TO_SYSLOG)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_to = target;
	log_verbose = debug;
}

static void
log_vwrite(int pri, const char *level, const char *fmt, va_list ap,
	   const char *suffix)
{
	char msg[2048];
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (suffix != NULL && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, " error=\"%s\"",
			 suffix);
	if (log_to == LOG_TO_SYSLOG) {
		syslog(pri, "level=%s%s %s", level, log_node, msg);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s level=%s%s %s\n", when,
		ts.tv_nsec / 1000000, log_ident, level, log_node, msg);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_INFO, "info", fmt, ap, NULL);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, "warn", fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, "warn", fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_DEBUG, "debug", fmt, ap, NULL);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, "fatal", fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, "fatal", fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

static char *
log_clean(char *out, unsigned long n, const char *s, bool keep_space)
{
	unsigned long i;

	if (n == 0)
		return out;
	if (s == NULL)
		s = "-";
	for (i = 0; i + 1 < n && s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == ' ' && keep_space)
			out[i] = ' ';
		else if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' ||
			 (c == '=' && !keep_space))
			out[i] = '_';
		else
			out[i] = (char)c;
	}
	out[i] = '\0';
	return out;
}

char *
log_safe(char *out, unsigned long n, const char *s)
{
	return log_clean(out, n, s, false);
}

char *
log_quoted(char *out, unsigned long n, const char *s)
{
	return log_clean(out, n, s, true);
}
