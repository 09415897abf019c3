/*
 * libFuzzer harness for the console's form and cookie readers
 * (console_form.c): any input, as a form body or a Cookie header, either
 * yields no value or a NUL-ended value that fits its buffer and is no
 * longer than the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "console_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"csrf", "id", "resource", "a"};
	char *text = malloc(size + 1);
	char out[80];
	size_t len;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		len = 9999;
		if (console_form_field(text, names[i], out, sizeof(out),
				       &len) &&
		    (len >= sizeof(out) || out[len] != '\0' || len > size))
			abort();
		if (console_cookie(text, names[i], out, sizeof(out)) &&
		    (strlen(out) >= sizeof(out) || strlen(out) > size))
			abort();
	}
	free(text);
	return 0;
}
