"""Medians of Benchmarks/Scaling/scaling.sh output, one row per setup (ranks, threads, chunk)."""
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith("#"):
        print(line.strip()); continue
    d = json.loads(line); r = d["result"]
    key = (d["ranks"], d["threads"], r["physical_batch_size"])
    rows.setdefault(key, []).append(r)
print("| ranks x threads | chunk | samples/s (median) | ms/step | compute | waiting | exchange | reduce+update | runs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
base = None
for key in sorted(rows, key=lambda k: (k[0] * k[1], k[0], -k[2])):
    rs = rows[key]
    med = lambda f: statistics.median(x[f] for x in rs)
    sps = med("samples_per_second")
    print(f"| {key[0]} x {key[1]} | {key[2]} | {sps:,.0f} | {med('ms_per_step'):.1f} | {med('compute_ms'):.1f} | "
          f"{med('waiting_ms'):.1f} | {med('exchange_ms'):.2f} | {med('reduce_and_update_ms'):.2f} | {len(rs)} |")
