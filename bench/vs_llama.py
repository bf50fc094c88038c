#!/usr/bin/env python3
"""Ours against llama.cpp in one run, on this machine: `coder bench` and `llama-bench` on the same
GGUF files (the synthetic models of bench/cpu_presets.sh), interleaved model by model and round by
round, so a shared host's memory-bandwidth swings hit both alike. Prints the docs/PERF.md table:
pp128 / tg64 medians over the rounds, the ratios, and decode GB/s.

llama.cpp is not part of this project: build its `llama-bench` yourself (CPU, Release, native) and
pass its path. Both run with 2 threads, -p 128 -n 64, -r REPS per round.

usage: python3 bench/vs_llama.py LLAMA_BENCH [--models DIR] [--rounds N] [--reps N] [--threads N]
                                [--presets P,P] [--types T,T]
(--types F16 --rounds 8 --reps 1: many short alternations of one type, for the ratio's spread)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

PRESETS = ["qwen2.5-0.5b", "qwen2.5-coder-1.5b"]
TYPES = ["Q4_K_M", "Q8_0", "F16"]


def ours(coder, path, threads, reps):
    out = subprocess.run([coder, "bench", "-m", path, "-p", "128", "-n", "64", "-t", str(threads), "-r", str(reps),
                          "--bw-mib", "256", "--json"], check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["prefill_tps"], r["decode_tps"], r["bytes_per_token"], r["mem_bw_gbs"]


def llama(exe, path, threads, reps):
    out = subprocess.run([exe, "-m", path, "-t", str(threads), "-p", "128", "-n", "64", "-r", str(reps), "-o", "jsonl"],
                         check=True, capture_output=True, text=True).stdout
    pp = tg = None
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        if d["n_prompt"] == 128 and d["n_gen"] == 0:
            pp = d["avg_ts"]
        elif d["n_gen"] == 64 and d["n_prompt"] == 0:
            tg = d["avg_ts"]
    if pp is None or tg is None:
        sys.exit(f"vs_llama: no pp128/tg64 rows from {exe} on {path}")
    return pp, tg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("llama_bench")
    ap.add_argument("--models", default="/tmp/coder-bench")
    ap.add_argument("--coder", default=os.path.join(os.environ.get("CODER_BUILD", "build"), "coder"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--types", default=",".join(TYPES))
    a = ap.parse_args()

    rows = []
    for preset in a.presets.split(","):
        for typ in a.types.split(","):
            path = os.path.join(a.models, f"{preset}-{typ}.gguf")
            if not os.path.exists(path):
                sys.exit(f"vs_llama: {path} missing (make it with: sh bench/cpu_presets.sh {a.models})")
            o_pp, o_tg, l_pp, l_tg, bw = [], [], [], [], []
            bytes_tok = 0
            for rnd in range(a.rounds):
                # alternate which runs first, so neither always gets the warmer page cache
                order = [0, 1] if rnd % 2 == 0 else [1, 0]
                for who in order:
                    if who == 0:
                        pp, tg, bytes_tok, mbw = ours(a.coder, path, a.threads, a.reps)
                        o_pp.append(pp), o_tg.append(tg), bw.append(mbw)
                    else:
                        pp, tg = llama(a.llama_bench, path, a.threads, a.reps)
                        l_pp.append(pp), l_tg.append(tg)
                print(f"# {preset} {typ} round {rnd + 1}: ours pp {o_pp[-1]:.1f} tg {o_tg[-1]:.1f}; "
                      f"llama.cpp pp {l_pp[-1]:.1f} tg {l_tg[-1]:.1f}", file=sys.stderr, flush=True)
            ratios = sorted(o / l for o, l in zip(o_tg, l_tg))
            print(f"# {preset} {typ} decode ratio per round: min {ratios[0]:.2f} median {statistics.median(ratios):.2f} "
                  f"max {ratios[-1]:.2f}", file=sys.stderr, flush=True)
            rows.append((preset, typ, statistics.median(o_pp), statistics.median(l_pp), statistics.median(o_tg),
                         statistics.median(l_tg), bytes_tok, statistics.median(bw)))

    print("| model | type | pp128 ours | pp128 llama.cpp | ratio | tg64 ours | tg64 llama.cpp | ratio |"
          " decode GB/s ours | llama.cpp | read bw |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for preset, typ, opp, lpp, otg, ltg, bt, bw in rows:
        print(f"| {preset} | {typ} | {opp:.1f} | {lpp:.1f} | {opp / lpp:.2f} | {otg:.1f} | {ltg:.1f} | {otg / ltg:.2f} |"
              f" {otg * bt / 1e9:.1f} | {ltg * bt / 1e9:.1f} | {bw:.1f} |")


if __name__ == "__main__":
    main()
