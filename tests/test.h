/* test.h - the tiny test harness. One binary per tests/test_*.c.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_NEAR(a, b, atol, rtol); if (!have) SKIP("why"); }
 *   int main(void) { RUN(name); ...; return test_summary(); }
 *
 * Each RUN prints one line "PASS|FAIL|SKIP file:name[: detail]"; tests/run.sh adds them up into
 * the "N passed, N failed, N skipped" line. A failed CHECK ends the current test case. */
#ifndef CODER_TEST_H
#define CODER_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_n_pass, test_n_fail, test_n_skip;
static int test_state; /* 0 running/pass, 1 failed, 2 skipped */
static char test_detail[1024];

#define TEST(name) static void name(void)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            int o_ = snprintf(test_detail, sizeof test_detail, "%s:%d: CHECK(%s) ", __FILE__,      \
                              __LINE__, #cond);                                                    \
            if (o_ > 0 && (size_t)o_ < sizeof test_detail)                                         \
                snprintf(test_detail + o_, sizeof test_detail - (size_t)o_, __VA_ARGS__);          \
            test_state = 1;                                                                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)
#define CHECK(cond) CHECK_MSG(cond, "%s", "")
/* |a - b| <= atol + rtol * |b|  (b is the reference) */
#define CHECK_NEAR(a, b, atol, rtol)                                                               \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        CHECK_MSG(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_), "got %.9g, want %.9g", a_, b_);     \
    } while (0)
/* Checks a coder_status equals the expected one, printing coder_last_error() otherwise. */
#define CHECK_STATUS(expr, want)                                                                   \
    do {                                                                                           \
        int got_ = (int)(expr);                                                                    \
        CHECK_MSG(got_ == (int)(want), "status %d, want %d (%s)", got_, (int)(want),               \
                  coder_last_error());                                                             \
    } while (0)
#define CHECK_OK(expr) CHECK_STATUS(expr, 0)

#define SKIP(...)                                                                                  \
    do {                                                                                           \
        snprintf(test_detail, sizeof test_detail, __VA_ARGS__);                                    \
        test_state = 2;                                                                            \
        return;                                                                                    \
    } while (0)

#define RUN(name)                                                                                  \
    do {                                                                                           \
        test_state = 0;                                                                            \
        test_detail[0] = 0;                                                                        \
        name();                                                                                    \
        const char *f_ = strrchr(__FILE__, '/');                                                   \
        f_ = f_ ? f_ + 1 : __FILE__;                                                               \
        if (test_state == 0) { test_n_pass++; printf("PASS %s:%s\n", f_, #name); }                 \
        else if (test_state == 1) { test_n_fail++; printf("FAIL %s:%s: %s\n", f_, #name, test_detail); } \
        else { test_n_skip++; printf("SKIP %s:%s: %s\n", f_, #name, test_detail); }                \
        fflush(stdout);                                                                            \
    } while (0)

static inline int test_summary(void) { return test_n_fail ? 1 : 0; }

/* Directory of the reference data (../shared/refdata or $CODER_REFDATA); NULL if absent. */
static inline const char *test_refdata(void) {
    const char *d = getenv("CODER_REFDATA");
    static char buf[4096];
    if (!d || !*d) d = "../shared/refdata";
    snprintf(buf, sizeof buf, "%s/README.md", d);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return d;
}

/* Reads a whole file into malloc'd memory (NUL appended); NULL on failure. */
static inline void *test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? (char *)malloc((size_t)n + 1) : NULL;   /* cast: also C++ (test_*.cu) */
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) { buf[n] = 0; if (size) *size = (size_t)n; }
    return buf;
}

/* Relative rms error rms(a-b)/std(b), the refdata protocol's measure. */
static inline double test_rel_rms(const float *a, const float *b, size_t n) {
    double se = 0, mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) mean += b[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        se += d * d;
        var += (b[i] - mean) * (b[i] - mean);
    }
    return sqrt(se / (double)n) / sqrt(var / (double)n + 1e-30);
}

#endif
