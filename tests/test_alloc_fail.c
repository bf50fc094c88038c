/* test_alloc_fail.c - BAD_INPUTS H8: allocation failure injected at every allocation site of model
 * load (mmap, read and vocab-only modes), session creation, tokenization and the chat/FIM prompt
 * builders. For k = 0, 1, 2, ... coder_alloc_fail_after(k) lets k allocations succeed and fails
 * the rest, until the call succeeds. Each failure must be CODER_ERR_NOMEM with a message, a NULL
 * output handle, and the library's live-bytes counter back where it was (nothing held by the
 * failed call); LSan (the ASan build) checks the process at exit as well.
 *
 * The model is synthetic: `coder mkmodel --preset tiny-llama --type Q4_K_M` (lib/mkmodel.h) with
 * the llama-spm vocabulary from refdata, written to /tmp. */
#include <unistd.h>

#include "mkmodel.h"
#include "session.h"
#include "test.h"

static char model_path[256];
static const char *vocab_path;

static bool make_model(void) {
    if (model_path[0]) return true;
    const char *d = test_refdata();
    if (!d) return false;
    static char vp[4096];
    snprintf(vp, sizeof vp, "%s/vocab/ggml-vocab-llama-spm.gguf", d);
    if (access(vp, R_OK) != 0) return false;
    vocab_path = vp;
    char path[256];
    snprintf(path, sizeof path, "/tmp/test_alloc_fail_%d.gguf", (int)getpid());
    mkmodel_opts o = {.preset = "tiny-llama", .ftype = MKMODEL_Q4_K_M, .vocab_path = vp,
                      .out_path = path, .seed = 7, .mode = MKMODEL_MODE_RANDOM, .n_threads = 1};
    if (mkmodel_write(&o, NULL) != CODER_OK) {
        printf("# mkmodel: %s\n", coder_last_error());
        return false;
    }
    snprintf(model_path, sizeof model_path, "%s", path);
    return true;
}
#define NEED_MODEL()                                                                               \
    do {                                                                                           \
        if (!make_model()) SKIP("refdata vocab ggml-vocab-llama-spm.gguf absent (set CODER_REFDATA)"); \
    } while (0)

/* One injected failure: the status must be NOMEM with a message and nothing still held. */
#define CHECK_NOMEM_CLEAN(st, before, what, k)                                                     \
    do {                                                                                           \
        CHECK_MSG((st) == CODER_ERR_NOMEM, "%s, failing after %ld allocations: status %d (%s)",    \
                  what, (long)(k), (int)(st), coder_last_error());                                 \
        CHECK_MSG(coder_last_error()[0] != 0, "%s: empty message", what);                          \
        CHECK_MSG(coder_alloc_current_bytes() == (before), "%s, failing after %ld: %zu bytes "     \
                  "still held (before %zu)", what, (long)(k), coder_alloc_current_bytes(), (size_t)(before)); \
    } while (0)

#define MAX_SITES 100000L

static void load_every_site(int use_mmap, int vocab_only, long *n_sites, long *n_fail_out) {
    coder_model_params p;
    coder_model_params_init(&p);
    p.use_mmap = use_mmap;
    p.vocab_only = vocab_only;
    p.n_gpu_layers = 0;
    *n_sites = -1;
    for (long k = 0; k < MAX_SITES; k++) {
        size_t before = coder_alloc_current_bytes();
        coder_model *m = (coder_model *)0x1;
        coder_alloc_fail_after(k);
        coder_status st = coder_model_load(model_path, &p, &m);
        coder_alloc_fail_after(-1);
        if (st == CODER_OK) {
            coder_model_free(m);
            CHECK_MSG(coder_alloc_current_bytes() == before, "load/free leaves %zu bytes (before %zu)",
                      coder_alloc_current_bytes(), before);
            *n_sites = k;
            return;
        }
        CHECK_MSG(m == NULL, "handle not NULL after a failed load (k=%ld)", k);
        CHECK_NOMEM_CLEAN(st, before, "coder_model_load", k);
        (*n_fail_out)++;
    }
}

TEST(model_load_every_allocation) {
    NEED_MODEL();
    static const struct { int mmap, vocab_only; const char *name; } modes[] = {
        {1, 0, "mmap"}, {0, 0, "read"}, {1, 1, "vocab_only"}};
    for (size_t i = 0; i < 3; i++) {
        long sites = -1, fails = 0;
        load_every_site(modes[i].mmap, modes[i].vocab_only, &sites, &fails);
        if (test_state) return;
        CHECK_MSG(sites > 10, "%s: succeeded after only %ld allocations", modes[i].name, sites);
        CHECK(fails == sites);
        printf("  model load (%s): %ld allocation sites, each failure NOMEM and clean\n", modes[i].name, sites);
    }
}

/* Every allocation of coder_session_new fails in turn: NOMEM, nothing held, the model free of
 * references. g > 0: a session split after the first n_layers - g layers (two CPU backends, as
 * partial offload makes them: test_split.c), whose stages and hand-over buffer are freed too. */
