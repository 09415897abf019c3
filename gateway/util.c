/* Bounded strings, checked number parsing, whole-file I/O, clocks. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <uuid/uuid.h>

#include "util.h"

size_t
util_strlcpy(char *dst, const char *src, size_t n)
{
	size_t len = strlen(src);

	if (n > 0) {
		size_t k = len < n - 1 ? len : n - 1;

		memcpy(dst, src, k);
		dst[k] = '\0';
	}
	return len;
}

enum gw_err
util_parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return GW_PARSE;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return GW_PARSE;
	if (v < min || v > max)
		return GW_INVALID;
	*out = v;
	return GW_OK;
}

/* Split "123unit" into a number and a unit suffix. */
static enum gw_err
split_unit(const char *s, uint64_t *num, const char **unit)
{
	char *end;
	unsigned long long v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return GW_PARSE;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return GW_INVALID;
	*num = v;
	*unit = end;
	return GW_OK;
}

static enum gw_err
scale(uint64_t v, uint64_t mul, uint64_t min, uint64_t max, uint64_t *out)
{
	if (mul != 0 && v > UINT64_MAX / mul)
		return GW_INVALID;
	v *= mul;
	if (v < min || v > max)
		return GW_INVALID;
	*out = v;
	return GW_OK;
}

enum gw_err
util_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t mul;
	} units[] = {
	    {"", 1},
	    {"b", 1},
	    {"k", 1024},
	    {"kb", 1024},
	    {"kib", 1024},
	    {"m", 1048576},
	    {"mb", 1048576},
	    {"mib", 1048576},
	    {"g", 1073741824},
	    {"gb", 1073741824},
	    {"gib", 1073741824},
	};
	const char *unit;
	uint64_t v;
	enum gw_err err;

	if ((err = split_unit(s, &v, &unit)) != GW_OK)
		return err;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(units); i++)
		if (strcasecmp(unit, units[i].unit) == 0)
			return scale(v, units[i].mul, min, max, out);
	return GW_PARSE;
}

enum gw_err
util_parse_duration(const char *s, uint64_t min_ms, uint64_t max_ms,
		    uint64_t *out_ms)
{
	static const struct {
		const char *unit;
		uint64_t mul;
	} units[] = {
	    {"", 1000},	  {"ms", 1},	  {"s", 1000},
	    {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	const char *unit;
	uint64_t v;
	enum gw_err err;

	if ((err = split_unit(s, &v, &unit)) != GW_OK)
		return err;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(units); i++)
		if (strcmp(unit, units[i].unit) == 0)
			return scale(v, units[i].mul, min_ms, max_ms, out_ms);
	return GW_PARSE;
}

enum gw_err
util_parse_bool(const char *s, bool *out)
{
	static const char *yes[] = {"yes", "true", "on", "1"};
	static const char *no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return GW_OK;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return GW_OK;
		}
	}
	return GW_PARSE;
}

enum gw_err
util_read_file(const char *path, size_t max, char **out, size_t *len)
{
	enum gw_err err = GW_IO;
	struct stat st;
	char *buf = NULL;
	size_t used = 0, cap;
	int fd;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return errno == ENOENT ? GW_NOTFOUND : GW_IO;
	if (fstat(fd, &st) == -1)
		goto done;
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		err = GW_TOOBIG;
		goto done;
	}
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
	for (;;) {
		ssize_t n;

		if (used + 1 >= cap) {
			char *p;

			if (cap > max + 1) {
				err = GW_TOOBIG;
				goto done;
			}
			cap *= 2;
			if ((p = realloc(buf, cap)) == NULL) {
				err = GW_NOMEM;
				goto done;
			}
			buf = p;
		} else if (buf == NULL && (buf = malloc(cap)) == NULL) {
			err = GW_NOMEM;
			goto done;
		}
		n = read(fd, buf + used, cap - used - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto done;
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max) {
			err = GW_TOOBIG;
			goto done;
		}
	}
	if (buf == NULL && (buf = malloc(1)) == NULL) {
		err = GW_NOMEM;
		goto done;
	}
	buf[used] = '\0';
	*out = buf;
	*len = used;
	buf = NULL;
	err = GW_OK;
