#!/usr/bin/env python3
"""Compare DPKit's scattering features with Kymatio's Scattering2D(J=2, L=8), NumPy backend.

check: reads the .npy written by `dpkit features scatter --dataset fashion-mnist --split test
       --count N`, computes Kymatio on the same first N test images (pixels / 255 in float32,
       as DPKit loads them) and prints the largest relative error, max |a - b| / max |b| over
       the whole array, and per channel; exits 1 when it exceeds 1e-4.
speed: times Kymatio on N training images (batches of 256, all cores NumPy/SciPy use) and
       extrapolates to 70,000 images.
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np
from kymatio.numpy import Scattering2D

DATA = "/usr/share/datasets/fashion-mnist"


def images(prefix, count):
    with gzip.open(os.path.join(DATA, f"{prefix}-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    return raw[:count].astype(np.float32) / np.float32(255)


def check(args):
    ours = np.load(args.dpkit)
    x = images("t10k", args.count)
    s = Scattering2D(J=2, shape=(28, 28), L=8)
    theirs = np.concatenate([s(x[i:i + 64]) for i in range(0, len(x), 64)])
    print(f"kymatio {theirs.shape} {theirs.dtype}, dpkit {ours.shape} {ours.dtype}")
    if ours.shape != theirs.shape:
        print("FAIL: shapes differ")
        return 1
    err = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    rel = err.max() / np.abs(theirs).max()
    per_channel = err.max(axis=(0, 2, 3)) / np.abs(theirs).max(axis=(0, 2, 3))
    print(f"max relative error (whole array): {rel:.3e}")
    print(f"max relative error per channel: worst {per_channel.max():.3e} (channel {per_channel.argmax()})")
    print(f"max elementwise |a-b|/|b| where |b| > 1e-3 max: "
          f"{(err / np.maximum(np.abs(theirs), 1e-3 * np.abs(theirs).max())).max():.3e}")
    ok = rel <= 1e-4
    print("PASS" if ok else "FAIL", "(tolerance 1e-4)")
    return 0 if ok else 1


def speed(args):
    x = images("train", args.count)
    s = Scattering2D(J=2, shape=(28, 28), L=8)
    s(x[:64])
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(x), 256):
        s(x[i:i + 256])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"kymatio numpy: {len(x)} images in {seconds:.2f} s wall ({cpu:.2f} s CPU, all threads), "
          f"{len(x) / seconds:.0f} images/s, 70,000 images ~ {70000 * seconds / len(x):.1f} s wall, "
          f"{70000 * cpu / len(x):.1f} s CPU")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["check", "speed"])
    p.add_argument("--dpkit")
    p.add_argument("--count", type=int, default=256)
    args = p.parse_args()
    sys.exit(check(args) if args.mode == "check" else speed(args))


if __name__ == "__main__":
    main()
