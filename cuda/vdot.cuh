/* vdot.cuh - integer dot products of GGUF weight blocks with 8-bit activations, for the decode
 * mat-vec (mmv_int8.cu).
 *
 * Why: the float mat-vec (mmvq.cu) dequantizes every weight to f32 and multiplies it with an f32
 * activation: nvcc -arch=sm_90 gives 190 SASS instructions per 16 Q4_K weights (12 per weight,
 * Q6_K 13.6). An H100 SM issues 128 thread-instructions a clock and must consume ~23 Q4_K weights
 * a clock to keep up with HBM3, so that kernel is issue-bound near half the memory bandwidth.
 * Here the activations are quantized once per matmul to int8 blocks of 32 (one f32 scale each,
 * the q8_0 rule: d = amax/127, q = round(x/d)), and four weights meet four activations in one
 * __dp4a: ~2 instructions per weight. The cost is the activation rounding (~4e-3 relative per
 * element), the same trade the CPU backend and llama.cpp make.
 *
 * Activations: xq int8 [n][cols] (cols % 32 == 0, so each row is 16-byte aligned), xd f32
 * [n][xd_stride] (d of elements 32i..32i+31 at [i]; cuda_api.h's cuda_xd_stride, a multiple of 4,
 * so the float2 loads of Q4_K/Q5_K units stay aligned). A non-finite element
 * makes its block's d NaN, so NaN/Inf still reach the output.
 *
 * Work units: a block of BLOCK weights (BYTES bytes) has UPB units; vdot<T>::run<NT>(b, p, i0, ...)
 * adds unit p of the block at b, whose first weight is element i0 of the row, times NT
 * activation rows to acc[NT]. Lane l of a warp takes unit l % UPB of blocks l / UPB,
 * l / UPB + 32 / UPB, ... (so a lane's unit index never changes along the row). Q4_K and Q5_K (16-byte aligned blocks): a unit is 32 weights from one 16-byte
 * load of quants (16 low nibbles of one sub-block, 16 high nibbles of the next), 8 lanes per
 * super-block read its 128 quant bytes as one line. The 2-byte aligned formats (Q8_0 34 bytes,
 * Q5_0 22, Q4_0 18) keep deq<T>'s 8-weight units (4 lanes per 32-block, neighbouring lanes on
 * neighbouring bytes), Q6_K (210) 16-weight units, read 2 bytes at a time.
 *
 * Everything is __host__ __device__ (CQ_FN): tests/test_cuda_vdot.cu runs these very routines on
 * the CPU against lib/quant.c's dequantization and quantization. */
#ifndef CODER_CUDA_VDOT_CUH
#define CODER_CUDA_VDOT_CUH

#include <math.h>

#include "quant.cuh"

/* Four int8 products summed into c (both operands signed; nibble bytes 0..63 are positive). */
CQ_FN int cq_dp4a(int a, int b, int c) {
#ifdef __CUDA_ARCH__
    return __dp4a(a, b, c);
#else
    for (int k = 0; k < 4; k++) c += (int)(int8_t)(uint8_t)((uint32_t)a >> (8 * k)) * (int)(int8_t)(uint8_t)((uint32_t)b >> (8 * k));
    return c;
#endif
}

/* ---- activation quantization: one rule for the kernel, the host test and test_gpu's reference */

/* Block scale from the block's largest magnitude; NaN when an element is not finite. */
CQ_FN float cq_q8_scale(float amax, bool all_finite) {
    return all_finite ? amax / 127.0f : cq_bits_float(0x7fc00000u);
}
/* A block whose scale is below the smallest normal float (amax < 1.5e-36) quantizes to zeros: its
 * 1/d would be +Inf and the conversion of x * Inf undefined (the device and the host differ). */
CQ_FN int8_t cq_q8_value(float x, float d) {
    const float id = d >= 1.17549435e-38f ? 1.0f / d : 0.0f;   /* also 0 for d NaN; IEEE division */
    return (int8_t)roundf(x * id);                            /* |x * id| <= 127 */
}