static void session_every_site(coder_model *m, int32_t g) {
    coder_session_params sp;
    coder_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.n_threads = 2;   /* the thread pool's allocations too */
    long sites = -1;
    coder_session *s = NULL;
    bool ok = true;
    char fail_msg[512] = "";
    m->gpu_layers = g;   /* read by backend_stages_new only */
    for (long k = 0; k < MAX_SITES && ok; k++) {
        size_t before = coder_alloc_current_bytes();
        s = (coder_session *)0x1;
        coder_alloc_fail_after(k);
        coder_status st = coder_session_new(m, &sp, &s);
        coder_alloc_fail_after(-1);
        if (st == CODER_OK) {
            sites = k;
            break;
        }
        if (st != CODER_ERR_NOMEM || s != NULL || !coder_last_error()[0] ||
            coder_alloc_current_bytes() != before || atomic_load(&m->n_sessions) != 0) {
            snprintf(fail_msg, sizeof fail_msg, "k=%ld: status %d, handle %p, held %zu (before %zu), "
                     "n_sessions %d: %s", k, (int)st, (void *)s, coder_alloc_current_bytes(), before,
                     atomic_load(&m->n_sessions), coder_last_error());
            ok = false;
        }
    }
    m->gpu_layers = 0;
    /* the session that finally succeeded works */
    int32_t ids[3] = {1, 100, 200};
    coder_status ev = s && ok ? coder_session_eval(s, ids, 3) : CODER_ERR_INTERNAL;
    const int stages = s && ok ? s->stages.n : 0;
    coder_session_free(s);
    CHECK_MSG(ok, "%s", fail_msg);
    CHECK_MSG(sites > 3, "session_new succeeded after %ld allocations", sites);
    CHECK_OK(ev);
    CHECK(stages == (g ? 2 : 1));
    printf("  session_new (%d stage%s): %ld allocation sites, each failure NOMEM and clean\n", stages, stages > 1 ? "s" : "", sites);
}

TEST(session_new_every_allocation) {
    NEED_MODEL();
    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.n_gpu_layers = 0;
    coder_model *m = NULL;
    CHECK_OK(coder_model_load(model_path, &mp, &m));
    session_every_site(m, 0);
    if (!test_state) session_every_site(m, m->hp.n_layers / 2);
    CHECK_OK(coder_model_free(m));   /* BUSY if a failed session_new kept a reference */
}

/* Tokenize, chat and FIM builders: each allocation failure is NOMEM and frees what it took; the
 * final success gives the same ids as an uninjected call (so failures left no state behind). */
TEST(tokenize_and_prompts_every_allocation) {
    NEED_MODEL();
    coder_model_params mp;
    coder_model_params_init(&mp);
    mp.vocab_only = 1;
    coder_model *m = NULL;
    CHECK_OK(coder_model_load(model_path, &mp, &m));
    static const char text[] = "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)  # \xc3\xa9\xe2\x82\xac";
    int32_t ref[256], ids[256];
    size_t n_ref = 0, n = 0;
    coder_chat_message msgs[2] = {{"system", "You are terse."}, {"user", "Write fib in C."}};
    bool ok = coder_tokenize(m, text, sizeof text - 1, CODER_TOKENIZE_ADD_SPECIAL, ref, 256, &n_ref) == CODER_OK;
    char msg[512] = "";
    long sites[2] = {-1, -1};
    for (int which = 0; which < 2 && ok; which++) {
        size_t n_want = n_ref;
        if (which == 1) ok = coder_chat_tokens(m, CODER_CHAT_LLAMA2, msgs, 2, CODER_CHAT_ADD_GENERATION_PROMPT,
                                               ref, 256, &n_want) == CODER_OK;
        for (long k = 0; k < MAX_SITES && ok; k++) {
            size_t before = coder_alloc_current_bytes();
            coder_alloc_fail_after(k);
            coder_status st = which == 0
                ? coder_tokenize(m, text, sizeof text - 1, CODER_TOKENIZE_ADD_SPECIAL, ids, 256, &n)
                : coder_chat_tokens(m, CODER_CHAT_LLAMA2, msgs, 2, CODER_CHAT_ADD_GENERATION_PROMPT, ids, 256, &n);
            coder_alloc_fail_after(-1);
            if (st == CODER_OK) {
                sites[which] = k;
                if (n != n_want || memcmp(ids, ref, n * sizeof *ids) != 0) {
                    snprintf(msg, sizeof msg, "call %d: ids after the failures differ", which);
                    ok = false;
                }
                break;
            }
            if (st != CODER_ERR_NOMEM || coder_alloc_current_bytes() != before) {
                snprintf(msg, sizeof msg, "call %d k=%ld: status %d, held %zu (before %zu): %s", which, k,
                         (int)st, coder_alloc_current_bytes(), before, coder_last_error());
                ok = false;
            }
        }
    }
    coder_model_free(m);
    CHECK_MSG(ok, "%s", msg);
    CHECK(sites[0] >= 1 && sites[1] >= 1);
    printf("  tokenize: %ld allocation sites, chat_tokens: %ld\n", sites[0], sites[1]);
}

int main(void) {
    RUN(model_load_every_allocation);
    RUN(session_new_every_allocation);
    RUN(tokenize_and_prompts_every_allocation);
    if (model_path[0]) unlink(model_path);
    return test_summary();
}
