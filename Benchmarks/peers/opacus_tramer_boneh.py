#!/usr/bin/env python3
"""Time the Tramer & Boneh (2021) end-to-end tanh CNN run on Fashion-MNIST in Opacus.

The same settings as experiments/fashion-mnist-tempered-sigmoid.yaml, so that its wall time can
be put next to `dpkit run` of that config (issue 17, BENCHMARKS.md):

  the tanh CNN (Papernot et al. 2021; the `cnn-tanh` workload of opacus_bench.py), Poisson
  sampling with expected batch 2048 (physical batches of at most 512), noise multiplier 2.15,
  max grad norm 0.1 (flat clipping), SGD learning rate 4, momentum 0.9, 40 epochs, inputs
  standardized, test accuracy after every epoch.

One difference, which does not change the cost of a step: DPKit fits the standardization by
the Gaussian mechanism (`private-standardize`); this script uses the exact mean and standard
deviation of the training images.

  Benchmarks/peers/run.sh --install          # once: the venv with torch and opacus
  OMP_NUM_THREADS=1 Benchmarks/peers/.venv/bin/python Benchmarks/peers/opacus_tramer_boneh.py \
      --threads 1 [--epochs 40] [--mode hooks|ghost]

Prints one line per epoch (wall seconds, test accuracy) and a JSON summary on the last line.
"""

import argparse
import gzip
import json
import resource
import struct
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn

from opacus_bench import make_model  # the same tanh CNN as the step benchmark

DATA = "/usr/share/datasets/fashion-mnist"

warnings.filterwarnings("ignore", message="Secure RNG turned off")
warnings.filterwarnings("ignore", message="Full backward hook is firing")
warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")


def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, rank = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * rank, raw[4 : 4 + 4 * rank])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(split: str):
    x = read_idx(f"{DATA}/{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = read_idx(f"{DATA}/{split}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", choices=("hooks", "ghost"), default="hooks")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.epochs < 1 or args.threads < 1:
        sys.exit("--epochs and --threads must be at least 1")

    from opacus import PrivacyEngine
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_train, y_train = load("train")
    x_test, y_test = load("t10k")
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    start = time.perf_counter()
    model = make_model("cnn-tanh")
    optimizer = torch.optim.SGD(model.parameters(), lr=4.0, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x_train, y_train), batch_size=2048, shuffle=True)
    engine = PrivacyEngine(accountant="prv")
    result = engine.make_private(
        module=model, optimizer=optimizer, data_loader=loader, criterion=criterion,
        noise_multiplier=2.15, max_grad_norm=0.1, poisson_sampling=True, grad_sample_mode=args.mode)
    if len(result) == 4:
        model, optimizer, criterion, loader = result
    else:
        model, optimizer, loader = result

    accuracy = float("nan")
    for epoch in range(1, args.epochs + 1):
        model.train()
        with BatchMemoryManager(data_loader=loader, max_physical_batch_size=512, optimizer=optimizer) as batches:
            for xb, yb in batches:
                optimizer.zero_grad()
                loss = criterion(model(xb), yb)
                loss.backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = sum(
                (model(xb).argmax(1) == yb).sum().item()
                for xb, yb in zip(x_test.split(1000), y_test.split(1000)))
        accuracy = correct / len(y_test)
        print(f"epoch {epoch}/{args.epochs}: {time.perf_counter() - start:.1f} s, test accuracy {accuracy:.4f}",
              flush=True)
    wall = time.perf_counter() - start
    print(json.dumps({
        "peer": "opacus", "opacus_mode": args.mode, "threads": args.threads, "epochs": args.epochs,
        "wall_seconds": round(wall, 2), "seconds_per_epoch": round(wall / args.epochs, 3),
        "test_accuracy": accuracy, "epsilon_prv": round(engine.get_epsilon(1e-5), 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
