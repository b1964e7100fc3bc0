#!/usr/bin/env bash
# Create .venv (if missing) and install riskwatch into it, with extras given as
# arguments (e.g. "test"). pip keeps its downloads in ~/.cache/pip, so a second
# run installs from the cache; the first needs PyPI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
extras="${1:-}"
spec="."
[ -n "$extras" ] && spec=".[$extras]"
# Re-install only when the project's metadata changed since the last install.
stamp=".venv/.riskwatch-installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet -e "$spec"
    touch "$stamp"
fi
