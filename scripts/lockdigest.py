"""Print the digest of pyproject.toml's dependency tables that the lock files record.

Only the requirement lists count (build-system, dependencies, optional
dependencies), in a canonical form, so an edited comment or description needs no
relock while any added, removed or re-ranged requirement does.

    python3 scripts/lockdigest.py        # from the checkout's root
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path


def dependency_digest(pyproject: Path) -> str:
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    tables = {
        "build-system": sorted(data["build-system"]["requires"]),
        "dependencies": sorted(data["project"].get("dependencies", [])),
        "optional-dependencies": {
            extra: sorted(reqs) for extra, reqs in data["project"].get("optional-dependencies", {}).items()
        },
        "requires-python": data["project"].get("requires-python", ""),
    }
    canonical = json.dumps(tables, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    print(dependency_digest(root / "pyproject.toml"))
