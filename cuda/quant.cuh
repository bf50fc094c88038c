/* quant.cuh - device dequantization of the GGUF block formats, 8 consecutive elements at a time.
 *
 * One routine per type, deq<T>::run(row, i0, v): v[k] = element i0+k of the row (i0 % 8 == 0),
 * evaluated with the same float operations as lib/quant.c (e.g. Q4_K (d*sc)*q - dmin*m, Q6_K
 * (d*sc)*q), so results agree with the CPU reference to rounding (nvcc may fuse a multiply-add
 * where the CPU rounds twice). Eight consecutive elements always lie
 * in one block and share one scale, and their quant bytes are consecutive, so each call is one
 * scale decode plus one 8-byte (Q4_K/Q5_K: aligned 64-bit) or four 2-byte loads. Layouts:
 * ../shared/docs/FORMATS.md section 2 and lib/quant.h. The same routine serves the decode
 * mat-vec (mmvq.cu), the prefill dequantizer (mmq_prefill.cu) and the embedding lookup (ops.cu).
 *
 * Alignment: rows start at row * row_bytes inside a 256-byte aligned copy. Q4_K (144-byte
 * blocks) and Q5_K (176) rows are 16-byte aligned, so their quant bytes are read as uint2; the
 * 2-byte aligned formats (Q8_0 34, Q6_K 210, Q5_0 22, Q4_0 18) 2 bytes at a time. */
#ifndef CODER_CUDA_QUANT_CUH
#define CODER_CUDA_QUANT_CUH

#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

#include "cuda_api.h"

/* Host and device: tests/test_cuda_deq.cu runs these very routines on the CPU against lib/quant.c
 * (no GPU needed), so every CI build checks the layouts the kernels decode. */
#define CQ_FN __host__ __device__ __forceinline__
#ifdef __CUDA_ARCH__
#define CQ_UNROLL _Pragma("unroll")
#else
#define CQ_UNROLL   /* the host compiler does not know the pragma */
#endif

/* Host runs (tests/test_cuda_deq.cu) count the loads that would be misaligned on the device. */
inline long &cq_host_misaligned_loads() {
    static long n = 0;
    return n;
}

/* Host runs can also name the memory a routine may read (up to 4 regions; none set: unchecked) and
 * count the loads that fall outside: a unit past a row's end reads the next row or past the
 * allocation on the device, which values alone may not show. */
struct cq_host_region {
    const uint8_t *lo, *hi;
};
inline cq_host_region *cq_host_regions() {
    static cq_host_region r[4];
    return r;
}
inline long &cq_host_oob_loads() {
    static long n = 0;
    return n;
}
inline void cq_host_check_bounds(const uint8_t *p, size_t size) {
    const cq_host_region *r = cq_host_regions();
    if (!r[0].lo) return;
    for (int i = 0; i < 4 && r[i].lo; i++)
        if (p >= r[i].lo && p + size <= r[i].hi) return;
    cq_host_oob_loads()++;
}

/* Loads of 2, 8 or 16 bytes: one instruction on the device (the address must be aligned to the
 * size: a fault otherwise); memcpy on the host, where reading bytes stored as other types through
 * a uint4 lvalue breaks C++ aliasing rules (gcc then reads stale data). */
template <typename V>
CQ_FN V cq_load(const uint8_t *p) {
#ifdef __CUDA_ARCH__
    return *(const V *)p;
#else
    if ((uintptr_t)p % sizeof(V) != 0) cq_host_misaligned_loads()++;
    cq_host_check_bounds(p, sizeof(V));
    V v;
    memcpy(&v, p, sizeof v);
    return v;
#endif
}

CQ_FN float cq_bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* ggml type ids (lib/quant.h). */
enum {
    CQ_F32 = 0, CQ_F16 = 1, CQ_Q4_0 = 2, CQ_Q4_1 = 3, CQ_Q5_0 = 6, CQ_Q5_1 = 7, CQ_Q8_0 = 8,
    CQ_Q4_K = 12, CQ_Q5_K = 13, CQ_Q6_K = 14, CQ_BF16 = 30
};

