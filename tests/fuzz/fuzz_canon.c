/*
 * libFuzzer harness for the FHIR static canonicaliser: any input either
 * is refused or yields a canonical form that is itself canonical
 * (canonicalising it again changes nothing).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "canon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf once, twice;
	struct fj_error err;

	buf_init(&once, 1u << 22);
	buf_init(&twice, 1u << 22);
	if (canon_text((const char *)data, size, &once, &err) == GW_OK) {
		if (canon_text(once.data, once.len, &twice, &err) != GW_OK ||
		    once.len != twice.len ||
		    memcmp(once.data, twice.data, once.len) != 0)
			abort();
	}
	buf_cleanup(&once);
	buf_cleanup(&twice);
	return 0;
}
