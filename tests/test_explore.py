"""`tfsonify explore`: the API (clips by id only, traversal, uploads, errors, backpressure, concurrent users) and the
page itself in headless Chromium (list, clip, layer, map, playback, upload, recording, two models, keyboard)."""
from __future__ import annotations

import http.client
import io
import json
import os
import random
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tiny import tiny_cnn12

RATE = 8000
MAX_UPLOAD = 256 * 1024


def _tone(seconds: float, freq: float = 440.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _wav(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tfsonify.explore import ClipLibrary, Explorer, ExplorerServer, ModelSession, build_app

    base = tmp_path_factory.mktemp("explore")
    tiny_cnn12(0, num_classes=3).save(base / "supervised.keras")
    tiny_cnn12(1).save(base / "other.keras")
    labels = base / "labels.txt"
    labels.write_text("yes\nno\nmaybe\n")
    root = base / "clips"
    (root / "speech").mkdir(parents=True)
    soundfile.write(root / "tone.wav", _tone(1.0), RATE)
    soundfile.write(root / "melody.wav", np.concatenate([_tone(0.7, f) for f in (330, 440, 550, 660)]), RATE)  # 2.8 s
    soundfile.write(root / "speech" / "chirp 16k.flac", _tone(0.75, 900.0, 16000), 16000)
    soundfile.write(root / "short.wav", _tone(0.125), RATE)  # 1000 samples: blocks 1-8 only (block 9 needs 1346)
    soundfile.write(root / "long.wav", _tone(3.5), RATE)   # over max_seconds=3
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    secret = base / "secret.wav"                           # outside the root
    soundfile.write(secret, _tone(1.0, 220.0), RATE)
    os.symlink(secret, root / "escape.wav")                # a symlink out of the root: never listed
    sessions = [ModelSession(base / "supervised.keras", labels=["yes", "no", "maybe"]), ModelSession(base / "other.keras")]
    explorer = Explorer(sessions, ClipLibrary([root], RATE, max_seconds=3.0), cache_bytes=64 * 2**20,
                        max_upload_bytes=MAX_UPLOAD, max_pending=16)
    server = ExplorerServer(build_app(explorer))
    with server as url:
        clips = {c["name"]: c for c in json.loads(urllib.request.urlopen(url + "/api/clips").read())["clips"]}
        yield {"url": url, "port": server.port, "explorer": explorer, "clips": clips, "base": base, "root": root,
               "secret": secret}


def get(url: str, data: bytes | None = None, timeout: float = 120.0):
    """``(status, headers, body)`` of a GET (or POST with ``data``); never raises on HTTP errors."""
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (no client-side normalisation of ``..`` or escapes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def clip_id(setup, name: str) -> str:
    return setup["clips"][name]["id"]


# ----------------------------------------------------------------------------- API
def test_clip_list_names_durations_errors(setup):
    clips = setup["clips"]
    assert set(clips) == {"tone.wav", "melody.wav", "speech/chirp 16k.flac", "short.wav", "long.wav", "broken.wav"}  # no escape.wav
    assert clips["tone.wav"]["duration"] == pytest.approx(1.0) and clips["tone.wav"]["error"] is None
    assert clips["speech/chirp 16k.flac"]["duration"] == pytest.approx(0.75)
    assert "cannot be read as audio" in clips["broken.wav"]["error"]
    assert "3.5 s long" in clips["long.wav"]["error"] and "up to 3 s" in clips["long.wav"]["error"]
    listing = get(setup["url"] + "/api/clips")[2].decode()
    assert str(setup["base"]) not in listing  # names relative to the root, never absolute paths


def test_prediction_uses_labels_and_matches_model(setup):
    session = setup["explorer"].sessions[0]
    status, _, body = get(f"{setup['url']}/api/models/0/clips/{clip_id(setup, 'tone.wav')}/prediction")
    assert status == 200
    prediction = json.loads(body)["prediction"]
    expected = np.asarray(session.network(_tone(1.0)[None], training=False))[0]
    assert prediction[0]["label"] == ["yes", "no", "maybe"][int(expected.argmax())]
    assert prediction[0]["score"] == pytest.approx(float(expected.max()), abs=1e-5)
    status, _, body = get(f"{setup['url']}/api/models/1/clips/{clip_id(setup, 'tone.wav')}/prediction")
    assert status == 200 and json.loads(body) == {"prediction": None, "head": False}


def test_map_sonification_equals_library_result(setup):
    """The served float WAVs are exactly Sonifier.sonify and input minus it; the overview is ordered by max activation."""
    import tfsonify

    url, cid = setup["url"], clip_id(setup, "speech/chirp 16k.flac")
    network = setup["explorer"].sessions[0].network
    x = tfsonify.load_audio(setup["root"] / "speech" / "chirp 16k.flac", RATE)
    status, _, body = get(f"{url}/api/models/0/clips/{cid}/layers/5/overview")
    assert status == 200
    overview = json.loads(body)
    acts = tfsonify.Sonifier(network).activations(x, 5)
    assert overview["order"][0] == int(acts.max(axis=0).argmax()) and overview["steps"] == acts.shape[0]
    assert overview["maxima"] == sorted(overview["maxima"], reverse=True)
    feature = overview["order"][1]
    status, _, body = get(f"{url}/api/models/0/clips/{cid}/layers/5/maps/{feature}")
    summary = json.loads(body)
    assert status == 200 and summary["rank"] == 1 and len(summary["activation"]) == acts.shape[0]
    np.testing.assert_allclose(summary["activation"], acts[:, feature], atol=1e-5)
    expected = tfsonify.Sonifier(network).sonify(x, 5, feature=feature)
    for kind, want in (("sonification", expected), ("residual", x - expected)):
        status, headers, wav = get(f"{url}{summary['urls'][kind + '.wav']}?float=1")
        assert status == 200 and headers["content-type"] == "audio/wav" and "attachment" in headers["content-disposition"]
        got, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
        assert rate == RATE
        np.testing.assert_allclose(got, want, atol=1e-6)
        status, headers, png = get(f"{url}{summary['urls'][kind + '.png']}")
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert 0.0 <= summary["coherence"] <= 1.0


def test_explain_route_plays_each_method_of_the_same_map(setup, monkeypatch):
    """/api/explain: a waveform method as it is and a mask method applied to the input, both scaled to the clip's
    peak (listening_examples of tfsonify.explain); the sonification equals the map's own route; cached; bad input."""
    import tfsonify
    from tfsonify.explain.evaluate import listening_examples
    from tfsonify.explain.methods import METHODS, explain
    from tfsonify.explain.targets import Target
    from tfsonify.explore import session as session_module

    url, cid, explorer = setup["url"], clip_id(setup, "tone.wav"), setup["explorer"]
    network = explorer.sessions[0].network
    x = tfsonify.load_audio(setup["root"] / "tone.wav", RATE)
    assert json.loads(get(url + "/api/info")[2])["methods"] == list(METHODS)
    feature = json.loads(get(f"{url}/api/models/0/clips/{cid}/layers/5/overview")[2])["order"][0]
    base = f"{url}/api/explain?clip={cid}&layer=5&feature={feature}"
    for method in ("gradient", "occlusion_band"):
        status, headers, wav = get(f"{base}&method={method}&float=1")
        assert status == 200 and headers["content-type"] == "audio/wav", wav[:200]
        got, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
        e = explain(method, tfsonify.Sonifier(network), x[None], Target.map(5, feature))
        want = listening_examples(e, [0], float(np.abs(x).max()))[0]
        assert rate == RATE and got.shape == x.shape
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert np.abs(got).max() == pytest.approx(np.abs(x).max(), rel=1e-5)
        assert explorer.cache.get(("explain", 0, cid, "5", feature, method)) is not None
    sonification = get(f"{base}&method=sonification&float=1")[2]
    assert sonification == get(f"{url}/api/models/0/clips/{cid}/layers/5/maps/{feature}/sonification.wav?float=1")[2]
    status, headers, png = get(f"{base}&method=gradient&format=png")
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    status, _, body = get(f"{base}&method=lime")
    assert status == 400 and json.loads(body)["error"] == f"unknown method 'lime'; valid: {', '.join(METHODS)}"
    for query, code, needle in ((f"clip={cid}&layer=99&feature=0&method=gradient", 400, "unknown layer"),
                                (f"clip={cid}&layer=5&feature=x&method=gradient", 400, "non-negative integer"),
                                (f"clip={cid}&layer=5&feature=9999&method=gradient", 400, "must be in 0.."),
                                (f"clip={cid}&layer=5&feature=0&method=gradient&format=mp3", 400, "format must be"),
                                (f"clip=0123456789ab&layer=5&feature=0&method=gradient", 404, "no such clip"),
                                (f"clip={cid}&layer=5&feature=0&method=gradient&model=7", 404, "no model")):
        status, _, body = get(f"{url}/api/explain?{query}")
        assert status == code and needle in json.loads(body)["error"], (query, body)
    monkeypatch.setattr(session_module, "EXPLAIN_SECONDS", 2.0)
    melody = clip_id(setup, "melody.wav")  # 2.8 s
    status, _, body = get(f"{url}/api/explain?clip={melody}&layer=5&feature=0&method=gradient")
    assert status == 400 and "explain clips of up to 2 s" in json.loads(body)["error"]


def test_top_k_is_batched_and_cached(setup):
    url, cid = setup["url"], clip_id(setup, "tone.wav")
    status, _, body = get(f"{url}/api/models/1/clips/{cid}/layers/3/top?k=4")
    maps = json.loads(body)["maps"]
    assert status == 200 and [m["rank"] for m in maps] == [0, 1, 2, 3]
    assert get(f"{url}/api/models/1/clips/{cid}/layers/3/top?k=0")[0] == 400
    assert get(f"{url}/api/models/1/clips/{cid}/layers/3/top?k=x")[0] == 400
    hits = setup["explorer"].cache.hits
    assert get(f"{url}/api/models/1/clips/{cid}/layers/3/maps/{maps[2]['feature']}")[0] == 200
    assert setup["explorer"].cache.hits > hits


def test_coherence_curve_per_layer(setup):
    status, _, body = get(f"{setup['url']}/api/models/0/clips/{clip_id(setup, 'short.wav')}/coherence")
    curve = json.loads(body)
    assert status == 200 and curve["layers"] == [str(i) for i in range(1, 12)]
    values = curve["coherence"]
    assert all(0.0 <= v <= 1.0 for v in values[:8]) and values[8:] == [None] * 3  # 1000 samples: blocks 1-8


@pytest.mark.parametrize("path", [
    "/api/clips/../../../../etc/passwd/audio.wav",
    "/api/clips/..%2f..%2f..%2fetc%2fpasswd/audio.wav",
    "/api/clips/%2e%2e/%2e%2e/secret.wav/audio.wav",
    "/api/clips/%252e%252e%252fsecret.wav/audio.wav",
    "/api/clips//etc/passwd/audio.wav",
    "/api/clips/escape.wav/audio.wav",
    "/api/clips/..%5c..%5csecret.wav/audio.wav",
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/static/..%2fapp.py",
    "/static/%2e%2e%2f%2e%2e%2fsecret.wav",
    "/static//etc/passwd",
    "/static/../../../../etc/passwd",
    "/api/models/0/clips/../../../etc/passwd/layers/1/overview",
    "/api/models/0/clips/0123456789ab/layers/1/overview",
    "/api/models/9/clips/0123456789ab/prediction",
])
def test_traversal_attempts_get_404_without_paths(setup, path):
    status, body = raw_get(setup["port"], path)
    assert status == 404, (path, status, body[:200])
    text = body.decode("utf-8", "replace")
    assert str(setup["base"]) not in text and "/etc" not in text and "secret" not in text
    assert "root:" not in text and "import" not in text


def test_escape_symlink_is_refused_even_when_it_moves_in_later(setup, tmp_path):
    """A file listed at start that is later replaced by a symlink out of its root is refused when read."""
    from tfsonify.explore import ClipError, ClipLibrary

    root = tmp_path / "root"
    root.mkdir()
    soundfile.write(root / "a.wav", _tone(0.5), RATE)
    library = ClipLibrary([root], RATE)
    (clip,) = library.clips()
    (root / "a.wav").unlink()
    os.symlink(setup["secret"], root / "a.wav")
    with pytest.raises(ClipError) as error:
        library.load(clip.id)
    assert error.value.status == 404 and "secret" not in str(error.value)


def test_upload_decodes_and_is_explorable(setup):
    url = setup["url"]
    status, _, body = get(f"{url}/api/upload?name=../../my%20clip.wav", data=_wav(_tone(0.6, 660.0, 22050), 22050))
    assert status == 201, body
    clip = json.loads(body)
    assert clip["name"] == "my clip.wav" and clip["source"] == "upload" and clip["duration"] == pytest.approx(0.6)
    names = [c["name"] for c in json.loads(get(url + "/api/clips")[2])["clips"]]
    assert "my clip.wav" in names
    status, _, body = get(f"{url}/api/models/0/clips/{clip['id']}/layers/6/maps/0")
    assert status == 200 and len(json.loads(body)["activation"]) > 0
    status, _, wav = get(f"{url}/api/clips/{clip['id']}/audio.wav")
    assert status == 200 and soundfile.info(io.BytesIO(wav)).samplerate == RATE


def test_upload_rejections(setup):
    url = setup["url"]
    status, _, body = get(f"{url}/api/upload?name=big.wav", data=b"\0" * (MAX_UPLOAD + 1))
    assert status == 413 and "limit" in json.loads(body)["error"]
    status, _, body = get(f"{url}/api/upload?name=notes.txt", data=b"hello, these are not samples" * 10)
    assert status == 415 and "not audio" in json.loads(body)["error"]
    status, _, body = get(f"{url}/api/upload?name=rec.webm", data=b"\x1aE\xdf\xa3" + b"\0" * 500)
    assert status == 415 and "WebM" in json.loads(body)["error"]
    status, _, body = get(f"{url}/api/upload?name=long.wav", data=_wav(_tone(3.2)))
    assert status == 413 and "up to 3 s" in json.loads(body)["error"]
    status, _, body = get(f"{url}/api/upload?name=empty.wav", data=b"")
    assert status == 415 or status == 422


def test_upload_errors_name_the_file_and_the_limit(setup):
    url = setup["url"]
    status, _, body = get(f"{url}/api/upload?name=notes.txt", data=b"plain text, not samples" * 10)
    error = json.loads(body)["error"]
    assert status == 415 and "'notes.txt'" in error and "BytesIO" not in error and "<" not in error, error
    status, _, body = get(f"{url}/api/upload?name=big.wav", data=b"\0" * (MAX_UPLOAD + 1))
    assert status == 413 and f"the limit is {MAX_UPLOAD / 2**20:g} MiB" in json.loads(body)["error"]


def test_same_upload_twice_is_one_entry(setup):
    url = setup["url"]
    data = _wav(_tone(0.4, 770.0))
    first = json.loads(get(f"{url}/api/upload?name=twice.wav", data=data)[2])
    again = json.loads(get(f"{url}/api/upload?name=twice%20again.wav", data=data)[2])
    assert again["id"] == first["id"] and again["name"] == "twice.wav"
    clips = json.loads(get(url + "/api/clips")[2])["clips"]
    assert [c["id"] for c in clips].count(first["id"]) == 1 and clips[-1]["id"] == first["id"]
    other = json.loads(get(f"{url}/api/upload?name=twice.wav", data=_wav(_tone(0.4, 771.0)))[2])
    assert other["id"] != first["id"]  # other bytes under the same name: another clip


def test_streamed_oversized_upload_without_length_is_cut(setup):
    """A chunked body with no Content-Length is counted as it arrives and refused past the cap."""
    connection = http.client.HTTPConnection("127.0.0.1", setup["port"], timeout=60)
    try:
        chunks = (b"\0" * 65536 for _ in range(8))  # 512 KiB > 256 KiB
        connection.request("POST", "/api/upload?name=x.wav", body=chunks, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413
    finally:
        connection.close()


def test_bad_layer_map_and_clips_give_clear_errors(setup):
    url, cid = setup["url"], clip_id(setup, "tone.wav")
    cases = [
        (f"/api/models/0/clips/{cid}/layers/12/overview", 400, "unknown layer '12'"),
        (f"/api/models/0/clips/{cid}/layers/conv1/overview", 400, "has layers 1..11"),
        (f"/api/models/0/clips/{cid}/layers/4/maps/9999", 400, "outside block 4's 8 maps"),
        (f"/api/models/0/clips/{cid}/layers/4/maps/-1", 400, "non-negative integer"),
        (f"/api/models/0/clips/{cid}/layers/4/maps/1/other.wav", 404, "no such file"),
        (f"/api/models/0/clips/{clip_id(setup, 'short.wav')}/layers/11/overview", 400, "needs at least 2370"),
        (f"/api/models/0/clips/{clip_id(setup, 'broken.wav')}/layers/1/overview", 422, "broken.wav cannot be read"),
        (f"/api/clips/{clip_id(setup, 'broken.wav')}/waveform", 422, "broken.wav"),
        (f"/api/clips/{clip_id(setup, 'long.wav')}/audio.wav", 422, "--max-seconds"),
    ]
    for path, status, message in cases:
        got, _, body = get(url + path)
        assert got == status, (path, got, body)
        assert message in json.loads(body)["error"], (path, body)
    assert get(url + "/api/info")[0] == 200  # still serving


def test_worker_backpressure_and_shared_jobs():
    from tfsonify.explore.worker import Busy, Worker

    worker = Worker("test", max_pending=2)
    release = threading.Event()
    first = worker.submit("a", release.wait)
    assert worker.submit("a", release.wait) is first  # identical pending request: one job
    worker.submit("b", release.wait)
    with pytest.raises(Busy):
        worker.submit("c", lambda: 1)
    release.set()
    first.result(5)
    deadline = time.monotonic() + 5
    while worker.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.submit("c", lambda: 7).result(5) == 7 and worker.rejected == 1
    worker.shutdown()


def test_lru_cache_is_bounded():
    from tfsonify.explore.cache import LRUCache

    cache = LRUCache(max_bytes=3 * 4000 + 400)
    for key in range(5):
        cache.put(key, np.zeros(1000, np.float32))
    assert len(cache) == 3 and cache.get(0) is None and cache.get(4) is not None
    cache.get(2)
    cache.put(5, np.zeros(1000, np.float32))
    assert cache.get(2) is not None and cache.get(3) is None and cache.bytes <= cache.max_bytes
    cache.put("huge", np.zeros(10**6, np.float32))  # larger than the cache: not kept, nothing else lost for it
    assert "huge" not in cache and len(cache) == 3


def test_full_queue_gives_503_and_server_stays_responsive(setup):
    """While the model worker is saturated by slow jobs, model requests get 503 + Retry-After and cheap ones answer."""
    explorer, url = setup["explorer"], setup["url"]
    release = threading.Event()
    blockers = [explorer.model_worker.submit(("block", i), release.wait) for i in range(explorer.model_worker.max_pending)]
    try:
        started = time.monotonic()
        status, headers, body = get(f"{url}/api/models/0/clips/{clip_id(setup, 'tone.wav')}/layers/2/maps/1")
        assert status == 503 and headers["retry-after"] == "1" and "busy" in json.loads(body)["error"]
        assert get(url + "/api/clips")[0] == 200 and get(url + "/")[0] == 200
        assert time.monotonic() - started < 30
    finally:
        release.set()
        for blocker in blockers:
            blocker.result(10)


def test_concurrent_users_get_no_server_errors(setup):
    """8 simulated users for 10 s: every response is 2xx/4xx or intended 503 backpressure; none is another 5xx."""
    url = setup["url"]
    usable = [clip_id(setup, n) for n in ("tone.wav", "speech/chirp 16k.flac", "short.wav")]
    bad = [clip_id(setup, n) for n in ("broken.wav", "long.wav")]
    statuses, failures, lock = [], [], threading.Lock()
    stop = time.monotonic() + 10.0

    def user(seed: int):
        rng = random.Random(seed)
        while time.monotonic() < stop:
            model, clip, layer = rng.randrange(2), rng.choice(usable + bad[: rng.random() < 0.1]), rng.randint(1, 11)
            base = f"{url}/api/models/{model}/clips/{clip}"
            path = rng.choice([
                f"{base}/layers/{layer}/overview", f"{base}/layers/{layer}/overview.png",
                f"{base}/layers/{layer}/maps/{rng.randrange(8)}", f"{base}/layers/{layer}/maps/{rng.randrange(4)}/sonification.wav",
                f"{base}/layers/{layer}/maps/{rng.randrange(4)}/residual.png", f"{base}/prediction",
                f"{url}/api/clips/{clip}/spectrogram.png", f"{url}/api/clips/{clip}/waveform", f"{url}/api/clips",
                f"{url}/", f"{url}/static/explore.js", f"{base}/layers/{layer}/top?k=3",
            ])
            try:
                status = get(path, timeout=60)[0]
            except Exception as error:  # noqa: BLE001 - a dropped connection is a failure too
                with lock:
                    failures.append(f"{path}: {error!r}")
                continue
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=user, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures[:5]
    server_errors = [s for s in statuses if s >= 500 and s != 503]
    assert not server_errors, server_errors
    assert sum(200 <= s < 300 for s in statuses) >= 16, statuses
    assert get(url + "/api/status")[0] == 200


def test_cli_registration_and_argument_split():
    from tfsonify.cli import build_parser
    from tfsonify.commands.explore import split_paths

    args = build_parser().parse_args(["explore", "a.keras", "b.keras", "clips/", "x.wav", "--port", "0"])
    assert args.command == "explore" and args.port == 0 and args.host == "127.0.0.1"
    assert split_paths(args.paths) == (["a.keras", "b.keras"], ["clips/", "x.wav"])
    assert split_paths(["a.keras", "clips"]) == (["a.keras"], ["clips"])
    with pytest.raises(ValueError, match="must be a .keras model"):
        split_paths(["clips/", "a.keras"])


def test_cli_reports_bad_model_and_roots(tmp_path, capsys):
    from tfsonify.cli import main

    assert main(["explore", str(tmp_path / "missing.keras"), str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_static_assets_ship_in_the_package():
    from importlib import resources

    static = resources.files("tfsonify.explore") / "static"
    for name in ("index.html", "explore.js", "explore.css", "recorder-worklet.js"):
        text = (static / name).read_text()
        assert "http://" not in text and "https://" not in text  # no CDN, no network at run time
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"tfsonify.explore" = ["static/*"]' in pyproject


# ------------------------------------------------------------------------- browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.fail("chromium and chromium-driver are required (scripts/setup.sh installs them)")
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    from screenshot_explore import chromium

    driver = chromium(1366, 900, ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"))
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(driver.profile, ignore_errors=True)


def wait_for(driver, script: str, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            state = driver.execute_script("return [...document.querySelectorAll('.error')].map(e => e.textContent).join(' | ')")
            player = driver.execute_script(
                "const p = document.querySelector('#player'); return p && {src: p.dataset.src, ready: p.readyState, "
                "network: p.networkState, time: p.currentTime, paused: p.paused, error: p.error && p.error.message};")
            raise AssertionError(f"timed out waiting for: {script}; page errors: {state!r}; player: {player!r}")
        time.sleep(0.1)


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def open_page(driver, url: str):
    """Load the page afresh, after draining what earlier tests logged to the console."""
    console_errors(driver)
    driver.get(url + "/")


def assert_no_console_errors(driver):
    errors = console_errors(driver)
    assert not errors, errors


def open_clip(driver, name: str):
    """Click the clip whose name starts with ``name`` (found and clicked in one script: the list re-renders as
    predictions arrive, so a located element can go stale)."""
    wait_for(driver, "return document.querySelectorAll('#clips li').length > 0")
    found = driver.execute_script("""
        const li = [...document.querySelectorAll('#clips li')].find(l => l.querySelector('.name').textContent.startsWith(arguments[0]));
        if (li) li.click();
        return !!li;""", name)
    assert found, f"{name} is not in the clip list"


# the player holds the wanted media, has data, and has really played it (played ranges reset with every new source)
PLAYING = ("const p = document.querySelector('#player');"
           "return p.readyState >= 2 && p.currentTime > 0 && p.played.length > 0 && p.dataset.src.includes(arguments[0]);")


@pytest.mark.slow
def test_page_clip_layer_map_playback(setup, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver = browser
    open_page(driver, setup["url"])
    count = len(json.loads(get(setup["url"] + "/api/clips")[2])["clips"])  # 6 files, plus uploads of earlier tests
    wait_for(driver, f"return document.querySelectorAll('#clips li').length === {count}")
    assert f"{count} of {count} clips" in driver.find_element(By.ID, "clips-count").text
    # predictions of the head fill in; the filter narrows the list
    wait_for(driver, "return [...document.querySelectorAll('#clips li .pred')].some(p => /A: (yes|no|maybe) \\d+ %/.test(p.textContent))")
    driver.find_element(By.ID, "filter").send_keys("chirp")
    wait_for(driver, "return document.querySelectorAll('#clips li').length === 1")
    driver.find_element(By.ID, "filter").clear()
    driver.execute_script("document.querySelector('#filter').dispatchEvent(new Event('input'))")
    open_clip(driver, "melody.wav")
    wait_for(driver, "return document.querySelector('#waveform').width > 0 && document.querySelector('.input-spec').naturalWidth > 0")
    panel = driver.find_elements(By.CSS_SELECTOR, ".panel")[0]
    Select(panel.find_element(By.CSS_SELECTOR, "select.layer")).select_by_value("5")
    wait_for(driver, "const p = document.querySelector('.panel'); return p.querySelector('.overview-img').naturalWidth > 0 "
                     "&& p.querySelector('.map-label').textContent.startsWith('block 5')")
    # the second model follows the layer
    wait_for(driver, "return document.querySelectorAll('.panel')[1].querySelector('select').value === '5'")
    # click the third row of the overview: that map is sonified, plays, and its spectrogram decodes
    order = driver.execute_script("return fetch(arguments[0]).then(r => r.json()).then(j => j.order)",
                                  f"/api/models/0/clips/{clip_id(setup, 'melody.wav')}/layers/5/overview")
    # a click in the middle of the overview's third row (rank 3), at real page coordinates
    driver.execute_script("""
        const image = document.querySelector('.panel .overview-img');
        image.scrollIntoView({block: 'center'});
        const r = image.getBoundingClientRect(), y = r.top + r.height * 2.5 / arguments[0];
        image.dispatchEvent(new MouseEvent('click', {bubbles: true, clientX: r.left + r.width / 2, clientY: y}));""", len(order))
    wait_for(driver, f"return document.querySelector('.panel .map-label').textContent === 'block 5, map {order[2]}'")
    wait_for(driver, PLAYING.replace("arguments[0]", repr(f"/layers/5/maps/{order[2]}/sonification.wav")))
    wait_for(driver, "const i = document.querySelector('.panel .sound-spec'); return i.complete && i.naturalWidth > 0 "
                     f"&& i.dataset.want.endsWith('/maps/{order[2]}/sonification.png')")
    assert "rank 3 of" in panel.find_element(By.CSS_SELECTOR, ".map-stats").text
    # switch to the residual while listening: same position kept, still playing
    driver.find_element(By.XPATH, "//div[@id='sources']/button[text()='A: Residual']").click()
    wait_for(driver, PLAYING.replace("arguments[0]", repr(f"/maps/{order[2]}/residual.wav")))
    wait_for(driver, "return document.querySelector('.panel .sound-spec').dataset.want.endsWith('residual.png')")
    # keyboard: space pauses, arrow right steps to the next map by activation and plays it
    body = driver.find_element(By.TAG_NAME, "body")
    driver.execute_script("document.activeElement.blur(); const p = document.querySelector('#player'); p.currentTime = 0; p.play()")
    wait_for(driver, "return !document.querySelector('#player').paused")
    body.send_keys(" ")
    wait_for(driver, "return document.querySelector('#player').paused")
    body.send_keys(" ")
    wait_for(driver, "return !document.querySelector('#player').paused")
    body.send_keys(Keys.ARROW_RIGHT)
    wait_for(driver, PLAYING.replace("arguments[0]", repr(f"/maps/{order[3]}/sonification.wav")))
    body.send_keys(Keys.ARROW_LEFT)
    wait_for(driver, PLAYING.replace("arguments[0]", repr(f"/maps/{order[2]}/sonification.wav")))
    # top k and the coherence curve
    panel.find_element(By.CSS_SELECTOR, ".top-button").click()
    wait_for(driver, "return document.querySelectorAll('.panel')[0].querySelectorAll('.topk button').length === 8")
    driver.find_element(By.ID, "coherence-button").click()
    wait_for(driver, "return !document.querySelector('#coherence').hidden")
    assert_no_console_errors(driver)


@pytest.mark.slow
def test_page_method_picker_plays_the_explanation_of_the_same_map(setup, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    open_page(driver, setup["url"])
    open_clip(driver, "tone.wav")
    wait_for(driver, "const p = document.querySelector('.panel'); return p.querySelector('.sound-spec').naturalWidth > 0 "
                     "&& p.querySelector('.map-label').textContent.startsWith('block 8, map')")
    picker = Select(driver.find_elements(By.CSS_SELECTOR, ".panel")[0].find_element(By.CSS_SELECTOR, "select.method"))
    assert picker.first_selected_option.get_attribute("value") == "sonification"
    values = [o.get_attribute("value") for o in picker.options]
    assert {"sonification", "guided_backprop", "gradient", "integrated_gradients", "occlusion"} <= set(values)
    picker.select_by_value("integrated_gradients")
    wait_for(driver, PLAYING.replace("arguments[0]", repr("method=integrated_gradients")))
    assert "/api/explain?" in driver.execute_script("return document.querySelector('#player').dataset.src")
    wait_for(driver, "const i = document.querySelector('.panel .sound-spec'); return i.complete && i.naturalWidth > 0 "
                     "&& i.dataset.want.includes('method=integrated_gradients') && i.dataset.want.includes('format=png')")
    assert driver.find_element(By.CSS_SELECTOR, ".panel .sound-tag").text == "integrated gradients"
    assert driver.execute_script("return performance.getEntriesByType('resource').some(e => "
                                 "e.name.includes('/api/explain?') && e.name.includes('method=integrated_gradients'))")
    driver.find_element(By.XPATH, "//div[@id='sources']/button[text()='A: integrated gradients']")
    picker.select_by_value("sonification")  # back to the paper's sound
    wait_for(driver, PLAYING.replace("arguments[0]", repr("/sonification.wav")))
    assert_no_console_errors(driver)


@pytest.mark.slow
def test_page_compares_two_models(setup, browser):
    from selenium.webdriver.common.by import By

    driver = browser
    open_page(driver, setup["url"])
    open_clip(driver, "speech/chirp")
    wait_for(driver, "return [...document.querySelectorAll('.panel')].length === 2 && [...document.querySelectorAll('.panel')]"
                     ".every(p => p.querySelector('.sound-spec').naturalWidth > 0 && p.querySelector('.map-label').textContent.startsWith('block 8'))")
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".panel .model-name")]
    assert names == ["A · supervised.keras", "B · other.keras"]
    driver.find_element(By.XPATH, "//div[@id='sources']/button[text()='B: Sonification']").click()
    # play once B's sound is the player's source (a play() before the switch is undone by the new source)
    wait_for(driver, "return document.querySelector('#player').dataset.src.includes('/api/models/1/')")
    driver.execute_script("document.querySelector('#player').play()")
    wait_for(driver, PLAYING.replace("arguments[0]", repr("/api/models/1/")))
    assert_no_console_errors(driver)


@pytest.mark.slow
def test_page_upload_and_record(setup, browser, tmp_path):
    from selenium.webdriver.common.by import By

    driver = browser
    open_page(driver, setup["url"])
    wait_for(driver, "return document.querySelectorAll('#clips li').length >= 6")
    path = tmp_path / "uploaded tone.wav"
    soundfile.write(path, _tone(0.8, 330.0, 16000), 16000)
    driver.find_element(By.ID, "upload").send_keys(str(path))
    wait_for(driver, "const a = document.querySelector('#clips li.active'); return a && a.textContent.includes('uploaded tone.wav')")
    wait_for(driver, "return document.querySelector('.panel .sound-spec').naturalWidth > 0")
    driver.find_elements(By.CSS_SELECTOR, ".panel")[0].find_element(By.CSS_SELECTOR, ".top-button").click()
    wait_for(driver, PLAYING.replace("arguments[0]", repr("/sonification.wav")))
    # record ~1.5 s from Chromium's fake microphone: encoded as WAV in the page, uploaded, opened
    driver.find_element(By.ID, "record").click()
    wait_for(driver, "return document.querySelector('#add-status').textContent.includes('recording')", 30)
    time.sleep(1.5)
    driver.find_element(By.ID, "record").click()
    wait_for(driver, "const a = document.querySelector('#clips li.active'); return a && a.textContent.includes('recording-')")
    wait_for(driver, "return document.querySelector('.panel .sound-spec').naturalWidth > 0")
    assert_no_console_errors(driver)


@pytest.mark.slow
def test_page_shows_clip_errors_and_keeps_working(setup, browser):
    from selenium.webdriver.common.by import By

    driver = browser
    open_page(driver, setup["url"])
    open_clip(driver, "broken.wav")
    wait_for(driver, "const e = document.querySelector('#clip-error'); return !e.hidden && e.textContent.includes('cannot be read as audio')")
    open_clip(driver, "short.wav")
    wait_for(driver, "return document.querySelector('.panel .sound-spec').naturalWidth > 0")
    driver.execute_script("const s = document.querySelector('.panel select'); s.value = '11'; s.dispatchEvent(new Event('change'))")
    wait_for(driver, "const e = document.querySelector('.panel .panel-error'); return !e.hidden && e.textContent.includes('needs at least 2370')")
    open_clip(driver, "tone.wav")
    wait_for(driver, "return document.querySelector('.panel .panel-error').hidden && "
                     "document.querySelector('.panel .sound-spec').naturalWidth > 0")


def test_spectrogram_of_a_long_clip_is_chunked_and_pooled_exactly(monkeypatch):
    from tfsonify.explore import images

    x = np.random.default_rng(4).normal(0, 0.3, 40_000).astype(np.float32)
    whole = images.spectrogram_db(x, RATE, columns=None)
    monkeypatch.setattr(images, "LONG_SAMPLES", 0)  # take the long-clip path at this size
    pooled = images.spectrogram_db(x, RATE, columns=97, chunk_frames=37)  # chunk edges not on bin edges
    assert pooled.shape == (129, 97)
    np.testing.assert_allclose(pooled, images._pool_columns(whole, 97), atol=1e-4)


def test_clip_longer_than_the_old_limit_through_windows(setup, tmp_path):
    """A 75 s clip (the old limit refused > 60 s): overview max-pooled from exact windows, one map sonified through
    the windowed path equal to one pass, WAV and spectrogram served; prediction of its first 30 s."""
    from tfsonify.explore import ClipLibrary, Explorer, ExplorerServer, build_app
    from tfsonify.explore.session import OVERVIEW_COLUMNS

    rng = np.random.default_rng(9)
    seconds = 75.0
    t = np.arange(int(seconds * RATE)) / RATE
    x = (0.4 * np.sin(2 * np.pi * (200 + 5 * t) * t) + rng.normal(0, 0.05, t.size) * (t % 7 < 2)).astype(np.float32)
    root = tmp_path / "long"
    root.mkdir()
    soundfile.write(root / "field.wav", x, RATE, subtype="FLOAT")
    session = setup["explorer"].sessions[0]
    explorer = Explorer([session], ClipLibrary([root], RATE), cache_bytes=128 * 2**20)
    with ExplorerServer(build_app(explorer)) as url:
        clip = json.loads(urllib.request.urlopen(url + "/api/clips").read())["clips"][0]
        assert clip["name"] == "field.wav" and not clip.get("error")
        base = f"{url}/api/models/0/clips/{clip['id']}"
        status, _, body = get(f"{base}/layers/1/overview")
        assert status == 200, body
        view = json.loads(body)
        field, stride = session.sonifier.geometry(1)
        steps = (x.size - field) // stride + 1
        assert view["pooled"] and view["layer_steps"] == steps and view["steps"] == OVERVIEW_COLUMNS
        exact = session.sonifier.activations(x, 1, window_seconds=None)  # one pass, for reference
        bins = np.arange(steps) * OVERVIEW_COLUMNS // steps
        reference = np.maximum.reduceat(exact, np.flatnonzero(np.r_[True, np.diff(bins) > 0]), axis=0)
        np.testing.assert_allclose(view["maxima"], exact.max(axis=0)[view["order"]], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(view["maxima"], np.sort(exact.max(axis=0))[::-1], rtol=1e-5, atol=1e-5)
        assert get(f"{base}/layers/1/overview.png")[0] == 200
        feature = view["order"][0]
        status, _, body = get(f"{base}/layers/1/maps/{feature}")
        summary = json.loads(body)
        assert status == 200 and summary["pooled"] and len(summary["activation"]) == OVERVIEW_COLUMNS
        np.testing.assert_allclose(summary["activation"], reference[:, feature], atol=1e-4)
        assert abs(summary["times"][1] * OVERVIEW_COLUMNS - steps * stride / RATE) < 1e-6
        status, _, wav = get(f"{base}/layers/1/maps/{feature}/sonification.wav?float=1")
        sound, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
        assert status == 200 and rate == RATE and sound.size == x.size
        np.testing.assert_allclose(sound, session.sonifier.sonify(x, 1, feature=feature, window_seconds=None),
                                   atol=1e-5 * np.abs(x).max())
        for path in (f"{url}/api/clips/{clip['id']}/spectrogram.png", f"{base}/layers/1/maps/{feature}/residual.png"):
            status, headers, png = get(path)
            assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
        status, _, body = get(f"{base}/prediction")
        assert status == 200 and json.loads(body)["prediction"][0]["label"] in ("yes", "no", "maybe")
        status, _, body = get(f"{base}/layers/1/top?k=4")
        assert status == 200 and len(json.loads(body)["maps"]) == 4  # every map of the tiny block 1 x 75 s: in budget
