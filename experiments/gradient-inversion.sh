#!/usr/bin/env bash
# Gradient inversion on Fashion-MNIST (issue 12, item 4): do one DP-SGD step's gradients leak
# the training images, and what stops it? Three sweeps of `dpkit invert`, each over batch sizes
# 1, 2, 4, 8 and the DP-SGD defence (clipping norm C x noise multiplier sigma, plus no defence):
#   analytic inversion of the first dense layer of `mlp` (784 -> 128 tanh -> 10),
#   gradient matching (cosine + total variation, 1000 Adam steps) on `mlp`,
#   gradient matching on the tanh CNN `cnn-tanh`,
# all on the models at their initialisation (seed 0), on 8 training images drawn with seed 0.
#
# Usage (from the repository root):
#   make release data
#   experiments/gradient-inversion.sh [OUTPUT_DIR]      # default notebooks-data/gradient-inversion
# Writes OUTPUT_DIR/<method>-<model>.csv and .svg (and .png with rsvg-convert), and log.txt
# (what dpkit printed, with the wall time of each sweep).
#
# A script rather than a YAML config for `dpkit run`: the experiment runner plans, trains and
# logs training runs (epochs.csv, runs.csv, a privacy ledger per run), and an inversion sweep
# trains nothing; a new config kind would mean a schema, a plan and an executor in
# DPExperiments for what is three commands, each of which already writes its table and figure.
set -euo pipefail

DPKIT=${DPKIT:-.build/release/dpkit}
OUT=${1:-notebooks-data/gradient-inversion}
# Per-example gradient norms of these untrained models are between 3 and 10 on Fashion-MNIST:
# C = 10 clips nothing, C = 1 and 0.1 clip every example.
GRID="--batch-size 1 2 4 8 --clipping-norm none 10 1 0.1 --noise-multiplier 0 0.0001 0.001 0.01 0.1 1 --seed 0"

if [ ! -x "$DPKIT" ]; then
    echo "error: $DPKIT not found: build it with \`make release\` (or set DPKIT)" >&2
    exit 1
fi
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: >"$LOG"
{
    echo "code: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    "$DPKIT" info | head -2
} | tee -a "$LOG"

sweep() {
    echo "\$ dpkit invert $*" | tee -a "$LOG"
    start=$(date +%s)
    "$DPKIT" invert "$@" 2>&1 | tee -a "$LOG"
    end=$(date +%s)
    echo "wall time: $((end - start)) s" | tee -a "$LOG"
}

total_start=$(date +%s)
# shellcheck disable=SC2086 # GRID is a list of arguments
sweep --dataset fashion-mnist --model mlp --method analytic $GRID --output "$OUT"
# shellcheck disable=SC2086
sweep --dataset fashion-mnist --model mlp --method matching --iterations 1000 $GRID --output "$OUT"
# shellcheck disable=SC2086
sweep --dataset fashion-mnist --model cnn-tanh --method matching --iterations 1000 $GRID --output "$OUT"
echo "total wall time: $(($(date +%s) - total_start)) s" | tee -a "$LOG"
