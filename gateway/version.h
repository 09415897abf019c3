/* Release identification. */
#ifndef GW_VERSION_H
#define GW_VERSION_H

#define PZPGW_VERSION "0.1.0"

#endif
