"""The lock files agree with pyproject.toml: what a fresh machine installs is what the ranges allow.

When this fails after an edit to pyproject.toml, run ``scripts/lock``.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCKS = ("run.lock", "test.lock")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _load_lockdigest():
    spec = importlib.util.spec_from_file_location("lockdigest", ROOT / "scripts" / "lockdigest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pins(lock: str) -> dict[str, Version]:
    """Package name -> the version the lock pins (every entry also carries its hashes)."""
    text = (ROOT / "requirements" / lock).read_text(encoding="utf-8")
    found = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = PIN.match(entry)
        if match:
            assert "--hash=sha256:" in entry, f"{lock}: {match[1]} is pinned without a hash"
            found[canonicalize_name(match[1])] = Version(match[2])
    return found


def requirements(*, extras: tuple[str, ...] = ()) -> list[Requirement]:
    listed = PYPROJECT["build-system"]["requires"] + PYPROJECT["project"]["dependencies"]
    for extra in extras:
        listed = listed + PYPROJECT["project"]["optional-dependencies"][extra]
    return [Requirement(line) for line in listed]


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_was_compiled_from_this_pyproject(lock):
    header = (ROOT / "requirements" / lock).read_text(encoding="utf-8").splitlines()[0]
    digest = _load_lockdigest().dependency_digest(ROOT / "pyproject.toml")
    assert header.endswith(f"pyproject digest: {digest}"), f"requirements/{lock} is stale: run scripts/lock"


@pytest.mark.parametrize(("lock", "extras"), [("run.lock", ()), ("test.lock", ("test",))])
def test_every_requirement_is_pinned_inside_its_range(lock, extras):
    pinned = pins(lock)
    for requirement in requirements(extras=extras):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not in requirements/{lock}: run scripts/lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"requirements/{lock} pins {name}=={pinned[name]}, outside pyproject's {requirement}"
        )


def test_the_test_lock_installs_the_demo_lock_unchanged():
    demo, test = pins("run.lock"), pins("test.lock")
    moved = {name: (version, test.get(name)) for name, version in demo.items() if test.get(name) != version}
    assert not moved, f"test.lock differs from run.lock on {moved}: run scripts/lock"


def test_the_digest_ignores_prose_but_not_ranges(tmp_path):
    dependency_digest = _load_lockdigest().dependency_digest
    original = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(original.replace("description = ", "description = 'x' #"), "utf-8")
    assert dependency_digest(tmp_path / "pyproject.toml") == dependency_digest(ROOT / "pyproject.toml")
    (tmp_path / "pyproject.toml").write_text(original.replace('"click>=8.1', '"click>=8.2'), "utf-8")
    assert dependency_digest(tmp_path / "pyproject.toml") != dependency_digest(ROOT / "pyproject.toml")
