/* cmd_tokenize.c - placeholder until the subcommand is written. */
#include <stdio.h>

#include "commands.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "coder: 'tokenize' is not implemented yet\n");
    return EXIT_USAGE;
}
