/* libFuzzer harness for the URA and policy readers of tls: the input is a
 * DER certificate as a peer would send it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/x509.h>

#include "tls.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	char ura[CONFIG_URA_LEN + 1];
	X509 *cert;

	if (size > 64 * 1024)
		return 0;
	cert = d2i_X509(NULL, &p, (long)size);
	if (cert == NULL)
		return 0;
	/* a URA is either exactly 8 digits or empty */
	if (tls_cert_ura(cert, ura) == GW_OK) {
		if (!util_is_ura(ura))
			__builtin_trap();
	} else if (ura[0] != '\0') {
		__builtin_trap();
	}
	(void)tls_cert_is_test(cert);
	X509_free(cert);
	return 0;
}
