"""Fail when the running environment does not hold exactly the versions recorded in a lock file.

Usage: python scripts/check_lock.py requirements/lock.txt. Reads ``name==version [; marker]`` lines (uv/pip-tools
format), keeps those whose marker holds for this interpreter, and compares each with the installed distribution.
Prints one line per mismatch and exits 1; exits 0 with a one-line summary when every locked package matches.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

_LINE = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)\s*(?:;\s*(.+))?$")


def locked_versions(text: str) -> dict[str, str]:
    """{canonical name: version} of the lock's pins whose environment marker holds here."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"lock line is not 'name==version [; marker]': {line!r}")
        name, version, marker = match.groups()
        if marker is None or Marker(marker).evaluate():
            pins[canonicalize_name(name)] = version
    return pins


def mismatches(pins: dict[str, str], installed: dict[str, str]) -> list[str]:
    """Human-readable differences between locked and installed versions (empty when they agree)."""
    problems = []
    for name, version in sorted(pins.items()):
        have = installed.get(name)
        if have is None:
            problems.append(f"{name}: locked {version}, not installed")
        elif have != version:
            problems.append(f"{name}: locked {version}, installed {have}")
    return problems


def installed_versions() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_lock.py LOCK_FILE", file=sys.stderr)
        return 2
    pins = locked_versions(Path(argv[0]).read_text())
    problems = mismatches(pins, installed_versions())
    for problem in problems:
        print(f"check_lock: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_lock: {len(pins)} locked packages installed at their recorded versions")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
