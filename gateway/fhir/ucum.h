/*
 * ucum: a small, table-driven converter for the common UCUM units
 * (https://ucum.org): mass, length, volume, time, amount of substance and
 * temperature with the SI prefixes, a few customary units ([lb_av],
 * [oz_av], [in_i], [ft_i], [yd_i], [mi_i]), degrees Celsius and
 * Fahrenheit, and products, quotients and integer powers of them
 * ("mg/dL", "kg/m2", "mmol/L", "/min", "10*3/uL"). Enough for the
 * validator to compare a Quantity with a minValueQuantity or
 * maxValueQuantity in another unit; anything else is refused, never
 * guessed. No allocation; the caller owns every struct.
 */
#ifndef GW_UCUM_H
#define GW_UCUM_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* Length of a unit expression ucum_parse reads (longer: GW_TOOBIG). */
#define UCUM_MAX_LEN 128

/* Dimensions: length, mass, time, amount of substance, temperature. */
enum { UCUM_L, UCUM_M, UCUM_T, UCUM_N, UCUM_K, UCUM_NDIM };

/*
 * A parsed unit: value_in_base = value * factor + offset, base units
 * m, g, s, mol, K raised to dim[]. offset is non-zero only for Cel and
 * [degF], which stand alone (no prefix, power or product).
 */
struct ucum_unit {
	double factor;
	double offset;
	int dim[UCUM_NDIM];
};

/*
 * Parse len bytes of s (a UCUM case-sensitive code) into *u. Returns
 * GW_OK; GW_TOOBIG past UCUM_MAX_LEN; GW_PARSE when the text is not a
 * unit expression this module knows (unknown atom, bad syntax, an
 * exponent out of -9..9, a special unit combined with others).
 */
enum gw_err ucum_parse(const char *s, size_t len, struct ucum_unit *u);

/* True when a and b measure the same dimension. */
bool ucum_commensurable(const struct ucum_unit *a, const struct ucum_unit *b);

/*
 * Convert value v from unit `from` to unit `to` (NUL-terminated UCUM
 * codes) into *out. GW_OK; GW_PARSE when either unit is unknown (see
 * ucum_parse); GW_INVALID when they measure different dimensions.
 */
enum gw_err ucum_convert(double v, const char *from, const char *to,
			 double *out);

#endif
