#!/usr/bin/env bash
# Data-parallel scaling of a DP-SGD step (BENCHMARKS.md, "Data parallelism"): one process with
# 1 and 2 BLAS threads against 2 MPI ranks of 1 thread each, interleaved, REPEATS rounds; one
# JSON line per run (`dpkit bench --json`: ms per step and, under MPI, the time per phase).
# Usage: Benchmarks/Scaling/scaling.sh [DPKIT] [WORKLOAD] [BATCH] [CHUNK] [REPEATS]
#   DPKIT: a `make mpi` build (default .build-mpi/release/dpkit)
set -euo pipefail
dpkit=${1:-.build-mpi/release/dpkit}
workload=${2:-cnn-tanh}
batch=${3:-256}
chunk=${4:-64}
repeats=${5:-5}
steps=${STEPS:-30}
common=(bench --workload "$workload" --mode private --batch-size "$batch" --steps "$steps" --warmup 5 --json)
mpirun=(mpirun -np 2)
if mpirun --version 2>&1 | grep -q "Open MPI"; then mpirun+=(--allow-run-as-root); fi
echo "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$repeats"); do
  for setup in "1 1 $batch" "1 1 $chunk" "1 2 $batch" "1 2 $chunk" "2 1 $chunk"; do
    read -r ranks threads physical <<< "$setup"
    if [ "$ranks" = 1 ]; then
      line=$(OPENBLAS_NUM_THREADS=$threads "$dpkit" "${common[@]}" --physical-batch-size "$physical")
    else
      line=$(OPENBLAS_NUM_THREADS=$threads "${mpirun[@]}" "$dpkit" "${common[@]}" --physical-batch-size "$physical")
    fi
    echo "{\"round\":$r,\"ranks\":$ranks,\"threads\":$threads,\"result\":$line}"
  done
done
echo "# load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