/* 8 bytes from a 2-byte aligned address as two words (four 16-bit loads). */
CQ_FN void cq_ld8_words(const uint8_t *p, uint32_t w[2]) {
    w[0] = (uint32_t)cq_load<unsigned short>(p) | (uint32_t)cq_load<unsigned short>(p + 2) << 16;
    w[1] = (uint32_t)cq_load<unsigned short>(p + 4) | (uint32_t)cq_load<unsigned short>(p + 6) << 16;
}

/* The activation side of one 8-weight unit for token t: 8 int8 (one aligned 8-byte load) and d. */
struct cq_x8 {
    int w[2];
    float d;
};
CQ_FN cq_x8 cq_x8_load(const int8_t *xq, const float *xd, int64_t cols, int xd_stride, int t, int64_t i0) {
    cq_x8 r;
    const uint2 u = cq_load<uint2>((const uint8_t *)(xq + (int64_t)t * cols + i0));
    r.w[0] = (int)u.x;
    r.w[1] = (int)u.y;
    r.d = xd[(int64_t)t * xd_stride + (i0 >> 5)];
    return r;
}

/* sum of w . x and of x over the unit's 8 weights (x sums pay for the formats' offsets and mins) */
CQ_FN int cq_dot8(const uint32_t w[2], const cq_x8 &x) { return cq_dp4a((int)w[1], x.w[1], cq_dp4a((int)w[0], x.w[0], 0)); }
CQ_FN int cq_sum8(const cq_x8 &x) { return cq_dp4a(0x01010101, x.w[1], cq_dp4a(0x01010101, x.w[0], 0)); }

/* Every vdot<T>::run: unit u of the block at b (first weight: element i0 of the row) times NT
 * activation rows, added to acc[NT]. */
#define VDOT_RUN                                                                                   \
    template <int NT>                                                                              \
    static CQ_FN void run(const uint8_t *b, int u, int64_t i0, const int8_t *xq, const float *xd, int64_t cols, \
                          int xd_stride, float acc[NT])

template <int T> struct vdot;

/* Q8_0 {f16 d; int8 qs[32]}: 4 units per block. */
template <> struct vdot<CQ_Q8_0> {
    enum { BLOCK = 32, BYTES = 34, UPB = 4 };
    VDOT_RUN {
        const float d = cq_f16(b);
        uint32_t w[2];
        cq_ld8_words(b + 2 + u * 8, w);
        i0 += u * 8;
CQ_UNROLL
        for (int t = 0; t < NT; t++) {
            const cq_x8 x = cq_x8_load(xq, xd, cols, xd_stride, t, i0);
            acc[t] += d * x.d * (float)cq_dot8(w, x);
        }
    }
};

/* Bits 0..3 of b to bit 4 of bytes 0..3 (the fifth bit of four Q5_0 weights). */
CQ_FN uint32_t cq_spread4(uint32_t b) { return ((b & 0xfu) * 0x00204081u & 0x01010101u) << 4; }

/* Q4_0 {f16 d; u8 qs[16]}: weights 0-15 low nibbles, 16-31 high; value q - 8. Q5_0 {f16 d;
 * u8 qh[4]; u8 qs[16]}: the same nibbles plus bit i of qh as weight i's fifth bit; value q - 16. */
template <bool FIVE>
struct vdot_q5 {
    enum { BLOCK = 32, BYTES = FIVE ? 22 : 18, UPB = 4 };
    VDOT_RUN {
        const int j = u * 8, sh = (j >> 4) * 4;
        i0 += j;
        const float d = cq_f16(b);
        uint32_t w[2];
        cq_ld8_words(b + (FIVE ? 6 : 2) + (j & 15), w);
        w[0] = (w[0] >> sh) & 0x0f0f0f0fu;
        w[1] = (w[1] >> sh) & 0x0f0f0f0fu;
        if (FIVE) {
            const uint32_t qh = ((uint32_t)cq_load<unsigned short>(b + 2) | (uint32_t)cq_load<unsigned short>(b + 4) << 16) >> j;
            w[0] |= cq_spread4(qh);
            w[1] |= cq_spread4(qh >> 4);
        }
CQ_UNROLL
        for (int t = 0; t < NT; t++) {
            const cq_x8 x = cq_x8_load(xq, xd, cols, xd_stride, t, i0);
            acc[t] += d * x.d * (float)(cq_dot8(w, x) - (FIVE ? 16 : 8) * cq_sum8(x));
        }
    }
};
template <> struct vdot<CQ_Q4_0> : vdot_q5<false> {};
template <> struct vdot<CQ_Q5_0> : vdot_q5<true> {};

/* Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: deq<CQ_Q6_K>'s layout; value (4 low bits |
 * 2 high bits << 4) - 32, one scale per 16 weights, which is a unit here (16 per block: the
 * fixed cost of a unit, its scales and x's, over twice the weights of an 8-weight unit). */
template <> struct vdot<CQ_Q6_K> {
    enum { BLOCK = 256, BYTES = 210, UPB = 16 };
    VDOT_RUN {
        const int j = u * 16, h = j >> 7, k4 = (j >> 5) & 3, l0 = j & 31;
        i0 += j;
        const float ds = cq_f16(b + 208) * (float)(int8_t)b[192 + 8 * h + (l0 >> 4) + 2 * k4];
        uint32_t ql[4], qh[4], w[4];
        cq_ld8_words(b + 64 * h + 32 * (k4 & 1) + l0, ql);
        cq_ld8_words(b + 64 * h + 32 * (k4 & 1) + l0 + 8, ql + 2);
        cq_ld8_words(b + 128 + 32 * h + l0, qh);
        cq_ld8_words(b + 128 + 32 * h + l0 + 8, qh + 2);
        const int ls = 4 * (k4 >> 1), hs = 2 * k4;
CQ_UNROLL
        for (int k = 0; k < 4; k++) w[k] = ((ql[k] >> ls) & 0x0f0f0f0fu) | (((qh[k] >> hs) & 0x03030303u) << 4);
CQ_UNROLL
        for (int t = 0; t < NT; t++) {
            const uint4 x = cq_load<uint4>((const uint8_t *)(xq + (int64_t)t * cols + i0));
            const int xw[4] = {(int)x.x, (int)x.y, (int)x.z, (int)x.w};
            int dot = 0, sum = 0;
CQ_UNROLL
            for (int k = 0; k < 4; k++) {
                dot = cq_dp4a((int)w[k], xw[k], dot);
                sum = cq_dp4a(0x01010101, xw[k], sum);
            }
            acc[t] += ds * xd[(int64_t)t * xd_stride + (i0 >> 5)] * (float)(dot - 32 * sum);
        }
    }
};

/* The 6-bit scales and mins of sub-blocks 2c and 2c + 1 (lib/quant.c's get_scale_min_k4) from
 * the 12 scale bytes in three words, without branches: byte pairs as 16-bit lanes, *sc and *m
 * = first | second << 8. */
CQ_FN void cq_scale_min_pair(int c, uint32_t s0, uint32_t s1, uint32_t s2, uint32_t *sc, uint32_t *m) {
    const int sh = 16 * (c & 1);
    const uint32_t a = (s0 >> sh) & 0xffffu, b = (s1 >> sh) & 0xffffu, e = (s2 >> sh) & 0xffffu;
    if (c < 2) {
        *sc = a & 0x3f3fu;
        *m = b & 0x3f3fu;
    } else {   /* low 4 bits from bytes 8.., high 2 from the top bits of bytes 0.. / 4.. */
        *sc = (e & 0x0f0fu) | ((a >> 2) & 0x3030u);
        *m = ((e >> 4) & 0x0f0fu) | ((b >> 2) & 0x3030u);
    }
}

/* Q4_K / Q5_K: unit u (0..7) = 32 weights of a super-block: quant bytes 32c + l0 .. +15
 * (c = u / 2, l0 = 16 (u % 2)), whose low nibbles are weights 64c + l0 + i of
 * sub-block 2c and high nibbles weights 64c + 32 + l0 + i of sub-block 2c + 1. Q5_K adds bit
 * 2c (2c + 1) of qh[l0 + i]. Value (d sc) q - dmin m. Header {d, dmin, scales[12]} is one 16-byte
 * load, the quants another. */
