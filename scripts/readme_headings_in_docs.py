"""Check that every heading of a README (default: the pre-docs README, commit 113c679) is a heading of a docs page.

    python scripts/readme_headings_in_docs.py [README_FILE]

Prints each heading with the page that holds it; exit status 1 if any heading is missing. Headings inside code
fences are ignored; a heading matches when its text (without `#`s) equals a docs heading's text.
"""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def headings(text: str) -> list[str]:
    found, fence = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"^#{1,6} ", line):
            found.append(line.split(" ", 1)[1].strip())
    return found


def main() -> int:
    if len(sys.argv) > 1:
        readme = pathlib.Path(sys.argv[1]).read_text()
    else:
        readme = subprocess.run(["git", "show", "113c679:README.md"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout
    pages = {p.relative_to(ROOT / "docs").as_posix(): set(headings(p.read_text()))
             for p in sorted((ROOT / "docs").rglob("*.md"))}
    missing = 0
    for heading in headings(readme):
        where = [page for page, hs in pages.items() if heading in hs]
        print(f"{'ok ' if where else 'MISSING'} {heading!r} -> {', '.join(where) or '-'}")
        missing += not where
    print(f"{len(headings(readme)) - missing} of {len(headings(readme))} README headings found in docs/")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
