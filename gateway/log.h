/*
 * Logging: one line per event with key=value fields, to syslog (default)
 * or stderr. Never pass bodies, patient data or key material.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdbool.h>
#include <stdnoreturn.h>

enum log_target { LOG_TO_SYSLOG, LOG_TO_STDERR };

/* Set the destination and verbosity; may be called again (SIGHUP). */
void log_init(enum log_target target, bool debug, const char *ident);
/* Add node=NAME to every line (NULL or "": none). Call before other
 * threads log (it is read without a lock); NAME is copied. */
void log_set_node(const char *node);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like log_warnx, adding ": strerror(errno)". */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1). Only at startup or for broken invariants. */
noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * Copy s into out (size n) made safe for a key=value log field: control
 * characters, spaces, quotes and '=' become '_', and long input is cut.
 * Returns out.
 */
char *log_safe(char *out, unsigned long n, const char *s);

/* Like log_safe for a value written inside double quotes: spaces stay. */
char *log_quoted(char *out, unsigned long n, const char *s);

#endif
