"""The HTML report: written atomically, every number in report.json, and it really loads in headless Chromium."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    import keras

    import tfsonify
    from tfsonify.report import build_report

    keras.utils.set_random_seed(3)
    model = tfsonify.CNN12(width_multiplier=0.0625, num_classes=3)
    rng = np.random.default_rng(0)
    t = np.arange(5200) / 8000.0
    clips = {
        "tone 440 Hz": (0.5 * np.sin(2 * np.pi * 440 * t)).astype("float32"),
        "noise": rng.normal(0, 0.3, 4800).astype("float32"),
        "too short": rng.normal(0, 0.3, 600).astype("float32"),
    }
    out = tmp_path_factory.mktemp("report")
    index = build_report(model, clips, out, layers=[1, 6, 11], top=2)
    return index, clips


def test_report_files_and_numbers(report):
    index, clips = report
    folder = index.parent
    data = json.loads((folder / "report.json").read_text())
    page = index.read_text()
    assert page.startswith("<!doctype html>") and "http://" not in page and "https://" not in page
    # 2 maps per clip and block; the 600-sample clip fits blocks 1 and 6 (>= 258 samples) but not 11 (2370).
    assert [len(data["layers"][str(layer)]["maps"]) for layer in (1, 6, 11)] == [6, 6, 4]
    assert data["layers"]["11"]["skipped_short"] == 1
    for layer in data["layers"].values():
        for entry in layer["maps"]:
            assert (folder / entry["wav"]).is_file() and (folder / entry["png"]).is_file()
            assert 0.0 <= entry["coherence"] <= 1.0
            assert entry["wav"] in page and entry["png"] in page
    assert all(np.isfinite(data["coherence"]["mean"]))
    assert data["residual"]["metric"] == "agreement" and len(data["residual"]["residual"]) == 3
    assert not list(folder.rglob("*.part"))
    assert "faithfulness" not in data and "faithfulness" not in page.lower()  # the section is opt-in
    assert not list((folder / "media").glob("faith_*"))


def test_report_rejects_bad_input(tmp_path):
    import tfsonify
    from tfsonify.report import build_report

    model = tfsonify.CNN12(width_multiplier=0.0625)
    with pytest.raises(ValueError, match="at least one clip"):
        build_report(model, {}, tmp_path)
    with pytest.raises(ValueError, match="shorter than"):
        build_report(model, {"tiny": np.ones(100, np.float32)}, tmp_path, layers=[11])


def _offline(folder: Path, page: str) -> list[str]:
    """Every src/href of the page: relative, and the file is in the folder."""
    import re

    links = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert links and not [link for link in links if "://" in link or link.startswith("/")]
    missing = [link for link in links if not (folder / link).is_file()]
    assert not missing, missing
    return links


def test_report_faithfulness_section_from_the_cli(tmp_path):
    """``--faithfulness gradient,occlusion_band`` on a saved model with a head: table rows, L-MAC columns, one
    listening example per method, every number in report.json, the page self-contained."""
    import soundfile

    from tfsonify.cli import main
    from tiny import saved_classifier, write_clips

    model_path = saved_classifier(tmp_path / "m.keras", 5)
    clips = write_clips(tmp_path / "clips", 1, ("tone.wav", 4400, 300.0), {"noise.wav": 3000})  # noise: padded to 0.5 s
    out = tmp_path / "report"
    status = main(["report", str(model_path), str(clips), "--out", str(out), "--layers", "2", "--top", "1",
                   "--no-residual", "--faithfulness", "gradient,occlusion_band", "--faithfulness-seconds", "0.5"])
    assert status == 0
    page = (out / "index.html").read_text()
    data = json.loads((out / "report.json").read_text())
    faith = data["faithfulness"]
    assert list(faith["methods"]) == ["gradient", "occlusion_band"]
    assert faith["conditions"]["clips"] == 2 and faith["conditions"]["samples"] == 4000
    assert faith["conditions"]["metrics"] == ["deletion", "lmac", "cost"]
    for method in ("gradient", "occlusion_band"):
        assert f"<tr><td>{method}</td>" in page
        assert {"deletion_auc", "insertion_auc", "AI", "Fid-In", "seconds_per_clip"} <= set(faith["methods"][method])
        assert f'src="media/faith_c00_{method}.wav"' in page
        sound, rate = soundfile.read(out / "media" / f"faith_c00_{method}.wav", dtype="float32")
        assert rate == 8000 and sound.size == 4000 and np.abs(sound).max() > 0
    assert "<th>deletion AUC</th>" in page and "<th>AI</th>" in page and 'href=#faithfulness' in page
    assert "http://" not in page and "https://" not in page
    _offline(out, page)


def test_report_faithfulness_default_set_on_a_model_without_head(tmp_path):
    """``faithfulness=True``: the default methods on the deepest layer's strongest map (no L-MAC without a class)."""
    from tfsonify.report import build_report
    from tfsonify.report.faithfulness import DEFAULT_METHODS
    from tiny import tiny_cnn12

    rng = np.random.default_rng(2)
    clips = {"a": rng.normal(0, 0.3, 2400).astype("float32"), "b": rng.normal(0, 0.1, 2000).astype("float32")}
    index = build_report(tiny_cnn12(6), clips, tmp_path, layers=[3], top=1, residual=False, faithfulness=True,
                         faithfulness_seconds=0.25)
    page, data = index.read_text(), json.loads((tmp_path / "report.json").read_text())
    assert list(data["faithfulness"]["methods"]) == list(DEFAULT_METHODS)
    assert data["faithfulness"]["conditions"]["target"] == "map top of layer 3"
    assert data["faithfulness"]["conditions"]["metrics"] == ["deletion", "cost"]
    assert all(f"<tr><td>{method}</td>" in page for method in DEFAULT_METHODS) and "<th>AI</th>" not in page
    assert set(data["faithfulness"]["examples"]) == {"input", *DEFAULT_METHODS}
    _offline(tmp_path, page)


