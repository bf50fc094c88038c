/* sampler.h - picks the next token from a logits vector, in llama.cpp's order (FORMATS.md §6):
 *   1. penalties (repeat / frequency / presence) over the last repeat_last_n tokens
 *   2. top-k   3. top-p   4. min-p        (all on the untempered logits)
 *   5. temperature (T <= 0: greedy, lowest id on ties)   6. softmax + seeded draw
 * The generator is xoshiro256** seeded through splitmix64, so a fixed seed gives the same draws on
 * every platform. One sampler belongs to one generation call (no shared state).
 *
 * The stage functions work on a candidate list and are exposed for the tests; generate.c only uses
 * sampler_new / sampler_accept / sampler_sample / sampler_free. */
#ifndef CODER_SAMPLER_H
#define CODER_SAMPLER_H

#include "core.h"

typedef struct sampler_cand {
    int32_t id;
    float logit;
} sampler_cand;

/* A candidate list; `sorted` means c[0..n) is in descending logit order (lowest id first on ties). */
typedef struct sampler_list {
    sampler_cand *c;
    size_t n;
    bool sorted;
} sampler_list;

/* The seeded generator: xoshiro256** state. */
typedef struct sampler_rng {
    uint64_t s[4];
} sampler_rng;

void sampler_rng_seed(sampler_rng *r, uint64_t seed);
uint64_t sampler_rng_next(sampler_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double sampler_rng_uniform(sampler_rng *r);

/* Checks every field the sampler and generation read. CODER_ERR_INVALID_ARG naming the field for:
 * temperature NaN/Inf/negative, top_p or min_p NaN or outside [0,1], repeat_penalty NaN/Inf/<= 0,
 * frequency/presence penalty NaN/Inf/negative, repeat_last_n < 0, max_tokens < -1. */
coder_status sampler_check_params(const coder_gen_params *gp);

/* Stage 1 on a full logits array (vocab entries, indexed by id): for every distinct token t in
 * window[0..n_window) with count c(t): logit <= 0 ? logit *= repeat : logit /= repeat, then
 * logit -= c(t)*freq + presence. Ids outside [0, vocab) in the window are ignored.
 * scratch holds n_window ints. */
void sampler_penalize(float *logits, int32_t vocab, const int32_t *window, size_t n_window,
                      float repeat, float freq, float presence, int32_t *scratch);

/* Stage 2: keeps the k best (sorted); k <= 0 or k >= n is a no-op. */
void sampler_top_k(sampler_list *l, int32_t k);
/* Stage 3: keeps the smallest sorted prefix whose softmax mass (over the current list) reaches p
 * (at least one); p >= 1 is a no-op. */
void sampler_top_p(sampler_list *l, float p);
/* Stage 4: keeps candidates with logit >= max + ln(min_p) (prob >= min_p * p_max); min_p <= 0 is a
 * no-op. Order is preserved. */
void sampler_min_p(sampler_list *l, float min_p);
/* Stages 5-6: temperature <= 0 returns the best candidate (lowest id on ties); otherwise a draw from
 * softmax(logit / T) over the list. Never returns an index outside the list (n must be >= 1). */
int32_t sampler_pick(const sampler_list *l, float temperature, sampler_rng *rng);

/* The whole chain with its buffers and the penalty window. */
typedef struct sampler sampler;

/* Copies the parameters it needs (gp is checked with sampler_check_params). A seed of UINT64_MAX
 * takes a random seed from the OS. */
coder_status sampler_new(const coder_gen_params *gp, int32_t vocab, sampler **out);
void sampler_free(sampler *sm);
/* Pushes a token into the penalty window (prompt tokens and generated ones). */
/* Whether the chain reduces to the argmax of the logits (temperature 0, no penalties): the
 * generator may then take the argmax where the logits are (session_eval_greedy). */
bool sampler_is_argmax(const sampler *sm);

/* The k best of v[0..width) into ids/vals (k <= width), as sampler_top_k orders them: descending,
 * the lowest index first on ties; one pass, inserting into the k kept so far. Returns whether
 * every value is finite (when not, the k are meaningless). */
bool sampler_top_select(const float *v, int32_t width, int32_t k, int32_t *ids, float *vals);

/* The k of a chain that starts with a top-k of at most max_k and has no penalties (temperature > 0,
 * 1 <= top_k <= max_k): sampler_sample_top then needs only those k best logits. 0 otherwise. */
int32_t sampler_top_only(const sampler *sm, int32_t max_k);
/* sampler_sample from the k best logits alone (ids/vals descending, the lowest id first on ties,
 * all finite, k = sampler_top_only's or all the vocabulary has when smaller): the same token as
 * sampler_sample on the whole logits, the same draw from the generator. */
coder_status sampler_sample_top(sampler *sm, const int32_t *ids, const float *vals, int32_t k, int32_t *token);

void sampler_accept(sampler *sm, int32_t token);
/* The seed actually used (the random one when UINT64_MAX was asked for). */
uint64_t sampler_seed(const sampler *sm);
/* Runs the chain on logits (vocab floats; not modified). CODER_ERR_NUMERIC naming the token when a
 * logit is NaN or +Inf (or becomes +Inf after penalties), or when every logit is -Inf. */
coder_status sampler_sample(sampler *sm, const float *logits, int32_t *token);

#endif
