"""A one-line step timer for command-line programs (the CLI and the recipes)."""
from __future__ import annotations

import sys
import time

__all__ = ["progress"]


class progress:
    """Print ``message...`` to stderr, then ``done (1.2 s)`` (or ``failed``) when the block ends."""

    def __init__(self, message: str):
        self.message = message

    def __enter__(self):
        self.start = time.perf_counter()
        print(f"{self.message}...", end="", file=sys.stderr, flush=True)
        return self

    def __exit__(self, exc_type, exc, traceback):
        status = "done" if exc_type is None else "failed"
        print(f" {status} ({time.perf_counter() - self.start:.1f} s)", file=sys.stderr, flush=True)
        return False