/* Every scale and quant field the routines read starts at an even offset of a block, and every
 * block size is even, so 2-byte loads are always aligned (rows start at row * row_bytes in a
 * 256-byte aligned copy; test_cuda_deq checks it). */
CQ_FN float cq_f16(const uint8_t *p) { return __half2float(__ushort_as_half(cq_load<unsigned short>(p))); }

/* 8 bytes at p: one 64-bit load when 8-byte aligned (compile-time promise: Q4_K/Q5_K), else four
 * 16-bit loads (half the instructions of bytes; the warp's lanes read neighbouring bytes, so the
 * load count, not DRAM, can limit a mat-vec over the 34- and 210-byte formats). */
template <bool ALIGNED8>
CQ_FN void cq_ld8(const uint8_t *p, uint8_t q[8]) {
    if (ALIGNED8) {
        uint2 u = cq_load<uint2>(p);
CQ_UNROLL
        for (int k = 0; k < 4; k++) {
            q[k] = (uint8_t)(u.x >> (8 * k));
            q[4 + k] = (uint8_t)(u.y >> (8 * k));
        }
    } else {
CQ_UNROLL
        for (int k = 0; k < 4; k++) {
            const unsigned short h = cq_load<unsigned short>(p + 2 * k);
            q[2 * k] = (uint8_t)h;
            q[2 * k + 1] = (uint8_t)(h >> 8);
        }
    }
}

/* 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block (lib/quant.c). */
CQ_FN void cq_scale_min_k4(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

template <int T> struct deq;

template <> struct deq<CQ_F32> {
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const float4 a = cq_load<float4>(row + 4 * i0), b = cq_load<float4>(row + 4 * i0 + 16);
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
        v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    }
};

template <> struct deq<CQ_F16> {
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        uint4 u = cq_load<uint4>(row + 2 * i0);
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};   /* halves from the words: no type punning */
CQ_UNROLL
        for (int k = 0; k < 4; k++) {
            v[2 * k] = __half2float(__ushort_as_half((unsigned short)(w[k] & 0xffffu)));
            v[2 * k + 1] = __half2float(__ushort_as_half((unsigned short)(w[k] >> 16)));
        }
    }
};

template <> struct deq<CQ_BF16> {
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        uint4 u = cq_load<uint4>(row + 2 * i0);
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
CQ_UNROLL
        for (int k = 0; k < 4; k++) {
            v[2 * k] = cq_bits_float(w[k] << 16);
            v[2 * k + 1] = cq_bits_float(w[k] & 0xffff0000u);
        }
    }
};

template <> struct deq<CQ_Q8_0> {   /* {f16 d; int8 qs[32]} 34 bytes */
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const uint8_t *b = row + (i0 >> 5) * 34;
        const int j = (int)(i0 & 31);
        const float d = cq_f16(b);
        uint8_t q[8];
        cq_ld8<false>(b + 2 + j, q);
CQ_UNROLL
        for (int k = 0; k < 8; k++) v[k] = (float)(int8_t)q[k] * d;
    }
};

template <> struct deq<CQ_Q4_0> {   /* {f16 d; u8 qs[16]} 18 bytes; elements 0-15 low nibbles */
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const uint8_t *b = row + (i0 >> 5) * 18;
        const int j = (int)(i0 & 31), hi = j >> 4, l0 = j & 15;
        const float d = cq_f16(b);
        uint8_t qs[8];
        cq_ld8<false>(b + 2 + l0, qs);
CQ_UNROLL
        for (int k = 0; k < 8; k++) {
            const int q = hi ? qs[k] >> 4 : qs[k] & 0xf;
            v[k] = (float)(q - 8) * d;
        }
    }
};

