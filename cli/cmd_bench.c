/* cmd_bench.c - placeholder until the subcommand is written. */
#include <stdio.h>

#include "commands.h"

int cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "coder: 'bench' is not implemented yet\n");
    return EXIT_USAGE;
}
