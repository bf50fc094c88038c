/* cpu_ops.c - the element-wise CPU ops: RMSNorm, RoPE (NORM/NEOX, linear and YaRN scaling, freq
 * factors), SwiGLU and softmax. Formulas: FORMATS.md 3.3-3.6; the rounding follows ggml's CPU ops
 * (sum of squares in double, RoPE angles by iterated f32 multiplication) so the F32 reference
 * matches to rounding level. */
#include <math.h>

#include "cpu.h"

void cpu_rms_norm(const float *x, const float *w, int64_t n_rows, int64_t width, float eps, float *y) {
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * width;
        float *yr = y + r * width;
        double sum = 0;
        for (int64_t i = 0; i < width; i++) sum += (double)(xr[i] * xr[i]);
        const float scale = 1.0f / sqrtf((float)(sum / (double)width) + eps);
        if (w)
            for (int64_t i = 0; i < width; i++) yr[i] = (xr[i] * scale) * w[i];
        else
            for (int64_t i = 0; i < width; i++) yr[i] = xr[i] * scale;
    }
}

/* YaRN correction dimension: the pair index whose wavelength spans n_ctx_orig / beta turns. */
static float rope_corr_dim(int n_rot, int n_ctx_orig, float beta, float base) {
    return (float)n_rot * logf((float)n_ctx_orig / (beta * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

void cpu_rope_init(cpu_rope *r, const model_hparams *hp, const float *freq_factors) {
    memset(r, 0, sizeof *r);
    r->style = hp->rope;
    r->n_rot = hp->n_rot > 0 ? hp->n_rot : hp->head_dim;
    r->head_dim = hp->head_dim;
    const float base = hp->rope_base > 0 ? hp->rope_base : 10000.0f;
    r->theta_scale = powf(base, -2.0f / (float)r->n_rot);
    r->freq_scale = hp->rope_freq_scale > 0 ? hp->rope_freq_scale : 1.0f;
    r->attn_factor = hp->yarn_attn_factor > 0 ? hp->yarn_attn_factor : 1.0f;
    r->freq_factors = freq_factors;
    if (hp->rope_scaling_type == ROPE_SCALING_YARN) {
        /* llama.cpp: a negative (unset) ext_factor means 1 for YaRN. */
        r->ext_factor = hp->yarn_ext_factor >= 0 ? hp->yarn_ext_factor : 1.0f;
        const float beta_fast = hp->yarn_beta_fast > 0 ? hp->yarn_beta_fast : 32.0f;
        const float beta_slow = hp->yarn_beta_slow > 0 ? hp->yarn_beta_slow : 1.0f;
        const int n_orig = hp->yarn_orig_ctx > 0 ? hp->yarn_orig_ctx : hp->n_ctx_train;
        const float lo = floorf(rope_corr_dim(r->n_rot, n_orig, beta_fast, base));
        const float hi = ceilf(rope_corr_dim(r->n_rot, n_orig, beta_slow, base));
        r->corr_dims[0] = lo > 0 ? lo : 0;
        r->corr_dims[1] = hi < (float)(r->n_rot - 1) ? hi : (float)(r->n_rot - 1);
    }
}

/* cs[2j], cs[2j+1] = cos, sin of pair j at position pos (with scaling and mscale applied). */
static void rope_cache(const cpu_rope *r, int32_t pos, float *cs) {
    float theta = (float)pos;
    for (int i0 = 0; i0 < r->n_rot; i0 += 2) {
        const float ff = r->freq_factors ? r->freq_factors[i0 / 2] : 1.0f;
        const float theta_extrap = theta / ff;
        const float theta_interp = r->freq_scale * theta_extrap;
        float th = theta_interp, mscale = r->attn_factor;
        if (r->ext_factor != 0.0f) {
            float y = ((float)(i0 / 2) - r->corr_dims[0]) / fmaxf(0.001f, r->corr_dims[1] - r->corr_dims[0]);
            float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * r->ext_factor;
            th = theta_interp * (1.0f - ramp) + theta_extrap * ramp;
            mscale *= 1.0f + 0.1f * logf(1.0f / r->freq_scale);
        }
        cs[i0] = cosf(th) * mscale;
        cs[i0 + 1] = sinf(th) * mscale;
        theta *= r->theta_scale;
    }
}

void cpu_rope_apply(const cpu_rope *r, float *x, int n, int n_heads, int32_t pos0, float *cs) {
    const int hd = r->head_dim, half = r->n_rot / 2;
    for (int t = 0; t < n; t++) {
        rope_cache(r, pos0 + t, cs);
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            if (r->style == ROPE_NEOX) {
                for (int j = 0; j < half; j++) {
                    const float c = cs[2 * j], s = cs[2 * j + 1], a = v[j], b = v[j + half];
                    v[j] = a * c - b * s;
                    v[j + half] = a * s + b * c;
                }
            } else {
                for (int j = 0; j < half; j++) {
                    const float c = cs[2 * j], s = cs[2 * j + 1], a = v[2 * j], b = v[2 * j + 1];
                    v[2 * j] = a * c - b * s;
                    v[2 * j + 1] = a * s + b * c;
                }
            }
        }
    }
}

void cpu_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void cpu_geglu(float *gate, const float *up, int64_t n) {
    const float c = 0.7978845608028654f;   /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = 0.5f * g * (1.0f + tanhf(c * (g + 0.044715f * g * g * g))) * up[i];
    }
}

void cpu_softmax(float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}
