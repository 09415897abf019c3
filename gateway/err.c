/* Descriptions of enum gw_err and which errors are temporary; the answers
 * they get are in policy.c. */
#include "err.h"

static const struct {
	const char *text;
	bool temporary;
} gw_errs[GW_ERR_COUNT] = {
    [GW_OK] = {"success", false},
    [GW_NOMEM] = {"out of memory", true},
    [GW_IO] = {"input/output error", true},
    [GW_TEMP] = {"temporary failure", true},
    [GW_PARSE] = {"malformed input", false},
    [GW_INVALID] = {"invalid input", false},
    [GW_TOOBIG] = {"input too large", false},
    [GW_NOTFOUND] = {"not found", false},
    [GW_EXISTS] = {"already exists", false},
    [GW_DENIED] = {"access denied", false},
    [GW_CRYPTO] = {"cryptographic check failed", false},
    [GW_CONFIG] = {"configuration error", false},
    [GW_PERM] = {"permanent failure", false},
};

const char *
gw_strerror(enum gw_err err)
{
	if ((unsigned)err >= GW_ERR_COUNT)
		return "unknown error";
	return gw_errs[err].text;
}

bool
gw_err_is_temporary(enum gw_err err)
{
	if ((unsigned)err >= GW_ERR_COUNT)
		return false;
	return gw_errs[err].temporary;
}
