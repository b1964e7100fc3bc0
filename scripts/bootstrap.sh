#!/usr/bin/env bash
# Create .venv and install exactly the locked versions into it, then riskwatch itself.
#
#   scripts/bootstrap.sh          requirements/run.lock   (the demo)
#   scripts/bootstrap.sh test     requirements/test.lock  (the test suite: run.lock plus the test tools)
#
# Every package is pinned with its hashes (pip --require-hashes), so a fresh machine
# installs what the suite was run with. When a lock file changes, .venv is built
# anew rather than patched, so nothing from an older lock lingers. pip keeps its
# downloads in ~/.cache/pip: a second machine set-up installs from the cache.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
lock="requirements/run.lock"
[ "${1:-}" = "test" ] && lock="requirements/test.lock"
stamp=".venv/.riskwatch-lock"
# The venv is valid for one version of both locks (test.lock is a superset of
# run.lock) and one interpreter: PYTHON=/usr/bin/python3 after another builds it anew.
interpreter="$("$python" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
want="$( (cat requirements/run.lock requirements/test.lock; echo "$interpreter") | sha256sum | cut -c1-16)"
if [ -x .venv/bin/python ] && [ "$(sed -n 1p "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "the lock files or the interpreter changed: building .venv anew with $interpreter" >&2
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
    echo "$want" > "$stamp"
fi
if ! grep -qxF "$lock" "$stamp"; then
    .venv/bin/python -m pip install --quiet --require-hashes --only-binary :all: --no-deps -r "$lock"
    echo "$lock" >> "$stamp"
fi
# riskwatch itself, editable, built by the locked hatchling (no isolated build env to resolve).
if [ ! -f .venv/.riskwatch-editable ] || [ pyproject.toml -nt .venv/.riskwatch-editable ]; then
    .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
    touch .venv/.riskwatch-editable
fi
