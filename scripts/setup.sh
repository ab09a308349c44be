#!/usr/bin/env bash
# Creates .venv and installs zoo with its built-in plugins, test tools and the serve, tune, hf, onnx, docs, s3,
# package, tensorboard and mlflow extras.
# Idempotent: does nothing when pyproject.toml has not changed since the last run.
#
# torch: by default the CPU build `torch==2.13.0` (ZOO_TORCH overrides it, e.g.
# ZOO_TORCH=torch for the newest CUDA build). An already installed torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${ZOO_TORCH:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.zoo-setup
want=$(cat pyproject.toml scripts/constraints.txt examples/*/pyproject.toml | sha256sum | cut -d" " -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c scripts/constraints.txt \
  -e ".[test,tune,serve,hf,onnx,docs,s3,package,tensorboard,mlflow]"
echo "$want" > "$stamp"
