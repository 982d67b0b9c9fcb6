#!/usr/bin/env python3
"""Time DP-SGD steps in Opacus (PyTorch) on the same workloads as `dpkit bench`.

Workloads (input 1x28x28 or its flat 784 view, 10 classes, synthetic random data):
  logreg    Linear(784, 10)
  mlp       Linear(784, 1000), ReLU, Linear(1000, 10)
  cnn-tanh  the tanh CNN of Papernot et al. 2021 ("Tempered sigmoid activations
            for deep learning with differential privacy"):
            Conv2d(1,16,8,stride 2,padding 3), tanh, MaxPool2d(2,1),
            Conv2d(16,32,4,stride 2), tanh, MaxPool2d(2,1), Flatten,
            Linear(512,32), tanh, Linear(32,10)

Modes:
  nonprivate  plain PyTorch: softmax cross-entropy, SGD
  hooks       Opacus GradSampleModule (per-sample gradients from hooks), clip, noise, SGD
  ghost       Opacus ghost clipping (grad_sample_mode="ghost"): per-sample norms without
              materialising per-sample gradients, then a second backward pass on the
              reweighted loss

Every step uses exactly --batch-size examples (no Poisson sampling), SGD lr 0.01,
noise multiplier 1.0, max grad norm 1.0. What is timed is one full step (forward, loss,
backward, clip, noise, optimizer step, zero_grad) on batches already in memory; data
loading is not timed. The reported figure is the median over --steps timed steps,
after --warmup untimed ones.
"""

import argparse
import json
import resource
import statistics
import sys
import time
import warnings

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

WORKLOADS = ("logreg", "mlp", "cnn-tanh")
MODES = ("nonprivate", "hooks", "ghost")

NOISE_MULTIPLIER = 1.0
MAX_GRAD_NORM = 1.0
LEARNING_RATE = 0.01
NUM_CLASSES = 10
# Distinct synthetic batches cycled through during the run, so no step reuses the
# previous step's input exactly (caches stay honest) while nothing is loaded per step.
DISTINCT_BATCHES = 4

# Expected warnings that would otherwise repeat on every run: secure RNG is off on purpose
# (as in DPKit's bench), and the first layer's input does not require a gradient.
warnings.filterwarnings("ignore", message="Secure RNG turned off")
warnings.filterwarnings("ignore", message="Full backward hook is firing")


# MARK: - Workloads

def make_model(workload: str) -> nn.Module:
    if workload == "logreg":
        return nn.Sequential(nn.Linear(784, NUM_CLASSES))
    if workload == "mlp":
        return nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, NUM_CLASSES))
    if workload == "cnn-tanh":
        return nn.Sequential(
            nn.Conv2d(1, 16, 8, stride=2, padding=3),
            nn.Tanh(),
            nn.MaxPool2d(2, 1),
            nn.Conv2d(16, 32, 4, stride=2),
            nn.Tanh(),
            nn.MaxPool2d(2, 1),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 32),
            nn.Tanh(),
            nn.Linear(32, NUM_CLASSES),
        )
    raise ValueError(f"unknown workload '{workload}'")


def input_shape(workload: str) -> tuple:
    return (1, 28, 28) if workload == "cnn-tanh" else (784,)


def make_data(workload: str, batch_size: int, generator: torch.Generator):
    n = batch_size * DISTINCT_BATCHES
    x = torch.randn((n,) + input_shape(workload), generator=generator)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    return x, y


# MARK: - Step

def build(workload: str, mode: str, batch_size: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = make_data(workload, batch_size, generator)
    model = make_model(workload)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    criterion = nn.CrossEntropyLoss()
    # A plain, shuffling DataLoader with a fixed batch size; Opacus reads the batch size
    # (expected batch size for noise scaling) from it. poisson_sampling=False keeps it as is.
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True)

    if mode != "nonprivate":
        from opacus import PrivacyEngine

        engine = PrivacyEngine(accountant="rdp")  # secure_mode off, as in DPKit's bench
        result = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            criterion=criterion,
            noise_multiplier=NOISE_MULTIPLIER,
            max_grad_norm=MAX_GRAD_NORM,
            poisson_sampling=False,
            grad_sample_mode=mode,  # "hooks" or "ghost"
        )
        # Opacus 1.6 returns (module, optimizer, criterion, loader) for ghost clipping,
        # whose criterion wraps the loss to run its two backward passes, and
        # (module, optimizer, loader) otherwise.
        if len(result) == 4:
            model, optimizer, criterion, _ = result
        else:
            model, optimizer, _ = result

    batches = [(xb, yb) for xb, yb in zip(x.split(batch_size), y.split(batch_size))]
    assert all(xb.shape[0] == batch_size for xb, _ in batches)

    def step(i: int) -> None:
        xb, yb = batches[i % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()

    return step


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    step = build(args.workload, args.mode, args.batch_size, args.seed)
    for i in range(args.warmup):
        step(i)
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        step(args.warmup + i)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {
        "workload": args.workload,
        "mode": args.mode,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "ms_per_step": median * 1e3,
        "samples_per_second": args.batch_size / median,
        "min_ms_per_step": min(times) * 1e3,
        "max_ms_per_step": max(times) * 1e3,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch_version": torch.__version__,
        "opacus_version": opacus_version(),
    }


def opacus_version() -> str:
    try:
        import opacus

        return opacus.__version__
    except ImportError:
        return "not installed"


# MARK: - CLI

def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", choices=WORKLOADS, required=True)
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--steps", type=positive_int, default=50, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['workload']} {result['mode']} batch {result['batch_size']} "
            f"threads {result['threads']}: {result['ms_per_step']:.3f} ms/step (median of "
            f"{result['steps']}), {result['samples_per_second']:,.0f} samples/s, "
            f"peak RSS {result['peak_rss_mb']:.0f} MB "
            f"(torch {result['torch_version']}, opacus {result['opacus_version']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
