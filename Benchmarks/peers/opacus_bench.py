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
loading is not timed unless --data loader. The reported figure is the median over --steps timed steps,
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

def build(workload: str, mode: str, batch_size: int, seed: int,
          noise_multiplier: float = NOISE_MULTIPLIER, max_grad_norm: float = MAX_GRAD_NORM,
          data: str = "tensors"):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = make_data(workload, batch_size, generator)
    model = make_model(workload)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    criterion = nn.CrossEntropyLoss()
    # A plain, shuffling DataLoader with a fixed batch size; Opacus reads the batch size
    # (expected batch size for noise scaling) from it. poisson_sampling=False keeps it as is.
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True)
    loader_iter = iter(())

    if mode != "nonprivate":
        from opacus import PrivacyEngine

        engine = PrivacyEngine(accountant="rdp")  # secure_mode off, as in DPKit's bench
        result = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            criterion=criterion,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
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

    def next_from_loader():
        nonlocal loader_iter
        try:
            return next(loader_iter)
        except StopIteration:
            loader_iter = iter(loader)
            return next(loader_iter)

    def step(i: int) -> None:
        if data == "loader":
            xb, yb = next_from_loader()  # shuffle, index and collate B examples: timed too
        else:
            xb, yb = batches[i % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()

    return step, model


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    # ru_maxrss after the imports: what PyTorch (a CUDA build here) costs before any work.
    rss_after_import_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    step, _ = build(args.workload, args.mode, args.batch_size, args.seed, data=args.data)
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
        "data": args.data,
        "ms_per_step": median * 1e3,
        "samples_per_second": args.batch_size / median,
        "min_ms_per_step": min(times) * 1e3,
        "max_ms_per_step": max(times) * 1e3,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "rss_after_import_mb": rss_after_import_mb,
        "torch_version": torch.__version__,
        "opacus_version": opacus_version(),
    }


def opacus_version() -> str:
    try:
        import opacus

        return opacus.__version__
    except ImportError:
        return "not installed"


# MARK: - Self-check

def self_check(batch_size: int = 8) -> int:
    """Check that the private modes run the DP-SGD step they claim to, on every workload.

    Compares the gradient each step leaves in `.grad` (what SGD applied). With noise 0: a
    clipping norm far above every per-sample gradient norm must give the non-private mean
    gradient, and with a small clipping norm hooks and ghost must both match a
    one-example-at-a-time reference (sum of clipped per-sample gradients over the batch size).
    """
    torch.set_num_threads(1)
    failures = 0

    def update(workload, mode, max_grad_norm):
        """The gradient one step applied (the step zeroes gradients before, not after)."""
        step, model = build(workload, mode, batch_size, seed=1, noise_multiplier=0.0, max_grad_norm=max_grad_norm)
        step(0)
        return torch.cat([p.grad.detach().reshape(-1) for p in model.parameters()])

    def close(got, want):
        return torch.allclose(got, want, rtol=1e-3, atol=1e-3 * want.abs().max().item())

    def reference(workload, max_grad_norm):
        torch.manual_seed(1)
        generator = torch.Generator().manual_seed(1)
        x, y = make_data(workload, batch_size, generator)
        model = make_model(workload)
        total = [torch.zeros_like(p) for p in model.parameters()]
        for i in range(batch_size):
            model.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
            grads = [p.grad for p in model.parameters()]
            norm = torch.sqrt(sum((g * g).sum() for g in grads))
            factor = min(1.0, max_grad_norm / (norm.item() + 1e-6))
            for t, g in zip(total, grads):
                t += factor * g
        return torch.cat([(t / batch_size).reshape(-1) for t in total])

    for workload in WORKLOADS:
        plain = update(workload, "nonprivate", 1.0)
        small = {}
        for mode in ("hooks", "ghost"):
            loose = update(workload, mode, 1e6)
            small[mode] = update(workload, mode, 1e-3)
            for name, got, want in (
                (f"{mode}, no clipping vs non-private", loose, plain),
                (f"{mode}, clipped vs per-example reference", small[mode], reference(workload, 1e-3)),
            ):
                ok = close(got, want)
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {workload}: {name} (max abs diff "
                      f"{(got - want).abs().max().item():.1e}, largest entry {want.abs().max().item():.1e})")
        ok = not close(small["ghost"], plain)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {workload}: clipping changes the update")
    print(f"{3 * len(WORKLOADS) * 2 + len(WORKLOADS) - failures} passed, {failures} failed")
    return 1 if failures else 0


# MARK: - CLI

def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", choices=WORKLOADS)
    p.add_argument("--mode", choices=MODES)
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--steps", type=positive_int, default=50, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", choices=("tensors", "loader"), default="tensors",
                   help="tensors: batches already in memory (default, data loading not timed); "
                        "loader: each step draws its batch from the DataLoader inside the timed region")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--self-check", action="store_true",
                   help="check hooks and ghost against non-private and per-example references, then exit")
    args = p.parse_args(argv)
    if not args.self_check and (args.workload is None or args.mode is None):
        p.error("--workload and --mode are required (or --self-check)")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.self_check:
        return self_check()
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
