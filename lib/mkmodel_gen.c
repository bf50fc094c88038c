/* mkmodel_gen.c - generates the weights of a synthetic model in parallel, straight into the file.
 *
 * Work is cut into chunks of whole rows (about 2^20 elements each); threads take chunks from an
 * atomic counter, generate them into a private buffer and pwrite them at the writer's offset.
 * Each chunk's generator is seeded from (seed, tensor, chunk), so the file is the same for any
 * thread count.
 *
 * Values (the element std of every matrix is about 0.02, like trained LLM weights):
 *   matrices, MKMODEL_MODE_QUANTIZE: N(0, 0.02) floats, quantized by quantize_row_ref;
 *   matrices, MKMODEL_MODE_RANDOM:   random bytes per block with its f16 scales (d, dmin) set so
 *                                    the dequantized values have std ~0.02 (x0.5..1.5 per block);
 *                                    F16 matrices get approximately normal values;
 *   norm weights: U(0.9, 1.1); biases: N(0, 0.02). Both F32 in every mode. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "mkmodel_impl.h"
#include "quant.h"

#define MKMODEL_CHUNK_ELEMS (1u << 20)
#define MKMODEL_STD 0.02f

typedef struct {
    size_t tensor;
    uint64_t r0, nr, id;
} mkmodel_chunk;

typedef struct {
    const mkmodel_plan *plan;
    mkmodel_chunk *chunks;
    size_t n_chunks;
    uint64_t max_elems, max_bytes;
    int fd;
    const char *path;
    uint64_t seed;
    mkmodel_mode mode;
    atomic_size_t next;
    atomic_int failed;
    pthread_mutex_t lock;
    coder_status status;
    char message[512];
} mkmodel_gen;

static inline uint64_t mkmodel_rng(uint64_t *s) {   /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double mkmodel_unif(uint64_t *s) { return ((mkmodel_rng(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

static void mkmodel_gauss(float *x, uint64_t n, float std, uint64_t *s) {
    for (uint64_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(mkmodel_unif(s))) * std, a = 2 * M_PI * mkmodel_unif(s);
        x[i] = (float)(r * cos(a));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(a));
    }
}

static void mkmodel_random_bytes(uint8_t *p, uint64_t n, uint64_t *s) {
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = mkmodel_rng(s);
        memcpy(p + i, &v, 8);
    }
    if (i < n) {
        uint64_t v = mkmodel_rng(s);
        memcpy(p + i, &v, (size_t)(n - i));
    }
}

static void mkmodel_put_f16(uint8_t *p, float v) {
    f16_t h = fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* Random blocks of a quantized type: random quants, then each block's f16 scale(s) set to
 * base * U(0.5, 1.5), base chosen from the std of the random quant values (uniform ints). */
static void mkmodel_random_blocks(uint32_t type, uint8_t *out, uint64_t n_elems, uint64_t *s) {
    uint32_t bs = quant_block_size(type), sz = quant_type_size(type);
    uint64_t nb = n_elems / bs;
    mkmodel_random_bytes(out, nb * sz, s);
    float base, dmin_ratio = 0;  /* K-quants: dmin = d * mean(q), so mins cancel on average */
    size_t d_off = 0;
    switch (type) {
    case QT_Q8_0: base = MKMODEL_STD / 73.9f; break;                /* std of U{-128..127} */
    case QT_Q4_0: base = MKMODEL_STD / 4.61f; break;                /* std of U{-8..7}     */
    case QT_Q5_0: base = MKMODEL_STD / 9.23f; break;                /* std of U{-16..15}   */
    case QT_Q4_K: base = MKMODEL_STD / (31.5f * 4.61f); dmin_ratio = 7.5f; break;
    case QT_Q5_K: base = MKMODEL_STD / (31.5f * 9.23f); dmin_ratio = 15.5f; break;
    case QT_Q6_K: base = MKMODEL_STD / (73.9f * 18.5f); d_off = 208; break;
    default: base = MKMODEL_STD / 73.9f; break;
    }
    uint64_t bits = 0;
    for (uint64_t b = 0; b < nb; b++) {
        if ((b & 7) == 0) bits = mkmodel_rng(s);
        float d = base * (0.5f + (float)((bits >> (8 * (b & 7))) & 0xff) / 256.0f);
        uint8_t *blk = out + b * sz;
        mkmodel_put_f16(blk + d_off, d);
        if (dmin_ratio > 0) mkmodel_put_f16(blk + 2, d * dmin_ratio);
    }
}

/* Approximately N(0, std): sum of four 16-bit uniforms (variance 4/12), scaled. */
static void mkmodel_random_f16(uint8_t *out, uint64_t n, uint64_t *s) {
    const float k = MKMODEL_STD * 1.7320508f / 65536.0f;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = mkmodel_rng(s);
        float u = (float)((v & 0xffff) + ((v >> 16) & 0xffff) + ((v >> 32) & 0xffff) + (v >> 48)) - 131070.0f;
        mkmodel_put_f16(out + 2 * i, u * k);
    }
}