done:
	free(buf);
	close(fd);
	return err;
}

enum gw_err
util_write_file(const char *path, const void *buf, size_t len, unsigned mode)
{
	char tmp[PATH_MAX];
	const char *p = buf;
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path,
			     (long)getpid()) >= sizeof(tmp))
		return GW_INVALID;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd == -1)
		return GW_IO;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) == -1) {
		unlink(tmp);
		return GW_IO;
	}
	return GW_OK;
fail:
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return GW_IO;
}

void
util_thread_name(const char *name)
{
	(void)prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

uint64_t
util_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t
util_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
util_rfc3339(int64_t unix_seconds, char *out, size_t n)
{
	time_t t = (time_t)unix_seconds;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Random bytes util_uuid hands out 16 at a time, per thread. */
#define UTIL_UUID_POOL 512

void
util_uuid(char *out)
{
	/* OpenSSL's per-thread generator: libuuid's reseeds a PRNG and
	   makes system calls per UUID (two per pull request: 4% of its CPU
	   time). Each call into the generator costs about as much as 30
	   UUIDs' bytes (locking, a cipher set up per call: 3% of a pull
	   request), so the bytes come in blocks of 32 UUIDs. A child
	   process (fork) draws a block of its own rather than repeating
	   its parent's. */
	static _Thread_local struct {
		unsigned char b[UTIL_UUID_POOL];
		size_t at;
		pid_t pid;
	} pool = {.at = UTIL_UUID_POOL};
	unsigned char u[sizeof(uuid_t)]; /* a uuid_t, spelt out for cppcheck */
	pid_t pid = getpid();

	if (pool.at + sizeof(u) > sizeof(pool.b) || pool.pid != pid) {
		pool.at = sizeof(pool.b);
		if (RAND_bytes(pool.b, sizeof(pool.b)) == 1) {
			pool.at = 0;
			pool.pid = pid;
		}
	}
	if (pool.at + sizeof(u) <= sizeof(pool.b)) {
		memcpy(u, pool.b + pool.at, sizeof(u));
		/* Used bytes are not kept. */
		OPENSSL_cleanse(pool.b + pool.at, sizeof(u));
		pool.at += sizeof(u);
		u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
		u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	} else {
		uuid_generate_random(u);
	}
	uuid_unparse_lower(u, out);
}

int64_t
util_days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	/* Shift the year to start in March so February ends it. */
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void
util_hex(const void *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = in;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}

bool
util_is_ura(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return i == 8;
}

static int
util_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum gw_err
util_dir_names(const char *dir, const char *prefix, const char *suffix,
	       char ***names, size_t *n)
{
	size_t cap = 0, count = 0, pl = prefix ? strlen(prefix) : 0,
	       sl = suffix ? strlen(suffix) : 0;
	char **list = NULL, **nn;
	struct dirent *de;
	enum gw_err err = GW_OK;
	DIR *d;

	*names = NULL;
	*n = 0;
	if ((d = opendir(dir)) == NULL)
		return GW_IO;
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);

		if (de->d_name[0] == '.' || nl < pl + sl ||
		    (pl > 0 && strncmp(de->d_name, prefix, pl) != 0) ||
		    (sl > 0 && strcmp(de->d_name + nl - sl, suffix) != 0))
			continue;
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nn = realloc(list, cap * sizeof(*nn))) == NULL) {
				err = GW_NOMEM;
				break;
			}
			list = nn;
		}
		if ((list[count] = strdup(de->d_name)) == NULL) {
			err = GW_NOMEM;
			break;
		}
		count++;
	}
	closedir(d);
	if (err != GW_OK) {
		util_names_free(list, count);
		return err;
	}
	if (count > 1)
		qsort(list, count, sizeof(*list), util_name_cmp);
	*names = list;
	*n = count;
	return GW_OK;
}

void
util_names_free(char **names, size_t n)
{
	if (names == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int
util_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
