"""The documentation site: ``mkdocs build --strict`` passes, every Python and shell example of docs/ is marked, and
every example marked runnable runs on small stand-in files (tests/docs_examples.py)."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import docs_examples

ROOT = docs_examples.ROOT


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the [docs] extra (mkdocs, mkdocs-material, mkdocstrings) is not installed")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "engine" / "index.html").is_file()


def test_every_example_is_marked():
    unmarked = [e.where() for e in docs_examples.all_examples()
                if e.language in docs_examples.EXAMPLE_LANGUAGES and e.run is None]
    assert not unmarked, ("python/bash blocks need `<!-- run -->` or `<!-- not-run -->` plus a visible "
                          f"'{docs_examples.NOT_RUN_NOTE}REASON.*' line above them: {unmarked}")
    bare = [e.where() for e in docs_examples.all_examples() if not e.language]
    assert not bare, f"fences need a language (python, bash, or text for output): {bare}"


def test_every_public_name_is_in_the_api_reference():
    import tfsonify

    api = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    missing = [name for name in tfsonify.__all__ if f"::: {tfsonify._EXPORTS[name]}.{name}\n" not in api + "\n"]
    assert not missing, f"add `::: module.name` for {missing} to docs/api/"


def test_readme_links_and_image_exist():
    import re

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


RUNNABLE = sorted({e.page for e in docs_examples.all_examples() if e.run})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs-files")
    docs_examples.make_files(folder)
    return folder


@pytest.mark.parametrize("page", RUNNABLE)
def test_examples_run(page, files, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(files, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    ran = docs_examples.run_page(page, tmp_path)
    assert ran
