#!/usr/bin/env bash
# ScatterNet cross-check and speed comparison against Kymatio (NumPy backend) on Fashion-MNIST.
#
#   Benchmarks/peers/scattering_kymatio.sh --install   # venv Benchmarks/peers/.venv-kymatio, kymatio 0.3.0 from PyPI
#   Benchmarks/peers/scattering_kymatio.sh check       # 256 test images: max relative error, must be <= 1e-4
#   Benchmarks/peers/scattering_kymatio.sh speed [N]   # all 70,000 images with dpkit; N images with Kymatio, extrapolated
#
# Needs `apt-get install dataset-fashion-mnist` and a release build of dpkit
# (`swift build -c release --product dpkit`; DPKIT=path overrides). Not part of `make test`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv-kymatio"
DPKIT="${DPKIT:-$REPO/.build/release/dpkit}"
OUT="${TMPDIR:-/tmp}/dpkit-scattering"
mkdir -p "$OUT"

case "${1:-check}" in
--install)
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "kymatio==0.3.0" "numpy==2.1.3" "scipy==1.14.1"  # kymatio 0.3.0 imports scipy.special.sph_harm, gone in scipy 1.15+
    ;;
check)
    "$DPKIT" features scatter --dataset fashion-mnist --split test --count 256 --output "$OUT/test256.npy"
    "$VENV/bin/python" "$HERE/scattering_kymatio.py" check --dpkit "$OUT/test256.npy" --count 256
    ;;
speed)
    n="${2:-2000}"
    for split in train test; do
        /usr/bin/time -f "dpkit $split: %e s wall, %U s user, %M KiB" \
            "$DPKIT" features scatter --dataset fashion-mnist --split "$split" --output "$OUT/$split.npy"
    done
    "$VENV/bin/python" "$HERE/scattering_kymatio.py" speed --count "$n"
    ;;
*)
    echo "usage: $0 --install | check | speed [N]" >&2
    exit 2
    ;;
esac