def test_report_faithfulness_bad_input_before_any_work(tmp_path, capsys):
    from tfsonify.cli import main
    from tfsonify.commands.report import register  # noqa: F401  (the help names the default set)
    from tfsonify.report import build_report
    from tfsonify.report.faithfulness import DEFAULT_METHODS
    from tiny import tiny_cnn12

    out = tmp_path / "out"
    assert main(["report", "missing.keras", str(tmp_path), "--out", str(out), "--faithfulness", "gradient,lime"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown method(s) ['lime']" in err and "valid: sonification" in err
    assert not out.exists()
    with pytest.raises(ValueError, match="unknown method"):
        build_report(tiny_cnn12(6), {"a": np.zeros(3000, np.float32)}, out, layers=[1], faithfulness=["saliency"])
    with pytest.raises(ValueError, match="shorter than layer"):  # 32 samples: below block 3's 42
        build_report(tiny_cnn12(6), {"a": np.zeros(3000, np.float32)}, out, layers=[3], faithfulness=True,
                     faithfulness_seconds=0.004)
    assert not out.exists()
    import tfsonify.commands.report as command

    assert ", ".join(DEFAULT_METHODS) in " ".join(command.__doc__.split())


@pytest.mark.slow
def test_report_loads_in_headless_chromium(report):
    """Every <audio> source loads with duration > 0, every <img> decodes; a screenshot is saved."""
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.fail("chromium and chromium-driver are required (scripts/setup.sh installs them)")
    from selenium import webdriver  # installed by the dev extra (scripts/setup.sh); a missing one fails, not skips
    from selenium.webdriver.chrome.service import Service

    index, clips = report
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="tfsonify-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", f"--user-data-dir={profile}", "--autoplay-policy=no-user-gesture-required",
                 "--window-size=1200,2400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_script_timeout(60)
        driver.get(index.as_uri())
        audio = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const items = Array.from(document.querySelectorAll('audio'));
            Promise.all(items.map(a => new Promise(resolve => {
                const report = () => resolve({src: a.getAttribute('src'), duration: a.duration, error: a.error ? a.error.code : null});
                if (a.readyState >= 1) return report();
                a.addEventListener('loadedmetadata', report, {once: true});
                a.addEventListener('error', report, {once: true});
                a.preload = 'auto'; a.load();
            }))).then(done);
        """)
        images = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const items = Array.from(document.querySelectorAll('img'));
            Promise.all(items.map(i => (i.complete ? Promise.resolve() : new Promise(r => { i.onload = r; i.onerror = r; }))
                .then(() => ({src: i.getAttribute('src'), width: i.naturalWidth})))).then(done);
        """)
        shot = index.parent / "screenshot.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    # 3 clip rows + 16 map rows (6 + 6 + 4) with 2 players each.
    assert len(audio) == 3 + 2 * 16
    bad = [a for a in audio if a["error"] is not None or not a["duration"] or a["duration"] <= 0]
    assert not bad, bad
    input_durations = {a["src"]: a["duration"] for a in audio if a["src"].endswith("_input.wav")}
    assert input_durations["media/c00_input.wav"] == pytest.approx(5200 / 8000, abs=1e-3)
    assert len(images) == 16 + 1
    assert all(i["width"] > 0 for i in images), [i for i in images if i["width"] == 0]
    assert shot.stat().st_size > 10_000
    keep = Path(tempfile.gettempdir()) / "tfsonify-report-screenshot.png"
    shutil.copyfile(shot, keep)


def test_report_on_a_10_ms_clip_shows_dashes_and_notes(tmp_path):
    """80 samples: blocks 1-3 fit but give one Welch segment (coherence 1 by construction), deeper blocks fit no clip:
    a dash and a note everywhere, never 1.000 or 0.000 [0.000, 0.000] from 0 clips."""
    import re

    import tfsonify
    from tfsonify.report import build_report

    model = tfsonify.CNN12(width_multiplier=0.0625)
    clip = np.random.default_rng(1).normal(0, 0.3, 80).astype("float32")
    index = build_report(model, {"10 ms": clip}, tmp_path / "r", layers=[1, 3, 4, 11], top=1, residual=False)
    data = json.loads((index.parent / "report.json").read_text())
    assert [e["coherence"] for e in data["layers"]["1"]["maps"]] == [None]
    assert data["layers"]["4"]["maps"] == [] and "coherence" not in data
    text = re.sub(r"<[^>]+>", " ", index.read_text())
    table = text[text.index("Coherence per layer"):]
    assert "1.000" not in text and "0.000" not in table
    assert re.findall(r"\b(1|3|4|11)\s+–\s+–\s+0\b", table) == ["1", "3", "4", "11"]
    assert "two Welch segments" in text and "No clip is long enough for this block" in text
