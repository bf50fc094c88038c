#!/usr/bin/env python3
"""Independent quantization-error figures for docs/QUANT.md (compare: bench/bench_quant_rmse.c).

1. The same N(0,1) data as the C bench (splitmix64 + Box-Muller, seed 1234, 256 x 4096),
   quantized and dequantized by the `gguf` PyPI package (gguf.quants), for every type it can
   quantize (Q8_0, Q5_1, Q5_0, Q4_1, Q4_0, BF16; F16 via numpy). gguf-py cannot quantize K-quants.
2. K-quants: llama.cpp's own output. refdata/models/tiny-llama-q4_k_m.gguf was written by
   llama-quantize from tiny-llama-f16.gguf; its Q4_K and Q6_K tensors are dequantized here with
   gguf-py and compared with the F16 originals (relative rmse = rms(err) / std(weights); for
   N(0,1) data relative and absolute rmse coincide).

usage: python3 tools/quant_rmse.py [REFDATA_DIR]     (default ../shared/refdata)
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


if __name__ == "__main__":
    main()
