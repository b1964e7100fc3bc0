"""The scorer is pure: its modules import no I/O, network, database or metrics code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MONITOR = Path(__file__).parent.parent / "monitor"
# the whole core, and the analyst tools that score without I/O (paths under monitor/)
PURE = sorted(f"core/{p.stem}" for p in (MONITOR / "core").glob("*.py") if p.stem != "__init__") + [
    "packs/ruletest", "analyst/generator", "analyst/evaluation"]
DETECTORS = Path(__file__).parent.parent / "detectors"
# every detector module but the model file reader/writer (an edge, used at load time)
PURE_DETECTORS = sorted(p.stem for p in DETECTORS.glob("*.py") if p.stem != "modelfile")
FORBIDDEN = {
    "faust", "aiokafka", "kafka", "sqlalchemy", "psycopg", "psycopg2", "prometheus_client", "requests", "httpx",
    "aiohttp", "urllib", "http", "socket", "socketserver", "subprocess", "sqlite3", "asyncio", "threading",
    "multiprocessing", "shutil", "tempfile", "smtplib", "fastapi", "click", "rich", "yaml", "csv", "io", "os",
    "monitor.packs.rulefiles", "monitor.cases.tickets", "monitor.metrics", "monitor.runners.runner", "monitor.cli",
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io(module):
    imports = imported_modules(MONITOR / f"{module}.py")
    bad = {m for m in imports if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN}
    assert bad == set(), f"monitor/{module}.py imports I/O code: {sorted(bad)}"


@pytest.mark.parametrize("module", PURE_DETECTORS)
def test_detectors_import_no_io(module):
    imports = imported_modules(DETECTORS / f"{module}.py")
    bad = {m for m in imports if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN}
    assert bad == set(), f"detectors/{module}.py imports I/O code: {sorted(bad)}"
    assert "open" not in {n.func.id for n in ast.walk(ast.parse((DETECTORS / f"{module}.py").read_text(encoding="utf-8")))
                          if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def test_the_check_can_fail(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom sqlalchemy import select\nfrom monitor.metrics import Metrics\n")
    assert imported_modules(sample) == {"os", "sqlalchemy", "monitor.metrics"}


def test_scorer_functions_do_not_open_files():
    for module in PURE:
        tree = ast.parse((MONITOR / f"{module}.py").read_text(encoding="utf-8"))
        calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        if module != "analyst/generator":  # the generator's write() is its one edge, called by the CLI
            assert "open" not in calls, module
