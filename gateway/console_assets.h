/*
 * The console's stylesheet and script, compiled into the binary from
 * gateway/console/ (embed.sh makes console_assets.c at build time).
 */
#ifndef GW_CONSOLE_ASSETS_H
#define GW_CONSOLE_ASSETS_H

#include <stddef.h>

struct console_asset {
	const char *name; /* "console.css" */
	const char *type; /* its Content-Type */
	const unsigned char *data;
	size_t len;
};

/* Ended by an entry with name NULL. */
extern const struct console_asset console_assets[];

#endif
