#!/usr/bin/env bash
# Peer comparison: DPKit `dpkit bench` against Opacus (PyTorch) on this machine.
#
#   Benchmarks/peers/run.sh --install     # create Benchmarks/peers/.venv, install torch + opacus from PyPI
#   Benchmarks/peers/run.sh [options]     # interleaved runs, Markdown table on stdout
#
# See docs/peers.md for what the install downloads and what the figures mean.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv"
PY="$VENV/bin/python"

TORCH_SPEC="${DPKIT_PEERS_TORCH:-torch==2.15.0}"
OPACUS_SPEC="opacus==1.6.0"

usage() {
    cat <<'USAGE'
Usage:
  run.sh --install [--torch SPEC | --torch-wheel FILE]
  run.sh [--batch-size B] [--steps N] [--warmup W] [--repeats R]
         [--workloads logreg,mlp,cnn-tanh] [--threads 1,2]
         [--dpkit PATH] [--out FILE] [--opacus-only]

Install:
  --torch SPEC        pip requirement for torch (default torch==2.15.0, from PyPI,
                      which pulls the CUDA runtime packages torch declares)
  --torch-wheel FILE  install this local torch wheel instead (e.g. a CPU-only build);
                      its version is printed in every table, so say so when you publish

Run (defaults): --batch-size 256 --steps 50 --warmup 5 --repeats 3
                --workloads logreg,mlp,cnn-tanh --threads 1,2
                --dpkit <repo>/.build/release/dpkit
  --out FILE          also write the Markdown table to FILE
  --opacus-only       skip DPKit even if it is built
USAGE
}

# MARK: - Install

install() {
    local torch_spec="$TORCH_SPEC" torch_wheel=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --torch) torch_spec="$2"; shift 2 ;;
            --torch-wheel) torch_wheel="$2"; shift 2 ;;
            *) echo "run.sh --install: unknown option '$1'" >&2; usage >&2; exit 2 ;;
        esac
    done
    local start end
    start=$(date +%s)
    if [[ ! -x "$PY" ]]; then
        python3 -m venv "$VENV"
    fi
    local pip=("$PY" -m pip install --progress-bar off)
    if [[ -n "$torch_wheel" ]]; then
        [[ -f "$torch_wheel" ]] || { echo "run.sh --install: no such wheel: $torch_wheel" >&2; exit 2; }
        # A local wheel: its pure-Python requirements (and any CUDA ones it declares) still come from PyPI.
        "${pip[@]}" "$torch_wheel" "$OPACUS_SPEC"
    else
        # PyPI only: ignore any machine-wide find-links so the result is the same on every machine.
        PIP_FIND_LINKS= "${pip[@]}" "$torch_spec" "$OPACUS_SPEC"
    fi
    "$PY" - <<'PYCHECK'
import torch, opacus
x = torch.randn(64, 64)
assert torch.isfinite(x @ x).all()
print(f"torch {torch.__version__} (CUDA available: {torch.cuda.is_available()}), opacus {opacus.__version__}")
PYCHECK
    end=$(date +%s)
    echo "venv: $(du -sh "$VENV" | cut -f1) in $VENV; install took $((end - start)) s"
}

if [[ "${1:-}" == "--install" ]]; then
    shift
    install "$@"
    exit 0
fi

# MARK: - Options

BATCH=256
STEPS=50
WARMUP=5
REPEATS=3
WORKLOADS="logreg,mlp,cnn-tanh"
THREADS="1,2"
DPKIT="$REPO/.build/release/dpkit"
OUT=""
OPACUS_ONLY=0

need_value() { [[ $# -ge 2 && -n "$2" ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --batch-size) need_value "$@"; BATCH="$2"; shift 2 ;;
        --steps) need_value "$@"; STEPS="$2"; shift 2 ;;
        --warmup) need_value "$@"; WARMUP="$2"; shift 2 ;;
        --repeats) need_value "$@"; REPEATS="$2"; shift 2 ;;
        --workloads) need_value "$@"; WORKLOADS="$2"; shift 2 ;;
        --threads) need_value "$@"; THREADS="$2"; shift 2 ;;
        --dpkit) need_value "$@"; DPKIT="$2"; shift 2 ;;
        --out) need_value "$@"; OUT="$2"; shift 2 ;;
        --opacus-only) OPACUS_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
for n in "$BATCH" "$STEPS" "$REPEATS"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: '$n' is not a positive integer (--batch-size, --steps, --repeats)" >&2; exit 2; }
done
[[ "$WARMUP" =~ ^[0-9]+$ ]] || { echo "run.sh: --warmup '$WARMUP' is not a non-negative integer" >&2; exit 2; }
IFS=',' read -r -a WORKLOAD_LIST <<< "$WORKLOADS"
IFS=',' read -r -a THREAD_LIST <<< "$THREADS"
for w in "${WORKLOAD_LIST[@]}"; do
    case "$w" in logreg|mlp|cnn-tanh) ;; *) echo "run.sh: unknown workload '$w' (logreg, mlp, cnn-tanh)" >&2; exit 2 ;; esac
