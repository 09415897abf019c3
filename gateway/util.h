/* Small helpers shared by all modules: bounded strings, numbers, files. */
#ifndef GW_UTIL_H
#define GW_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Copy src into dst (size n), always NUL-terminated. Returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t n);

/* Parse a whole decimal integer in [min, max]. */
enum gw_err util_parse_ll(const char *s, long long min, long long max,
			  long long *out);

/* Parse a size such as "10M", "16k", "512" (bytes) in [min, max]. */
enum gw_err util_parse_size(const char *s, uint64_t min, uint64_t max,
			    uint64_t *out);

/* Parse a duration such as "30s", "5m", "1h", "7d", "250ms", or plain
 * seconds, into milliseconds in [min_ms, max_ms]. */
enum gw_err util_parse_duration(const char *s, uint64_t min_ms, uint64_t max_ms,
				uint64_t *out_ms);

/* Parse yes/no, true/false, on/off, 1/0. */
enum gw_err util_parse_bool(const char *s, bool *out);

/*
 * Read a whole file of at most max bytes. On success *out is a NUL-
 * terminated heap copy (caller frees) and *len its length. GW_TOOBIG when
 * larger than max, GW_NOTFOUND when absent, GW_IO otherwise.
 */
enum gw_err util_read_file(const char *path, size_t max, char **out,
			   size_t *len);

/*
 * The names in directory dir that start with prefix and end with suffix
 * (NULL: any), sorted by strcmp, without those starting with '.'. On
 * success *names (caller frees with util_names_free) holds *n names;
 * GW_IO when dir cannot be opened, GW_NOMEM.
 */
enum gw_err util_dir_names(const char *dir, const char *prefix,
			   const char *suffix, char ***names, size_t *n);
/* Free what util_dir_names returned; NULL is a no-op. */
void util_names_free(char **names, size_t n);

/* Write buf to path atomically (temp file, fsync, rename) with mode. */
enum gw_err util_write_file(const char *path, const void *buf, size_t len,
			    unsigned mode);

/* The value of hexadecimal digit c, or -1 when c is not one. */
int util_hexval(int c);

/* Name the calling thread (at most 15 bytes are kept), as top -H, ps -L
 * and /proc/PID/task/TID/comm show it; a failure is ignored. */
void util_thread_name(const char *name);

/* Monotonic and wall clocks in milliseconds. */
uint64_t util_mono_ms(void);
int64_t util_wall_ms(void);

/* Format a UTC time as RFC 3339 "2026-11-23T10:00:00Z" into out (>= 21). */
void util_rfc3339(int64_t unix_seconds, char *out, size_t n);

/* A new random UUID in lower-case text form into out (>= 37 bytes). */
void util_uuid(char *out);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). */
int64_t util_days_from_civil(int64_t y, int m, int d);

/* Lower-case hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void util_hex(const void *in, size_t n, char *out);

/* True when s is exactly 8 decimal digits (a URA number). */
bool util_is_ura(const char *s);

#endif
