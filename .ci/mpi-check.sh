#!/usr/bin/env bash
# Data-parallel DP-SGD over MPI, for real (`make mpi-check`, CI):
#   1. 2 ranks train .ci/cluster-sweep.yaml; the results equal one process's bit for bit;
#   2. a 2-rank job whose rank 1 is killed mid-run fails, keeping the finished runs;
#      `--resume` on 2 ranks continues from the checkpoint, and the result still equals one process's;
#   3. a run whose loss turns non-finite is recorded as failed on 2 ranks as on one process, and
#      the next run still trains.
# Every mpirun is bounded by `timeout` (a hung collective fails the check instead of hanging CI).
# Usage: .ci/mpi-check.sh DPKIT   (a dpkit built with DPKIT_MPI: `make mpi`)
set -euo pipefail
cd "$(dirname "$0")/.."
dpkit=$(realpath "${1:-.build-mpi/release/dpkit}")
config=.ci/cluster-sweep.yaml
work=$(mktemp -d /tmp/dpkit-mpi-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
# One BLAS thread per process, the same in both: the same kernel and thread count give the same sums.
export OPENBLAS_NUM_THREADS=1
limit=(timeout --kill-after=10 300)
mpirun=("${limit[@]}" mpirun -np 2)
if mpirun --version 2>&1 | grep -q "Open MPI"; then mpirun+=(--allow-run-as-root --oversubscribe); fi

echo "== mpi-check: one process"
"${limit[@]}" "$dpkit" run "$config" --output "$work/one" > "$work/one.log"
echo "== mpi-check: 2 ranks ($(mpirun --version 2>&1 | grep -m1 -i "version"))"
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
# Seed 0's runs were written first, then seed 1's: the same rows in another order.
.ci/compare-results.sh --any-order "$work/one" "$work/killed"

echo "== mpi-check: a diverging run (learning rate 1e38) fails alike on 1 process and on 2 ranks"
sed -e 's/^  privacy.noise_multiplier: .*/  optimizer.learning_rate: [1.0e38, 0.2]/' -e 's/^seeds: .*/seeds: [0]/' \
  -e 's/^  epochs: .*/  epochs: 1/' -e 's/^  clipping_norm: .*/&\n  noise_multiplier: 1.0/' "$config" > "$work/diverging.yaml"
if "${limit[@]}" "$dpkit" run "$work/diverging.yaml" --output "$work/div1" > "$work/div1.log" 2>&1; then
  echo "mpi-check: the diverging run did not fail on one process"; exit 1
fi
if "${mpirun[@]}" "$dpkit" run "$work/diverging.yaml" --output "$work/div2" > "$work/div2.log" 2>&1; then
  echo "mpi-check: the diverging run did not fail on 2 ranks"; exit 1
fi
grep -q "MPI_Abort" "$work/div2.log" && { echo "mpi-check: a training error aborted the job"; tail -5 "$work/div2.log"; exit 1; }
[ "$(grep -c ",failed," "$work/div2/runs.csv")" = 1 ] && [ "$(grep -c ",finished," "$work/div2/runs.csv")" = 1 ] \
  || { echo "mpi-check: 2 ranks did not record one failed and one finished run"; cat "$work/div2/runs.csv"; exit 1; }
.ci/compare-results.sh "$work/div1" "$work/div2"
echo "mpi-check: passed"