template <bool FIVE>
struct vdot_k {
    enum { BLOCK = 256, BYTES = FIVE ? 176 : 144, UPB = 8 };
    VDOT_RUN {
        const int c = u >> 1, l0 = (u & 1) * 16;
        const uint4 hd = cq_load<uint4>(b);
        const uint4 q = cq_load<uint4>(b + (FIVE ? 48 : 16) + 32 * c + l0);
        uint32_t scp, mp;
        cq_scale_min_pair(c, hd.y, hd.z, hd.w, &scp, &mp);
        const int sc0 = (int)(scp & 0xff), sc1 = (int)(scp >> 8), m0 = (int)(mp & 0xff), m1 = (int)(mp >> 8);
        const float d = __half2float(__ushort_as_half((unsigned short)(hd.x & 0xffffu)));
        const float dmin = __half2float(__ushort_as_half((unsigned short)(hd.x >> 16)));
        const float d0 = d * (float)sc0, d1 = d * (float)sc1, mn0 = dmin * (float)m0, mn1 = dmin * (float)m1;
        const uint32_t qw[4] = {q.x, q.y, q.z, q.w};
        uint32_t lo[4], hi[4];
CQ_UNROLL
        for (int k = 0; k < 4; k++) {
            lo[k] = qw[k] & 0x0f0f0f0fu;
            hi[k] = (qw[k] >> 4) & 0x0f0f0f0fu;
        }
        if (FIVE) {
            const uint4 h = cq_load<uint4>(b + 16 + l0);
            const uint32_t hw[4] = {h.x, h.y, h.z, h.w};
CQ_UNROLL
            for (int k = 0; k < 4; k++) {
                lo[k] |= ((hw[k] >> (2 * c)) & 0x01010101u) << 4;
                hi[k] |= ((hw[k] >> (2 * c + 1)) & 0x01010101u) << 4;
            }
        }
        i0 += 64 * c + l0;
CQ_UNROLL
        for (int t = 0; t < NT; t++) {
            const int8_t *xt = xq + (int64_t)t * cols + i0;
            const uint4 xl = cq_load<uint4>((const uint8_t *)xt), xh = cq_load<uint4>((const uint8_t *)(xt + 32));
            const float2 dx = cq_load<float2>((const uint8_t *)(xd + (int64_t)t * xd_stride + (i0 >> 5)));
            const int xlw[4] = {(int)xl.x, (int)xl.y, (int)xl.z, (int)xl.w};
            const int xhw[4] = {(int)xh.x, (int)xh.y, (int)xh.z, (int)xh.w};
            int dl = 0, dh = 0, sl = 0, sh = 0;
CQ_UNROLL
            for (int k = 0; k < 4; k++) {
                dl = cq_dp4a((int)lo[k], xlw[k], dl);
                dh = cq_dp4a((int)hi[k], xhw[k], dh);
                sl = cq_dp4a(0x01010101, xlw[k], sl);
                sh = cq_dp4a(0x01010101, xhw[k], sh);
            }
            acc[t] += dx.x * (d0 * (float)dl - mn0 * (float)sl) + dx.y * (d1 * (float)dh - mn1 * (float)sh);
        }
    }
};
template <> struct vdot<CQ_Q4_K> : vdot_k<false> {};
template <> struct vdot<CQ_Q5_K> : vdot_k<true> {};

/* ---- grouped device layouts (quant.cuh, backend.cu cuda_group_rows): 16-byte loads of quants -----
 * A "block" of vdot_lane is a group of 8 GGUF blocks here (the last group of a row may be
 * partial: units past the row's end do nothing). */

