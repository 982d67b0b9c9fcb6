#!/usr/bin/env python3
"""Cross-check `dpkit attack adversarial` against FGSM and PGD in PyTorch (not part of `make test`).

Loads a run's exported model (RUN_DIR/models/<run_id>.safetensors) into the equivalent PyTorch
modules (check_model_export.py's mapping), puts the input scaling stored in its metadata *inside*
the forward pass (so gradients flow through it, as in DPKit), and runs on the first COUNT
Fashion-MNIST test images, with budgets in raw pixel units ([0, 1]) and the clip to [0, 1]:

- FGSM:  x + eps * sign(grad)                           (deterministic: must match DPKit closely)
- PGD:   random start in the ball, STEPS steps of size alpha (default 2.5 eps / STEPS), each
         followed by the projection onto the ball and the clip (Madry et al. 2018)

and compares clean, FGSM and PGD accuracy with `dpkit attack adversarial RUN_DIR --run ID --json`.

    python3 -m venv Benchmarks/peers/.venv
    Benchmarks/peers/.venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu safetensors numpy
    Benchmarks/peers/.venv/bin/python Benchmarks/peers/check_adversarial.py RUN_DIR [--run ID] \
        [--epsilon 0.1] [--norm linf|l2] [--steps 40] [--count 1000] [--dpkit .build/release/dpkit]

Exit status 0 when clean and FGSM accuracy agree within 0.2 points and PGD within 1 point (PGD's
random starts differ between the two implementations, so only its accuracy is comparable).
"""
import argparse, glob, json, os, subprocess, sys

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_model_export import config_spelling, find, idx, torch_module  # noqa: E402


class Scaled(torch.nn.Module):
    """The DPKit input transform, then the network: differentiable in the raw input."""

    def __init__(self, net, transform, rank):
        super().__init__()
        self.net, self.transform, self.rank = net, transform, rank

    def forward(self, x):
        t = self.transform
        if isinstance(t, dict) and "standardization" in t:
            s = t["standardization"]["_0"]
            shape = (1, -1) + (1,) * (x.dim() - 2)
            mean = torch.tensor(s["mean"], dtype=x.dtype).reshape(shape)
            sd = torch.tensor(s["standardDeviation"], dtype=x.dtype).reshape(shape)
            x = (x - mean) / sd
        elif isinstance(t, dict) and "perExample" in t:
            axes = tuple(range(2, x.dim())) if self.rank == 3 else tuple(range(1, x.dim()))
            m = x.mean(dim=axes, keepdim=True)
            sd = (x * x).mean(dim=axes, keepdim=True).sub(m * m).clamp_min(0).sqrt()
            x = (x - m) / torch.where(sd < 1e-6, torch.ones_like(sd), sd)
        return self.net(x)


def step(delta_grad, norm):
    if norm == "linf":
        return delta_grad.sign()
    n = delta_grad.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (delta_grad.dim() - 1)))
    return torch.where(n > 1e-30, delta_grad / n, torch.zeros_like(delta_grad))


def project(x, x0, eps, norm):
    d = x - x0
    if norm == "linf":
        d = d.clamp(-eps, eps)
    else:
        n = d.flatten(1).norm(dim=1).view(-1, *([1] * (d.dim() - 1)))
        d = d * torch.clamp(eps / n.clamp_min(1e-30), max=1.0)
    return (x0 + d).clamp(0, 1)


def grad(model, x, y):
    x = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g


def fgsm(model, x0, y, eps, norm):
    return project(x0 + eps * step(grad(model, x0, y), norm), x0, eps, norm)


def pgd(model, x0, y, eps, norm, steps, alpha, generator):
    if norm == "linf":
        x = x0 + (torch.rand(x0.shape, generator=generator) * 2 - 1) * eps
    else:
        d = torch.randn(x0.shape, generator=generator)
        n = d.flatten(1).norm(dim=1).view(-1, *([1] * (d.dim() - 1)))
        r = torch.rand((x0.shape[0],) + (1,) * (x0.dim() - 1), generator=generator)
        x = x0 + d / n * r * eps
    x = project(x, x0, eps, norm)
    for _ in range(steps):
        x = project(x + alpha * step(grad(model, x, y), norm), x0, eps, norm)
    return x


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--run", help="run id (default: the first model of RUN_DIR/models)")
    ap.add_argument("--epsilon", type=float, default=0.1)
    ap.add_argument("--norm", default="linf", choices=["linf", "l2"])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--step-size", type=float)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--dpkit", default=".build/release/dpkit")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()

    models = sorted(glob.glob(os.path.join(a.run_dir, "models", "*.safetensors")))
    if a.run:
        models = [m for m in models if os.path.basename(m) == a.run + ".safetensors"]
    if not models:
        raise SystemExit(f"no model in {a.run_dir}/models (run id {a.run})")
    path = models[0]
    run_id = os.path.basename(path)[: -len(".safetensors")]
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    arch = json.loads(meta["dpkit.architecture"])
    input_shape = arch["input_shape"] if "layers" in arch else arch["inputShape"]
    shape, modules = list(input_shape), []
    for spec in arch["layers"] if "layers" in arch else arch["specs"]:
        m, shape = torch_module(config_spelling(spec), shape)
        modules.append(m)
    net = torch.nn.Sequential(*modules)
    net.load_state_dict(load_file(path), strict=True)
    net.eval()
    model = Scaled(net, json.loads(meta.get("input_transform", '"none"')), len(input_shape))

    x = idx(find(a.data, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = idx(find(a.data, "t10k-labels-idx1-ubyte")).astype(np.int64)
    x = torch.from_numpy(x.reshape(-1, *input_shape)[: a.count].copy())
    y = torch.from_numpy(y[: a.count].copy())
    alpha = a.step_size if a.step_size else 2.5 * a.epsilon / a.steps
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    clean = accuracy(model, x, y)
    x_fgsm = torch.cat([fgsm(model, x[i:i + 256], y[i:i + 256], a.epsilon, a.norm) for i in range(0, len(y), 256)])
    x_pgd = torch.cat([pgd(model, x[i:i + 256], y[i:i + 256], a.epsilon, a.norm, a.steps, alpha, g)
                       for i in range(0, len(y), 256)])
    torch_fgsm, torch_pgd = accuracy(model, x_fgsm, y), accuracy(model, x_pgd, y)

    def dpkit(method):
        cmd = [a.dpkit, "attack", "adversarial", a.run_dir, "--run", run_id, "--method", method, "--norm", a.norm,
               "--epsilon", str(a.epsilon), "--count", str(a.count), "--json"]
        if method == "pgd":
            cmd += ["--steps", str(a.steps), "--step-size", str(alpha)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    d_fgsm, d_pgd = dpkit("fgsm"), dpkit("pgd")
    rows = [("clean", clean, d_fgsm["clean_accuracy"], 0.2),
            (f"FGSM {a.norm} eps {a.epsilon}", torch_fgsm, d_fgsm["robust_accuracy"], 0.2),
            (f"PGD-{a.steps} {a.norm} eps {a.epsilon} step {alpha:.4g}", torch_pgd, d_pgd["robust_accuracy"], 1.0)]
    print(f"PyTorch {torch.__version__}, model {path}, {len(y)} test examples")
    ok = True
    for name, t, d, tol in rows:
        diff = 100 * abs(t - d)
        ok &= diff <= tol
        print(f"{name:40s} PyTorch {100 * t:6.2f}%  DPKit {100 * d:6.2f}%  difference {diff:.2f} points "
              f"(tolerance {tol}) {'ok' if diff <= tol else 'MISMATCH'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
