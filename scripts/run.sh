#!/usr/bin/env bash
# The main job: train the default entry subseq-gru on its synthetic data,
# evaluate it on 10,000 unseen examples and export a half-precision copy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ENTRY=${1:-subseq-gru}
.venv/bin/zoo train "$ENTRY" --out "runs/$ENTRY" --force
.venv/bin/zoo eval "runs/$ENTRY/model.safetensors"
.venv/bin/zoo export "runs/$ENTRY" --out "runs/$ENTRY-fp16.safetensors" --dtype float16 --force
# its first 12 lines (piping into head would fail the script under pipefail: zoo exits 1 when head closes the pipe)
info=$(.venv/bin/zoo info "runs/$ENTRY-fp16.safetensors")
sed -n 1,12p <<<"$info"
