"""Projected DP-SGD step time against rank count (BENCHMARKS.md, "Data parallelism").

The model of one step on K ranks, batch B in C = 2K chunks, P parameters (float32):

    T(K) = B * e / K                              per-example clipped gradients, split over K
         + r * P                                  noise (drawn once, on rank 0) and optimizer step
         + 3 * ceil(log2 K) * a                   latency of all-to-all, all-gather, broadcast
         + (C/K * (K-1)/K + (K-1)/K + 1) * 4 P / b   bytes: all-to-all, all-gather, broadcast

e: seconds per example of a private step on one core: measured for the tanh CNN and the MLP
(`dpkit bench`, 1 thread, BENCHMARKS.md's unloaded figures), 6 P / F for larger dense models
(6 FLOPs per parameter and example: forward, weight and input gradients) at F FLOP/s; r: seconds
per parameter for noise and update on one core (measured); a: latency; b: bandwidth per rank
(assumed for an InfiniBand-class network).
"""
import math

B = 1024
F = 25e9        # FLOP/s per rank for large dense layers (the MLP's private step reaches about this)
r = 6e-9        # s per parameter: Gaussian noise + SGD update (MLP, 795k parameters, measured)
a = 5e-6        # s latency per collective stage (assumed)
b = 10e9        # bytes/s per rank (assumed; a loaded shared-memory node measured ~0.4 GB/s)

def step(P, e, K):
    C = 2 * K
    compute = B * e / K
    serial = r * P
    latency = 3 * math.ceil(math.log2(K)) * a if K > 1 else 0
    volume = ((C / K) * (K - 1) / K + (K - 1) / K + 1) * 4 * P / b if K > 1 else 0
    return compute + serial + latency + volume, compute, serial, latency + volume

ranks = [1, 2, 4, 8, 16, 32, 64]
print("| parameters | " + " | ".join(f"K={k}" for k in ranks) + " | serial share at K=64 |")
print("|---|" + "---:|" * len(ranks) + "---:|")
models = [
    (26_010, 1 / 9_980, "26k (tanh CNN)"),
    (795_010, 1 / 22_949, "795k (MLP 784-1000-10)"),
    (10_000_000, 6 * 10_000_000 / F, "10M (dense)"),
    (100_000_000, 6 * 100_000_000 / F, "100M (dense)"),
]
for P, e, name in models:
    t1 = step(P, e, 1)[0]
    cells = []
    for k in ranks:
        t = step(P, e, k)[0]
        cells.append(f"{t * 1e3:,.1f} ms ({t1 / t:.1f}x)")
    t64, c, s, comm = step(P, e, 64)
    print(f"| {name} | " + " | ".join(cells) + f" | {100 * s / t64:.0f}% noise+update, {100 * comm / t64:.0f}% exchange |")