template <> struct deq<CQ_Q4_1> {   /* {f16 d, m; u8 qs[16]} 20 bytes */
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const uint8_t *b = row + (i0 >> 5) * 20;
        const int j = (int)(i0 & 31), hi = j >> 4, l0 = j & 15;
        const float d = cq_f16(b), m = cq_f16(b + 2);
        uint8_t qs[8];
        cq_ld8<false>(b + 4 + l0, qs);
CQ_UNROLL
        for (int k = 0; k < 8; k++) {
            const int q = hi ? qs[k] >> 4 : qs[k] & 0xf;
            v[k] = (float)q * d + m;
        }
    }
};

template <> struct deq<CQ_Q5_0> {   /* {f16 d; u8 qh[4]; u8 qs[16]} 22 bytes; qh bit i = element i */
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const uint8_t *b = row + (i0 >> 5) * 22;
        const int j = (int)(i0 & 31), hi = j >> 4, l0 = j & 15;
        const float d = cq_f16(b);
        const uint32_t qh = cq_load<unsigned short>(b + 2) | ((uint32_t)cq_load<unsigned short>(b + 4) << 16);
        uint8_t qs[8];
        cq_ld8<false>(b + 6 + l0, qs);
CQ_UNROLL
        for (int k = 0; k < 8; k++) {
            const int lo4 = hi ? qs[k] >> 4 : qs[k] & 0xf;
            const int q = lo4 | (int)(((qh >> (j + k)) & 1) << 4);
            v[k] = (float)(q - 16) * d;
        }
    }
};

template <> struct deq<CQ_Q5_1> {   /* {f16 d, m; u8 qh[4]; u8 qs[16]} 24 bytes */
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const uint8_t *b = row + (i0 >> 5) * 24;
        const int j = (int)(i0 & 31), hi = j >> 4, l0 = j & 15;
        const float d = cq_f16(b), m = cq_f16(b + 2);
        const uint32_t qh = cq_load<unsigned short>(b + 4) | ((uint32_t)cq_load<unsigned short>(b + 6) << 16);
        uint8_t qs[8];
        cq_ld8<false>(b + 8 + l0, qs);
CQ_UNROLL
        for (int k = 0; k < 8; k++) {
            const int lo4 = hi ? qs[k] >> 4 : qs[k] & 0xf;
            const int q = lo4 | (int)(((qh >> (j + k)) & 1) << 4);
            v[k] = (float)q * d + m;
        }
    }
};

/* Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]} 144 bytes. Element 64c + 32h + l (c 0..3, h 0..1,
 * l 0..31) is nibble h of qs[32c + l], sub-block 2c + h. */
template <> struct deq<CQ_Q4_K> {
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const uint8_t *b = row + (i0 >> 8) * 144;
        const int j = (int)(i0 & 255), c = j >> 6, h = (j >> 5) & 1, l0 = j & 31;
        int sc, m;
        cq_scale_min_k4(2 * c + h, b + 4, &sc, &m);
        const float dl = cq_f16(b) * (float)sc, ml = cq_f16(b + 2) * (float)m;
        uint8_t q[8];
        cq_ld8<true>(b + 16 + 32 * c + l0, q);
CQ_UNROLL
        for (int k = 0; k < 8; k++) v[k] = dl * (float)(h ? q[k] >> 4 : q[k] & 0xf) - ml;
    }
};

/* Q5_K {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]} 176 bytes: Q4_K plus bit (2c + h) of
 * qh[l] as the fifth bit. */
template <> struct deq<CQ_Q5_K> {
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const uint8_t *b = row + (i0 >> 8) * 176;
        const int j = (int)(i0 & 255), c = j >> 6, h = (j >> 5) & 1, l0 = j & 31, sh = 2 * c + h;
        int sc, m;
        cq_scale_min_k4(sh, b + 4, &sc, &m);
        const float dl = cq_f16(b) * (float)sc, ml = cq_f16(b + 2) * (float)m;
        uint8_t q[8], qh[8];
        cq_ld8<true>(b + 48 + 32 * c + l0, q);
        cq_ld8<true>(b + 16 + l0, qh);
CQ_UNROLL
        for (int k = 0; k < 8; k++) {
            const int lo4 = h ? q[k] >> 4 : q[k] & 0xf;
            v[k] = dl * (float)(lo4 + (((qh[k] >> sh) & 1) << 4)) - ml;
        }
    }
};

/* Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d} 210 bytes. Element 128h + 32k + l (h 0..1,
 * k 0..3, l 0..31): low 4 bits nibble (k >= 2) of ql[64h + 32(k & 1) + l], high 2 bits
 * (qh[32h + l] >> 2k) & 3, minus 32; scale scales[8h + l/16 + 2k]. */
template <> struct deq<CQ_Q6_K> {
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const uint8_t *b = row + (i0 >> 8) * 210;
        const int j = (int)(i0 & 255), h = j >> 7, k4 = (j >> 5) & 3, l0 = j & 31;
        const float d = cq_f16(b + 208);
        const float ds = d * (float)(int8_t)b[192 + 8 * h + (l0 >> 4) + 2 * k4];
        uint8_t ql[8], qh[8];
        cq_ld8<false>(b + 64 * h + 32 * (k4 & 1) + l0, ql);
        cq_ld8<false>(b + 128 + 32 * h + l0, qh);
CQ_UNROLL
        for (int k = 0; k < 8; k++) {
            const int lo4 = k4 >= 2 ? ql[k] >> 4 : ql[k] & 0xf;
            const int q = (lo4 | (((qh[k] >> (2 * k4)) & 3) << 4)) - 32;
            v[k] = ds * (float)q;
        }
    }
};

/* ---- grouped device layouts of the 2-byte aligned formats ----------------------------------
 * Q8_0 (34-byte blocks), Q4_0 (18), Q5_0 (22) and Q6_K (210) blocks are only 2-byte aligned, so
 * the kernels could read them 2 bytes at a time only. On the device their rows are stored
 * regrouped (cuda_glue.c at upload, backend.cu cuda_group_rows): per group of 8 blocks a header with the 8
 * blocks' scale fields (f16 d's, then Q5_0's qh words or Q6_K's scales), then the 8 blocks'
 * quants, every part 16-byte aligned; the last group of a row has the full header and only the
 * blocks the row has. The same bytes, moved: every row of the device copy starts 16-byte
 * aligned, quants can be read 16 bytes at a time, and nothing about a row's length is needed to
 * find element i (all earlier groups are full). Device-only type ids: the GGUF id + 100. */
enum { CQ_Q4_0G = 102, CQ_Q5_0G = 106, CQ_Q8_0G = 108, CQ_Q6_KG = 114 };
/* (sizes and the host-side regrouping: cuda_api.h cuda_group_of / cuda_group_row_bytes,
 * backend.cu cuda_group_rows) */

/* Block bi of a grouped row: where its header fields and its quants are. */
struct cq_gblock {
    const uint8_t *g;         /* the group's header                                              */
    int j;                    /* the block within the group                                      */
    const uint8_t *q;         /* its quants                                                      */
};
CQ_FN cq_gblock cq_gblock_at(const uint8_t *row, int64_t bi, int head, int pay) {
    cq_gblock r;
    r.g = row + (bi >> 3) * (int64_t)(head + 8 * pay);
    r.j = (int)(bi & 7);
    r.q = r.g + head + r.j * pay;
    return r;
}

template <> struct deq<CQ_Q8_0G> {
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const cq_gblock g = cq_gblock_at(row, i0 >> 5, 16, 32);
        const float d = cq_f16(g.g + 2 * g.j);
        const uint2 u = cq_load<uint2>(g.q + (i0 & 31));
        const uint32_t w[2] = {u.x, u.y};
CQ_UNROLL
        for (int k = 0; k < 8; k++) v[k] = (float)(int8_t)(uint8_t)(w[k >> 2] >> (8 * (k & 3))) * d;
    }
};

