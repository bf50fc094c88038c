/* cmd_generate.c - `coder -m MODEL -p PROMPT [options]`: the default command. Streams the completion
 * to stdout (flushed per piece) and everything else to stderr; exit codes in commands.h and
 * docs/CLI.md. SIGINT cancels the session (exit 130, partial output flushed); a closed stdout
 * (`| head -c 10`) ends generation quietly with status 0. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"
#include "coderinfer.h"
#include "commands.h"
#include "sampler.h" /* sampler_check_params: the CLI links the static library */

/* Set once the session exists: the SIGINT handler cancels it (coder_session_cancel is async-safe). */
static coder_session *volatile sigint_session;
static volatile sig_atomic_t sigint_seen;

static void on_sigint(int sig) {
    (void)sig;
    sigint_seen = 1;
    coder_session *s = sigint_session;
    if (s) coder_session_cancel(s);
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C kills at once */
}

static int load_progress(float fraction, void *user) {
    (void)fraction;
    (void)user;
    return sigint_seen != 0;
}

static void usage(void) {
    fputs("usage: coder -m MODEL.gguf [-p PROMPT | -f FILE] [options]\n"
          "  -m FILE            model (default: $CODER_MODEL)\n"
          "  -p TEXT            prompt; stdin that is not a terminal is appended after a blank line\n"
          "  -f FILE            read the prompt from FILE ('-' = stdin)\n"
          "  -n N               tokens to generate (default 256; -1 = until end or context full)\n"
          "  -c N|auto          context length (default: min(training, 4096); auto: the largest that fits)\n"
          "  -t N               CPU threads (default: all cores)\n"
          "  --temp T           temperature (default 0.8; 0 = greedy)\n"
          "  --top-k K          (default 40; 0 = off)    --top-p P   (default 0.95; 1 = off)\n"
          "  --min-p P          (default 0.05; 0 = off)  --repeat-penalty R (default 1.0 = off)\n"
          "  --repeat-last-n N  penalty window (default 64)\n"
          "  --frequency-penalty F  --presence-penalty P   (default 0)\n"
          "  --seed S           (default: random)\n"
          "  --chat             format the prompt as a user message in the model's chat format\n"
          "  --system TEXT      system message (implies --chat)\n"
          "  --fim-prefix TEXT|@FILE  --fim-suffix TEXT|@FILE   fill-in-the-middle prompt\n"
          "  --stop STR         stop before STR (repeatable)\n"
          "  --json             print one JSON object (text, tokens, stop reason, stats) instead\n"
          "  --stats            print timing statistics to stderr\n"
          "  --gpu-layers N|auto|all   layers on the GPU (CPU when there is none)\n"
          "  --no-mmap          read the model into memory instead of mapping it (for files that\n"
          "                     may change while coder runs)\n"
          "  --prompt-cache FILE  reuse the prompt state saved in FILE (longest matching prefix)\n"
          "                     and save this prompt's state to it\n"
          "  --kv-type T        KV cache type: f16 (default), f32, q8_0, q8_0-q4_0 (K q8_0, V q4_0)\n"
          "  --truncate-prompt  cut the middle of a prompt that does not fit (default: refuse)\n"
          "  --keep N           with --truncate-prompt: prompt tokens kept from the start\n"
          "  --lookup N         greedy decoding (--temp 0) drafts up to N tokens (0-16) from where the\n"
          "                     last tokens occurred before in the context (prompt lookup: edits of\n"
          "                     code in the prompt go several tokens per step; same output)\n"
          "  -q / -v / -vv      quieter / more logging on stderr\n",
          stderr);
}

/* ---- output ---------------------------------------------------------------------------------- */

typedef struct out_state {
    int broken_pipe;
    int wrote_any;
    char last;
} out_state;

static int on_piece(const char *piece, size_t len, void *user) {
    out_state *o = user;
    if (fwrite(piece, 1, len, stdout) != len || fflush(stdout) != 0) {
        if (errno == EPIPE) o->broken_pipe = 1;
        else o->broken_pipe = 2;
        return 1; /* stop generating: nobody reads */
    }
    o->wrote_any = 1;
    o->last = piece[len - 1];
    return 0;
}

