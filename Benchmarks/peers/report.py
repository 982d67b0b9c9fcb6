#!/usr/bin/env python3
"""Render run.sh's raw results (one JSON object a line) as a Markdown table.

Each cell is the median over the repeats of one configuration; ratios are taken
between medians. Used by run.sh; standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys

WORKLOAD_ORDER = ("logreg", "mlp", "cnn-tanh")
# (tool, mode) pairs in column order.
DPKIT_PRIVATE = ("dpkit", "private")
DPKIT_NONPRIVATE = ("dpkit", "nonprivate")
OPACUS_NONPRIVATE = ("opacus", "nonprivate")
OPACUS_HOOKS = ("opacus", "hooks")
OPACUS_GHOST = ("opacus", "ghost")
CONFIG_ORDER = (DPKIT_PRIVATE, DPKIT_NONPRIVATE, OPACUS_NONPRIVATE, OPACUS_HOOKS, OPACUS_GHOST)
LABEL = {
    DPKIT_PRIVATE: "DPKit private",
    DPKIT_NONPRIVATE: "DPKit non-private",
    OPACUS_NONPRIVATE: "PyTorch non-private",
    OPACUS_HOOKS: "Opacus hooks",
    OPACUS_GHOST: "Opacus ghost",
}


def load(path):
    runs, errors = [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            record = json.loads(line)
            (errors if "error" in record else runs).append(record)
    return runs, errors


def group(runs):
    """{(workload, threads): {(tool, mode): [result, ...]}}"""
    cells = {}
    for r in runs:
        key = (r["workload"], r["threads"])
        cells.setdefault(key, {}).setdefault((r["tool"], r["mode"]), []).append(r["result"])
    return cells


def median_of(results, field):
    values = [r[field] for r in results if isinstance(r.get(field), (int, float))]
    return statistics.median(values) if values else None


def fmt_rate(x):
    return "—" if x is None else f"{x:,.0f}"


def fmt_ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


def fmt_mb(x):
    return "—" if x is None else f"{x:,.0f}"


def fmt_fraction(x):
    return "—" if x is None else f"{100 * x:.1f}%"


def first(runs, tool, field):
    for r in runs:
        if r["tool"] == tool and r["result"].get(field) not in (None, ""):
            return r["result"][field]
    return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def render(runs, errors, args):
    cells = group(runs)
    have_dpkit = any(r["tool"] == "dpkit" for r in runs)
    workloads = sorted({w for w, _ in cells}, key=lambda w: (WORKLOAD_ORDER.index(w) if w in WORKLOAD_ORDER else 99, w))
    threads = sorted({t for _, t in cells})
    configs = CONFIG_ORDER if have_dpkit else (OPACUS_NONPRIVATE, OPACUS_HOOKS, OPACUS_GHOST)

    header = ["workload", "threads"] + [LABEL[c] + " (samples/s)" for c in configs]
    if have_dpkit:
        header += [
            "DPKit private / Opacus ghost",
            "DPKit private / Opacus hooks",
            "DPKit non-private / PyTorch non-private",
        ]
    header += ["peak RSS MB (" + ", ".join(LABEL[c] for c in configs) + ")"]
    if have_dpkit:
        header += ["DPKit private: fraction of GEMM peak"]

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    spreads = []  # (relative spread, description)
    for w in workloads:
        for t in threads:
            cell = cells.get((w, t), {})
            rate = {c: median_of(cell.get(c, []), "samples_per_second") for c in configs}
            for c in configs:
                values = [r["samples_per_second"] for r in cell.get(c, [])]
                if len(values) >= 2:
                    spread = (max(values) - min(values)) / statistics.median(values)
                    spreads.append((spread, f"{LABEL[c]} {w} {t}T: {min(values):,.0f}–{max(values):,.0f}"))
            row = [w, str(t)] + [fmt_rate(rate[c]) for c in configs]
            if have_dpkit:
                row += [
                    fmt_ratio(rate[DPKIT_PRIVATE], rate[OPACUS_GHOST]),
                    fmt_ratio(rate[DPKIT_PRIVATE], rate[OPACUS_HOOKS]),
                    fmt_ratio(rate[DPKIT_NONPRIVATE], rate[OPACUS_NONPRIVATE]),
                ]
            row += [" / ".join(fmt_mb(median_of(cell.get(c, []), "peak_rss_mb")) for c in configs)]
            if have_dpkit:
                row += [fmt_fraction(median_of(cell.get(DPKIT_PRIVATE, []), "fraction_of_gemm_peak"))]
            lines.append("| " + " | ".join(row) + " |")

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    torch_version = first(runs, "opacus", "torch_version") or "?"
    opacus_version = first(runs, "opacus", "opacus_version") or "?"
    blas = first(runs, "dpkit", "blas_core") or "n/a"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines.append("")
    lines.append(
        f"{date}; {cpu_model()}, {os.cpu_count()} logical CPUs, load average {load:.1f} at the end; "
        f"DPKit BLAS core {blas}; torch {torch_version}, opacus {opacus_version}; "
        f"batch {args.batch_size}, {args.steps} timed steps a run, median of {args.repeats} interleaved runs "
        f"(each a fresh process). DPKit: {args.dpkit_note}."
    )
    after_import = [r["result"]["rss_after_import_mb"] for r in runs
                    if r["tool"] == "opacus" and isinstance(r["result"].get("rss_after_import_mb"), (int, float))]
    if after_import:
        lines.append(
            f"Peak RSS of a PyTorch process includes {statistics.median(after_import):,.0f} MB already resident "
            f"right after `import torch, opacus` (this torch build links the CUDA libraries)."
        )
    if spreads:
        spreads.sort()
        rel = [s for s, _ in spreads]
        worst = spreads[-1]
        lines.append(
            f"Noise: spread (max − min) / median of samples/s across the {args.repeats} runs of a configuration "
            f"is {100 * statistics.median(rel):.0f}% at the median, {100 * worst[0]:.0f}% at worst ({worst[1]})."
        )
    if errors:
        lines.append(f"{len(errors)} run(s) failed and are left out: " + "; ".join(
            f"{e['tool']} {e['workload']} {e['mode']} {e['threads']}T ({e['error'][:120]})" for e in errors[:5]))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("raw", help="JSON lines written by run.sh")
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--repeats", type=int, required=True)
    p.add_argument("--dpkit-note", default="")
    args = p.parse_args(argv)
    runs, errors = load(args.raw)
    print(render(runs, errors, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
