#!/usr/bin/env python3
"""Decode A/B of two `coder` builds on the same machine, alternated so a shared host's bandwidth
swings hit both alike: N rounds of `coder bench -p 1 -n 64 -t 2 -r 1 --bw-mib 16` per model, the
order swapped every round. Prints the medians, their ratio and how many rounds the new build won.

usage: python3 bench/ab_decode.py N OLD_CODER NEW_CODER MODEL.gguf [MODEL.gguf ...]
"""
import re
import statistics
import subprocess
import sys


def decode_tps(coder, model):
    out = subprocess.run([coder, "bench", "-m", model, "-p", "1", "-n", "64", "-t", "2", "-r", "1", "--bw-mib", "16"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True).stdout
    return float(re.search(r"^decode.*, ([0-9.]+) tok/s", out, re.M).group(1))


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    n, old, new = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    for model in sys.argv[4:]:
        a, b = [], []
        for i in range(n):
            if i % 2:
                b.append(decode_tps(new, model))
                a.append(decode_tps(old, model))
            else:
                a.append(decode_tps(old, model))
                b.append(decode_tps(new, model))
        wins = sum(y > x for x, y in zip(a, b))
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{model}: old {ma:.1f} new {mb:.1f} tok/s, ratio {mb / ma:.3f}, new faster in {wins}/{n}", flush=True)


if __name__ == "__main__":
    main()