static const char *stop_name(int32_t r) {
    switch (r) {
    case CODER_STOP_EOG: return "eog";
    case CODER_STOP_LENGTH: return "length";
    case CODER_STOP_STRING: return "stop_string";
    case CODER_STOP_CONTEXT_FULL: return "context_full";
    case CODER_STOP_CANCELLED: return "cancelled";
    case CODER_STOP_ERROR: return "error";
    default: return "none";
    }
}

static void print_json(const coder_result *r, uint64_t seed_used, int have_seed) {
    printf("{\"text\":");
    cli_json_string(stdout, r->text ? r->text : "", r->text_len);
    printf(",\"tokens\":[");
    for (size_t i = 0; i < r->n_tokens; i++) printf(i ? ",%d" : "%d", (int)r->tokens[i]);
    printf("],\"stop_reason\":\"%s\"", stop_name(r->stop_reason));
    if (have_seed) printf(",\"seed\":%llu", (unsigned long long)seed_used);
    const coder_stats *s = &r->stats;
    printf(",\"stats\":{\"prompt_tokens\":%d,\"cached_tokens\":%d,\"generated_tokens\":%d,"
           "\"prefill_ms\":%.3f,\"decode_ms\":%.3f,\"prefill_tps\":%.2f,\"decode_tps\":%.2f,"
           "\"drafted_tokens\":%d,\"accepted_tokens\":%d}}\n",
           (int)s->n_prompt, (int)s->n_cached, (int)s->n_generated, s->prefill_ms, s->decode_ms,
           s->prefill_tps, s->decode_tps, (int)s->n_drafted, (int)s->n_accepted);
    fflush(stdout);
}

/* True when what goes to stderr lands next to stdout (a terminal, or both redirected to one file or
 * pipe as in `make demo`): then a completion without a final newline gets one before the stats. */
static bool stdout_meets_stderr(void) {
    struct stat o, e;
    if (isatty(STDOUT_FILENO)) return true;
    return fstat(STDOUT_FILENO, &o) == 0 && fstat(STDERR_FILENO, &e) == 0 && o.st_dev == e.st_dev && o.st_ino == e.st_ino;
}

static void print_stats(const coder_result *r) {
    const coder_stats *s = &r->stats;
    fprintf(stderr,
            "prompt:   %d tokens (%d cached) in %.1f ms, %.1f tok/s\n"
            "generate: %d tokens in %.1f ms, %.1f tok/s\n"
            "stop:     %s\n",
            (int)s->n_prompt, (int)s->n_cached, s->prefill_ms, s->prefill_tps, (int)s->n_generated,
            s->decode_ms, s->decode_tps, stop_name(r->stop_reason));
    if (s->n_drafted > 0)
        fprintf(stderr, "lookup:   %d of %d drafted tokens kept\n", (int)s->n_accepted, (int)s->n_drafted);
}

static double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- arguments ------------------------------------------------------------------------------- */

typedef struct gen_args {
    const char *model, *prompt, *prompt_file, *system, *fim_prefix, *fim_suffix;
    const char **stops;
    size_t n_stop;
    int n_ctx, n_threads, gpu_layers, chat, json, stats, verbosity, kv_type, no_mmap;
    const char *prompt_cache;
    coder_gen_params gp;
    int seed_given;
} gen_args;