/* sum of the four dp4a's of w[k] . x[k], and of x[k] */
CQ_FN int cq_dot16(const uint32_t w[4], const uint4 &x) {
    return cq_dp4a((int)w[3], (int)x.w, cq_dp4a((int)w[2], (int)x.z, cq_dp4a((int)w[1], (int)x.y, cq_dp4a((int)w[0], (int)x.x, 0))));
}
CQ_FN int cq_sum16(const uint4 &x) {
    return cq_dp4a(0x01010101, (int)x.w, cq_dp4a(0x01010101, (int)x.z, cq_dp4a(0x01010101, (int)x.y, cq_dp4a(0x01010101, (int)x.x, 0))));
}
CQ_FN uint4 cq_x16(const int8_t *xq, int64_t cols, int t, int64_t e) { return cq_load<uint4>((const uint8_t *)(xq + (int64_t)t * cols + e)); }

/* Q8_0: unit = one 32-block: its f16 d from the header, its 32 quants in two 16-byte loads. */
template <> struct vdot<CQ_Q8_0G> {
    enum { BLOCK = 256, BYTES = 272, UPB = 8 };
    VDOT_RUN {
        i0 += 32 * u;
        if (i0 >= cols) return;
        const float d = cq_f16(b + 2 * u);
        const uint4 q0 = cq_load<uint4>(b + 16 + 32 * u), q1 = cq_load<uint4>(b + 32 + 32 * u);
        const uint32_t w0[4] = {q0.x, q0.y, q0.z, q0.w}, w1[4] = {q1.x, q1.y, q1.z, q1.w};
CQ_UNROLL
        for (int t = 0; t < NT; t++) {
            const int dot = cq_dot16(w0, cq_x16(xq, cols, t, i0)) + cq_dot16(w1, cq_x16(xq, cols, t, i0 + 16));
            acc[t] += d * xd[(int64_t)t * xd_stride + (i0 >> 5)] * (float)dot;
        }
    }
};

/* Q4_0 / Q5_0: unit = one 32-block: quants in one 16-byte load (low nibbles weights 0-15, high
 * 16-31), Q5_0's qh word from the header. */
template <bool FIVE>
struct vdot_q5g {
    enum { BLOCK = 256, BYTES = FIVE ? 176 : 144, UPB = 8 };
    VDOT_RUN {
        i0 += 32 * u;
        if (i0 >= cols) return;
        const float d = cq_f16(b + 2 * u);
        const uint4 q = cq_load<uint4>(b + (FIVE ? 48 : 16) + 16 * u);
        const uint32_t qw[4] = {q.x, q.y, q.z, q.w};
        uint32_t lo[4], hi[4];
        const uint32_t qh = FIVE ? cq_load<uint32_t>(b + 16 + 4 * u) : 0;
CQ_UNROLL
        for (int k = 0; k < 4; k++) {
            lo[k] = qw[k] & 0x0f0f0f0fu;
            hi[k] = (qw[k] >> 4) & 0x0f0f0f0fu;
            if (FIVE) {
                lo[k] |= cq_spread4(qh >> (4 * k));
                hi[k] |= cq_spread4(qh >> (16 + 4 * k));
            }
        }
CQ_UNROLL
        for (int t = 0; t < NT; t++) {
            const uint4 xl = cq_x16(xq, cols, t, i0), xh = cq_x16(xq, cols, t, i0 + 16);
            const int dot = cq_dot16(lo, xl) + cq_dot16(hi, xh), sum = cq_sum16(xl) + cq_sum16(xh);
            acc[t] += d * xd[(int64_t)t * xd_stride + (i0 >> 5)] * (float)(dot - (FIVE ? 16 : 8) * sum);
        }
    }
};
template <> struct vdot<CQ_Q4_0G> : vdot_q5g<false> {};
template <> struct vdot<CQ_Q5_0G> : vdot_q5g<true> {};

/* Q6_K: unit u of a group = block j = u / 4, half h = (u / 2) % 2, kp = u % 2: the 32 ql bytes
 * 64h + 32kp .. (low nibbles: weights 128h + 32kp + l, high: 128h + 32(kp + 2) + l) and the 32 qh
 * bytes 32h .. (bits 2kp and 2kp + 4), four 16-byte loads for 64 weights; four scales. */
