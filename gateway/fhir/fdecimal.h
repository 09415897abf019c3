/*
 * fdecimal: FHIR decimals compared exactly from their text, as FHIRPath
 * and the validator need them; plus the printing of a computed decimal.
 * No allocation: every value is a small struct the caller owns.
 */
#ifndef GW_FDECIMAL_H
#define GW_FDECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decimal as 0.d1d2... x 10^e, without leading or trailing zeros, so that
 * two decimals compare exactly whatever their written precision. */
#define FDEC_DIGITS 64
struct fdec {
	bool neg;
	int nd;
	long e;
	char d[FDEC_DIGITS];
};

/*
 * Parse n bytes of s (a JSON number or FHIRPath decimal: sign, digits,
 * point, exponent) into *o. False when it is not a number or has more
 * than FDEC_DIGITS significant digits.
 */
bool fdec_parse(const char *s, size_t n, struct fdec *o);

/* The decimal of an integer. */
void fdec_from_int(int64_t v, struct fdec *o);

/* Order of a and b by value: -1, 0, 1. */
int fdec_cmp(const struct fdec *a, const struct fdec *b);

/*
 * How two number texts are compared: FDEC_EXACT by value from the text
 * (what FHIRPath does; "1.0" equals "1.00"); FDEC_DOUBLE as the doubles
 * strtod makes of them (what the validator does for fixed values and
 * limits; digits past a double's precision are lost).
 */
enum fdec_mode { FDEC_EXACT, FDEC_DOUBLE };

/*
 * Compare the number texts a (alen bytes) and b (blen bytes); FDEC_DOUBLE
 * needs each NUL-terminated at its length. Sets *r to -1, 0 or 1; false
 * (*r unset) when FDEC_EXACT cannot read one of them.
 */
bool fdec_cmp_text(const char *a, size_t alen, const char *b, size_t blen,
		   enum fdec_mode mode, int *r);

/*
 * Print v, the result of decimal arithmetic done in doubles, as a
 * FHIRPath decimal: 15 significant digits, ".0" after a whole number.
 * v must be a number within +-1e300 (callers make NaN and larger values
 * empty). False when the text would need an exponent (out then holds
 * it). len of 64 is always enough.
 */
bool fdec_format_double(double v, char *out, size_t len);

#endif
