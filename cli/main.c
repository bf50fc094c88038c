/* main.c - `coder`: dispatches to a subcommand, or generates when the first argument is a flag. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} subcommands[] = {
    {"mkmodel", cmd_mkmodel, "write a synthetic GGUF model of a real shape"},
    {"tokenize", cmd_tokenize, "print the token ids of stdin"},
    {"eval", cmd_eval, "evaluate stdin and write the last position's logits"},
    {"bench", cmd_bench, "time prefill and decode"},
    {"perplexity", cmd_perplexity, "perplexity of the model over a text file"},
    {"plan", cmd_plan, "memory a model and context need (header only)"},
};

static void usage(void) {
    fprintf(stderr, "usage: coder -m MODEL.gguf -p PROMPT [options]   (coder --help for options)\n"
                    "       coder COMMAND [args]\ncommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(stderr, "  %-10s %s\n", subcommands[i].name, subcommands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage();
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0) return subcommands[i].run(argc - 1, argv + 1);
    if (argv[1][0] != '-') {
        fprintf(stderr, "coder: unknown command '%s'\n", argv[1]);
        usage();
        return EXIT_USAGE;
    }
    return cmd_generate(argc, argv);
}
