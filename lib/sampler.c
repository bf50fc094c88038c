/* sampler.c - the sampling chain of sampler.h: penalties, top-k, top-p, min-p, temperature, draw.
 *
 * Cost per token on a 152k vocabulary: one copy + scan of the logits, then top-k by a k-element heap
 * (O(n log k), ~0.3 ms); without top-k, top-p sorts only a growing head of the list (256, 2048, ...)
 * until that head holds mass p, so a full sort happens only for very flat distributions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "sampler.h"

/* ---- generator: splitmix64 expands the seed into xoshiro256** state (both public domain
 * algorithms by Vigna; constants as published). ---------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void sampler_rng_seed(sampler_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t sampler_rng_next(sampler_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sampler_rng_uniform(sampler_rng *r) { return (double)(sampler_rng_next(r) >> 11) * 0x1.0p-53; }

/* ---- parameter checks ---------------------------------------------------------------------- */

coder_status sampler_check_params(const coder_gen_params *gp) {
    if (!gp) return coder_fail(CODER_ERR_INVALID_ARG, "gen_params is NULL");
    if (isnan(gp->temperature) || isinf(gp->temperature) || gp->temperature < 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.temperature = %g: must be finite and >= 0 (0 = greedy)",
                          (double)gp->temperature);
    if (isnan(gp->top_p) || gp->top_p < 0 || gp->top_p > 1)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.top_p = %g: must be in [0, 1]", (double)gp->top_p);
    if (isnan(gp->min_p) || gp->min_p < 0 || gp->min_p > 1)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.min_p = %g: must be in [0, 1]", (double)gp->min_p);
    if (isnan(gp->repeat_penalty) || isinf(gp->repeat_penalty) || gp->repeat_penalty <= 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.repeat_penalty = %g: must be finite and > 0 (1 = off)",
                          (double)gp->repeat_penalty);
    if (isnan(gp->frequency_penalty) || isinf(gp->frequency_penalty) || gp->frequency_penalty < 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.frequency_penalty = %g: must be finite and >= 0",
                          (double)gp->frequency_penalty);
    if (isnan(gp->presence_penalty) || isinf(gp->presence_penalty) || gp->presence_penalty < 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.presence_penalty = %g: must be finite and >= 0",
                          (double)gp->presence_penalty);
    if (gp->repeat_last_n < 0)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.repeat_last_n = %d: must be >= 0", (int)gp->repeat_last_n);
    if (gp->max_tokens < -1)
        return coder_fail(CODER_ERR_INVALID_ARG, "gen_params.max_tokens = %d: must be >= -1", (int)gp->max_tokens);
    return CODER_OK;
}

/* ---- stages -------------------------------------------------------------------------------- */

static int cmp_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

void sampler_penalize(float *logits, int32_t vocab, const int32_t *window, size_t n_window,
                      float repeat, float freq, float presence, int32_t *scratch) {
    if (n_window == 0) return;
    // Count by sorting a copy: the window is small (64 by default) and this needs no vocab-sized map.
    memcpy(scratch, window, n_window * sizeof *scratch);
    qsort(scratch, n_window, sizeof *scratch, cmp_int32);
    for (size_t i = 0; i < n_window;) {
        size_t j = i;
        while (j < n_window && scratch[j] == scratch[i]) j++;
        int32_t t = scratch[i];
        float count = (float)(j - i);
        i = j;
        if (t < 0 || t >= vocab) continue;
        float l = logits[t];
        l = l <= 0 ? l * repeat : l / repeat;
        logits[t] = l - (count * freq + presence);
    }
}