static int parse_args(int argc, char **argv, gen_args *a) {
    memset(a, 0, sizeof *a);
    coder_gen_params_init(&a->gp);
    a->gpu_layers = -1;
    a->verbosity = 1;
    a->model = getenv("CODER_MODEL");
    a->stops = calloc((size_t)argc, sizeof *a->stops);
    if (!a->stops) return EXIT_NOMEM;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                               \
    do {                                                                                           \
        if (!v) { fprintf(stderr, "coder: %s needs a value\n", o); return EXIT_USAGE; }            \
        i++;                                                                                       \
    } while (0)
#define OPT(name) (strcmp(o, name) == 0)
        if (OPT("-h") || OPT("--help")) { usage(); return -1; }
        else if (OPT("-m") || OPT("--model")) { NEED_VALUE(); a->model = v; }
        else if (OPT("-p") || OPT("--prompt")) { NEED_VALUE(); a->prompt = v; }
        else if (OPT("-f") || OPT("--file")) { NEED_VALUE(); a->prompt_file = v; }
        else if (OPT("-n") || OPT("--n-predict")) { NEED_VALUE(); if (cli_parse_int(o, v, -1, INT_MAX, &a->gp.max_tokens)) return EXIT_USAGE; }
        else if (OPT("-c") || OPT("--ctx-size")) { NEED_VALUE(); if (cli_parse_ctx(o, v, &a->n_ctx)) return EXIT_USAGE; }
        else if (OPT("--no-mmap")) a->no_mmap = 1;
        else if (OPT("-t") || OPT("--threads")) { NEED_VALUE(); if (cli_parse_int(o, v, 1, 4096, &a->n_threads)) return EXIT_USAGE; }
        else if (OPT("--temp")) { NEED_VALUE(); if (cli_parse_float(o, v, &a->gp.temperature)) return EXIT_USAGE; }
        else if (OPT("--top-k")) { NEED_VALUE(); if (cli_parse_int(o, v, INT_MIN, INT_MAX, &a->gp.top_k)) return EXIT_USAGE; }
        else if (OPT("--top-p")) { NEED_VALUE(); if (cli_parse_float(o, v, &a->gp.top_p)) return EXIT_USAGE; }
        else if (OPT("--min-p")) { NEED_VALUE(); if (cli_parse_float(o, v, &a->gp.min_p)) return EXIT_USAGE; }
        else if (OPT("--repeat-penalty")) { NEED_VALUE(); if (cli_parse_float(o, v, &a->gp.repeat_penalty)) return EXIT_USAGE; }
        else if (OPT("--repeat-last-n")) { NEED_VALUE(); if (cli_parse_int(o, v, 0, INT_MAX, &a->gp.repeat_last_n)) return EXIT_USAGE; }
        else if (OPT("--frequency-penalty")) { NEED_VALUE(); if (cli_parse_float(o, v, &a->gp.frequency_penalty)) return EXIT_USAGE; }
        else if (OPT("--presence-penalty")) { NEED_VALUE(); if (cli_parse_float(o, v, &a->gp.presence_penalty)) return EXIT_USAGE; }
        else if (OPT("--seed")) { NEED_VALUE(); if (cli_parse_u64(o, v, &a->gp.seed)) return EXIT_USAGE; a->seed_given = 1; }
        else if (OPT("--chat")) a->chat = 1;
        else if (OPT("--system")) { NEED_VALUE(); a->system = v; a->chat = 1; }
        else if (OPT("--fim-prefix")) { NEED_VALUE(); a->fim_prefix = v; }
        else if (OPT("--fim-suffix")) { NEED_VALUE(); a->fim_suffix = v; }
        else if (OPT("--stop")) {
            NEED_VALUE();
            if (!*v) { fprintf(stderr, "coder: --stop needs a non-empty string\n"); return EXIT_USAGE; }
            a->stops[a->n_stop++] = v;
        }
        else if (OPT("--json")) a->json = 1;
        else if (OPT("--stats")) a->stats = 1;
        else if (OPT("--gpu-layers") || OPT("-ngl")) {
            NEED_VALUE();
            if (cli_parse_gpu_layers(o, v, &a->gpu_layers)) return EXIT_USAGE;
        }
        else if (OPT("--prompt-cache")) { NEED_VALUE(); a->prompt_cache = v; }
        else if (OPT("--kv-type")) {
            NEED_VALUE();
            if (!strcmp(v, "f16")) a->kv_type = CODER_KV_F16;
            else if (!strcmp(v, "f32")) a->kv_type = CODER_KV_F32;
            else if (!strcmp(v, "q8_0")) a->kv_type = CODER_KV_Q8_0;
            else if (!strcmp(v, "q8_0-q4_0")) a->kv_type = CODER_KV_Q8_0_Q4_0;
            else { fprintf(stderr, "coder: --kv-type must be f16, f32, q8_0 or q8_0-q4_0, not '%s'\n", v); return EXIT_USAGE; }
        }
        else if (OPT("--truncate-prompt")) a->gp.context_policy = CODER_CONTEXT_TRUNCATE;
        else if (OPT("--keep")) { NEED_VALUE(); if (cli_parse_int(o, v, 0, INT_MAX, &a->gp.truncate_keep)) return EXIT_USAGE; }
        else if (OPT("--lookup")) { NEED_VALUE(); if (cli_parse_int(o, v, 0, 16, &a->gp.lookup_draft)) return EXIT_USAGE; }
        else if (OPT("-q") || OPT("--quiet")) a->verbosity = 0;
        else if (OPT("-v") || OPT("--verbose")) a->verbosity = a->verbosity < 2 ? 2 : a->verbosity + 1;
        else if (OPT("-vv")) a->verbosity = 3;
        else {
            fprintf(stderr, "coder: unknown option '%s'\n", o);
            usage();
            return EXIT_USAGE;
        }
#undef OPT
#undef NEED_VALUE
    }
    if (!a->model || !*a->model) { fprintf(stderr, "coder: no model: pass -m FILE or set CODER_MODEL\n"); return EXIT_USAGE; }
    int fim = a->fim_prefix || a->fim_suffix;
    if (fim && (a->prompt || a->prompt_file || a->chat)) {
        fprintf(stderr, "coder: --fim-prefix/--fim-suffix cannot be combined with -p, -f or --chat\n");
        return EXIT_USAGE;
    }
    if (a->prompt && a->prompt_file) { fprintf(stderr, "coder: pass -p or -f, not both\n"); return EXIT_USAGE; }
    if (sampler_check_params(&a->gp) != CODER_OK) { // before the (slow) model load
        fprintf(stderr, "coder: %s\n", coder_last_error());
        return EXIT_USAGE;
    }
    a->gp.stop = a->stops;
    a->gp.n_stop = a->n_stop;
    return 0;
}

