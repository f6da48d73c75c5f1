#!/usr/bin/env bash
# The one install path: `make setup`, both images and the install test run this script.
#
#   scripts/install.sh cpu|cuda [--dev] [PROJECT...]
#
# into the Python that $PYTHON names (default: `python` on PATH):
#   1. torch, the build of the variant: requirements/torch-cpu.txt (PyTorch's CPU build, from its
#      CPU index; $TORCH_CPU_INDEX to use a mirror) or requirements/torch-cuda.txt (PyPI's build:
#      CUDA 13, with the NVIDIA libraries and triton it needs);
#   2. every other dependency: requirements/runtime.txt (the yfinance extra included), and with
#      --dev requirements/dev.txt;
#   3. then PROJECT (e.g. `.`, `-e .` or a wheel) without dependencies: the locks hold them;
#   4. `pip check`: the environment is complete and consistent.
#
# Every requirement is pinned with the sha256 of its file (--require-hashes): nothing resolves at
# install time, and a file that differs from the locked one fails the install. The locks are
# made by scripts/lock.sh (`make lock`).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python=${PYTHON:-python}
usage="usage: $0 cpu|cuda [--dev] [PROJECT...]"

variant=${1:?$usage}
shift
case $variant in
cpu) torch_source=(--extra-index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}") ;;
cuda) torch_source=() ;;
*) echo "$usage" >&2 && exit 2 ;;
esac
dev=()
if [[ ${1:-} == --dev ]]; then
    dev=(-r "$here/requirements/dev.txt")
    shift
fi

pip=("$python" -m pip install --no-input --require-hashes)
# torch alone first: only this call consults the PyTorch index.
"${pip[@]}" --no-deps "${torch_source[@]}" -r "$here/requirements/torch-$variant.txt"
"${pip[@]}" -r "$here/requirements/runtime.txt" "${dev[@]}"
if (($#)); then
    "$python" -m pip install --no-input --no-deps "$@"
fi
"$python" -m pip check
