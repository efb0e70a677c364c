#!/usr/bin/env bash
# Fill .gpu/ (git-ignored) with what the GPU machine lacks, for the device tool's `carry`:
#   .gpu/wheels: the Python 3.12 x86-64 wheels of our dependencies missing from its image
#                (versions as installed in .venv here; W&B left out, see README.md)
#   .gpu/data:   the benchmark data subset the check reads (~50 MB): benchmark/{Set5,Set14,B100},
#                train/T91, reference/ (the MATLAB imresize vectors), weights/ (the released models)
# Needs SR_DATA_DIR (or ../shared/data) and pip access to the package registry.
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${SR_DATA_DIR:-../shared/data}"
[ -d "$data/benchmark/B100" ] || { echo "error: $data/benchmark/B100 not found: set SR_DATA_DIR" >&2; exit 2; }
[ -x .venv/bin/pip ] || { echo "error: .venv not found: run make install first" >&2; exit 2; }
version() { .venv/bin/pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/data/benchmark .gpu/data/train
# Pure-Python and manylinux wheels; antlr4 4.9.3 (what omegaconf pins) is published as an sdist only.
pkgs=()
for p in hydra-core omegaconf kornia kornia-rs webdataset braceexpand optuna alembic SQLAlchemy colorlog Mako; do
    pkgs+=("$p==$(version "$p")")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/wheels "${pkgs[@]}"
python3 -m pip wheel -q --no-deps -w .gpu/wheels "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
cp -r "$data/benchmark/Set5" "$data/benchmark/Set14" "$data/benchmark/B100" .gpu/data/benchmark/
cp -r "$data/train/T91" .gpu/data/train/
cp -r "$data/reference" "$data/weights" .gpu/data/
du -sh .gpu/wheels .gpu/data
