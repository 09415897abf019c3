/* libFuzzer harness for the configuration loader: the input is a whole
 * configuration file, written to a temp dir and loaded with config_load. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	int count;
	int bad;
};

static void
on_error(void *arg, const char *file, int line, const char *msg)
{
	struct seen *s = arg;

	s->count++;
	/* every message is a non-empty, printable line with a sane line */
	if (file == NULL || msg == NULL || msg[0] == '\0' || line < 0 ||
	    strchr(msg, '\n') != NULL)
		s->bad++;
}

static void
make_file(const char *dir, const char *name, mode_t mode)
{
	char p[96];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((fp = fopen(p, "w")) == NULL || fputs("dummy\n", fp) < 0 ||
	    fclose(fp) != 0 || chmod(p, mode) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct config *cfg = NULL;
	struct seen s = {0, 0};
	enum gw_err err;
	FILE *fp;

	if (path[0] == '\0') {
		static char dir[] = "/tmp/pzpgw-fuzz-config.XXXXXX";

		if (mkdtemp(dir) == NULL)
			abort();
		/* files a good input names: cert.pem, trust.pem, key.pem */
		make_file(dir, "cert.pem", 0644);
		make_file(dir, "trust.pem", 0644);
		make_file(dir, "key.pem", 0600);
		snprintf(path, sizeof(path), "%s/f.conf", dir);
	}
	if ((fp = fopen(path, "wb")) == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, fp) != size)
		abort();
	fclose(fp);

	err = config_load(path, on_error, &s, &cfg);
	if (s.bad != 0)
		__builtin_trap();
	/* success and errors exclude each other */
	if (err == GW_OK) {
		if (cfg == NULL || s.count != 0 || cfg->npeers > 10000 ||
		    !util_is_ura(cfg->ura))
			__builtin_trap();
		for (size_t i = 0; i < cfg->npeers; i++)
			if (config_peer_find(cfg, cfg->peers[i].ura) !=
			    &cfg->peers[i])
				__builtin_trap();
		/* The checks of a loaded file (the warnings, check-config's
		 * route checks) read the endpoints the loader accepted. */
		int n = config_warnings(cfg, on_error, &s);

		if (n != s.count)
			__builtin_trap();
		n += config_check_routes(cfg, on_error, &s);
		if (n != s.count || s.bad != 0)
			__builtin_trap();
	} else if (cfg != NULL || s.count == 0) {
		__builtin_trap();
	}
	config_free(cfg);
	return 0;
}
