#!/usr/bin/env bash
# GPU readiness (issue 20), one command on a machine with a GPU, in under 8 minutes: trains
# shakespeare-char-gpt and gpt-lm on CUDA under bf16, checks their val loss against the CPU's,
# evaluates and generates on CUDA, runs a 2-GPU nccl DDP check when there are two GPUs, prints
# tokens/s and model FLOP/s utilisation, and writes benchmarks/results/gpu.json
# (benchmarks/gpu_check.py says what each row is and the tolerances).
#
#   bash benchmarks/gpu.sh                # on a GPU machine; exit 0 when every check passes
#   bash benchmarks/gpu.sh --dry-run      # builds every row, trains nothing (CPU, seconds; the tests run it)
#   bash benchmarks/gpu.sh --device cpu   # the whole check, tiny, with the CPU in the GPU's place
#   bash benchmarks/gpu.sh --pack         # on a machine with network: bundle what an offline GPU machine lacks
#
# Python: the first of $PYTHON, .venv/bin/python (scripts/setup.sh makes it) and python3 that imports
# torch. One without zoo (a CUDA image's python3) gets nothing installed into it: this checkout goes
# on PYTHONPATH for this run, with zoo's entry points (its plugins) and any dependency it lacks in a
# temporary folder, the latter from runs/gpu-pack/wheels (see --pack), else from PyPI.
# None with torch: scripts/setup.sh with ZOO_TORCH=torch (the newest CUDA build, from PyPI).
# Data: $ZOO_DATA_DIR, else ../shared/data, else shared/data, else runs/gpu-pack/data.
set -euo pipefail
cd "$(dirname "$0")/.."

PACK=runs/gpu-pack
PURE_WHEELS="pluggy click tqdm tomli-w"  # what --pack bundles: zoo's pure-Python dependencies
DEPS="pluggy click safetensors tqdm matplotlib tomli_w tokenizers"  # zoo's import names (gensim: only for word vectors)
# zoo and the plugins the check trains with (the catalog's entries load without them; the plugins need entry points)
ZOO_OK='import torch, tomli_w, zoo
assert zoo.list_models("*:gpt") and zoo.list_datasets("*:tinyshakespeare") and zoo.list_tokenizers("*:bpe")'

say() { echo "gpu.sh: $*" >&2; }
has() { "$1" -c "$2" >/dev/null 2>&1; }

pack() {
  local src=${ZOO_DATA_DIR:-../shared/data} py=python3
  [ -x .venv/bin/python ] && py=.venv/bin/python
  [ -f "$src/tinyshakespeare/input.txt" ] || { say "no $src/tinyshakespeare/input.txt: set ZOO_DATA_DIR"; exit 1; }
  mkdir -p "$PACK/data/tinyshakespeare" "$PACK/wheels"
  cp "$src/tinyshakespeare/input.txt" "$PACK/data/tinyshakespeare/"
  # shellcheck disable=SC2086
  "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$PACK/wheels" $PURE_WHEELS
  say "packed $(find "$PACK" -type f | wc -l) files into $PACK (git ignores runs/): bring it to the GPU machine"
}

install_private() {  # zoo from this checkout for this run only: its metadata in a temporary folder, no build
  local py=$1 site missing="" m
  site=$(mktemp -d "${TMPDIR:-/tmp}/zoo-gpu-site.XXXXXX")
  trap "rm -rf '$site'" EXIT
  say "zoo from $PWD for this run: PYTHONPATH and its entry points in $site"
  # the .dist-info pip would write: name, version and the entry points (the built-in plugins) of pyproject.toml
  "$py" - "$site" <<'PY'
import pathlib, sys, tomllib
project = tomllib.loads(pathlib.Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
info = pathlib.Path(sys.argv[1]) / f"{project['name']}-{project['version']}.dist-info"
info.mkdir()
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
groups = project.get("entry-points", {})
(info / "entry_points.txt").write_text("".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
                                              for g, eps in groups.items()))
PY
  export PYTHONPATH="$site:$PWD:$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
  for m in $DEPS; do has "$py" "import $m" || missing="$missing ${m//_/-}"; done
  if [ -n "$missing" ]; then
    local from=()
    [ -d "$PACK/wheels" ] && from=(--no-index --find-links "$PACK/wheels")
    say "installing the missing${missing} into $site ${from[*]:+from $PACK/wheels}"
    # shellcheck disable=SC2086
    "$py" -m pip install --quiet --disable-pip-version-check --no-deps "${from[@]}" --target "$site" $missing >&2 \
      || { say "cannot install${missing} for $py; without network, run 'bash benchmarks/gpu.sh --pack' on a" \
               "machine with one and bring $PACK along"; exit 1; }
  fi
}

choose_python() {
  local c
  PY=""
  for c in ${PYTHON:+"$PYTHON"} .venv/bin/python python3; do
    if has "$c" "import torch"; then
      PY=$c
      break
    fi
  done
  if [ -z "$PY" ]; then
    say "no Python with torch here: scripts/setup.sh with ZOO_TORCH=${ZOO_TORCH:-torch}"
    ZOO_TORCH=${ZOO_TORCH:-torch} bash scripts/setup.sh
    PY=.venv/bin/python
  fi
  if ! has "$PY" "$ZOO_OK"; then
    install_private "$PY"
    has "$PY" "$ZOO_OK" || { say "zoo still cannot be imported by $PY:"; "$PY" -c "$ZOO_OK"; exit 1; }
  fi
}

if [ "${1:-}" = "--pack" ]; then
  pack
  exit 0
fi
if [ -z "${ZOO_DATA_DIR:-}" ]; then
  for d in ../shared/data shared/data "$PACK/data"; do
    if [ -d "$d" ]; then
      ZOO_DATA_DIR=$(cd "$d" && pwd)
      export ZOO_DATA_DIR
      break
    fi
  done
fi
choose_python
export PYTHONUNBUFFERED=1
say "python $PY ($("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)'))," \
    "data ${ZOO_DATA_DIR:-(none: downloads)}, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$PY" benchmarks/gpu_check.py "$@"
