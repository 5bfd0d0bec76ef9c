"""Prints pip constraints pinning each direct dependency of probae to its declared floor.

    python .ci/min_constraints.py > constraints.txt
    pip install -c constraints.txt -e ".[dev]"

Every ``name>=X`` in ``[project] dependencies`` of pyproject.toml becomes ``name==X``, so
the test suite runs on the oldest versions probae claims to support (``.ci/run`` does).
A dependency without a lower bound is an error: its floor could not be tested.
"""

import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def floors(pyproject=ROOT / "pyproject.toml"):
    """``{name: floor}`` from the ``>=`` bound of every runtime dependency."""
    with open(pyproject, "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    result = {}
    for requirement in dependencies:
        spec = requirement.split(";", 1)[0]
        match = _REQUIREMENT.match(spec)
        if match is None:
            raise ValueError(f"cannot parse the requirement {requirement!r}")
        name, _, bounds = match.groups()
        lower = [b.strip()[2:].strip() for b in bounds.split(",") if b.strip().startswith(">=")]
        pinned = [b.strip()[2:].strip() for b in bounds.split(",") if b.strip().startswith("==")]
        if pinned:
            result[name] = pinned[0]
        elif lower:
            result[name] = lower[0]
        else:
            raise ValueError(f"{requirement!r} has no lower bound (>=) to test")
    return result


def main():
    for name, floor in floors().items():
        print(f"{name}=={floor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
