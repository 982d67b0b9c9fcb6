#!/usr/bin/env python3
"""Cross-check DPKit's model export against PyTorch (not part of `make test`).

Loads a model written by `dpkit run` (DIR/models/<run_id>.safetensors) into the PyTorch
modules docs/models.md documents for it, applies the input scaling stored in the file's
metadata, evaluates it on the Fashion-MNIST test set read from the Debian package's IDX files,
and compares the test accuracy with the one `dpkit evaluate` reports for the same file.

    Benchmarks/peers/run.sh --install          # once: torch in Benchmarks/peers/.venv
    pip install safetensors                    # into that venv
    Benchmarks/peers/.venv/bin/python Benchmarks/peers/check_model_export.py MODEL.safetensors \
        [--dpkit .build/release/dpkit] [--data /usr/share/datasets/fashion-mnist]

Exit status 0 when the two accuracies agree to 0.05 percentage points (float32 sums in a
different order may flip a handful of near-ties among 10,000 examples).
"""
import argparse, gzip, json, os, struct, subprocess, sys

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors import safe_open


# Files written before the layers took the config names spell them with DPKit's Swift case
# names and labels: {"type": "linear", "outputs": 10}. This maps such an entry to the config
# spelling ({"type": "dense", "units": 10}), the one torch_module reads.
LEGACY_TYPES = {"linear": "dense", "maxPool2d": "max-pool2d", "avgPool2d": "avg-pool2d",
                "temperedSigmoid": "tempered-sigmoid", "groupNorm": "group-norm", "layerNorm": "layer-norm"}
LEGACY_KEYS = {"outputs": "units", "outChannels": "channels", "kernel": "kernel_size", "trailingAxes": "axes"}


def config_spelling(spec):
    t = spec["type"]
    if t not in LEGACY_TYPES and not (t == "conv2d" and "outChannels" in spec):
        return spec
    t = LEGACY_TYPES.get(t, t)
    out = {"type": t}
    for key, value in spec.items():
        if key == "type":
            continue
        if key == "kernel" and t in ("max-pool2d", "avg-pool2d"):
            key = "size"
        out[LEGACY_KEYS.get(key, key)] = value
    if t == "tempered-sigmoid" and (out.get("scale", 2), out.get("temperature", 2), out.get("offset", 1)) == (1, 1, 0):
        return {"type": "sigmoid"}
    return out


class TemperedSigmoid(torch.nn.Module):
    """scale * sigmoid(temperature * x) - offset (no parameters; no PyTorch module of its own)."""

    def __init__(self, scale, temperature, offset):
        super().__init__()
        self.scale, self.temperature, self.offset = scale, temperature, offset

    def forward(self, x):
        return self.scale * torch.sigmoid(self.temperature * x) - self.offset


def torch_module(spec, shape):
    """The PyTorch module for one entry of the architecture's `layers` (the names and keys of a
    config's `model.layers`) and the example shape it sees."""
    t = spec["type"]
    if t == "dense":
        return torch.nn.Linear(shape[-1], spec["units"], bias=spec.get("bias", True)), shape[:-1] + [spec["units"]]
    if t == "conv2d":
        k, s, p = spec.get("kernel_size", 3), spec.get("stride", 1), spec.get("padding", 0)
        c, h, w = shape
        m = torch.nn.Conv2d(c, spec["channels"], k, stride=s, padding=p, bias=spec.get("bias", True))
        return m, [spec["channels"], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1]
    if t in ("max-pool2d", "avg-pool2d"):
        k = spec.get("size", 2); s = spec.get("stride") or k
        m = (torch.nn.MaxPool2d if t == "max-pool2d" else torch.nn.AvgPool2d)(k, stride=s)
        c, h, w = shape
        return m, [c, (h - k) // s + 1, (w - k) // s + 1]
    if t == "flatten":
        return torch.nn.Flatten(), [int(np.prod(shape))]
    if t == "tanh":
        return torch.nn.Tanh(), shape
    if t == "relu":
        return torch.nn.ReLU(), shape
    if t == "sigmoid":
        return torch.nn.Sigmoid(), shape
    if t == "tempered-sigmoid":
        return TemperedSigmoid(spec.get("scale", 2), spec.get("temperature", 2), spec.get("offset", 1)), shape
    if t == "group-norm":
        return torch.nn.GroupNorm(spec["groups"], shape[0], eps=spec.get("eps", 1e-5)), shape
    if t == "layer-norm":
        n = spec.get("axes", 1)
        return torch.nn.LayerNorm(shape[-n:], eps=spec.get("eps", 1e-5)), shape
    if t == "dropout":
        return torch.nn.Dropout(spec["rate"]), shape
    raise SystemExit(f"no PyTorch module for DPKit layer {t}")


def idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(directory, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(directory, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{stem} not found in {directory} (apt-get install dataset-fashion-mnist)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--dpkit", default=".build/release/dpkit")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()

    with safe_open(a.model, framework="pt") as f:
        meta = f.metadata()
    arch = json.loads(meta["dpkit.architecture"])
    input_shape = arch["input_shape"] if "layers" in arch else arch["inputShape"]  # before: inputShape, specs
    shape = list(input_shape)
    modules = []
    for spec in arch["layers"] if "layers" in arch else arch["specs"]:
        m, shape = torch_module(config_spelling(spec), shape)
        modules.append(m)
    net = torch.nn.Sequential(*modules)
    net.load_state_dict(load_file(a.model), strict=True)
    net.eval()

    x = idx(find(a.data, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = idx(find(a.data, "t10k-labels-idx1-ubyte")).astype(np.int64)
    x = x.reshape(-1, *input_shape)
    transform = json.loads(meta.get("input_transform", '"none"'))
    if isinstance(transform, dict) and "standardization" in transform:
        s = transform["standardization"]["_0"]
        mean = np.array(s["mean"], dtype=np.float32).reshape(-1, *([1] * (x.ndim - 2)))
        sd = np.array(s["standardDeviation"], dtype=np.float32).reshape(-1, *([1] * (x.ndim - 2)))
        x = (x - mean) / sd
    elif isinstance(transform, dict) and "perExample" in transform:
        axes = tuple(range(2, x.ndim))
        m = x.mean(axis=axes, keepdims=True); v = x.var(axis=axes, keepdims=True)
        x = (x - m) / np.where(np.sqrt(v) < 1e-6, 1, np.sqrt(v))
    with torch.no_grad():
        logits = net(torch.from_numpy(x))
    torch_acc = float((logits.argmax(1).numpy() == y).mean())

    out = subprocess.run([a.dpkit, "evaluate", a.model, "--json"], capture_output=True, text=True, check=True)
    dpkit_acc = json.loads(out.stdout.strip().splitlines()[-1])["test_accuracy"]
    print(f"PyTorch {torch.__version__} {net}")
    print(f"test accuracy: PyTorch {100 * torch_acc:.2f}%, dpkit evaluate {100 * dpkit_acc:.2f}% "
          f"(difference {100 * abs(torch_acc - dpkit_acc):.3f} points on {len(y)} examples)")
    sys.exit(0 if abs(torch_acc - dpkit_acc) <= 0.0005 else 1)


if __name__ == "__main__":
    main()
