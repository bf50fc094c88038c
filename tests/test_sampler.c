/* test_sampler.c - each sampling stage on tiny hand-made logits whose answer is obvious, the order
 * of the chain, seeded determinism, distribution sanity (chi-square), penalties and bad params. */
#include <math.h>

#include "sampler.h"
#include "test.h"

static coder_gen_params neutral_params(void) {
    coder_gen_params gp;
    memset(&gp, 0, sizeof gp);
    gp.size = sizeof gp;
    gp.max_tokens = 16;
    gp.temperature = 1;
    gp.top_k = 0;
    gp.top_p = 1;
    gp.min_p = 0;
    gp.repeat_penalty = 1;
    gp.repeat_last_n = 64;
    gp.seed = 1234;
    return gp;
}

static sampler_list make_list(sampler_cand *c, const float *logits, size_t n) {
    for (size_t i = 0; i < n; i++) {
        c[i].id = (int32_t)i;
        c[i].logit = logits[i];
    }
    return (sampler_list){c, n, false};
}


TEST(rng_splitmix_vector) {
    // splitmix64 seeded with 0 yields 0xE220A8397B1DCDAF first (published test vector); our xoshiro
    // state s[0] is exactly that value.
    sampler_rng r;
    sampler_rng_seed(&r, 0);
    CHECK(r.s[0] == 0xE220A8397B1DCDAFull);
    CHECK(r.s[1] == 0x6E789E6AA1B965F4ull);
}

TEST(rng_uniform_moments) {
    sampler_rng r;
    sampler_rng_seed(&r, 7);
    double sum = 0, sum2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = sampler_rng_uniform(&r);
        CHECK(u >= 0 && u < 1);
        sum += u;
        sum2 += u * u;
    }
    CHECK_NEAR(sum / n, 0.5, 0.005, 0);
    CHECK_NEAR(sum2 / n - (sum / n) * (sum / n), 1.0 / 12, 0.002, 0);
}

TEST(penalties_exact) {
    float l[5] = {2, -2, 1, 0.5f, 3};
    int32_t window[] = {0, 1, 0, 3, 99, -5}, scratch[6];
    sampler_penalize(l, 5, window, 6, 2.0f, 0.5f, 1.0f, scratch);
    CHECK_NEAR(l[0], 2.0 / 2 - (2 * 0.5 + 1), 1e-6, 0); // count 2, positive: divided
    CHECK_NEAR(l[1], -2.0 * 2 - (1 * 0.5 + 1), 1e-6, 0); // count 1, negative: multiplied
    CHECK_NEAR(l[2], 1, 0, 0);                           // not in the window
    CHECK_NEAR(l[3], 0.5 / 2 - 1.5, 1e-6, 0);
    CHECK_NEAR(l[4], 3, 0, 0);
    float z[2] = {0, 0};
    int32_t w2[] = {0};
    sampler_penalize(z, 2, w2, 1, 1.5f, 0, 0, scratch); // 0 <= 0: multiplied, stays 0
    CHECK(z[0] == 0);
}

TEST(top_k_keeps_best_lowest_id_on_ties) {
    float logits[] = {1, 5, 3, 5, 2};
    sampler_cand c[5];
    sampler_list l = make_list(c, logits, 5);
    sampler_top_k(&l, 2);
    CHECK(l.n == 2 && l.sorted);
    CHECK(l.c[0].id == 1 && l.c[1].id == 3);
    l = make_list(c, logits, 5);
    sampler_top_k(&l, 0);
    CHECK(l.n == 5);
    sampler_top_k(&l, 9);
    CHECK(l.n == 5);
    l = make_list(c, logits, 5);
    sampler_top_k(&l, 3);
    CHECK(l.n == 3 && l.c[2].id == 2);
}

