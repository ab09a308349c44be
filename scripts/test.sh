#!/usr/bin/env bash
# The test suite: set up .venv, install the example third-party plugin into it
# (as a user would: a separate package, found through its entry point), run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
  ./examples/zoo-lstm-seq2seq
exec .venv/bin/python -m pytest "$@"