/* stdin is read as part of the prompt only when it is a pipe or a file (not a terminal, and not a
 * character device such as /dev/null): that is where piped input comes from. */
static int stdin_has_input(void) {
    if (isatty(STDIN_FILENO)) return 0;
    struct stat st;
    if (fstat(STDIN_FILENO, &st) != 0) return 0;
    return S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode);
}

/* Builds the prompt text (malloc'd) from -p, -f and stdin. */
static int build_prompt(const gen_args *a, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    cli_buf b = {0};
    if (a->prompt_file) {
        if (cli_read_file(a->prompt_file, &b) != 0) {
            fprintf(stderr, "coder: cannot read prompt file '%s': %s\n", a->prompt_file, strerror(errno));
            return EXIT_USAGE;
        }
    } else {
        if (a->prompt && cli_buf_append(&b, a->prompt, strlen(a->prompt))) return EXIT_NOMEM;
        if (stdin_has_input()) {
            cli_buf in = {0};
            if (cli_read_file("-", &in) != 0) {
                fprintf(stderr, "coder: cannot read stdin: %s\n", strerror(errno));
                free(b.data);
                return EXIT_USAGE;
            }
            // Ollama's convention: the prompt, a blank line, then what was piped in
            if (in.len && b.len && cli_buf_append(&b, "\n\n", 2)) return EXIT_NOMEM;
            if (in.len && cli_buf_append(&b, in.data, in.len)) return EXIT_NOMEM;
            free(in.data);
        }
        if (!a->prompt && !b.len) {
            fprintf(stderr, "coder: no prompt: pass -p TEXT, -f FILE or pipe text into stdin\n");
            free(b.data);
            return EXIT_USAGE;
        }
    }
    if (cli_buf_append(&b, "", 0)) return EXIT_NOMEM; // ensures a NUL-terminated buffer
    *out = b.data;
    *out_len = b.len;
    return 0;
}

/* --fim-prefix @file reads the file; otherwise the text itself. */
static int fim_part(const char *arg, char **out) {
    if (!arg) { *out = strdup(""); return *out ? 0 : EXIT_NOMEM; }
    if (arg[0] != '@') { *out = strdup(arg); return *out ? 0 : EXIT_NOMEM; }
    cli_buf b = {0};
    if (cli_read_file(arg + 1, &b) != 0 || cli_buf_append(&b, "", 0)) {
        fprintf(stderr, "coder: cannot read '%s': %s\n", arg + 1, strerror(errno));
        free(b.data);
        return EXIT_USAGE;
    }
    *out = b.data;
    return 0;
}

/* After generation: saves the prompt's positions (not the completion) to --prompt-cache, unless
 * the file already holds the whole prompt. A failure to write is reported (exit 1). */
