/* cmd_mkmodel.c - placeholder until the subcommand is written. */
#include <stdio.h>

#include "commands.h"

int cmd_mkmodel(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "coder: 'mkmodel' is not implemented yet\n");
    return EXIT_USAGE;
}