/* Descending logit, then ascending id: a strict total order, so every selection is deterministic. */
static bool better(const sampler_cand *a, const sampler_cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *a, const void *b) {
    const sampler_cand *x = a, *y = b;
    return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

/* Min-heap on `better` (root = worst kept) over h[0..k). */
static void heap_sift_down(sampler_cand *h, size_t k, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < k && better(&h[w], &h[l])) w = l;
        if (r < k && better(&h[w], &h[r])) w = r;
        if (w == i) return;
        sampler_cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Moves the k best of c[0..n) to c[0..k), sorted; the rest stay (permuted) in c[k..n). */
static void select_best(sampler_cand *c, size_t n, size_t k) {
    for (size_t i = k / 2; i-- > 0;) heap_sift_down(c, k, i);
    for (size_t i = k; i < n; i++) {
        if (better(&c[i], &c[0])) {
            sampler_cand t = c[0];
            c[0] = c[i];
            c[i] = t;
            heap_sift_down(c, k, 0);
        }
    }
    qsort(c, k, sizeof *c, cmp_cand);
}

void sampler_top_k(sampler_list *l, int32_t k) {
    if (k <= 0 || (size_t)k >= l->n) return;
    if (!l->sorted) select_best(l->c, l->n, (size_t)k);
    l->n = (size_t)k;
    l->sorted = true;
}

static float list_max(const sampler_list *l) {
    float m = -INFINITY;
    for (size_t i = 0; i < l->n; i++)
        if (l->c[i].logit > m) m = l->c[i].logit;
    return m;
}

/* Top-p given the list's max logit m and softmax normaliser z = sum exp(logit - m), which may come
 * from a longer list than l (see sampler_sample). */
static void top_p_with_z(sampler_list *l, float p, float m, double z) {
    // Sort only as much of the head as needed: grow it 8x until it holds mass p.
    size_t head = l->sorted ? l->n : 256;
    for (;;) {
        if (head >= l->n) {
            head = l->n;
            if (!l->sorted) qsort(l->c, l->n, sizeof *l->c, cmp_cand);
        } else {
            select_best(l->c, l->n, head);
        }
        double cum = 0;
        for (size_t i = 0; i < head; i++) {
            cum += exp((double)l->c[i].logit - m) / z;
            if (cum >= p) {
                l->n = i + 1;
                l->sorted = true;
                return;
            }
        }
        if (head == l->n) { // rounding kept the sum below p: keep everything
            l->sorted = true;
            return;
        }
        head *= 8;
    }
}

static double list_z(const sampler_list *l, float m) {
    double z = 0;
    for (size_t i = 0; i < l->n; i++) z += exp((double)l->c[i].logit - m);
    return z;
}

void sampler_top_p(sampler_list *l, float p) {
    if (p >= 1 || l->n <= 1) return;
    float m = list_max(l);
    top_p_with_z(l, p, m, list_z(l, m));
}

void sampler_min_p(sampler_list *l, float min_p) {
    if (min_p <= 0 || l->n <= 1) return;
    float thr = list_max(l) + logf(min_p);
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++) // keeps order, sorted or not; the max always survives
        if (l->c[i].logit >= thr) l->c[w++] = l->c[i];
    l->n = w;
}

static size_t best_index(const sampler_list *l) {
    size_t b = 0;
    for (size_t i = 1; i < l->n; i++)
        if (better(&l->c[i], &l->c[b])) b = i;
    return b;
}

int32_t sampler_pick(const sampler_list *l, float temperature, sampler_rng *rng) {
    size_t b = best_index(l);
    if (temperature <= 0 || l->n == 1) return l->c[b].id;
    double m = l->c[b].logit;
    if (!isfinite(m)) return l->c[b].id;
    // (logit - max) / T, not logit/T - max/T: a tiny T then sends the others to -inf, not to NaN.
    double z = 0;
    for (size_t i = 0; i < l->n; i++) z += exp(((double)l->c[i].logit - m) / temperature);
    double u = sampler_rng_uniform(rng) * z, cum = 0;
    if (!(z >= 1) || !isfinite(z)) return l->c[b].id; // the max alone contributes 1
    for (size_t i = 0; i < l->n; i++) {
        cum += exp(((double)l->c[i].logit - m) / temperature);
        if (cum > u) return l->c[i].id;
    }
    return l->c[b].id; // u within rounding of z
}

/* ---- the chain ----------------------------------------------------------------------------- */

struct sampler {
    float temperature, top_p, min_p, repeat, freq, presence;
    int32_t top_k, last_n, vocab;
    uint64_t seed;
    sampler_rng rng;
    int32_t *window;          /* ring of the last `last_n` accepted tokens */
    size_t n_window, window_pos;
    int32_t *scratch;         /* [last_n] for counting                     */
    float *logits;            /* [vocab] penalised copy                     */
    sampler_cand *cand;       /* [vocab]                                    */
};

static uint64_t random_seed(const void *salt) {
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s) return s;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)salt;
    return splitmix64(&x);
}

coder_status sampler_new(const coder_gen_params *gp, int32_t vocab, sampler **out) {
    if (!out) return coder_fail(CODER_ERR_INVALID_ARG, "sampler_new: out is NULL");
    *out = NULL;
    TRY(sampler_check_params(gp));
    if (vocab <= 0) return coder_fail(CODER_ERR_INVALID_ARG, "sampler_new: vocab = %d", (int)vocab);
    sampler *sm = coder_calloc(1, sizeof *sm);
    if (!sm) return coder_fail(CODER_ERR_NOMEM, "sampler: %zu bytes", sizeof *sm);
    sm->temperature = gp->temperature;
    sm->top_p = gp->top_p;
    sm->min_p = gp->min_p;
    sm->repeat = gp->repeat_penalty;
    sm->freq = gp->frequency_penalty;
    sm->presence = gp->presence_penalty;
    sm->top_k = gp->top_k;
    sm->vocab = vocab;
    bool penalties = gp->repeat_penalty != 1.0f || gp->frequency_penalty != 0 || gp->presence_penalty != 0;
    sm->last_n = penalties ? gp->repeat_last_n : 0;
    sm->seed = gp->seed == UINT64_MAX ? random_seed(sm) : gp->seed;
    sampler_rng_seed(&sm->rng, sm->seed);
    size_t nw = (size_t)sm->last_n;
    sm->window = coder_malloc((nw ? nw : 1) * sizeof *sm->window);
    sm->scratch = coder_malloc((nw ? nw : 1) * sizeof *sm->scratch);
    sm->logits = coder_malloc((size_t)vocab * sizeof *sm->logits);
    sm->cand = coder_malloc((size_t)vocab * sizeof *sm->cand);
    if (!sm->window || !sm->scratch || !sm->logits || !sm->cand) {
        sampler_free(sm);
        return coder_fail(CODER_ERR_NOMEM, "sampler buffers for vocab %d, repeat_last_n %zu", (int)vocab, nw);
    }
    *out = sm;
    return CODER_OK;
}

