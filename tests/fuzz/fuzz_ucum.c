/*
 * libFuzzer harness for the UCUM unit parser (ucum.c): any input is
 * refused or parses to a finite, non-zero factor with small powers, and
 * converting 1 of a parsed unit to itself gives 1 back.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ucum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ucum_unit u;
	char text[UCUM_MAX_LEN + 1];
	double back;

	if (ucum_parse((const char *)data, size, &u) != GW_OK)
		return 0;
	if (!isfinite(u.factor) || u.factor == 0 || !isfinite(u.offset))
		abort();
	for (int k = 0; k < UCUM_NDIM; k++)
		if (u.dim[k] > 9 || u.dim[k] < -9)
			abort();
	if (memchr(data, '\0', size) != NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (ucum_convert(1, text, text, &back) != GW_OK ||
	    fabs(back - 1) > 1e-9)
		abort();
	return 0;
}
