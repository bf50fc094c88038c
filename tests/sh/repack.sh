#!/bin/sh
# Repacking at load (lib/repack.c) changes no result: tiny Q8_0 and Q4_K_M (Q4_K, Q6_K, Q5_0)
# models' last logits
# (`coder eval`: a long prompt goes through the prefill GEMM, a 3-token one through the n <= 4
# path) and a greedy generation (the decode GEMV) are byte-identical with CODER_REPACK=0, mapped
# or read into memory (repacked in place).
B=${CODER_BUILD:-build}
R=${CODER_REFDATA:-../shared/refdata}
V="$R/vocab/ggml-vocab-qwen2.gguf"
if [ ! -f "$V" ]; then echo "SKIP repack.sh:same_results: no reference vocab at $V"; exit 0; fi
if ! grep -q avx2 /proc/cpuinfo 2>/dev/null || [ "${CODER_CPU_ISA:-}" = scalar ]; then
    echo "SKIP repack.sh:same_results: no AVX2, the lowest level that repacks (the kernels are checked in test_batch_invariant)"; exit 0
fi
# every repacking level this CPU has: the best one and AVX2 below it
levels="best"
grep -q avx512_vnni /proc/cpuinfo 2>/dev/null && levels="best avx2"
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL repack.sh:$1"; exit 0; }
long="def quicksort(xs):
    if len(xs) <= 1:
        return xs
    pivot = xs[len(xs) // 2]"
for type in Q8_0 Q4_K_M; do
  for lv in $levels; do
    if [ $lv = best ]; then unset CODER_CPU_ISA; else export CODER_CPU_ISA=$lv; fi
    m="$d/$type.gguf"
    "$B/coder" mkmodel --preset tiny --type $type --vocab "$V" --mode random -o "$m" >/dev/null 2>&1 || fail "same_results: mkmodel $type"
    for p in long short; do
        if [ $p = long ]; then text=$long; else text="int main"; fi
        printf '%s' "$text" | CODER_REPACK=0 "$B/coder" eval -m "$m" -o "$d/$p.0" -t 2 2>"$d/err" || fail "same_results: $type $lv eval $p: $(tail -1 "$d/err")"
        printf '%s' "$text" | "$B/coder" eval -m "$m" -o "$d/$p.1" -t 2 -v 2>"$d/err" || fail "same_results: $type $lv eval $p: $(tail -1 "$d/err")"
        grep -q "repacked" "$d/err" || fail "same_results: no 'repacked' in the log of $type eval $p"
        cmp -s "$d/$p.0" "$d/$p.1" || fail "same_results: $type $lv eval $p logits differ with repacking"
    done
    CODER_REPACK=0 "$B/coder" -m "$m" -p "def fib(n):" -n 24 --temp 0 -t 2 >"$d/g0" 2>/dev/null || fail "same_results: $type $lv generate"
    "$B/coder" -m "$m" -p "def fib(n):" -n 24 --temp 0 -t 2 >"$d/g1" 2>/dev/null || fail "same_results: $type $lv generate"
    "$B/coder" -m "$m" -p "def fib(n):" -n 24 --temp 0 -t 2 --no-mmap -v >"$d/g2" 2>"$d/err" || fail "same_results: $type $lv generate --no-mmap"
    grep -q "in place" "$d/err" || fail "same_results: $type $lv --no-mmap did not repack in place"
    cmp -s "$d/g0" "$d/g1" || fail "same_results: $type $lv generation differs with repacking (mapped)"
    cmp -s "$d/g0" "$d/g2" || fail "same_results: $type $lv generation differs with repacking (in place)"
  done
done
unset CODER_CPU_ISA
echo "PASS repack.sh:same_results (Q8_0, Q4_K_M; levels: $levels; eval long/short prompt, 24 greedy tokens; mapped and in place)"
