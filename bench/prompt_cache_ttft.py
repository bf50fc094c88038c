#!/usr/bin/env python3
# Time to first token of `coder -p` with and without --prompt-cache: a ~2,160-token prefix, two questions.
import subprocess, sys, time, json, os
# usage: python3 bench/prompt_cache_ttft.py MODEL.gguf [build/coder]   (see docs/PERF.md, "Agent features")
M = sys.argv[1]; C = sys.argv[2] if len(sys.argv) > 2 else "build/coder"
prefix = "\n".join("def helper_%d(values, scale):\n    total = sum(v * scale for v in values)\n    return total / %d\n" % (i, i + 1) for i in range(75))
def run(q, cache=None, json_out=False):
    args = [C, "-m", M, "-p", prefix + "\n# Question: " + q + "\n", "-n", "8", "--temp", "0", "-t", "2", "-c", "4096", "--stats"]
    if cache: args += ["--prompt-cache", cache]
    if json_out: args += ["--json"]
    t0 = time.time()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.read(1); t1 = time.time()
    rest = p.stdout.read(); err = p.stderr.read().decode(); p.wait(); t2 = time.time()
    return (first + rest).decode(errors="replace"), t1 - t0, t2 - t0, err
cache = M + ".promptcache"
if os.path.exists(cache): os.remove(cache)
out_u, ttft_u, tot_u, err_u = run("what does helper_3 return?")
print("uncached Q2 reference run: TTFT %.2f s total %.2f s" % (ttft_u, tot_u)); print(err_u)
o1, t1, tt1, e1 = run("what does helper_5 compute?", cache)
print("call 1 (no cache file): TTFT %.2f s, total %.2f s" % (t1, tt1)); print(e1)
print("cache file: %.1f MiB" % (os.path.getsize(cache) / 2**20))
o2, t2, tt2, e2 = run("what does helper_3 return?", cache)
print("call 2 (cache, new question): TTFT %.3f s, total %.2f s" % (t2, tt2)); print(e2)
print("TTFT ratio: %.1fx; output equal to uncached: %s" % (t1 / t2, o2 == out_u))
print(repr(o2[:80])); print(repr(out_u[:80]))
