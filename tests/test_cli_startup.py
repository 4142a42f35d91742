"""A lazy CLI: --help, a command's --help, argument errors and ``request`` over REST import no TensorFlow.

Each case runs in a fresh interpreter (the test process has TensorFlow loaded already) and checks ``sys.modules``
after the CLI returned; ``benchmarks/cli_startup.py`` times the same invocations.
"""
from __future__ import annotations

import base64
import http.server
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "scipy", "matplotlib", "tensorboard", "apache_beam", "starlette", "grpc")

PROBE = """
import json, sys
from tfsonify import cli
try:
    status = cli.main(json.loads(sys.argv[1]))
except SystemExit as exit:
    status = exit.code
print(json.dumps({"status": status, "modules": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)}))
"""


def _probe(argv: list[str], heavy=HEAVY) -> tuple[dict, str]:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(list(heavy))], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.stdout.strip(), result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@pytest.mark.parametrize("argv, status", [
    (["--help"], 0),
    (["sonify", "--help"], 0),
    (["request", "--help"], 0),
    (["export", "tflite", "--help"], 0),
    (["analyze", "topk", "--help"], 0),
    (["sonify-dataset", "--help"], 0),
    (["sonify", "clip.wav"], 2),  # missing --model, --layer, --out
    (["sonify", "clip.wav", "--model", "m.keras", "--layer", "3", "--out", "o", "--top", "x"], 2),
    (["nonsense"], 2),
    ([], 2),
])
def test_parsing_imports_nothing_heavy(argv, status):
    out, err = _probe(argv, HEAVY + ("numpy",))
    assert out["status"] == status, err
    assert out["modules"] == [], f"{argv} imported {out['modules']}"
    if status == 2:
        assert "error:" in err and "Traceback" not in err


def test_demo_help_imports_no_tensorflow():
    """``tfsonify demo --help`` shows the demo's defaults (tfsonify.train.demo_config: numpy, no TensorFlow)."""
    out, err = _probe(["demo", "--help"])
    assert out["status"] == 0, err
    assert out["modules"] == [], f"demo --help imported {out['modules']}"


def test_every_command_module_is_light_at_import():
    """Importing a command module (what building its parser needs) loads nothing heavy: only run() does."""
    from tfsonify.cli import COMMANDS

    code = ("import importlib, json, sys; [importlib.import_module(m) for m in json.loads(sys.argv[1])]; "
            "print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))")
    modules = [module for _, module, _ in COMMANDS]
    result = subprocess.run([sys.executable, "-c", code, json.dumps(modules), json.dumps(list(HEAVY) + ["numpy"])],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == []


class _FakeServing(http.server.BaseHTTPRequestHandler):
    """Answers ``sonify_top_k_wav`` like TF Serving's REST API: one map, the input's WAV echoed at half level."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body["signature_name"]))
        wav = base64.b64decode(body["inputs"]["wav_bytes"][0]["b64"])
        samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, rate, subtype="PCM_16", format="WAV")
        answer = {"outputs": {"features": [[3]], "activations": [[0.75]], "sonification_peaks": [[0.5]],
                              "sonifications_bytes": [[{"b64": base64.b64encode(buffer.getvalue()).decode()}]]}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_request_over_rest_imports_no_tensorflow(tmp_path):
    _FakeServing.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeServing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        clip = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32)
        wav = tmp_path / "clip.wav"
        soundfile.write(wav, clip, 8000, subtype="PCM_16")
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/cnn12"
        out, err = _probe(["request", url, str(wav), "--layer", "5", "--sample-rate", "8000", "--out",
                           str(tmp_path / "out"), "--no-plots"],
                          ("tensorflow", "keras", "tensorflow_serving", "grpc"))
        # a server that reports no model record (as TF Serving): the rate must be given, said in one line
        unknown, unknown_err = _probe(["request", url, str(wav), "--layer", "5", "--out", str(tmp_path / "o2")])
    finally:
        server.shutdown()
        server.server_close()
    assert out["status"] == 0, err
    assert out["modules"] == [], f"request over REST imported {out['modules']}"
    assert unknown["status"] == 2 and "does not report the model's sample rate" in unknown_err
    assert "Traceback" not in unknown_err and not (tmp_path / "o2").exists()
    assert _FakeServing.requests == [("/v1/models/cnn12:predict", "sonify_top_k_wav")]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [entry["feature"] for entry in manifest["sonifications"]] == [3]
    sound, rate = soundfile.read(tmp_path / "out" / manifest["sonifications"][0]["wav"], dtype="float32")
    sent, _ = soundfile.read(wav, dtype="float32")
    assert rate == 8000 and np.allclose(sound, 0.5 * sent, atol=1e-4)  # decoded and rescaled by its peak


def test_missing_tensorflow_is_one_line(tmp_path):
    """Without the [tf] extra, a command that needs TensorFlow says which extra to install (no traceback)."""
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            "from tfsonify import cli\n"
            f"sys.exit(cli.main(['sonify', {str(tmp_path / 'c.wav')!r}, '--model', 'm.keras', '--layer', '3', "
            f"'--out', {str(tmp_path / 'out')!r}]))")
    soundfile.write(tmp_path / "c.wav", np.zeros(8000, np.float32), 8000)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "pip install 'tfsonify[tf]'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
