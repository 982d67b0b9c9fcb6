#!/usr/bin/env bash
# Sweeps as Slurm job arrays, for real (`make slurm-check`, CI; as root): starts a single-node
# cluster (.ci/slurm-up.sh), writes the jobs of .ci/cluster-sweep.yaml with `dpkit slurm
# --tasks 2`, submits them (a 2-task array and the merge that waits for it), and compares the
# merged folder with one process's run of the same config.
# Usage: .ci/slurm-check.sh DPKIT   (any dpkit build; default .build/debug/dpkit)
set -euo pipefail
cd "$(dirname "$0")/.."
dpkit=$(realpath "${1:-.build/debug/dpkit}")
config=.ci/cluster-sweep.yaml
work=$(mktemp -d /tmp/dpkit-slurm-check.XXXXXX)
started=""
cleanup() {
  rm -rf "$work"
  if [ -n "$started" ]; then .ci/slurm-up.sh down > /dev/null; fi
}
trap cleanup EXIT
export OPENBLAS_NUM_THREADS=1
# A cluster that already answers is used as it is; otherwise slurm-up.sh starts one with its
# own configuration (nothing under /etc/slurm is touched) and stops it at the end.
if ! timeout 20 sinfo > /dev/null 2>&1; then
  started=yes
  export SLURM_CONF=/run/dpkit-slurm/slurm.conf
fi
.ci/slurm-up.sh
echo "== slurm-check: one process"
"$dpkit" run "$config" --output "$work/one" > "$work/one.log"
echo "== slurm-check: dpkit slurm --tasks 2 --submit"
"$dpkit" slurm "$config" --output "$work/slurm" --tasks 2 --cpus 1 --time 00:10:00 --submit | tee "$work/submit.log"
merge=$(sed -n 's/.*merge job \([0-9]*\).*/\1/p' "$work/submit.log")
array=$(sed -n 's/.*array job \([0-9]*\).*/\1/p' "$work/submit.log")
[ -n "$merge" ] && [ -n "$array" ] || { echo "slurm-check: no job ids"; exit 1; }
for _ in $(seq 300); do
  timeout 20 squeue -h -j "$array,$merge" 2>/dev/null | grep -q . || break
  sleep 1
done
if timeout 20 squeue -h -j "$array,$merge" 2>/dev/null | grep -q .; then
  echo "slurm-check: the jobs did not finish in 5 minutes:"; timeout 20 squeue; exit 1
fi
state=$(timeout 20 scontrol show job "$merge" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
echo "slurm-check: merge job $merge: ${state:-gone}"
for log in "$work/slurm/logs/"*.out; do echo "-- $(basename "$log"):"; tail -2 "$log" | sed 's/^/    /'; done
[ "$state" = COMPLETED ] || [ -z "$state" ] || { echo "slurm-check: the merge job did not complete"; exit 1; }
[ -f "$work/slurm/results/runs.csv" ] || { echo "slurm-check: no merged results"; exit 1; }
for i in 0 1; do
  grep -q '"index" : '"$i"'\|"index": '"$i" "$work/slurm/shards/$i/manifest.json" \
    || { echo "slurm-check: shards/$i is not shard $i"; exit 1; }
done
.ci/compare-results.sh "$work/one" "$work/slurm/results"
echo "slurm-check: passed"
