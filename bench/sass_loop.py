#!/usr/bin/env python3
"""Static cost of the decode mat-vec kernels, without a GPU: compiles cuda/mmvq.cu (float) and
cuda/mmv_int8.cu (int8 activations; "grouped": the device layout of the 2-byte aligned formats,
cuda/quant.cuh) for sm_90, disassembles them with cuobjdump, finds each
1-token kernel's main loop (its longest backward branch) and prints SASS instructions per weight.

Why it matters: an H100 SM issues at most 128 thread-instructions per clock and must consume
~12.8 bytes of weights per clock to keep up with HBM3 (3.35 TB/s over 132 SMs at ~1.98 GHz), i.e.
22.7 Q4_K weights (144 bytes per 256), 15.6 Q6_K, 12 Q8_0. Instructions per weight times weights
per clock above 128 means the kernel cannot reach the memory roofline, whatever the occupancy.

cuobjdump is not in the CUDA toolkit here: `pip install nvidia-cuda-cuobjdump` (PyPI) provides it.
usage: python3 bench/sass_loop.py [--cuobjdump PATH]
"""
import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

# ggml type id -> (name, weights per clock per SM at 12.8 bytes/clock)
TYPES = {12: ("Q4_K", 12.8 * 256 / 144), 13: ("Q5_K", 12.8 * 256 / 176), 14: ("Q6_K", 12.8 * 256 / 210),
         114: ("Q6_K grouped", 12.8 * 256 / 210), 8: ("Q8_0", 12.8 * 32 / 34), 108: ("Q8_0 grouped", 12.8 * 32 / 34),
         6: ("Q5_0", 12.8 * 32 / 22), 106: ("Q5_0 grouped", 12.8 * 32 / 22), 2: ("Q4_0", 12.8 * 32 / 18),
         102: ("Q4_0 grouped", 12.8 * 32 / 18), 1: ("F16", 12.8 / 2)}
# weights one lane handles per iteration of the main loop (both loops are unrolled twice)
FLOAT_WEIGHTS = 16
INT8_WEIGHTS = {12: 64, 13: 64, 14: 32, 8: 16, 6: 16, 2: 16, 114: 128, 108: 64, 106: 64, 102: 64}


def find_cuobjdump(given):
    if given:
        return given
    found = shutil.which("cuobjdump")
    if found:
        return found
    try:
        import nvidia  # the PyPI wheels' namespace package
        for base in nvidia.__path__:
            hits = glob.glob(os.path.join(base, "*", "bin", "cuobjdump"))
            if hits:
                return hits[0]
    except ImportError:
        pass
    sys.exit("sass_loop: no cuobjdump (pip install nvidia-cuda-cuobjdump)")


def loop_instructions(sass, kernel, type_id):
    """Instructions between the target and the source of the function's longest backward branch."""
    pat = re.compile(r"Function : (_Z\d+%sILi%dELi1EE\S*)" % (kernel, type_id))
    m = pat.search(sass)
    if not m:
        return None
    body = sass[m.end():]
    nxt = body.find("Function :")
    body = body if nxt < 0 else body[:nxt]
    ins = [(int(a, 16), t.strip()) for a, t in re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", body)]
    best = None
    for addr, text in ins:
        b = re.search(r"BRA (?:`\(\.L_x_\d+\) )?0x([0-9a-f]+)", text)
        if b:
            tgt = int(b.group(1), 16)
            if tgt < addr and (best is None or addr - tgt > best[1] - best[0]):
                best = (tgt, addr)
    if not best:
        return None
    loop = [t for a, t in ins if best[0] <= a <= best[1]]
    ops = collections.Counter(re.sub(r"^@!?U?P\w+\s+", "", t).split()[0].split(".")[0] for t in loop)
    return len(loop), ops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuobjdump")
    a = ap.parse_args()
    tool = find_cuobjdump(a.cuobjdump)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sass = {}
    with tempfile.TemporaryDirectory() as tmp:
        for src in ("mmvq", "mmv_int8"):
            cubin = os.path.join(tmp, src + ".cubin")
            subprocess.run(["nvcc", "-O3", "-std=c++17", "-arch=sm_90", "-cubin", "-o", cubin,
                            os.path.join(root, "cuda", src + ".cu"), "-I" + os.path.join(root, "include"),
                            "-I" + os.path.join(root, "lib")], check=True)
            sass[src] = subprocess.run([tool, "-sass", cubin], check=True, capture_output=True, text=True).stdout
    print("| type | kernel | loop instructions | weights | per weight | needed issue rate (of 128/clk) | top opcodes |")
    print("|---|---|---:|---:|---:|---:|---|")
    for tid, (name, wpc) in TYPES.items():
        for src, kernel, per in (("mmvq", "mmv_kernel", FLOAT_WEIGHTS), ("mmv_int8", "mmv_int8_kernel", INT8_WEIGHTS.get(tid))):
            if per is None:
                continue
            r = loop_instructions(sass[src], kernel, tid)
            if r is None:
                print("| %s | %s | no loop found | | | | |" % (name, kernel))
                continue
            n, ops = r
            top = ", ".join("%s %d" % kv for kv in ops.most_common(5))
            print("| %s | %s | %d | %d | %.1f | %.0f%% | %s |" % (name, kernel, n, per, n / per, 100 * n / per * wpc / 128, top))


if __name__ == "__main__":
    main()
