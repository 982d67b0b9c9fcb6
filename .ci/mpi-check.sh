#!/usr/bin/env bash
# Data-parallel DP-SGD over MPI, for real (`make mpi-check`, CI):
#   1. 2 ranks train .ci/cluster-sweep.yaml; the results equal one process's bit for bit;
#   2. a 2-rank job whose rank 1 is killed mid-run fails, keeping the finished runs;
#      `--resume` on 2 ranks continues from the checkpoint, and the result still equals one process's.
# Usage: .ci/mpi-check.sh DPKIT   (a dpkit built with DPKIT_MPI: `make mpi`)
set -euo pipefail
cd "$(dirname "$0")/.."
dpkit=$(realpath "${1:-.build-mpi/release/dpkit}")
config=.ci/cluster-sweep.yaml
work=$(mktemp -d /tmp/dpkit-mpi-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
# One BLAS thread per process, the same in both: the same kernel and thread count give the same sums.
export OPENBLAS_NUM_THREADS=1
mpirun=(mpirun -np 2)
if mpirun --version 2>&1 | grep -q "Open MPI"; then mpirun+=(--allow-run-as-root --oversubscribe); fi

echo "== mpi-check: one process"
"$dpkit" run "$config" --output "$work/one" > "$work/one.log"
echo "== mpi-check: 2 ranks ($("${mpirun[@]}" --version 2>&1 | grep -m1 -i "version"))"
"${mpirun[@]}" "$dpkit" run "$config" --output "$work/two" > "$work/two.log"
grep -q '"mpi_ranks" : 2\|"mpi_ranks": 2' "$work/two/manifest.json" || { echo "mpi-check: manifest does not record 2 ranks"; exit 1; }
.ci/compare-results.sh "$work/one" "$work/two"

echo "== mpi-check: seed 0 on 2 ranks, then all seeds with rank 1 killed in epoch 2 of a seed-1 run"
"${mpirun[@]}" "$dpkit" run "$config" --seed 0 --output "$work/killed" > "$work/killed0.log"
finished=$(grep -c ",finished," "$work/killed/runs.csv")
DPKIT_HALT_AFTER_EPOCH=2 DPKIT_HALT_MARKER="$work/halted" \
  "${mpirun[@]}" "$dpkit" run "$config" --resume --output "$work/killed" > "$work/killed1.log" 2>&1 &
job=$!
for _ in $(seq 600); do [ -e "$work/halted" ] && break; sleep 0.1; done
[ -e "$work/halted" ] || { echo "mpi-check: the job never reached epoch 2"; cat "$work/killed1.log"; exit 1; }
rank1=""
for pid in $(pgrep -f "$dpkit run $config --resume"); do
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "PMI_RANK=1\|OMPI_COMM_WORLD_RANK=1"; then rank1=$pid; fi
done
[ -n "$rank1" ] || { echo "mpi-check: rank 1 not found"; exit 1; }
kill -9 "$rank1"
if wait "$job"; then echo "mpi-check: the job with a killed rank succeeded"; exit 1; fi
echo "mpi-check: the job failed as it must; its last lines:"; tail -3 "$work/killed1.log" | sed 's/^/    /'
[ "$(grep -c ",finished," "$work/killed/runs.csv")" = "$finished" ] \
  || { echo "mpi-check: finished runs were lost"; exit 1; }
ls "$work/killed/checkpoints/"*.json > /dev/null || { echo "mpi-check: no checkpoint to continue from"; exit 1; }
echo "== mpi-check: --resume on 2 ranks"
"${mpirun[@]}" "$dpkit" run "$config" --resume --output "$work/killed" > "$work/killed2.log"
grep -q "continues from its checkpoint after epoch 2" "$work/killed2.log" \
  || { echo "mpi-check: the resumed job did not continue from the checkpoint"; exit 1; }
.ci/compare-results.sh "$work/one" "$work/killed"
echo "mpi-check: passed"
