/* cmd_plan.c - `coder plan -m FILE [-c CTX|auto] [-b N] [-t N] [--kv-type T] [--gpu-layers N|auto|all]
 * [--host-mem MIB] [--device-mem MIB] [--json]`: prints the memory a configuration needs
 * (coder_plan_memory), reading only the GGUF header. With -c auto or --gpu-layers auto it prints
 * what coder_plan_fit chose for the budgets (measured free memory unless given) and why. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"

static void plan_usage(void) {
    fprintf(stderr, "usage: coder plan -m MODEL.gguf [-c CTX|auto] [-b BATCH] [-t THREADS] [--kv-type f16|f32|q8_0|q8_0-q4_0]\n"
                    "                  [--gpu-layers N|auto|all] [--host-mem MIB] [--device-mem MIB] [--no-mmap] [--json]\n"
                    "  auto: the largest context / GPU layer count that fit the memory budgets (default: the\n"
                    "  free memory, less a reserve), with the reason\n");
}

static double mib(uint64_t b) { return (double)b / 1048576.0; }

int cmd_plan(int argc, char **argv) {
    const char *path = NULL;
    int json = 0, host_mib = 0, dev_mib = 0;
    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.n_gpu_layers = 0;
    mp.use_mmap = 1;   /* plan for how `coder` loads (mapped); --no-mmap plans read mode */
    coder_session_params sp;
    coder_session_params_init(&sp);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ival = 0;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) { plan_usage(); return EXIT_OK; }
        else if (!strcmp(o, "--json")) json = 1;
        else if (!strcmp(o, "--no-mmap")) mp.use_mmap = 0;
        else if (!v) { fprintf(stderr, "coder plan: %s needs a value (or is unknown)\n", o); plan_usage(); return EXIT_USAGE; }
        else if (!strcmp(o, "-m")) { path = v; i++; }
        else if (!strcmp(o, "-c")) { if (cli_parse_ctx(o, v, &ival)) return EXIT_USAGE; sp.n_ctx = ival; i++; }
        else if (!strcmp(o, "--host-mem")) { if (cli_parse_int(o, v, 1, INT_MAX, &ival)) return EXIT_USAGE; host_mib = ival; i++; }
        else if (!strcmp(o, "--device-mem")) { if (cli_parse_int(o, v, 1, INT_MAX, &ival)) return EXIT_USAGE; dev_mib = ival; i++; }
        else if (!strcmp(o, "-b")) { if (cli_parse_int(o, v, 1, INT_MAX, &ival)) return EXIT_USAGE; sp.n_batch = ival; i++; }
        else if (!strcmp(o, "-t")) { if (cli_parse_int(o, v, 1, 4096, &ival)) return EXIT_USAGE; sp.n_threads = ival; i++; }
        else if (!strcmp(o, "--gpu-layers") || !strcmp(o, "-ngl")) { if (cli_parse_gpu_layers(o, v, &mp.n_gpu_layers)) return EXIT_USAGE; i++; }
        else if (!strcmp(o, "--kv-type")) {
            if (!strcmp(v, "f16")) sp.kv_type = CODER_KV_F16;
            else if (!strcmp(v, "f32")) sp.kv_type = CODER_KV_F32;
            else if (!strcmp(v, "q8_0")) sp.kv_type = CODER_KV_Q8_0;
            else if (!strcmp(v, "q8_0-q4_0")) sp.kv_type = CODER_KV_Q8_0_Q4_0;
            else { fprintf(stderr, "coder plan: --kv-type must be f16, f32, q8_0 or q8_0-q4_0\n"); return EXIT_USAGE; }
            i++;
        } else { fprintf(stderr, "coder plan: unknown option '%s'\n", o); plan_usage(); return EXIT_USAGE; }
    }
    if (!path) { fprintf(stderr, "coder plan: -m MODEL is required\n"); plan_usage(); return EXIT_USAGE; }
    cli_log_setup(1);
    coder_plan p;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    char why[512] = "";
    const int fit = sp.n_ctx == CODER_CTX_AUTO || mp.n_gpu_layers == -1;
    coder_status st = fit ? coder_plan_fit(path, &mp, &sp, (uint64_t)host_mib << 20, (uint64_t)dev_mib << 20, &p, why, sizeof why)
                          : coder_plan_memory(path, &mp, &sp, &p);
    if (st != CODER_OK) {
        fprintf(stderr, "coder plan: '%s': %s\n", path, coder_last_error());
        return cli_exit_code(st, EXIT_LOAD);
    }
    static const char *kvn[] = {"f16", "f32", "q8_0", "q8_0-q4_0"};
    if (json) {
        printf("{\"n_ctx\":%d,\"n_layers\":%d,\"gpu_layers\":%d,\"kv_type\":\"%s\",\"file_bytes\":%llu,"
               "\"weight_bytes\":%llu,\"kv_bytes_per_token\":%llu,\"kv_bytes_per_token_f16\":%llu,"
               "\"kv_bytes_per_token_f32\":%llu,\"kv_bytes_per_token_q8_0\":%llu,\"kv_bytes_per_token_q8_0_q4_0\":%llu,\"kv_bytes\":%llu,"
               "\"scratch_bytes\":%llu,\"model_bytes\":%llu,\"host_bytes\":%llu,\"device_bytes\":%llu",
               (int)p.n_ctx, (int)p.n_layers, (int)p.gpu_layers, kvn[p.kv_type], (unsigned long long)p.file_bytes,
               (unsigned long long)p.weight_bytes, (unsigned long long)p.kv_bytes_per_token,
               (unsigned long long)p.kv_bytes_per_token_by_type[0], (unsigned long long)p.kv_bytes_per_token_by_type[1],
               (unsigned long long)p.kv_bytes_per_token_by_type[2], (unsigned long long)p.kv_bytes_per_token_by_type[3],
               (unsigned long long)p.kv_bytes,
               (unsigned long long)p.scratch_bytes, (unsigned long long)p.model_bytes, (unsigned long long)p.host_bytes,
               (unsigned long long)p.device_bytes);
        if (fit) {
            printf(",\"auto\":");
            cli_json_string(stdout, why, strlen(why));
        }
        printf("}\n");
        return EXIT_OK;
    }
    printf("model:      %s (%d layers, %.1f MiB file, %.1f MiB weights)\n", path, (int)p.n_layers, mib(p.file_bytes),
           mib(p.weight_bytes));
    printf("context:    %d tokens, KV %s, %d layers on the GPU\n", (int)p.n_ctx, kvn[p.kv_type], (int)p.gpu_layers);
    printf("KV/token:   %llu bytes (f16 %llu, f32 %llu, q8_0 %llu, q8_0-q4_0 %llu)\n", (unsigned long long)p.kv_bytes_per_token,
           (unsigned long long)p.kv_bytes_per_token_by_type[0], (unsigned long long)p.kv_bytes_per_token_by_type[1],
           (unsigned long long)p.kv_bytes_per_token_by_type[2], (unsigned long long)p.kv_bytes_per_token_by_type[3]);
    printf("KV cache:   %.1f MiB\nscratch:    %.1f MiB\ntables:     %.1f MiB\n", mib(p.kv_bytes), mib(p.scratch_bytes),
           mib(p.model_bytes));
    printf("host:       %.1f MiB\ndevice:     %.1f MiB\n", mib(p.host_bytes), mib(p.device_bytes));
    if (fit) printf("auto:       %s\n", why);
    return EXIT_OK;
}