static coder_status mkmodel_gen_chunk(mkmodel_gen *g, const mkmodel_chunk *c, float *fbuf, uint8_t *obuf) {
    const mkmodel_tensor *t = &g->plan->t[c->tensor];
    uint64_t s = g->seed ^ (0xD1B54A32D192ED03ull * (c->tensor + 1)) ^ (0x8CB92BA72F3D8DD7ull * (c->id + 1));
    mkmodel_rng(&s);
    uint64_t n = c->nr * t->ne[0];
    uint64_t rb = t->nbytes / t->ne[1];
    uint64_t nbytes = c->nr * rb;
    if (t->kind == MKMODEL_MATRIX && g->mode == MKMODEL_MODE_RANDOM && t->type != QT_F32) {
        if (t->type == QT_F16) mkmodel_random_f16(obuf, n, &s);
        else mkmodel_random_blocks(t->type, obuf, n, &s);
    } else {
        if (t->kind == MKMODEL_NORM)
            for (uint64_t i = 0; i < n; i++) fbuf[i] = 0.9f + 0.2f * (float)mkmodel_unif(&s);
        else
            mkmodel_gauss(fbuf, n, MKMODEL_STD, &s);
        coder_status st = quantize_row_ref(t->type, fbuf, obuf, (int64_t)n);
        if (st != CODER_OK) {
            coder_fail_context("mkmodel: tensor %s", t->name);
            return st;
        }
    }
    uint64_t off = t->file_offset + c->r0 * rb;
    const uint8_t *p = obuf;
    while (nbytes > 0) {
        ssize_t r = pwrite(g->fd, p, (size_t)nbytes, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return coder_fail(CODER_ERR_IO, "mkmodel: writing tensor %s to '%s' at offset %llu failed: %s", t->name,
                              g->path, (unsigned long long)off, r < 0 ? strerror(errno) : "no progress");
        p += r;
        off += (uint64_t)r;
        nbytes -= (uint64_t)r;
    }
    return CODER_OK;
}

static void *mkmodel_gen_worker(void *arg) {
    mkmodel_gen *g = arg;
    float *fbuf = coder_malloc((size_t)g->max_elems * sizeof(float));
    uint8_t *obuf = coder_malloc((size_t)g->max_bytes);
    coder_status st = (fbuf && obuf) ? CODER_OK : coder_fail(CODER_ERR_NOMEM, "mkmodel: no memory for a worker's buffers");
    while (st == CODER_OK && !atomic_load(&g->failed)) {
        size_t i = atomic_fetch_add(&g->next, 1);
        if (i >= g->n_chunks) break;
        st = mkmodel_gen_chunk(g, &g->chunks[i], fbuf, obuf);
    }
    if (st != CODER_OK) {
        /* messages are per thread: hand the first one to the caller's thread */
        pthread_mutex_lock(&g->lock);
        if (g->status == CODER_OK) {
            g->status = st;
            snprintf(g->message, sizeof g->message, "%s", coder_last_error());
        }
        pthread_mutex_unlock(&g->lock);
        atomic_store(&g->failed, 1);
    }
    coder_mfree(fbuf);
    coder_mfree(obuf);
    return NULL;
}

coder_status mkmodel_gen_run(const mkmodel_plan *plan, int fd, const char *path, uint64_t seed,
                             mkmodel_mode mode, int n_threads) {
    mkmodel_gen g = {.plan = plan, .fd = fd, .path = path, .seed = seed, .mode = mode};
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {   /* count, then fill */
        n = 0;
        for (size_t ti = 0; ti < plan->n; ti++) {
            const mkmodel_tensor *t = &plan->t[ti];
            uint64_t rpc = t->ne[0] >= MKMODEL_CHUNK_ELEMS ? 1 : MKMODEL_CHUNK_ELEMS / t->ne[0];
            for (uint64_t r0 = 0, id = 0; r0 < t->ne[1]; r0 += rpc, id++, n++) {
                uint64_t nr = t->ne[1] - r0 < rpc ? t->ne[1] - r0 : rpc;
                if (pass == 1) g.chunks[n] = (mkmodel_chunk){ti, r0, nr, id};
                uint64_t elems = nr * t->ne[0], bytes = nr * (t->nbytes / t->ne[1]);
                if (elems > g.max_elems) g.max_elems = elems;
                if (bytes > g.max_bytes) g.max_bytes = bytes;
            }
        }
        if (pass == 0) {
            g.chunks = coder_malloc((n ? n : 1) * sizeof *g.chunks);
            if (!g.chunks) return coder_fail(CODER_ERR_NOMEM, "mkmodel: no memory for %zu work items", n);
        }
    }
    g.n_chunks = n;
    atomic_init(&g.next, 0);
    atomic_init(&g.failed, 0);
    pthread_mutex_init(&g.lock, NULL);
    if (n_threads < 1) n_threads = 1;
    if ((size_t)n_threads > n) n_threads = n ? (int)n : 1;
    pthread_t *th = coder_malloc((size_t)n_threads * sizeof *th);
    int started = 0;
    if (th)
        for (int i = 1; i < n_threads; i++, started++)
            if (pthread_create(&th[i], NULL, mkmodel_gen_worker, &g) != 0) break;
    mkmodel_gen_worker(&g);   /* the caller is thread 0 (and the only one if none started) */
    for (int i = 1; i <= started; i++) pthread_join(th[i], NULL);
    coder_mfree(th);
    coder_mfree(g.chunks);
    pthread_mutex_destroy(&g.lock);
    if (g.status != CODER_OK) return coder_fail(g.status, "%s", g.message);
    return CODER_OK;
}
