/* pzpgw entry point: hands the command line to the subcommand table. */
#include <locale.h>
#include <stdio.h>

#include "cli.h"

int
main(int argc, char **argv)
{
	/* Numbers and sorting must not depend on the caller's locale. */
	setlocale(LC_ALL, "C");
	return cli_main(argc, argv);
}
