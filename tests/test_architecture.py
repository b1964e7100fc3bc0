"""The layers of monitor/ hold: import-linter's contracts in pyproject.toml, run as CI runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def lint_imports(cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=cwd, capture_output=True, text=True,
                          env=env)


def test_the_import_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_a_core_module_reaching_up_breaks_them(tmp_path):
    """The contracts can fail: the same tree with one core module importing the worker."""
    import shutil

    for part in ("monitor", "detectors", "connectors"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__", "_data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    state = tmp_path / "monitor" / "core" / "state.py"
    state.write_text(state.read_text(encoding="utf-8") + "\nimport monitor.runners.worker\n", encoding="utf-8")
    result = lint_imports(tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "monitor.core.state -> monitor.runners.worker" in result.stdout
