#!/usr/bin/env python3
"""Turns `sh bench/cpu_presets.sh` output (lines "PRESET TYPE {coder bench --json}") into the
docs/PERF.md table: our pp128 / tg64 next to llama.cpp's figures on this machine kind (2 threads,
../shared/refdata/README.md), the ratios, and decode's fraction of the bandwidth that `coder bench`
measured in the same run.   usage: sh bench/cpu_presets.sh | python3 bench/cpu_table.py"""
import json
import sys

# llama.cpp, same machine kind, 2 threads: (pp128, tg64) tok/s
LLAMA = {
    ("qwen2.5-0.5b", "Q4_K_M"): (292, 64), ("qwen2.5-0.5b", "Q8_0"): (355, 65), ("qwen2.5-0.5b", "F16"): (462, 42),
    ("qwen2.5-coder-1.5b", "Q4_K_M"): (137, 40.1), ("qwen2.5-coder-1.5b", "Q8_0"): (102, 22.9),
    ("qwen2.5-coder-1.5b", "F16"): (131, 15.7),
}

print("| model | type | pp128 tok/s | llama.cpp | ratio | tg64 tok/s | llama.cpp | ratio | decode GB/s | of measured bw |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for line in sys.stdin:
    parts = line.split(None, 2)
    if len(parts) < 3 or not parts[2].lstrip().startswith("{"):
        continue
    preset, typ, js = parts
    r = json.loads(js)
    pp, tg = LLAMA.get((preset, typ), (0, 0))
    ratio = lambda a, b: f"{a / b:.2f}" if b else "-"
    print(f"| {preset} | {typ} | {r['prefill_tps']:.1f} | {pp} | {ratio(r['prefill_tps'], pp)} | "
          f"{r['decode_tps']:.1f} | {tg} | {ratio(r['decode_tps'], tg)} | {r['decode_gbs']:.1f} | "
          f"{100 * r['roofline_fraction']:.0f}% |")