static int save_prompt_cache(const gen_args *a, coder_session *s, const coder_result *r, int32_t loaded) {
    int32_t total = r->stats.n_cached + r->stats.n_prompt;
    if (total <= 0 || coder_session_n_past(s) < total) return 0;
    if (loaded >= total && r->stats.n_cached + 1 >= total) return 0;   /* nothing new */
    double t0 = cli_now();
    if (coder_session_save(s, a->prompt_cache, total) != CODER_OK) {
        fprintf(stderr, "coder: cannot save the prompt cache: %s\n", coder_last_error());
        return EXIT_RUNTIME;
    }
    if (a->stats)
        fprintf(stderr, "prompt cache: saved %d tokens to %s in %.1f ms\n", (int)total, a->prompt_cache,
                (cli_now() - t0) * 1e3);
    return 0;
}

/* ---- the command ----------------------------------------------------------------------------- */

int cmd_generate(int argc, char **argv) {
    gen_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) {
        free(a.stops);
        return rc < 0 ? EXIT_OK : rc;
    }
    cli_log_setup(a.verbosity);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout shows up as EPIPE: stop cleanly, no SIGPIPE death */
    signal(SIGINT, on_sigint);

    char *text = NULL, *fim_pre = NULL, *fim_suf = NULL, *chat_text = NULL;
    int32_t *ids = NULL;
    size_t text_len = 0, n_ids = 0;
    coder_model *model = NULL;
    coder_session *session = NULL;
    coder_result r;
    coder_result_init(&r);
    coder_status st = CODER_OK;
    out_state out = {0};

    int fim = a.fim_prefix || a.fim_suffix;
    if (fim) {
        if ((rc = fim_part(a.fim_prefix, &fim_pre)) || (rc = fim_part(a.fim_suffix, &fim_suf))) goto done;
    } else if ((rc = build_prompt(&a, &text, &text_len))) {
        goto done;
    }

    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.n_gpu_layers = a.gpu_layers;
    mp.n_threads = a.n_threads;
    mp.progress = load_progress;
    cli_model_mmap(&mp, a.no_mmap);
    if (a.n_ctx == CODER_CTX_AUTO) {   /* -c auto: the largest context (and GPU layers) that fit, said on stderr */
        coder_session_params fsp;
        coder_session_params_init(&fsp);
        fsp.n_ctx = a.n_ctx;
        fsp.n_threads = a.n_threads;
        fsp.kv_type = a.kv_type;
        coder_plan fp;
        memset(&fp, 0, sizeof fp);
        fp.size = sizeof fp;
        char why[512];
        if ((st = coder_plan_fit(a.model, &mp, &fsp, 0, 0, &fp, why, sizeof why)) != CODER_OK) {
            fprintf(stderr, "coder: -c auto: %s\n", coder_last_error());
            rc = cli_exit_code(st, EXIT_LOAD);
            goto done;
        }
        if (a.verbosity > 0 || a.stats) fprintf(stderr, "coder: auto: %s\n", why);
        a.n_ctx = fsp.n_ctx;
    }
    if ((st = coder_model_load(a.model, &mp, &model)) != CODER_OK) {
        fprintf(stderr, "coder: cannot load '%s': %s\n", a.model, coder_last_error());
        rc = cli_exit_code(st, EXIT_LOAD);
        goto done;
    }
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = a.n_ctx;
    sp.n_threads = a.n_threads;
    sp.kv_type = a.kv_type;
    if ((st = coder_session_new(model, &sp, &session)) != CODER_OK) {
        fprintf(stderr, "coder: cannot create a session: %s\n", coder_last_error());
        rc = cli_exit_code(st, EXIT_RUNTIME);
        goto done;
    }
    sigint_session = session;
    if (sigint_seen) coder_session_cancel(session);
    int32_t cache_loaded = -1;   /* positions loaded from --prompt-cache, -1: none */
    if (a.prompt_cache) {
        /* the prompt is the whole context: reuse the longest prefix it shares with the file */
        a.gp.prompt_mode = CODER_PROMPT_REUSE;
        double t0 = cli_now();
        if (access(a.prompt_cache, F_OK) == 0) {
            if (coder_session_load(session, a.prompt_cache) == CODER_OK) {
                cache_loaded = coder_session_n_past(session);
                if (a.stats)
                    fprintf(stderr, "prompt cache: loaded %d tokens from %s in %.1f ms\n", (int)cache_loaded,
                            a.prompt_cache, (cli_now() - t0) * 1e3);
            } else if (a.verbosity > 0) {
                fprintf(stderr, "coder: warning: prompt cache not used: %s\n", coder_last_error());
            }
        }
    }

    if (a.chat) {
        coder_chat_message msgs[2];
        size_t n = 0;
        if (a.system) msgs[n++] = (coder_chat_message){"system", a.system};
        msgs[n++] = (coder_chat_message){"user", text};
        size_t need = 0;
        st = coder_chat_apply(model, CODER_CHAT_AUTO, msgs, n, CODER_CHAT_ADD_GENERATION_PROMPT, NULL, 0, &need);
        if (st == CODER_ERR_BUFFER_TOO_SMALL) {
            chat_text = malloc(need);
            if (!chat_text) { rc = EXIT_NOMEM; goto done; }
            st = coder_chat_apply(model, CODER_CHAT_AUTO, msgs, n, CODER_CHAT_ADD_GENERATION_PROMPT, chat_text, need, &need);
        }
        if (st != CODER_OK) {
            fprintf(stderr, "coder: --chat: %s\n", coder_last_error());
            rc = cli_exit_code(st, EXIT_RUNTIME);
            goto done;
        }
        free(text);
        text = chat_text;
        chat_text = NULL;
        text_len = strlen(text);
        // the rendered chat holds its own control tokens (and BOS where the format has one)
        a.gp.tokenize_flags = CODER_TOKENIZE_PARSE_SPECIAL;
    }
    if (fim) {
        st = coder_fim_tokens(model, fim_pre, fim_suf, NULL, NULL, 0, NULL, NULL, 0, &n_ids);
        if (st == CODER_ERR_BUFFER_TOO_SMALL) {
            ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
            if (!ids) { rc = EXIT_NOMEM; goto done; }
            st = coder_fim_tokens(model, fim_pre, fim_suf, NULL, NULL, 0, NULL, ids, n_ids, &n_ids);
        }
        if (st != CODER_OK) {
            fprintf(stderr, "coder: fill-in-the-middle: %s\n", coder_last_error());
            rc = cli_exit_code(st, EXIT_RUNTIME);
            goto done;
        }
    }

    if (!a.json) {
        a.gp.on_piece = on_piece;
        a.gp.user_data = &out;
    }
    st = fim ? coder_generate_tokens(session, ids, n_ids, &a.gp, &r)
             : coder_generate(session, text, text_len, &a.gp, &r);
    sigint_session = NULL;
    if (out.broken_pipe == 1) { // the reader went away: a clean stop
        rc = EXIT_OK;
        goto done;
    }
    if (st != CODER_OK) {
        if (out.wrote_any) fputc('\n', stderr);
        fprintf(stderr, "coder: generation failed: %s\n", coder_last_error());
        rc = cli_exit_code(st, EXIT_RUNTIME);
        goto done;
    }
    if (a.json) print_json(&r, a.gp.seed, a.seed_given);
    else if (out.wrote_any && out.last != '\n' && stdout_meets_stderr()) fputc('\n', stderr);
    if (out.broken_pipe == 2) {
        fprintf(stderr, "coder: writing stdout: %s\n", strerror(errno));
        rc = EXIT_RUNTIME;
        goto done;
    }
    if (a.stats) print_stats(&r);
    if (a.prompt_cache && (rc = save_prompt_cache(&a, session, &r, cache_loaded)) != 0) goto done;
    if (r.stop_reason == CODER_STOP_CONTEXT_FULL && !a.json) fprintf(stderr, "coder: stopped: the context is full\n");
    rc = r.stop_reason == CODER_STOP_CANCELLED && sigint_seen ? EXIT_INTERRUPTED : EXIT_OK;

done:
    sigint_session = NULL;
    if (sigint_seen && rc != EXIT_INTERRUPTED && rc != EXIT_OK) rc = EXIT_INTERRUPTED;
    coder_result_clear(&r);
    coder_session_free(session);
    coder_model_free(model);
    free(text);
    free(chat_text);
    free(fim_pre);
    free(fim_suf);
    free(ids);
    free(a.stops);
    return rc;
}
