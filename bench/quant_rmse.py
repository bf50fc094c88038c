#!/usr/bin/env python3
"""Independent quantization-error figures for docs/QUANT.md (compare: bench/bench_quant_rmse.c).

1. The same N(0,1) data as the C bench (splitmix64 + Box-Muller, seed 1234, 256 x 4096),
   quantized and dequantized by the `gguf` PyPI package (gguf.quants), for every type it can
   quantize (Q8_0, Q5_1, Q5_0, Q4_1, Q4_0, BF16; F16 via numpy). gguf-py cannot quantize K-quants.
2. K-quants: llama.cpp's own output. refdata/models/tiny-llama-q4_k_m.gguf was written by
   llama-quantize from tiny-llama-f16.gguf; its Q4_K and Q6_K tensors are dequantized here with
   gguf-py and compared with the F16 originals (relative rmse = rms(err) / std(weights); for
   N(0,1) data relative and absolute rmse coincide).
3. K-quants with min (Q4_K, Q5_K): kq_min_ref() below, an independent numpy implementation of the
   published algorithm of llama.cpp's quantize_row_q4_K_ref / quantize_row_q5_K_ref (search of
   scale and min per 32-element sub-block, "make_qkx2_quants"; 6-bit scales/mins; f16 d, dmin;
   requantization with the stored scales). Validated on Q4_K against llama-quantize's own output
   (same rel. rmse on tiny-llama, element-by-element comparison of the dequantized weights), then
   used for the Q5_K figure that no other source gives.

usage: python3 bench/quant_rmse.py [REFDATA_DIR]     (default ../shared/refdata)
needs: pip install gguf numpy
"""
import importlib.metadata
import sys
import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(seed, n):
    k = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + k * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def gauss(n, seed):
    u = ((splitmix64(seed, n) >> np.uint64(11)).astype(np.float64) + 0.5) / 9007199254740992.0
    u1, u2 = u[0::2], u[1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    x = np.empty(n, dtype=np.float64)
    x[0::2] = r * np.cos(2 * np.pi * u2)
    x[1::2] = r * np.sin(2 * np.pi * u2)
    return x.astype(np.float32)


F32 = np.float32


def seqsum(a):
    """Row sums accumulated left to right in float32, as the C loops do."""
    acc = a[:, 0].astype(F32)
    for i in range(1, a.shape[1]):
        acc = (acc + a[:, i]).astype(F32)
    return acc


def make_qkx2(x, w, nmax, rmin, rdelta, nstep):
    """Scale+min search of llama.cpp's make_qkx2_quants (use_mad = false), for every row of x
    (n_sub x n) at once, float32 throughout. Returns (scale, the_min) with x ~ scale*L - the_min."""
    x = x.astype(F32)
    w = w.astype(F32)
    mn = np.minimum(x.min(axis=1), F32(0))
    mx = x.max(axis=1)
    sum_w = seqsum(w)
    sum_x = seqsum(w * x)
    flat = mx == mn
    rng = np.where(flat, F32(1), mx - mn).astype(F32)
    iscale = (F32(nmax) / rng).astype(F32)
    scale = (F32(1) / iscale).astype(F32)
    L = np.clip(np.rint(iscale[:, None] * (x - mn[:, None])), 0, nmax).astype(F32)
    best = seqsum(w * (scale[:, None] * L + mn[:, None] - x) ** 2)
    for k in range(nstep + 1):
        # as in the C code, a better (scale, min) found at step k replaces `min`, so later steps
        # grid from the updated min: iscale = (nmax + rmin + rdelta*k) / (max - min)
        rng = np.where(flat, F32(1), mx - mn).astype(F32)
        isc = ((F32(rmin) + F32(rdelta) * F32(k) + F32(nmax)) / rng).astype(F32)
        La = np.clip(np.rint(isc[:, None] * (x - mn[:, None])), 0, nmax).astype(F32)
        sum_l = seqsum(w * La)
        sum_l2 = seqsum(w * La * La)
        sum_xl = seqsum(w * La * x)
        D = sum_w * sum_l2 - sum_l * sum_l
        ok = D > 0
        Ds = np.where(ok, D, F32(1))
        ts = (sum_w * sum_xl - sum_x * sum_l) / Ds
        tm = (sum_l2 * sum_x - sum_l * sum_xl) / Ds
        pos = tm > 0
        ts = np.where(pos, sum_xl / np.where(sum_l2 > 0, sum_l2, F32(1)), ts).astype(F32)
        tm = np.where(pos, F32(0), tm).astype(F32)
        mad = seqsum(w * (ts[:, None] * La + tm[:, None] - x) ** 2)
        upd = ok & (mad < best)
        best = np.where(upd, mad, best)
        scale = np.where(upd, ts, scale)
        mn = np.where(upd, tm, mn).astype(F32)
    scale = np.where(flat, F32(0), scale).astype(F32)
    return scale, (-mn).astype(F32)


def kq_min_ref(x, nmax, rmin, rdelta, nstep):
    """Quantize -> dequantize x (length a multiple of 256) as llama.cpp's Q4_K (nmax 15, rmin -1,
    rdelta 0.1, nstep 20) or Q5_K (nmax 31, rmin -0.5, rdelta 0.1, nstep 15) reference quantizer
    (no importance matrix). Dequantizes with FORMATS.md 2.4/2.5: (d*sc)*q - dmin*m, float32."""
    xb = np.asarray(x, dtype=F32).reshape(-1, 8, 32)            # super-blocks x sub-blocks x 32
    nsb = xb.shape[0]
    xs = xb.reshape(-1, 32)
    av = np.sqrt(seqsum(xs * xs) / F32(32)).astype(F32)
    w = av[:, None] + np.abs(xs)
    sc, mi = make_qkx2(xs, w, nmax, rmin, rdelta, nstep)
    sc = sc.reshape(nsb, 8)
    mi = mi.reshape(nsb, 8)
    max_sc = sc.max(axis=1).clip(min=0)
    max_mi = mi.max(axis=1).clip(min=0)
    inv_sc = np.where(max_sc > 0, F32(63) / np.where(max_sc > 0, max_sc, F32(1)), F32(0)).astype(F32)
    inv_mi = np.where(max_mi > 0, F32(63) / np.where(max_mi > 0, max_mi, F32(1)), F32(0)).astype(F32)
    ls = np.minimum(np.rint(inv_sc[:, None] * sc), 63).astype(F32)         # 6-bit scales
    lm = np.minimum(np.rint(inv_mi[:, None] * mi), 63).astype(F32)         # 6-bit mins
    d = (max_sc / F32(63)).astype(np.float16).astype(F32)                  # f16 super-scales
    dmin = (max_mi / F32(63)).astype(np.float16).astype(F32)
    dj = (d[:, None] * ls).astype(F32)                                     # d*sc
    mj = (dmin[:, None] * lm).astype(F32)                                  # dmin*m
    djs = np.where(dj != 0, dj, F32(1))
    q = np.clip(np.rint((xb + mj[:, :, None]) / djs[:, :, None]), 0, nmax).astype(F32)
    q = np.where(dj[:, :, None] != 0, q, F32(0))
    y = dj[:, :, None] * q - mj[:, :, None]
    return y.reshape(np.shape(x)).astype(F32)


KQ_PARAMS = {"Q4_K": (15, -1.0, 0.1, 20), "Q5_K": (31, -0.5, 0.1, 15)}


def main():
    refdata = sys.argv[1] if len(sys.argv) > 1 else "../shared/refdata"
    rows, cols = 256, 4096
    x = gauss(rows * cols, 1234).reshape(rows, cols)
    print(f"gguf-py {importlib.metadata.version('gguf')} on N(0,1) data, {rows} x {cols}, seed 1234")
    print("| type | rmse (gguf-py) | max err |")
    print("|---|---:|---:|")
    y = x.astype(np.float16).astype(np.float32)
    print(f"| F16 (numpy) | {np.sqrt(np.mean((x - y) ** 2.0)):.6f} | {np.max(np.abs(x - y)):.5f} |")
    for t in (T.BF16, T.Q8_0, T.Q5_1, T.Q5_0, T.Q4_1, T.Q4_0):
        q = gguf.quants.quantize(x, t)
        y = gguf.quants.dequantize(q, t).reshape(rows, cols)
        e = x.astype(np.float64) - y
        print(f"| {t.name} | {np.sqrt(np.mean(e ** 2)):.6f} | {np.max(np.abs(e)):.5f} |")
    for t in (T.Q6_K, T.Q5_K, T.Q4_K):
        try:
            gguf.quants.quantize(x[:1], t)
            print(f"| {t.name} | (gguf-py can quantize it: add it here) | |")
        except NotImplementedError:
            print(f"| {t.name} | (gguf-py cannot quantize) | |")

    print()
    print("llama-quantize (llama.cpp 3f545bec) on refdata tiny-llama F16 weights, dequantized by gguf-py")
    print("| type | tensors | rel. rmse |")
    print("|---|---:|---:|")
    src = gguf.GGUFReader(f"{refdata}/models/tiny-llama-f16.gguf")
    qf = gguf.GGUFReader(f"{refdata}/models/tiny-llama-q4_k_m.gguf")
    orig = {t.name: t for t in src.tensors}
    for t in (T.Q4_K, T.Q6_K):
        se = var = 0.0
        nt = 0
        for tq in qf.tensors:
            if tq.tensor_type != t or tq.name not in orig:
                continue
            w = np.asarray(orig[tq.name].data).astype(np.float64).reshape(-1)
            d = gguf.quants.dequantize(np.asarray(tq.data), t).astype(np.float64).reshape(-1)
            se += np.sum((w - d) ** 2)
            var += np.sum((w - w.mean()) ** 2)
            nt += 1
        print(f"| {t.name} | {nt} | {np.sqrt(se / var):.6f} |")

    print()
    print("K-quants by kq_min_ref (independent numpy implementation of llama.cpp's reference algorithm)")
    print("validation: tiny-llama F16 weights of the Q4_K tensors, re-quantized here, vs llama-quantize")
    se = var = 0.0
    same = n = 0
    for tq in qf.tensors:
        if tq.tensor_type != T.Q4_K or tq.name not in orig:
            continue
        w = np.asarray(orig[tq.name].data).astype(np.float32).reshape(-1)
        ours = kq_min_ref(w, *KQ_PARAMS["Q4_K"])
        theirs = gguf.quants.dequantize(np.asarray(tq.data), T.Q4_K).astype(np.float32).reshape(-1)
        same += int(np.sum(ours == theirs))
        n += ours.size
        w64 = w.astype(np.float64)
        se += np.sum((w64 - ours) ** 2)
        var += np.sum((w64 - w64.mean()) ** 2)
    print(f"| Q4_K | rel. rmse {np.sqrt(se / var):.6f} | dequantized values identical to llama-quantize's: "
          f"{same}/{n} ({100.0 * same / n:.3f}%) |")
    print(f"on N(0,1) data, {rows} x {cols}, seed 1234:")
    print("| type | rmse (kq_min_ref) | max err |")
    print("|---|---:|---:|")
    for name in ("Q5_K", "Q4_K"):
        y = kq_min_ref(x, *KQ_PARAMS[name])
        e = x.astype(np.float64) - y
        print(f"| {name} | {np.sqrt(np.mean(e ** 2)):.6f} | {np.max(np.abs(e)):.5f} |")


if __name__ == "__main__":
    main()
