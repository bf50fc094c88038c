/* cmd_eval.c - placeholder until the subcommand is written. */
#include <stdio.h>

#include "commands.h"

int cmd_eval(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "coder: 'eval' is not implemented yet\n");
    return EXIT_USAGE;
}