void sampler_free(sampler *sm) {
    if (!sm) return;
    coder_mfree(sm->window);
    coder_mfree(sm->scratch);
    coder_mfree(sm->logits);
    coder_mfree(sm->cand);
    coder_mfree(sm);
}

uint64_t sampler_seed(const sampler *sm) { return sm->seed; }

bool sampler_is_argmax(const sampler *sm) { return sm->temperature <= 0 && sm->last_n <= 0; }

void sampler_accept(sampler *sm, int32_t token) {
    if (sm->last_n <= 0) return;
    sm->window[sm->window_pos] = token;
    sm->window_pos = (sm->window_pos + 1) % (size_t)sm->last_n;
    if (sm->n_window < (size_t)sm->last_n) sm->n_window++;
}

bool sampler_top_select(const float *v, int32_t width, int32_t k, int32_t *ids, float *vals) {
    bool finite = true;
    int32_t n = 0;
    for (int32_t i = 0; i < width; i++) {
        const float f = v[i];
        finite &= isfinite(f) != 0;
        if (n == k && !(f > vals[k - 1])) continue;   /* equal: a lower index is already there */
        int32_t j = n < k ? n++ : k - 1;
        while (j > 0 && f > vals[j - 1]) {
            vals[j] = vals[j - 1];
            ids[j] = ids[j - 1];
            j--;
        }
        vals[j] = f;
        ids[j] = i;
    }
    return finite;
}

int32_t sampler_top_only(const sampler *sm, int32_t max_k) {
    return sm->temperature > 0 && sm->last_n <= 0 && sm->top_k >= 1 && sm->top_k <= max_k ? sm->top_k : 0;
}

/* Stages 3-6 (and 2, which a sorted list of at most top_k leaves alone) on the candidates. */
static int32_t sample_truncated(sampler *sm, sampler_list *l) {
    if (sm->temperature > 0) { // greedy ignores truncation: each stage keeps the best candidate
        sampler_top_k(l, sm->top_k);
        if (sm->top_p < 1 && sm->min_p > 0 && !l->sorted && l->n > 1) {
            // Same result, less sorting: top-p keeps a prefix of the sorted list and min-p keeps
            // {logit >= max + ln(min_p)}, also a prefix, both with the same max; so min-p may run
            // first as long as top-p normalises over the list it would have seen.
            float m = list_max(l);
            double z = list_z(l, m);
            sampler_min_p(l, sm->min_p);
            top_p_with_z(l, sm->top_p, m, z);
        } else {
            sampler_top_p(l, sm->top_p);
            sampler_min_p(l, sm->min_p);
        }
    }
    return sampler_pick(l, sm->temperature, &sm->rng);
}

coder_status sampler_sample_top(sampler *sm, const int32_t *ids, const float *vals, int32_t k, int32_t *token) {
    if (k < 1 || k > sm->vocab) return coder_fail(CODER_ERR_INTERNAL, "sampler_sample_top: %d candidates", (int)k);
    for (int32_t i = 0; i < k; i++) {
        sm->cand[i].id = ids[i];
        sm->cand[i].logit = vals[i];
    }
    sampler_list l = {sm->cand, (size_t)k, true};
    *token = sample_truncated(sm, &l);
    return CODER_OK;
}

coder_status sampler_sample(sampler *sm, const float *logits, int32_t *token) {
    const float *x = logits;
    if (sm->n_window > 0) { // the ring's order does not matter: only counts are used
        memcpy(sm->logits, logits, (size_t)sm->vocab * sizeof *sm->logits);
        sampler_penalize(sm->logits, sm->vocab, sm->window, sm->n_window, sm->repeat, sm->freq,
                         sm->presence, sm->scratch);
        x = sm->logits;
    }
    // One pass: reject NaN / +Inf (a fault upstream), build the candidates.
    bool any_finite = false;
    for (int32_t i = 0; i < sm->vocab; i++) {
        float v = x[i];
        if (isnan(v) || v == INFINITY)
            return coder_fail(CODER_ERR_NUMERIC, "logits[%d] is %s%s", (int)i, isnan(v) ? "NaN" : "+Inf",
                              x != logits && !isnan(logits[i]) && logits[i] != INFINITY ? " after penalties" : "");
        any_finite |= v != -INFINITY;
        sm->cand[i].id = i;
        sm->cand[i].logit = v;
    }
    if (!any_finite) return coder_fail(CODER_ERR_NUMERIC, "logits: all %d are -Inf", (int)sm->vocab);
    sampler_list l = {sm->cand, (size_t)sm->vocab, false};
    *token = sample_truncated(sm, &l);
    return CODER_OK;
}
