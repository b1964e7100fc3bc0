"""The code stays within the Python that ``requires-python`` admits.

CI runs the suite on the oldest interpreter the floor admits (``.ci/run``,
``scripts/oldest-python``: Debian 12's own 3.11.2 here), which catches what
arrived in a patch release (``tarfile``'s ``filter=`` came in 3.11.4). vermin
catches the rest before anyone runs it: a module, member, keyword or syntax
of a newer minor version (``itertools.batched``, ``typing.override``,
``type X = ...``, quotes reused inside an f-string).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
FLOOR = re.fullmatch(r">=\s*(\d+\.\d+)(?:\.\d+)?",
                     tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"])
CODE = ("monitor", "detectors", "connectors", "benchmarks", "tests", "scripts")


def vermin(*paths: Path | str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "vermin"), "--no-tips", "--violations",
                           "--eval-annotations", f"-t={FLOOR.group(1)}-", *map(str, paths)],
                          cwd=ROOT, capture_output=True, text=True)


def test_the_floor_is_a_version_vermin_can_hold_the_code_to():
    assert FLOOR is not None, "requires-python must read >=X.Y"


def test_no_module_member_or_syntax_newer_than_the_floor():
    result = vermin(*CODE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Analyzing" in result.stdout and "Target versions not met" not in result.stdout, result.stdout


def test_code_newer_than_the_floor_is_caught(tmp_path):
    """The check can fail: each line below needs 3.12."""
    newer = {
        "batched.py": "import itertools\nprint(list(itertools.batched([1, 2, 3], 2)))\n",
        "override.py": "from typing import override\n",
        "alias.py": "type Pair = tuple[int, int]\n",
    }
    for name, code in newer.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
        result = vermin(tmp_path / name)
        assert result.returncode != 0 and "Target versions not met" in result.stdout, (name, result.stdout)

