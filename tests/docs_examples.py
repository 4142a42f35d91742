"""The code examples of the docs pages: find them, check their markers, run them (tests/test_docs.py).

Every fenced block whose language is ``python`` or ``bash`` is an *example* and must be preceded by a marker line:

- ``<!-- run -->``: executed by the tests. The blocks of one page run in order in one folder (the page's
  stand-in files, :func:`make_files`) and, for Python, one namespace, as a reader would type them.
- ``<!-- not-run -->`` followed by a visible line ``*Not run by the docs tests: REASON.*``: shown, not executed.

Other fences (``text``: program output, layouts, synopses) are not examples. A ``bash`` block runs line by line
(``\\`` continuations joined, ``#`` comments dropped): a ``tfsonify ...`` line through :func:`tfsonify.cli.main` in
this process (TensorFlow is imported once, not once per command), anything else in ``bash -e``.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLE_LANGUAGES = ("python", "bash")
NOT_RUN_NOTE = "*Not run by the docs tests: "


@dataclasses.dataclass
class Example:
    page: str
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    run: bool | None  # None: no marker
    reason: str | None = None

    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def pages() -> list[str]:
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def examples(page: str) -> list[Example]:
    lines = (DOCS / page).read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        match = re.match(r"^```(\w*)", lines[i])
        if not match:
            i += 1
            continue
        start, language = i, match.group(1)
        j = i + 1
        while not lines[j].startswith("```"):
            j += 1
        code = "\n".join(lines[start + 1:j]) + "\n"
        above = [line for line in lines[max(0, start - 4):start] if line.strip()]
        run, reason = None, None
        if above and above[-1].strip() == "<!-- run -->":
            run = True
        elif len(above) >= 2 and above[-2].strip() == "<!-- not-run -->" and above[-1].startswith(NOT_RUN_NOTE):
            run, reason = False, above[-1][len(NOT_RUN_NOTE):].rstrip("*. ")
        found.append(Example(page, start + 1, language, code, run, reason))
        i = j + 1
    return found


def all_examples() -> list[Example]:
    return [example for page in pages() for example in examples(page)]


def make_files(folder: pathlib.Path) -> None:
    """The stand-ins the examples name: model.keras (CNN12 ×1/8, 3 classes, 8 kHz), clip.wav (1 s, 8 kHz), note.wav
    (220 Hz, 1 s, 16 kHz), clips/ (two 1 s clips at 8 kHz: a.wav, b.wav)."""
    import numpy as np
    import soundfile

    from tfsonify.models.checkpoint import save_model
    from tiny import tiny_cnn12

    save_model(tiny_cnn12(0, num_classes=3, width=0.125), folder / "model.keras", sample_rate=8000,
               class_names=["yes", "no", "maybe"])
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000
    clip = (0.5 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
            + 0.05 * rng.standard_normal(8000)).astype("float32")
    soundfile.write(folder / "clip.wav", clip, 8000, subtype="FLOAT")
    note = 0.5 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)
    soundfile.write(folder / "note.wav", note.astype("float32"), 16000, subtype="FLOAT")
    (folder / "clips").mkdir()
    soundfile.write(folder / "clips" / "a.wav", clip, 8000, subtype="FLOAT")
    soundfile.write(folder / "clips" / "b.wav", (0.2 * rng.standard_normal(8000)).astype("float32"), 8000,
                    subtype="FLOAT")


def shell_commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(line)
    return commands


def run_shell(code: str, folder: pathlib.Path) -> None:
    from tfsonify import cli

    for command in shell_commands(code):
        words = shlex.split(command, comments=True)
        if words[0] == "tfsonify":
            status = cli.main(words[1:])
            if status:
                raise AssertionError(f"`{command}` exited with status {status}")
        else:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
            env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
            done = subprocess.run(["bash", "-e", "-c", command], cwd=folder, env=env, capture_output=True, text=True,
                                  timeout=120)
            if done.returncode:
                raise AssertionError(f"`{command}` exited with status {done.returncode}:\n{done.stderr[-2000:]}")


def run_page(page: str, folder: pathlib.Path) -> list[str]:
    """Run the page's runnable examples in ``folder`` (cwd must be ``folder``); the locations run."""
    namespace: dict = {"__name__": "__docs__"}
    ran = []
    for example in examples(page):
        if not example.run:
            continue
        try:
            if example.language == "python":
                exec(compile(example.code, example.where(), "exec"), namespace)
            else:
                run_shell(example.code, folder)
        except Exception as error:
            raise AssertionError(f"{example.where()} failed: {error!r}") from error
        ran.append(example.where())
    return ran
