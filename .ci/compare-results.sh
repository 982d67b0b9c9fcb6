#!/usr/bin/env bash
# Compares two dpkit result folders as one experiment: runs.csv and epochs.csv row for row, in
# order (the timings wall_seconds, rounds_per_second and local_seconds_fraction left out), every model and metrics file byte for byte, and no model or
# metrics file in one folder only.
#   .ci/compare-results.sh EXPECTED ACTUAL
#   .ci/compare-results.sh --any-order EXPECTED ACTUAL   rows compared sorted: for a folder
#     filled in another order (seed 0 first, then the other seeds with --resume)
set -euo pipefail
order=cat
if [ "${1:-}" = --any-order ]; then order=sort; shift; fi
a=$1 b=$2
# The CSV without its timing columns (dpkit never quotes the numeric columns before them).
strip() {
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++)
                       if ($i == "wall_seconds" || $i == "rounds_per_second" || $i == "local_seconds_fraction") w[i] = 1 }
           { line = ""; for (i = 1; i <= NF; i++) if (!(i in w)) line = line (line == "" ? "" : ",") $i; print line }' "$1" | $order
}
status=0
for f in runs.csv epochs.csv; do
  if ! diff <(strip "$a/$f") <(strip "$b/$f") >/dev/null; then
    echo "compare: $f differs between $a and $b:"; diff <(strip "$a/$f") <(strip "$b/$f") | head -10; status=1
  fi
done
n=0
for dir in models metrics; do
  for file in "$a/$dir"/*; do
    [ -e "$file" ] || continue
    n=$((n + 1))
    if ! cmp -s "$file" "$b/$dir/$(basename "$file")"; then echo "compare: $dir/$(basename "$file") differs"; status=1; fi
  done
  for file in "$b/$dir"/*; do
    [ -e "$file" ] || continue
    [ -e "$a/$dir/$(basename "$file")" ] || { echo "compare: $dir/$(basename "$file") is in $b only"; status=1; }
  done
done
rows=$(($(wc -l < "$a/runs.csv") - 1))
[ "$rows" -gt 0 ] || { echo "compare: $a holds no runs"; status=1; }
[ $status = 0 ] && echo "compare: $b equals $a ($rows runs; runs.csv, epochs.csv and $n model and metrics files)"
exit $status