TEST(top_p_smallest_prefix) {
    // probabilities 0.5, 0.3, 0.15, 0.05 in shuffled id order
    float logits[] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    sampler_cand c[4];
    struct { float p; size_t n; } cases[] = {{0.0f, 1}, {0.4f, 1}, {0.75f, 2}, {0.9f, 3}, {0.97f, 4}, {1.0f, 4}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sampler_list l = make_list(c, logits, 4);
        sampler_top_p(&l, cases[k].p);
        CHECK_MSG(l.n == cases[k].n, "p=%g kept %zu want %zu", (double)cases[k].p, l.n, cases[k].n);
    }
    sampler_list l = make_list(c, logits, 4);
    sampler_top_p(&l, 0.9f);
    CHECK(l.c[0].id == 1 && l.c[1].id == 3 && l.c[2].id == 0);
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

TEST(top_p_large_flat_list) {
    // Nearly flat: top-p 0.9 needs ~90% of 5000 candidates, beyond the 256 and 2048 heads.
    enum { N = 5000 };
    static float logits[N];
    static double ref[N];
    static sampler_cand c[N];
    sampler_rng r;
    sampler_rng_seed(&r, 99);
    for (int i = 0; i < N; i++) logits[i] = (float)(sampler_rng_uniform(&r) * 0.5);
    // reference: float64 probabilities sorted descending, count the prefix reaching 0.9
    double z = 0, m = 0;
    for (int i = 0; i < N; i++) m = fmax(m, logits[i]);
    for (int i = 0; i < N; i++) z += exp(logits[i] - m);
    for (int i = 0; i < N; i++) ref[i] = exp(logits[i] - m) / z;
    qsort(ref, N, sizeof ref[0], cmp_desc);
    size_t want = N;
    double cum = 0;
    for (int i = 0; i < N; i++) {
        cum += ref[i];
        if (cum >= 0.9) { want = (size_t)i + 1; break; }
    }
    CHECK(want > 2048);
    sampler_list l = make_list(c, logits, N);
    sampler_top_p(&l, 0.9f);
    CHECK_MSG(l.n == want, "kept %zu want %zu", l.n, want);
    for (size_t i = 1; i < l.n; i++) CHECK(l.c[i - 1].logit >= l.c[i].logit);
    // and a peaked list that the first 256-head already covers
    for (int i = 0; i < N; i++) logits[i] = i == 4321 ? 20.0f : (float)(sampler_rng_uniform(&r));
    l = make_list(c, logits, N);
    sampler_top_p(&l, 0.5f);
    CHECK(l.n == 1 && l.c[0].id == 4321);
}

TEST(min_p_threshold_keeps_order) {
    float logits[] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    sampler_cand c[4];
    sampler_list l = make_list(c, logits, 4);
    sampler_min_p(&l, 0.2f); // keeps p >= 0.1: ids 0, 1, 3 in original order
    CHECK(l.n == 3 && l.c[0].id == 0 && l.c[1].id == 1 && l.c[2].id == 3);
    l = make_list(c, logits, 4);
    sampler_min_p(&l, 0.7f); // p >= 0.35: only id 1
    CHECK(l.n == 1 && l.c[0].id == 1);
    l = make_list(c, logits, 4);
    sampler_min_p(&l, 0);
    CHECK(l.n == 4);
}

TEST(pick_greedy_ties_lowest_id) {
    float logits[] = {1, 7, 3, 7};
    sampler_cand c[4];
    sampler_list l = make_list(c, logits, 4);
    sampler_rng r;
    sampler_rng_seed(&r, 1);
    CHECK(sampler_pick(&l, 0, &r) == 1);
    CHECK(sampler_pick(&l, -1, &r) == 1);
}

/* chi-square over `draws` samples against expected probabilities; 3 dof, p = 0.001 -> 16.27 */
static double chi2_draws(sampler *sm, const float *logits, const double *p, int k, int draws) {
    int count[8] = {0};
    for (int i = 0; i < draws; i++) {
        int32_t t = -1;
        if (sampler_sample(sm, logits, &t) != CODER_OK || t < 0 || t >= k) return 1e9;
        count[t]++;
    }
    double chi2 = 0;
    for (int i = 0; i < k; i++) {
        double e = p[i] * draws;
        chi2 += (count[i] - e) * (count[i] - e) / e;
    }
    return chi2;
}

TEST(distribution_matches_softmax) {
    float logits[] = {logf(0.5f), logf(0.25f), logf(0.125f), logf(0.125f)};
    double p1[] = {0.5, 0.25, 0.125, 0.125};
    coder_gen_params gp = neutral_params();
    sampler *sm = NULL;
    CHECK_OK(sampler_new(&gp, 4, &sm));
    double c1 = chi2_draws(sm, logits, p1, 4, 40000);
    sampler_free(sm);
    CHECK_MSG(c1 < 16.27, "chi2 %g at T=1", c1);
    // T = 2: p ~ sqrt(p1)
    gp.temperature = 2;
    double p2[4], z = 0;
    for (int i = 0; i < 4; i++) z += p2[i] = sqrt(p1[i]);
    for (int i = 0; i < 4; i++) p2[i] /= z;
    CHECK_OK(sampler_new(&gp, 4, &sm));
    double c2 = chi2_draws(sm, logits, p2, 4, 40000);
    sampler_free(sm);
    CHECK_MSG(c2 < 16.27, "chi2 %g at T=2", c2);
    // and the T=1 probabilities are clearly rejected at T=2 (the test can fail)
    CHECK_OK(sampler_new(&gp, 4, &sm));
    double c3 = chi2_draws(sm, logits, p1, 4, 40000);
    sampler_free(sm);
    CHECK_MSG(c3 > 100, "chi2 %g: T=2 draws look like T=1", c3);
}

TEST(truncation_before_temperature) {
    // probs 0.5 0.3 0.15 0.05; top-p 0.75 on the untempered distribution keeps ids {1,3}. A very hot
    // temperature applied first would flatten them and let ids 0 and 2 in.
    float logits[] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    coder_gen_params gp = neutral_params();
    gp.top_p = 0.75f;
    gp.temperature = 100;
    sampler *sm = NULL;
    CHECK_OK(sampler_new(&gp, 4, &sm));
    int count[4] = {0};
    for (int i = 0; i < 4000; i++) {
        int32_t t;
        CHECK_OK(sampler_sample(sm, logits, &t));
        count[t]++;
    }
    sampler_free(sm);
    CHECK_MSG(count[0] == 0 && count[2] == 0, "ids 0/2 drawn %d/%d times", count[0], count[2]);
    // T = 100 makes the two survivors nearly equal: 2000 +- ~100
    CHECK_MSG(count[1] > 1800 && count[3] > 1800, "split %d/%d", count[1], count[3]);
    // same with min-p: 0.5 threshold keeps p >= 0.25 -> ids {1,3}; top-k 2 likewise
    gp.top_p = 1;
    gp.min_p = 0.5f;
    CHECK_OK(sampler_new(&gp, 4, &sm));
    for (int i = 0; i < 1000; i++) {
        int32_t t;
        CHECK_OK(sampler_sample(sm, logits, &t));
        CHECK(t == 1 || t == 3);
    }
    sampler_free(sm);
    gp.min_p = 0;
    gp.top_k = 2;
    CHECK_OK(sampler_new(&gp, 4, &sm));
    for (int i = 0; i < 1000; i++) {
        int32_t t;
        CHECK_OK(sampler_sample(sm, logits, &t));
        CHECK(t == 1 || t == 3);
    }
    sampler_free(sm);
}

/* The chain with both top-p and min-p takes a shortcut (min-p first, top-p normalised over the
 * longer list); a very hot temperature makes the survivors uniform, so 40000 draws must hit exactly
 * the set the plain stages (top-p, then min-p) keep. */
TEST(top_p_min_p_shortcut_same_set) {
    enum { V = 3000 };
    static float logits[V];
    static sampler_cand c[V];
    static unsigned char in_ref[V], seen[V];
    float cases[][2] = {{0.9f, 0.05f}, {0.5f, 0.2f}, {0.99f, 0.01f}, {0.3f, 0.001f}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sampler_rng r;
        sampler_rng_seed(&r, 100 + k);
        for (int i = 0; i < V; i++) logits[i] = (float)(sampler_rng_uniform(&r) * 9);
        sampler_list l = make_list(c, logits, V);
        sampler_top_p(&l, cases[k][0]);
        sampler_min_p(&l, cases[k][1]);
        memset(in_ref, 0, sizeof in_ref);
        memset(seen, 0, sizeof seen);
        for (size_t i = 0; i < l.n; i++) in_ref[l.c[i].id] = 1;
        size_t n_ref = l.n, n_seen = 0;
        CHECK_MSG(n_ref > 1 && n_ref < 2000, "case %zu: %zu kept", k, n_ref);
        coder_gen_params gp = neutral_params();
        gp.top_p = cases[k][0];
        gp.min_p = cases[k][1];
        gp.temperature = 1e6f;
        sampler *sm = NULL;
        CHECK_OK(sampler_new(&gp, V, &sm));
        for (int i = 0; i < 40000; i++) {
            int32_t t;
            CHECK_OK(sampler_sample(sm, logits, &t));
            CHECK_MSG(in_ref[t], "case %zu: drew %d outside the reference set", k, (int)t);
            if (!seen[t]) { seen[t] = 1; n_seen++; }
        }
        sampler_free(sm);
        CHECK_MSG(n_seen == n_ref, "case %zu: drew %zu distinct of %zu", k, n_seen, n_ref);
        printf("INFO shortcut case %zu: top_p %.3g min_p %.3g keep %zu\n", k, (double)cases[k][0], (double)cases[k][1], n_ref);
    }
}

TEST(seeded_determinism) {
    enum { V = 1000, N = 200 };
    static float logits[V];
    sampler_rng r;
    sampler_rng_seed(&r, 5);
    for (int i = 0; i < V; i++) logits[i] = (float)(sampler_rng_uniform(&r) * 4);
    coder_gen_params gp = neutral_params();
    gp.top_k = 40;
    gp.top_p = 0.95f;
    gp.min_p = 0.05f;
    int32_t a[N], b[N], c[N];
    int32_t *outs[3] = {a, b, c};
    uint64_t seeds[3] = {42, 42, 43};
    for (int k = 0; k < 3; k++) {
        gp.seed = seeds[k];
        sampler *sm = NULL;
        CHECK_OK(sampler_new(&gp, V, &sm));
        CHECK(sampler_seed(sm) == seeds[k]);
        for (int i = 0; i < N; i++) CHECK_OK(sampler_sample(sm, logits, &outs[k][i]));
        sampler_free(sm);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    // UINT64_MAX asks for a random seed: two samplers get different ones
    gp.seed = UINT64_MAX;
    sampler *s1 = NULL, *s2 = NULL;
    CHECK_OK(sampler_new(&gp, V, &s1));
    CHECK_OK(sampler_new(&gp, V, &s2));
    bool differ = sampler_seed(s1) != sampler_seed(s2);
    sampler_free(s1);
    sampler_free(s2);
    CHECK(differ);
}

/* Sampling from the k best logits alone (what a backend's topk op returns) draws the same tokens
 * as sampling from all of them: same seed, every truncation setting, ties in the logits. */
TEST(top_only_same_draws) {
    enum { V = 3000, N = 300 };
    static float logits[V];
    static sampler_cand all[V];
    sampler_rng r;
    sampler_rng_seed(&r, 11);
    for (int i = 0; i < V; i++) logits[i] = (float)(int)(sampler_rng_uniform(&r) * 64) * 0.125f;   /* many ties */
    static const struct { int32_t k; float top_p, min_p, temp; } cases[] = {
        {40, 0.95f, 0.05f, 0.8f}, {64, 1.0f, 0.0f, 1.0f}, {1, 0.9f, 0.1f, 0.7f}, {17, 0.5f, 0.0f, 1.3f}, {64, 0.99f, 0.2f, 0.4f}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        coder_gen_params gp = neutral_params();
        gp.top_k = cases[c].k;
        gp.top_p = cases[c].top_p;
        gp.min_p = cases[c].min_p;
        gp.temperature = cases[c].temp;
        gp.seed = 1000 + c;
        sampler *full = NULL, *top = NULL;
        CHECK_OK(sampler_new(&gp, V, &full));
        CHECK_OK(sampler_new(&gp, V, &top));
        CHECK(sampler_top_only(top, 64) == cases[c].k);
        /* the k best as the sampler's own top-k orders them */
        sampler_list l = make_list(all, logits, V);
        sampler_top_k(&l, cases[c].k);
        int32_t ids[64];
        float vals[64];
        for (size_t i = 0; i < l.n; i++) ids[i] = l.c[i].id, vals[i] = l.c[i].logit;
        for (int i = 0; i < N; i++) {
            int32_t a = -1, b = -2;
            CHECK_OK(sampler_sample(full, logits, &a));
            CHECK_OK(sampler_sample_top(top, ids, vals, (int32_t)l.n, &b));
            CHECK_MSG(a == b, "case %zu draw %d: %d from all logits, %d from the top %d", c, i, a, b, (int)l.n);
        }
        sampler_free(full);
        sampler_free(top);
    }
    /* chains the shortcut does not cover */
    coder_gen_params gp = neutral_params();
    sampler *sm = NULL;
    gp.top_k = 0;
    CHECK_OK(sampler_new(&gp, V, &sm));
    CHECK(sampler_top_only(sm, 64) == 0);   /* no top-k */
    sampler_free(sm);
    gp.top_k = 65;
    CHECK_OK(sampler_new(&gp, V, &sm));
    CHECK(sampler_top_only(sm, 64) == 0);   /* more than the backend returns */
    sampler_free(sm);
    gp.top_k = 40;
    gp.repeat_penalty = 1.1f;
    CHECK_OK(sampler_new(&gp, V, &sm));
    CHECK(sampler_top_only(sm, 64) == 0);   /* penalties need every logit */
    sampler_free(sm);
    gp.repeat_penalty = 1.0f;
    gp.temperature = 0;
    CHECK_OK(sampler_new(&gp, V, &sm));
    CHECK(sampler_top_only(sm, 64) == 0);   /* greedy: argmax */
    sampler_free(sm);
}

TEST(chain_penalties_window) {
    float logits[] = {3, 2.9f, 0, 0, 0, 0};
    coder_gen_params gp = neutral_params();
    gp.temperature = 0;
    gp.repeat_penalty = 1.1f; // 3/1.1 = 2.727 < 2.9
    gp.repeat_last_n = 2;
    sampler *sm = NULL;
    CHECK_OK(sampler_new(&gp, 6, &sm));
    int32_t t;
    CHECK_OK(sampler_sample(sm, logits, &t));
    CHECK(t == 0);
    sampler_accept(sm, 0);
    CHECK_OK(sampler_sample(sm, logits, &t));
    CHECK(t == 1);
    sampler_accept(sm, 5);
    sampler_accept(sm, 5); // token 0 has left the 2-token window
    CHECK_OK(sampler_sample(sm, logits, &t));
    CHECK(t == 0);
    sampler_free(sm);
    // presence penalty alone: 3 - 0.2 = 2.8 < 2.9
    gp.repeat_penalty = 1;
    gp.presence_penalty = 0.2f;
    CHECK_OK(sampler_new(&gp, 6, &sm));
    sampler_accept(sm, 0);
    CHECK_OK(sampler_sample(sm, logits, &t));
    CHECK(t == 1);
    sampler_free(sm);
    // frequency penalty scales with the count: one 0 -> 3-0.05 > 2.9; three 0s -> 2.85 < 2.9
    gp.presence_penalty = 0;
    gp.frequency_penalty = 0.05f;
    gp.repeat_last_n = 8;
    CHECK_OK(sampler_new(&gp, 6, &sm));
    sampler_accept(sm, 0);
    CHECK_OK(sampler_sample(sm, logits, &t));
    CHECK(t == 0);
    sampler_accept(sm, 0);
    sampler_accept(sm, 0);
    CHECK_OK(sampler_sample(sm, logits, &t));
    CHECK(t == 1);
    sampler_free(sm);
}

TEST(bad_params) {
    coder_gen_params gp;
    sampler *sm = (sampler *)1;
#define BAD(stmt, field)                                                                           \
    gp = neutral_params();                                                                         \
    stmt;                                                                                          \
    CHECK_STATUS(sampler_check_params(&gp), CODER_ERR_INVALID_ARG);                                \
    CHECK_MSG(strstr(coder_last_error(), field) != NULL, "message '%s'", coder_last_error());      \
    CHECK_STATUS(sampler_new(&gp, 10, &sm), CODER_ERR_INVALID_ARG);                                \
    CHECK(sm == NULL);
    BAD(gp.temperature = NAN, "temperature");
    BAD(gp.temperature = -0.5f, "temperature");
    BAD(gp.temperature = INFINITY, "temperature");
    BAD(gp.top_p = NAN, "top_p");
    BAD(gp.top_p = 1.5f, "top_p");
    BAD(gp.top_p = -0.1f, "top_p");
    BAD(gp.min_p = 2, "min_p");
    BAD(gp.min_p = NAN, "min_p");
    BAD(gp.repeat_penalty = 0, "repeat_penalty");
    BAD(gp.repeat_penalty = -1, "repeat_penalty");
    BAD(gp.repeat_penalty = NAN, "repeat_penalty");
    BAD(gp.frequency_penalty = -0.5f, "frequency_penalty");
    BAD(gp.presence_penalty = -1, "presence_penalty");
    BAD(gp.presence_penalty = NAN, "presence_penalty");
    BAD(gp.repeat_last_n = -1, "repeat_last_n");
    BAD(gp.max_tokens = -2, "max_tokens");
#undef BAD
    gp = neutral_params();
    gp.top_k = -3; // documented: <= 0 disables
    gp.temperature = 0;
    CHECK_OK(sampler_check_params(&gp));
    CHECK_STATUS(sampler_check_params(NULL), CODER_ERR_INVALID_ARG);
}

TEST(numeric_faults) {
    float logits[] = {1, 2, NAN, 0};
    coder_gen_params gp = neutral_params();
    sampler *sm = NULL;
    CHECK_OK(sampler_new(&gp, 4, &sm));
    int32_t t = -7;
    CHECK_STATUS(sampler_sample(sm, logits, &t), CODER_ERR_NUMERIC);
    CHECK(strstr(coder_last_error(), "logits[2]") && strstr(coder_last_error(), "NaN"));
    CHECK(t == -7);
    logits[2] = INFINITY;
    CHECK_STATUS(sampler_sample(sm, logits, &t), CODER_ERR_NUMERIC);
    CHECK(strstr(coder_last_error(), "logits[2]") && strstr(coder_last_error(), "Inf"));
    float all_neg[] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    CHECK_STATUS(sampler_sample(sm, all_neg, &t), CODER_ERR_NUMERIC);
    CHECK(strstr(coder_last_error(), "-Inf"));
    // -Inf masks a token: never drawn, always in range
    float masked[] = {-INFINITY, 0, -INFINITY, 0.5f};
    for (int i = 0; i < 2000; i++) {
        CHECK_OK(sampler_sample(sm, masked, &t));
        CHECK(t == 1 || t == 3);
    }
    sampler_free(sm);
    // a tiny temperature must not produce NaN weights
    gp.temperature = 1e-30f;
    CHECK_OK(sampler_new(&gp, 4, &sm));
    float l2[] = {1, 2, 3, 2.5f};
    for (int i = 0; i < 100; i++) {
        CHECK_OK(sampler_sample(sm, l2, &t));
        CHECK(t == 2);
    }
    sampler_free(sm);
}

TEST(greedy_chain_argmax) {
    enum { V = 151936 };
    float *logits = malloc(V * sizeof *logits);
    CHECK(logits != NULL);
    sampler_rng r;
    sampler_rng_seed(&r, 11);
    for (int i = 0; i < V; i++) logits[i] = (float)(sampler_rng_uniform(&r) * 10 - 5);
    logits[77777] = 6;
    logits[88888] = 6; // tie: lowest id wins
    coder_gen_params gp = neutral_params();
    gp.temperature = 0;
    gp.top_k = 40;
    gp.top_p = 0.5f;
    sampler *sm = NULL;
    int32_t t = -1;
    coder_status st = sampler_new(&gp, V, &sm);
    if (st == CODER_OK) st = sampler_sample(sm, logits, &t);
    sampler_free(sm);
    free(logits);
    CHECK_OK(st);
    CHECK(t == 77777);
}

int main(void) {
    RUN(rng_splitmix_vector);
    RUN(rng_uniform_moments);
    RUN(penalties_exact);
    RUN(top_k_keeps_best_lowest_id_on_ties);
    RUN(top_p_smallest_prefix);
    RUN(top_p_large_flat_list);
    RUN(min_p_threshold_keeps_order);
    RUN(pick_greedy_ties_lowest_id);
    RUN(distribution_matches_softmax);
    RUN(truncation_before_temperature);
    RUN(top_p_min_p_shortcut_same_set);
    RUN(seeded_determinism);
    RUN(top_only_same_draws);
    RUN(chain_penalties_window);
    RUN(bad_params);
    RUN(numeric_faults);
    RUN(greedy_chain_argmax);
    return test_summary();
}
