/* cmd_generate.c - placeholder until the subcommand is written. */
#include <stdio.h>

#include "commands.h"

int cmd_generate(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "coder: 'generate' is not implemented yet\n");
    return EXIT_USAGE;
}
