"""The wheel stands alone: built from the package's files, installed into a fresh virtualenv outside the checkout,
its commands run from a folder outside the checkout (``tfsonify --version``, ``sonify``, ``explore`` serving its page,
``export tflite`` and the edge runtime ``python -m tfsonify.edge``).

The new virtualenv holds only the wheel (``--no-deps``, nothing downloaded); its dependencies are the ones already
installed in the running interpreter's environment, made visible by a ``.pth`` line naming that site-packages folder.
A ``.pth`` line only adds a folder to ``sys.path`` (the ``.pth`` files inside it are not run), so the checkout's
editable install there is not activated, and the wheel's copy, earlier on ``sys.path``, is the one imported: the
tests assert that ``tfsonify.__file__`` lies in the new virtualenv.
"""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]
RATE = 8000
SOURCES = ("pyproject.toml", "setup.py", "README.md", "tfsonify")  # what the build reads (pyproject: readme, package)


def _run(command, cwd, env, timeout=180) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def _package_data() -> set[str]:
    """The checkout's non-Python files inside the package (tracked by git): each must be in the wheel."""
    listed = subprocess.run(["git", "ls-files", "tfsonify"], cwd=REPO, capture_output=True, text=True, check=True)
    return {name for name in listed.stdout.split() if not name.endswith(".py")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``{"wheel", "python", "bin", "env", "work"}``: the wheel built from a copy of the sources, installed alone
    into a new virtualenv; ``work`` is an empty folder outside the checkout to run the commands from."""
    root = tmp_path_factory.mktemp("wheel")
    assert REPO not in root.parents, "the temporary folder must lie outside the checkout"
    source = root / "source"  # a copy: building in the checkout would leave build/ and *.egg-info there
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", TFSONIFY_CACHE=str(root / "cache"), MPLBACKEND="Agg")
    pip = [sys.executable, "-m", "pip"]
    _run(pip + ["wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(source), "-w", str(root / "dist")],
         root, env)
    (wheel,) = (root / "dist").glob("tfsonify-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
    python = venv / "bin" / "python"
    _run(pip + ["--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)], root, env)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root, env)
                .stdout.strip())
    (site / "_tfsonify_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = root / "work"
    work.mkdir()
    return {"wheel": wheel, "python": str(python), "bin": venv / "bin", "env": env, "work": work, "venv": venv}


def test_wheel_holds_the_package_data_and_the_extras(installed):
    with zipfile.ZipFile(installed["wheel"]) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    missing = sorted(_package_data() - names)
    assert not missing, f"package files left out of the wheel (add them to [tool.setuptools.package-data]): {missing}"
    assert "tfsonify/explore/static/index.html" in names  # the check above is not vacuous
    extras = set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.M))
    assert {"tf", "explore", "serve", "lite", "crepe", "dev"} <= extras
    assert not any(name.startswith(("tests/", "scripts/", "docs/")) for name in names)


def test_the_installed_copy_is_imported_not_the_checkout(installed):
    probe = _run([installed["python"], "-c", "import tfsonify, json; print(json.dumps([tfsonify.__file__, "
                  "tfsonify.__version__]))"], installed["work"], installed["env"])
    location, version = json.loads(probe.stdout)
    assert Path(location).is_relative_to(installed["venv"]) and not Path(location).is_relative_to(REPO)
    from tfsonify import __version__

    assert version == __version__
    shown = _run(["tfsonify", "--version"], installed["work"], installed["env"])
    assert shown.stdout.strip() == f"tfsonify {__version__}"


@pytest.fixture(scope="module")
def files(installed):
    """A tiny saved classifier (8 kHz, three classes) and a 1 s clip in the folder the commands run from."""
    from tiny import saved_classifier

    work = installed["work"]
    model = saved_classifier(work / "tiny.keras", seed=3)
    clips = work / "clips"
    clips.mkdir()
    t = np.arange(RATE) / RATE
    wave = (0.4 * np.sin(2 * np.pi * (300 + 900 * t) * t)).astype(np.float32)
    soundfile.write(clips / "chirp.wav", wave, RATE, subtype="FLOAT")
    return {"model": model, "clip": clips / "chirp.wav", "clips": clips}


class Explorer:
    """``tfsonify explore`` started from the wheel in the background (so it boots while another command runs)."""

    def __init__(self, installed):
        self.process = subprocess.Popen(["tfsonify", "explore", "tiny.keras", "clips", "--port", "0"],
                                        cwd=installed["work"], env=installed["env"], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._url = None

    def _read(self) -> None:
        for line in iter(self.process.stdout.readline, ""):
            self.lines.put(line)

    def url(self, timeout: float = 180) -> str:
        """The page's address, once the server prints it."""
        deadline = time.monotonic() + timeout
        while self._url is None and time.monotonic() < deadline and self.process.poll() is None:
            try:
                match = re.match(r"open (http://\S+)/ ", self.lines.get(timeout=1))
            except queue.Empty:
                continue
            self._url = match.group(1) if match else None
        if self._url is None:
            status = self.process.poll()
            raise AssertionError(f"explore did not start (exit status {status}): "
                                 + (self.process.stderr.read()[-3000:] if status is not None else "still loading"))
        return self._url

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def explorer(installed, files):
    server = Explorer(installed)
    yield server
    server.stop()


def test_sonify_runs_from_the_wheel(installed, files, explorer):  # explorer: boots meanwhile (two TensorFlow starts)
    work = installed["work"]
    _run(["tfsonify", "sonify", "clips/chirp.wav", "--model", "tiny.keras", "--layer", "2", "--top", "1", "--out",
          "sonified"], work, installed["env"])
    manifest = json.loads((work / "sonified" / "manifest.json").read_text())
    assert manifest["model"] == "../tiny.keras" and manifest["source"] == "../clips/chirp.wav"  # from the manifest
    (entry,) = manifest["sonifications"]
    sound, rate = soundfile.read(work / "sonified" / entry["wav"])
    assert rate == RATE and sound.size == RATE and np.abs(sound).max() > 0
    assert (work / "sonified" / entry["spectrogram"]).stat().st_size > 1000  # matplotlib ran from the wheel too


def test_explore_serves_its_page_from_the_wheel(explorer):
    url = explorer.url()
    page = urllib.request.urlopen(f"{url}/", timeout=60).read().decode()
    assert "<script src=\"/static/explore.js\">" in page
    script = urllib.request.urlopen(f"{url}/static/explore.js", timeout=60).read().decode()
    assets = set(re.findall(r'"/static/([\w.-]+)"', page + script))
    assert {"explore.css", "explore.js", "recorder-worklet.js"} <= assets
    for asset in assets:  # every file the page asks for comes from the installed package
        with urllib.request.urlopen(f"{url}/static/{asset}", timeout=60) as answer:
            assert answer.status == 200 and answer.read()
    (clip,) = json.loads(urllib.request.urlopen(f"{url}/api/clips", timeout=60).read())["clips"]
    assert clip["name"] == "chirp.wav" and clip["error"] is None
    top = json.loads(urllib.request.urlopen(f"{url}/api/models/0/clips/{clip['id']}/layers/2/top?k=2",
                                            timeout=120).read())
    assert [m["rank"] for m in top["maps"]] == [0, 1]


def test_edge_runtime_runs_from_the_wheel(installed, files):
    """The .tflite is converted here (a third TensorFlow start would double the test's time); the runtime that
    reads it is the wheel's."""
    from tfsonify.export.tflite import convert
    from tfsonify.models.checkpoint import sonifiable_of

    work = installed["work"]
    (work / "tiny.tflite").write_bytes(convert(sonifiable_of(files["model"]), length=RATE, layers=[2], top_k=2))
    run = _run([installed["python"], "-m", "tfsonify.edge", "tiny.tflite", "clips/chirp.wav", "--layer", "2",
                "--top", "2", "--out", "edge"], work, installed["env"])
    assert "thread(s)" in run.stdout
    manifest = json.loads((work / "edge" / "manifest.json").read_text())
    assert manifest["runtime"] == "litert" and len(manifest["sonifications"]) == 2
    assert manifest["model"] == "../tiny.tflite" and manifest["source"] == "../clips/chirp.wav"
    for entry in manifest["sonifications"]:
        sound, rate = soundfile.read(work / "edge" / entry["wav"])
        assert rate == RATE and sound.size == RATE