template <> struct vdot<CQ_Q6_KG> {
    enum { BLOCK = 2048, BYTES = 1680, UPB = 32 };
    VDOT_RUN {
        const int j = u >> 2, h = (u >> 1) & 1, kp = u & 1;
        const int64_t ea = i0 + 256 * j + 128 * h + 32 * kp, eb = ea + 64;   /* first weights of k = kp, kp + 2 */
        if (ea >= cols) return;
        const float d = cq_f16(b + 2 * j);
        const uint8_t *sc = b + 16 + 16 * j + 8 * h + 2 * kp, *q = b + 144 + 192 * j;
        const unsigned short s01 = cq_load<unsigned short>(sc), s45 = cq_load<unsigned short>(sc + 4);
        const int sa0 = (int8_t)(s01 & 0xff), sa1 = (int8_t)(s01 >> 8), sb0 = (int8_t)(s45 & 0xff), sb1 = (int8_t)(s45 >> 8);
        uint32_t wa[2][4], wb[2][4];
CQ_UNROLL
        for (int half = 0; half < 2; half++) {
            const uint4 l = cq_load<uint4>(q + 64 * h + 32 * kp + 16 * half), hb = cq_load<uint4>(q + 128 + 32 * h + 16 * half);
            const uint32_t lw[4] = {l.x, l.y, l.z, l.w}, hw[4] = {hb.x, hb.y, hb.z, hb.w};
CQ_UNROLL
            for (int k = 0; k < 4; k++) {
                wa[half][k] = (lw[k] & 0x0f0f0f0fu) | (((hw[k] >> (2 * kp)) & 0x03030303u) << 4);
                wb[half][k] = ((lw[k] >> 4) & 0x0f0f0f0fu) | (((hw[k] >> (2 * kp + 4)) & 0x03030303u) << 4);
            }
        }
CQ_UNROLL
        for (int t = 0; t < NT; t++) {
            const uint4 xa0 = cq_x16(xq, cols, t, ea), xa1 = cq_x16(xq, cols, t, ea + 16);
            const uint4 xb0 = cq_x16(xq, cols, t, eb), xb1 = cq_x16(xq, cols, t, eb + 16);
            const int ia = sa0 * (cq_dot16(wa[0], xa0) - 32 * cq_sum16(xa0)) + sa1 * (cq_dot16(wa[1], xa1) - 32 * cq_sum16(xa1));
            const int ib = sb0 * (cq_dot16(wb[0], xb0) - 32 * cq_sum16(xb0)) + sb1 * (cq_dot16(wb[1], xb1) - 32 * cq_sum16(xb1));
            const float *xdt = xd + (int64_t)t * xd_stride;
            acc[t] += d * (xdt[ea >> 5] * (float)ia + xdt[eb >> 5] * (float)ib);
        }
    }
};

/* One lane's share of a row (lane l: unit l % UPB of blocks l / UPB, + 32 / UPB, ...): the
 * kernel's loop, and the host test's warp emulation. */
template <int T, int NT>
CQ_FN void vdot_lane(const uint8_t *row, int lane, int64_t cols, const int8_t *xq, const float *xd, int xd_stride,
                     float acc[NT]) {
    typedef vdot<T> V;
    const int64_t n_blocks = (cols + V::BLOCK - 1) / V::BLOCK, step = 32 / V::UPB;   /* grouped rows: a partial last group */
    const int u = lane % V::UPB;
    const uint8_t *b = row + (int64_t)(lane / V::UPB) * V::BYTES;
#ifdef __CUDA_ARCH__
#pragma unroll 2
#endif
    for (int64_t blk = lane / V::UPB; blk < n_blocks; blk += step, b += step * V::BYTES)
        V::template run<NT>(b, u, blk * V::BLOCK, xq, xd, cols, xd_stride, acc);
}

/* The types with an integer path; others use the float mat-vec. */
#define VDOT_DISPATCH(type, F, unsupported)                                                        \
    switch (type) {                                                                                \
    CQ_CASES_INT8(F)                                                                               \
    default: unsupported;                                                                          \
    }

#endif