template <bool FIVE>
struct deq_q45g {
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const cq_gblock g = cq_gblock_at(row, i0 >> 5, FIVE ? 48 : 16, 16);
        const int j = (int)(i0 & 31), hi = j >> 4, l0 = j & 15;
        const float d = cq_f16(g.g + 2 * g.j);
        const uint2 u = cq_load<uint2>(g.q + l0);
        const uint32_t w[2] = {u.x, u.y}, qh = FIVE ? cq_load<uint32_t>(g.g + 16 + 4 * g.j) : 0;
CQ_UNROLL
        for (int k = 0; k < 8; k++) {
            const int b = (int)((w[k >> 2] >> (8 * (k & 3))) & 0xff), lo4 = hi ? b >> 4 : b & 0xf;
            v[k] = FIVE ? (float)((lo4 | (int)(((qh >> (j + k)) & 1) << 4)) - 16) * d : (float)(lo4 - 8) * d;
        }
    }
};
template <> struct deq<CQ_Q4_0G> : deq_q45g<false> {};
template <> struct deq<CQ_Q5_0G> : deq_q45g<true> {};

template <> struct deq<CQ_Q6_KG> {
    static CQ_FN void run(const uint8_t *row, int64_t i0, float v[8]) {
        const cq_gblock g = cq_gblock_at(row, i0 >> 8, 144, 192);
        const int j = (int)(i0 & 255), h = j >> 7, k4 = (j >> 5) & 3, l0 = j & 31;
        const float d = cq_f16(g.g + 2 * g.j);
        const float ds = d * (float)(int8_t)g.g[16 + 16 * g.j + 8 * h + (l0 >> 4) + 2 * k4];
        const uint2 ul = cq_load<uint2>(g.q + 64 * h + 32 * (k4 & 1) + l0), uh = cq_load<uint2>(g.q + 128 + 32 * h + l0);
        const uint32_t ql[2] = {ul.x, ul.y}, qh[2] = {uh.x, uh.y};
CQ_UNROLL
        for (int k = 0; k < 8; k++) {
            const int lb = (int)((ql[k >> 2] >> (8 * (k & 3))) & 0xff), hb = (int)((qh[k >> 2] >> (8 * (k & 3))) & 0xff);
            const int lo4 = k4 >= 2 ? lb >> 4 : lb & 0xf;
            v[k] = ds * (float)((lo4 | (((hb >> (2 * k4)) & 3) << 4)) - 32);
        }
    }
};

/* The case labels of the types with an int8-activation mat-vec (vdot.cuh's VDOT_DISPATCH), part
 * of CQ_DISPATCH too. */
#define CQ_CASES_INT8(F)                                                                           \
    case CQ_Q8_0: F(CQ_Q8_0); break;                                                               \
    case CQ_Q4_0: F(CQ_Q4_0); break;                                                               \
    case CQ_Q5_0: F(CQ_Q5_0); break;                                                               \
    case CQ_Q4_K: F(CQ_Q4_K); break;                                                               \
    case CQ_Q5_K: F(CQ_Q5_K); break;                                                               \
    case CQ_Q6_K: F(CQ_Q6_K); break;                                                               \
    case CQ_Q8_0G: F(CQ_Q8_0G); break;                                                             \
    case CQ_Q4_0G: F(CQ_Q4_0G); break;                                                             \
    case CQ_Q5_0G: F(CQ_Q5_0G); break;                                                             \
    case CQ_Q6_KG: F(CQ_Q6_KG); break;

/* Host-side dispatch over the supported types: F(T) is expanded once per type inside a switch;
 * default returns `unsupported`. */
#define CQ_DISPATCH(type, F, unsupported)                                                          \
    switch (type) {                                                                                \
    case CQ_F32: F(CQ_F32); break;                                                                 \
    case CQ_F16: F(CQ_F16); break;                                                                 \
    case CQ_BF16: F(CQ_BF16); break;                                                               \
    case CQ_Q4_1: F(CQ_Q4_1); break;                                                               \
    case CQ_Q5_1: F(CQ_Q5_1); break;                                                               \
    CQ_CASES_INT8(F)                                                                               \
    default: unsupported;                                                                          \
    }

#endif
