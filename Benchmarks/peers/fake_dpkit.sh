#!/usr/bin/env bash
# A stand-in for `dpkit bench`, for testing run.sh and report.py only: prints made-up
# figures in the JSON shape of `dpkit bench --json`. Never publish numbers from it.
#   Benchmarks/peers/run.sh --dpkit Benchmarks/peers/fake_dpkit.sh --steps 5 --repeats 2
set -euo pipefail
[[ "${1:-}" == bench ]] || { echo "fake_dpkit: only 'bench' is faked" >&2; exit 64; }
shift
workload=logreg mode=private batch=256 threads=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --help) echo "fake dpkit bench: --workload --mode --batch-size --steps --warmup --threads --json"; exit 0 ;;
        --warmup) shift 2 ;;
        --workload) workload="$2"; shift 2 ;;
        --mode) mode="$2"; shift 2 ;;
        --batch-size) batch="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --steps) shift 2 ;;
        --json) shift ;;
        *) echo "fake_dpkit: unknown option $1" >&2; exit 64 ;;
    esac
done
case "$workload" in logreg) base=100000 ;; mlp) base=10000 ;; *) base=3000 ;; esac
[[ "$mode" == nonprivate ]] && base=$((base * 3))
sps=$((base * threads + RANDOM % 1000))
printf '{"samples_per_second":%d,"ms_per_step":%s,"peak_rss_mb":%d,"blas_core":"FAKE","threads":%d,"achieved_gflops":1.5,"gemm_peak_gflops":50.0,"fraction_of_gemm_peak":0.03}\n' \
    "$sps" "$(awk -v b="$batch" -v s="$sps" 'BEGIN { printf "%.4f", 1000 * b / s }')" $((20 + RANDOM % 5)) "$threads"
