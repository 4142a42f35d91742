"""Screenshot of `tfsonify explore` for the README: drives headless Chromium, writes docs/explore.png.

    python scripts/screenshot_explore.py [--model A.keras [--model B.keras]] [--clips DIR] [--out docs/explore.png]

Without --model it builds two randomly initialised CNN12 (width 0.25, seeds 0 and 1; say so wherever the picture is
shown); without --clips it synthesises a few (espeak-ng words over a drum-like loop if espeak-ng is installed, else
a chirp and tones). The page is driven as a user would: open a clip, pick block 8, sonify the top 8 maps, play the
first, open the coherence curve.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--hide-scrollbars")


def chromium(width: int, height: int, extra: tuple[str, ...] = ()):
    """A headless Chromium driver (selenium) with a throwaway profile; caller quits it and removes ``driver.profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="tfsonify-chromium-")
    for flag in FLAGS + extra + (f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.profile = profile
    return driver


def synthesise_clips(folder: Path, rate: int = 8000) -> None:
    """A few short clips: spoken words over a beat (espeak-ng), or tones and a chirp without it."""
    import soundfile

    from tfsonify.io.audio import load_audio

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    seconds = 2.0
    t = np.arange(int(seconds * rate)) / rate
    beat = np.zeros_like(t)
    for start in np.arange(0.0, seconds, 0.25):  # kick + hat every quarter second
        n = np.arange(int(0.12 * rate))
        i = int(start * rate)
        kick = np.sin(2 * np.pi * (120 - 500 * n / rate) * n / rate) * np.exp(-n / (0.03 * rate))
        beat[i:i + n.size] += 0.5 * kick[: beat.size - i]
        hat = rng.normal(0, 1, int(0.02 * rate)) * np.exp(-np.arange(int(0.02 * rate)) / (0.004 * rate))
        j = i + int(0.125 * rate)
        beat[j:j + hat.size] += 0.15 * hat[: max(0, beat.size - j)]
    words = ["seven", "yes", "stop", "left"]
    if shutil.which("espeak-ng"):
        for word in words:
            raw = folder / f".{word}.wav"
            subprocess.run(["espeak-ng", "-w", str(raw), "-s", "140", word], check=True, capture_output=True)
            speech = load_audio(raw, rate)
            raw.unlink()
            mix = np.zeros_like(t)
            start = int(0.4 * rate)
            mix[start:start + speech.size] = speech[: mix.size - start] / (np.max(np.abs(speech)) + 1e-9)
            soundfile.write(folder / f"{word}_over_beat.wav", (0.6 * mix + 0.35 * beat).astype(np.float32), rate)
    soundfile.write(folder / "chirp.wav", (0.5 * np.sin(2 * np.pi * (100 + 900 * t) * t)).astype(np.float32), rate)
    soundfile.write(folder / "beat.wav", beat.astype(np.float32), rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="a .keras file (give twice to compare two)")
    parser.add_argument("--clips", default=None, help="clip folder (default: synthesised)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "explore.png"))
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1050)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import tfsonify
    from tfsonify.explore import ClipLibrary, Explorer, ExplorerServer, ModelSession, build_app

    work = Path(tempfile.mkdtemp(prefix="tfsonify-shot-"))
    try:
        if args.model:
            sessions = [ModelSession(path) for path in args.model[:2]]
        else:
            import keras

            sessions = []
            for seed in (0, 1):
                keras.utils.set_random_seed(seed)
                model = tfsonify.CNN12(width_multiplier=0.25, num_classes=10)
                sessions.append(ModelSession(model, name=f"CNN12 ×0.25, random init (seed {seed})"))
        clips = Path(args.clips) if args.clips else work / "clips"
        if not args.clips:
            synthesise_clips(clips)
        explorer = Explorer(sessions, ClipLibrary([clips], sessions[0].sample_rate))
        with ExplorerServer(build_app(explorer)) as url:
            driver = chromium(args.width, args.height)
            try:
                shoot(driver, url, Path(args.out))
            finally:
                driver.quit()
                shutil.rmtree(driver.profile, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


def wait(driver, script: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"page condition not met in {timeout} s: {script}")


def shoot(driver, url: str, out: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/")
    wait(driver, "return document.querySelectorAll('#clips li').length > 0")
    items = driver.find_elements(By.CSS_SELECTOR, "#clips li")
    names = [i.text for i in items]
    pick = next((i for i, n in zip(items, names) if n.startswith("seven")), items[0])
    pick.click()
    wait(driver, "return document.querySelectorAll('.panel .map-stats').length && "
                 "[...document.querySelectorAll('.panel')].every(p => p.querySelector('.sound-spec').naturalWidth > 0)")
    for panel in driver.find_elements(By.CSS_SELECTOR, ".panel"):
        panel.find_element(By.CSS_SELECTOR, ".top-button").click()
    wait(driver, "return [...document.querySelectorAll('.panel .topk')].every(t => !t.hidden)")
    driver.find_element(By.ID, "coherence-button").click()
    wait(driver, "return !document.querySelector('#coherence').hidden")
    second = driver.find_elements(By.CSS_SELECTOR, ".panel")[0].find_elements(By.CSS_SELECTOR, ".topk button")
    if len(second) > 1:
        second[1].click()
    wait(driver, "return document.querySelector('#player').currentTime > 0.5")
    driver.execute_script("const p = document.querySelector('#player'); p.pause(); p.currentTime = 0.8;"
                          "window.scrollTo(0, 0); document.activeElement.blur();")
    wait(driver, "return [...document.querySelectorAll('.panel .sound-spec')].every(i => i.complete && i.naturalWidth > 0)")
    time.sleep(0.3)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(driver.get_window_size()["width"], min(max(height + 20, 600), 2400))
    time.sleep(0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out))


if __name__ == "__main__":
    sys.exit(main())
