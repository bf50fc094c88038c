/* commands.h - the subcommands of the `coder` CLI, one file each (cli/cmd_*.c). Each returns the
 * process exit code (see cli/main.c for the list). */
#ifndef CODER_CLI_COMMANDS_H
#define CODER_CLI_COMMANDS_H

/* Exit codes (documented in docs/CLI.md). */
enum {
    EXIT_OK = 0,
    EXIT_RUNTIME = 1,     /* any other runtime error                        */
    EXIT_USAGE = 2,       /* bad arguments                                  */
    EXIT_LOAD = 3,        /* model missing, malformed or unsupported        */
    EXIT_NOMEM = 4,       /* out of host or device memory                   */
    EXIT_CONTEXT = 5,     /* prompt does not fit in the context             */
    EXIT_INTERRUPTED = 130
};

int cmd_generate(int argc, char **argv);   /* coder -m FILE -p PROMPT ...             */
int cmd_mkmodel(int argc, char **argv);    /* coder mkmodel --preset P ...            */
int cmd_tokenize(int argc, char **argv);   /* coder tokenize -m FILE [--no-special]   */
int cmd_eval(int argc, char **argv);       /* coder eval -m FILE -o OUT.f32           */
int cmd_bench(int argc, char **argv);      /* coder bench -m FILE ...                 */
int cmd_perplexity(int argc, char **argv); /* coder perplexity -m FILE -f TEXT [-c N]  */
int cmd_plan(int argc, char **argv);       /* coder plan -m FILE -c CTX               */

#endif