done
for t in "${THREAD_LIST[@]}"; do
    [[ "$t" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --threads '$t' is not a positive integer" >&2; exit 2; }
done

# MARK: - Preconditions

if [[ ! -x "$PY" ]] || ! "$PY" -c 'import torch, opacus' 2>/dev/null; then
    echo "run.sh: no working Opacus environment in $VENV: run Benchmarks/peers/run.sh --install" >&2
    exit 1
fi

# DPKit is optional at run time: without it the table has the Opacus columns only and
# the script exits 3 at the end, so a script never mistakes it for a full comparison.
DPKIT_OK=1
DPKIT_WHY=""
if [[ "$OPACUS_ONLY" == 1 ]]; then
    DPKIT_OK=0; DPKIT_WHY="--opacus-only"
elif [[ ! -x "$DPKIT" ]]; then
    DPKIT_OK=0; DPKIT_WHY="dpkit not found at $DPKIT: run make release (or pass --dpkit PATH)"
elif ! "$DPKIT" bench --help >/dev/null 2>&1; then
    DPKIT_OK=0; DPKIT_WHY="$DPKIT has no working 'bench' subcommand: run make release on a tree that has it"
fi
if [[ "$DPKIT_OK" == 0 && "$OPACUS_ONLY" == 0 ]]; then
    echo "run.sh: $DPKIT_WHY; printing the Opacus-only table" >&2
fi
# Give DPKit the same untimed warm-up as Opacus when its bench takes the flag.
DPKIT_WARMUP=()
if [[ "$DPKIT_OK" == 1 ]] && "$DPKIT" bench --help 2>&1 | grep -q -- '--warmup'; then
    DPKIT_WARMUP=(--warmup "$WARMUP")
fi

# MARK: - Interleaved runs

RAW="$(mktemp "${TMPDIR:-/tmp}/dpkit-peers.XXXXXX.jsonl")"
FAILED=0

# One fresh process per run; its last line starting with '{' is the result.
# Writes {"tool":..., "repeat":..., "result":{...}} or {"tool":..., "error":...} to $RAW.
one_run() {
    local tool="$1" repeat="$2" workload="$3" mode="$4" threads="$5"
    local out status=0 json
    if [[ "$tool" == dpkit ]]; then
        out="$("$DPKIT" bench --workload "$workload" --mode "$mode" --batch-size "$BATCH" \
            --steps "$STEPS" ${DPKIT_WARMUP[@]+"${DPKIT_WARMUP[@]}"} --threads "$threads" --json 2>&1)" || status=$?
    else
        out="$("$PY" "$HERE/opacus_bench.py" --workload "$workload" --mode "$mode" --batch-size "$BATCH" \
            --steps "$STEPS" --warmup "$WARMUP" --threads "$threads" --json 2>&1)" || status=$?
    fi
    json="$(printf '%s\n' "$out" | grep '^{' | tail -n 1 || true)"
    if [[ "$status" == 0 && -n "$json" ]]; then
        printf '{"tool":"%s","repeat":%d,"workload":"%s","mode":"%s","threads":%d,"result":%s}\n' \
            "$tool" "$repeat" "$workload" "$mode" "$threads" "$json" >> "$RAW"
        printf '  %-6s %-8s %-10s t=%s  %s\n' "$tool" "$workload" "$mode" "$threads" \
            "$(printf '%s' "$json" | "$PY" -c 'import json, sys; print(format(json.load(sys.stdin)["samples_per_second"], ",.0f"), "samples/s")' 2>/dev/null || echo '?')" >&2
    else
        FAILED=$((FAILED + 1))
        local msg
        msg="$(printf '%s' "$out" | tail -n 3 | tr '\n"\\' '   ' | cut -c1-300)"
        printf '{"tool":"%s","repeat":%d,"workload":"%s","mode":"%s","threads":%d,"error":"exit %d: %s"}\n' \
            "$tool" "$repeat" "$workload" "$mode" "$threads" "$status" "$msg" >> "$RAW"
        echo "  $tool $workload $mode t=$threads FAILED (exit $status): $msg" >&2
    fi
}

CONFIGS=("opacus ghost" "opacus hooks" "opacus nonprivate")
if [[ "$DPKIT_OK" == 1 ]]; then
    CONFIGS=("dpkit private" "opacus ghost" "dpkit nonprivate" "opacus hooks" "opacus nonprivate")
fi
echo "run.sh: ${#CONFIGS[@]} configurations x ${#WORKLOAD_LIST[@]} workloads x ${#THREAD_LIST[@]} thread counts x $REPEATS repeats, batch $BATCH, $STEPS steps; raw results in $RAW" >&2
for ((r = 1; r <= REPEATS; r++)); do
    echo "repeat $r/$REPEATS" >&2
    for w in "${WORKLOAD_LIST[@]}"; do
        for t in "${THREAD_LIST[@]}"; do
            # Rotate the order every repeat so no configuration always runs first (or
            # always right after the heaviest one) while others share the machine.
            n=${#CONFIGS[@]}
            for ((k = 0; k < n; k++)); do
                read -r tool mode <<< "${CONFIGS[$(((k + r - 1) % n))]}"
                one_run "$tool" "$r" "$w" "$mode" "$t"
            done
        done
    done
done

# MARK: - Table

TABLE="$("$PY" "$HERE/report.py" "$RAW" --batch-size "$BATCH" --steps "$STEPS" --repeats "$REPEATS" \
    --dpkit-note "$( [[ "$DPKIT_OK" == 1 ]] && echo "$DPKIT" || echo "not run: $DPKIT_WHY")")"
printf '%s\n' "$TABLE"
if [[ -n "$OUT" ]]; then
    printf '%s\n' "$TABLE" > "$OUT"
    echo "run.sh: table written to $OUT" >&2
fi
if [[ "$FAILED" -gt 0 ]]; then
    echo "run.sh: $FAILED run(s) failed; see $RAW" >&2
    exit 4
fi
if [[ "$DPKIT_OK" == 0 && "$OPACUS_ONLY" == 0 ]]; then
    exit 3
fi
