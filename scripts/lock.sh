#!/usr/bin/env bash
# Regenerates the locks in requirements/ from pyproject.toml (`make lock`): every dependency pinned
# with the sha256 of its files, for the Python of the images and of CI (CPython 3.11, x86_64 Linux,
# manylinux_2_28). scripts/install.sh installs them; nothing resolves at install time.
#
#   runtime.txt    pyproject's dependencies and the yfinance extra (what the images run), no torch
#   torch-cpu.txt  torch==$TORCH_VERSION+cpu, PyTorch's CPU build (the CPU image, make setup, CI)
#   torch-cuda.txt torch==$TORCH_VERSION from PyPI, a CUDA 13 build, with the NVIDIA libraries and
#                  triton it requires (the GPU image)
#   dev.txt        the dev extra (tests, linters, manifest checks), beside runtime.txt
#
# No package is in two files, and each lock is resolved against runtime.txt, so any combination
# installs one consistent environment.
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-uv}
TORCH_VERSION=${TORCH_VERSION:?set TORCH_VERSION (the Makefile does)}
# Where the CPU build of torch lies: PyTorch's CPU index page of torch, or a folder of wheels.
TORCH_CPU_WHEELS=${TORCH_CPU_WHEELS:-https://download.pytorch.org/whl/cpu/torch/}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
compile() {
    "$UV" pip compile --quiet --generate-hashes --python-version 3.11 \
        --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" "$@"
}
no_emit() {  # --no-emit-package for every package a lock already pins
    sed -n 's/^\([A-Za-z0-9._-]*\)==.*/--no-emit-package=\1/p' "$@"
}

echo "torch==${TORCH_VERSION}+cpu" >"$tmp/torch-cpu.in"
echo "torch==${TORCH_VERSION}" >"$tmp/torch-cuda.in"
python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["dev"]))' >"$tmp/dev.in"

compile pyproject.toml --extra yfinance --overrides "$tmp/torch-cpu.in" \
    --find-links "$TORCH_CPU_WHEELS" --no-emit-package torch -o requirements/runtime.txt
compile "$tmp/torch-cpu.in" --no-deps --find-links "$TORCH_CPU_WHEELS" -o requirements/torch-cpu.txt
if [[ -d $TORCH_CPU_WHEELS ]]; then  # uv hashes no local file: add each wheel's sha256 itself
    python3 - "$TORCH_CPU_WHEELS" "torch-${TORCH_VERSION}+cpu-" requirements/torch-cpu.txt <<'PY'
import hashlib, pathlib, sys
folder, prefix, lock = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
hashes = "".join(
    f" \\\n    --hash=sha256:{hashlib.sha256(w.read_bytes()).hexdigest()}"
    for w in sorted(folder.glob(f"{prefix}*.whl"))
)
pin = prefix.removeprefix("torch-").rstrip("-")
lock.write_text(lock.read_text().replace(f"torch=={pin}\n", f"torch=={pin}{hashes}\n"))
PY
fi
# shellcheck disable=SC2046  # one argument per package
compile "$tmp/torch-cuda.in" --constraints requirements/runtime.txt \
    $(no_emit requirements/runtime.txt) -o requirements/torch-cuda.txt
# shellcheck disable=SC2046
compile "$tmp/dev.in" --constraints requirements/runtime.txt \
    $(no_emit requirements/runtime.txt) -o requirements/dev.txt
sed -i "s|$tmp/||" requirements/*.txt  # annotations name the inputs, not where they lay
