"""TF-Serving-compatible server: REST and gRPC round trips (real tensorflow-serving-api stubs), bad requests."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from test_export_savedmodel import exported_model

MAX_BODY = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return exported_model(tmp_path_factory)


@pytest.fixture(scope="module")
def server(exported):
    from tfsonify.serving.lifecycle import ModelRepository
    from tfsonify.serving.server import Server

    running = Server(ModelRepository(exported["models_dir"]), port=0, grpc_port=0, max_body_bytes=MAX_BODY, grace=2).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def sonifier(exported):
    import tfsonify

    return tfsonify.Sonifier(exported["model"])


@pytest.fixture(scope="module")
def wave():
    rng = np.random.default_rng(11)
    t = np.arange(3000) / 8000.0
    return (0.6 * np.sin(2 * np.pi * 300 * t) * np.hanning(t.size) + rng.normal(0, 0.05, t.size)).astype("float32")


def rest(server, path, body=None, raw: bytes | None = None):
    """(status, json) of a REST call; ``raw`` sends bytes as they are."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}{path}", data=data,
                                     method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def sonify_request(wave, layer: int = 6, feature: int = 2):
    """A gRPC PredictRequest for model "cnn"'s ``sonify`` signature on one clip ``wave`` [T] float32."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "cnn"
    request.model_spec.signature_name = "sonify"
    request.inputs["waveform"].CopyFrom(tf.make_tensor_proto(wave[np.newaxis]))
    request.inputs["layer"].CopyFrom(tf.make_tensor_proto(np.array([layer], np.int32)))
    request.inputs["feature"].CopyFrom(tf.make_tensor_proto(np.array([feature], np.int32)))
    return request


def test_status_and_metadata(server):
    status, body = rest(server, "/v1/models/cnn")
    assert status == 200
    assert body["model_version_status"][0]["version"] == "1" and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = rest(server, "/v1/models/cnn/versions/1/metadata")
    assert status == 200 and body["model_spec"]["name"] == "cnn"
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "classify", "sonify", "sonify_top_k", "sonify_wav", "sonify_top_k_wav"}
    assert signatures["sonify"]["inputs"]["layer"]["dtype"] == "DT_INT32"
    assert rest(server, "/v1/models/nope")[0] == 404
    assert rest(server, "/v1/models/cnn/versions/7")[0] == 404


def test_rest_row_and_columnar_match_sonifier(server, sonifier, wave):
    body = {"signature_name": "sonify", "instances": [{"waveform": wave.tolist(), "layer": 4, "feature": 3}]}
    status, out = rest(server, "/v1/models/cnn:predict", body)
    assert status == 200
    np.testing.assert_allclose(np.asarray(out["predictions"][0], np.float32), sonifier.sonify(wave, 4, feature=3), atol=1e-5)

    body = {"signature_name": "sonify_top_k", "inputs": {"waveform": [wave.tolist()], "layer": [7], "k": [2]}}
    status, out = rest(server, "/v1/models/cnn/versions/1:predict", body)
    assert status == 200
    features, activations, sounds = sonifier.sonify_top(wave, 7, 2)
    np.testing.assert_array_equal(out["outputs"]["features"][0], features)
    np.testing.assert_allclose(np.asarray(out["outputs"]["sonifications"][0]), sounds, atol=1e-5)

    status, out = rest(server, "/v1/models/cnn:predict", {"instances": [wave.tolist(), wave.tolist()]})  # serving_default
    assert status == 200 and len(out["predictions"]) == 2 and len(out["predictions"][0]["embedding"]) == 512


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_client_round_trip(server, sonifier, wave, protocol):
    from tfsonify.serving import Client, ServingRequestError

    url = (f"http://127.0.0.1:{server.rest_port}/v1/models/cnn" if protocol == "rest"
           else f"grpc://127.0.0.1:{server.grpc_port}/cnn/1")
    with Client(url) as client:
        assert {"sonify", "sonify_top_k"} <= set(client.metadata())
        np.testing.assert_allclose(client.sonify(wave, 2, 1), sonifier.sonify(wave, 2, feature=1), atol=1e-5)
        features, activations, sounds = client.sonify_top_k(wave, 11, 3)
        expected = sonifier.sonify_top(wave, 11, 3)
        np.testing.assert_array_equal(features, expected[0])
        np.testing.assert_allclose(sounds, expected[2], atol=1e-5)
        with pytest.raises(ServingRequestError, match="needs at least 2370"):
            client.sonify(wave[:1000], 11, 0)


def test_grpc_with_raw_tensorflow_serving_stubs(server, sonifier, wave):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = sonify_request(wave)
        response = stub.Predict(request, timeout=120)
        assert response.model_spec.version.value == 1
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["sonification"])[0], sonifier.sonify(wave, 6, feature=2), atol=1e-5)

        request.inputs["layer"].CopyFrom(tf.make_tensor_proto(np.array([6.5], np.float32)))
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request, timeout=60)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "whole numbers" in info.value.details()

        metadata = get_model_metadata_pb2.GetModelMetadataRequest()
        metadata.model_spec.name = "cnn"
        metadata.metadata_field.append("signature_def")
        answer = stub.GetModelMetadata(metadata, timeout=60)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        answer.metadata["signature_def"].Unpack(signature_map)
        assert set(signature_map.signature_def) == {"serving_default", "classify", "sonify", "sonify_top_k", "sonify_wav", "sonify_top_k_wav"}
        metadata.model_spec.name = "missing"
        with pytest.raises(grpc.RpcError) as info:
            stub.GetModelMetadata(metadata, timeout=60)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def _sonify_body(wave, **changes):
    body = {"signature_name": "sonify", "inputs": {"waveform": [wave.tolist()], "layer": [3], "feature": [1]}}
    body["inputs"].update(changes)
    return body


@pytest.mark.parametrize("case", ["bad_json", "both_formats", "neither", "wrong_dtype", "fractional_int", "wrong_rank",
                                  "unknown_signature", "oversized", "too_short", "feature_range", "missing_input",
                                  "nan", "batch_mismatch"])
def test_malformed_requests_get_4xx_and_server_keeps_serving(server, wave, case):
    path = "/v1/models/cnn:predict"
    expected = {
        "bad_json": (400, "not valid JSON"),
        "both_formats": (400, "both 'instances'"),
        "neither": (400, "missing 'instances'"),
        "wrong_dtype": (400, "must be numeric"),
        "fractional_int": (400, "whole numbers"),
        "wrong_rank": (400, "must have rank 2"),
        "unknown_signature": (400, "not found"),
        "oversized": (413, "exceeds the limit"),
        "too_short": (400, "block 3 needs at least 42"),
        "feature_range": (400, "out of range"),
        "missing_input": (400, "missing ['feature']"),
        "nan": (400, "NaN"),
        "batch_mismatch": (400, "same batch size"),
    }[case]
    if case == "bad_json":
        status, body = rest(server, path, raw=b'{"inputs": [1, 2')
    elif case == "oversized":  # declare a too-large body; the server answers before reading it
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(MAX_BODY + 10))
        connection.endheaders(b" " * 1024)
        response = connection.getresponse()
        status, body = response.status, json.loads(response.read())
        connection.close()
    else:
        body = {
            "both_formats": {"instances": [wave.tolist()], "inputs": [wave.tolist()]},
            "neither": {"signature_name": "sonify"},
            "wrong_dtype": _sonify_body(wave, waveform=[["a", "b"]]),
            "fractional_int": _sonify_body(wave, feature=[1.5]),
            "wrong_rank": _sonify_body(wave, waveform=wave.tolist()),
            "unknown_signature": {"signature_name": "sonify_everything", "inputs": [wave.tolist()]},
            "too_short": _sonify_body(wave[:20]),
            "feature_range": _sonify_body(wave, feature=[999]),
            "missing_input": {"signature_name": "sonify", "inputs": {"waveform": [wave.tolist()], "layer": [3]}},
            "nan": {"signature_name": "sonify", "inputs": {"waveform": [[float("nan")] * 3000], "layer": [3], "feature": [1]}},
            "batch_mismatch": _sonify_body(wave, layer=[3, 3]),
        }[case]
        status, body = rest(server, path, raw=json.dumps(body).encode())
    assert status == expected[0], body
    assert set(body) == {"error"} and expected[1] in body["error"], body
    status, body = rest(server, path, _sonify_body(wave))  # still serving
    assert status == 200 and len(body["outputs"][0]) == wave.size


def test_concurrent_requests(server, sonifier, wave):
    from tfsonify.serving import Client

    expected = sonifier.sonify(wave, 5, feature=1)
    results, errors = [], []

    def worker(url):
        try:
            with Client(url) as client:
                for _ in range(2):
                    results.append(client.sonify(wave, 5, 1))
        except Exception as error:  # collected and asserted below
            errors.append(error)

    urls = [f"http://127.0.0.1:{server.rest_port}/v1/models/cnn", f"grpc://127.0.0.1:{server.grpc_port}/cnn"] * 4
    threads = [threading.Thread(target=worker, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and len(results) == 16
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-5)


def test_cli_request_writes_wavs(server, exported, sonifier, wave, tmp_path):
    import soundfile

    from tfsonify import cli

    clip_path = tmp_path / "clip.wav"
    soundfile.write(clip_path, wave, 8000, subtype="FLOAT")
    out = tmp_path / "out"
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/cnn"
    assert cli.main(["request", url, str(clip_path), "--layer", "8", "--top", "2", "--out", str(out), "--no-plots"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    features = sonifier.sonify_top(wave, 8, 2)[0]
    assert [entry["feature"] for entry in manifest["sonifications"]] == [int(f) for f in features]
    assert len(list(out.glob("*.wav"))) == 3  # input + 2 maps
    assert cli.main(["request", url, str(clip_path), "--layer", "12", "--out", str(out)]) == 2


def test_graceful_stop_frees_ports(exported):
    import socket

    from tfsonify.serving.lifecycle import ModelRepository
    from tfsonify.serving.server import Server

    server = Server(ModelRepository(exported["models_dir"] / "cnn", warmup=False), port=0, grpc_port=None, grace=1).start()
    port = server.rest_port
    assert rest(server, "/v1/models/cnn")[0] == 200
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# ------------------------------------------------------------------ audio in, audio out
def _wav(wave, rate=8000, subtype="PCM_16") -> bytes:
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wave, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def _b64(data: bytes) -> dict:
    import base64

    return {"b64": base64.b64encode(data).decode()}


def test_rest_wav_bytes_in_and_out_equal_the_float_signature(server, wave):
    """TF Serving's binary REST form: {"b64": ...} in, *_bytes outputs as {"b64": ...} out."""
    import base64

    from tfsonify.export.wav_graph import decode_wav_files

    wav = _wav(wave)
    heard = decode_wav_files([wav])[0]  # the 16-bit samples the graph decodes
    body = {"signature_name": "sonify_top_k_wav", "inputs": {"wav_bytes": [_b64(wav)], "layer": [6], "k": [3]}}
    status, out = rest(server, "/v1/models/cnn:predict", body)
    assert status == 200, out
    outputs = out["outputs"]
    assert set(outputs) == {"features", "activations", "sonifications_bytes", "sonification_peaks"}
    assert all(set(item) == {"b64"} for item in outputs["sonifications_bytes"][0])
    files = [base64.b64decode(item["b64"]) for item in outputs["sonifications_bytes"][0]]
    assert all(f[:4] == b"RIFF" for f in files)
    sounds = decode_wav_files(files, outputs["sonification_peaks"][0])
    status, floats = rest(server, "/v1/models/cnn:predict", {"signature_name": "sonify_top_k", "inputs": {
        "waveform": [heard.tolist()], "layer": [6], "k": [3]}})
    assert status == 200
    assert outputs["features"] == floats["outputs"]["features"]
    np.testing.assert_allclose(outputs["activations"], floats["outputs"]["activations"], rtol=1e-5, atol=1e-6)
    expected = np.asarray(floats["outputs"]["sonifications"][0], np.float32)
    peaks = np.abs(expected).max(axis=-1, keepdims=True)
    assert np.all(np.abs(sounds - expected) <= peaks / 32767 + 1e-6)  # 16-bit resolution of each peak

    body = {"signature_name": "sonify_wav", "instances": [{"wav_bytes": _b64(wav), "layer": 2, "feature": 1}]}
    status, out = rest(server, "/v1/models/cnn:predict", body)  # row format
    assert status == 200
    row = out["predictions"][0]
    single = decode_wav_files([base64.b64decode(row["sonification_bytes"]["b64"])], [row["sonification_peak"]])[0]
    status, floats = rest(server, "/v1/models/cnn:predict", {"signature_name": "sonify", "inputs": {
        "waveform": [heard.tolist()], "layer": [2], "feature": [1]}})
    reference = np.asarray(floats["outputs"][0], np.float32)
    assert np.all(np.abs(single - reference) <= np.abs(reference).max() / 32767 + 1e-6)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_client_wav_transport_equals_float_results(server, sonifier, wave, protocol):
    from tfsonify.export.wav_graph import decode_wav_files, encode_wav_files

    url = (f"http://127.0.0.1:{server.rest_port}/v1/models/cnn" if protocol == "rest"
           else f"grpc://127.0.0.1:{server.grpc_port}/cnn")
    heard = decode_wav_files(encode_wav_files(wave, 8000))[0]
    with Client_(url) as client:
        features, activations, sounds = client.sonify_top_k_audio(wave, 9, 2, 8000)
        raw = client.sonify_top_k_wav(encode_wav_files(wave, 8000)[0], 9, 2)
    expected = sonifier.sonify_top(heard, 9, 2)
    np.testing.assert_array_equal(features, expected[0])
    np.testing.assert_allclose(activations, expected[1], rtol=1e-4, atol=1e-6)
    peaks = np.abs(expected[2]).max(axis=-1, keepdims=True)
    assert np.all(np.abs(sounds - expected[2]) <= peaks / 32767 + 1e-5)
    assert raw["sonifications_bytes"].dtype == object and raw["sonifications_bytes"][0][:4] == b"RIFF"


def Client_(url):
    from tfsonify.serving import Client

    return Client(url)


@pytest.mark.parametrize("case", ["rate", "float_wav", "not_wav", "bad_b64", "not_b64_object", "lengths", "too_short"])
def test_bad_wav_requests_get_400(server, wave, case):
    wav = _wav(wave)
    inputs = {
        "rate": [_b64(_wav(wave, rate=16000))],
        "float_wav": [_b64(_wav(wave, subtype="FLOAT"))],
        "not_wav": [_b64(b"hello, this is not audio")],
        "bad_b64": [{"b64": "%%%not base64%%%"}],
        "not_b64_object": [{"data": "AAAA"}],
        "lengths": [_b64(wav), _b64(_wav(wave[:2000]))],
        "too_short": [_b64(_wav(wave[:20]))],
    }[case]
    message = {"rate": "is at 16000 Hz; the model expects 8000 Hz", "float_wav": "expected 16-bit PCM",
               "not_wav": "not a WAV file", "bad_b64": "invalid base64", "not_b64_object": '{"b64"',
               "lengths": "same number of samples", "too_short": "needs at least"}[case]
    rows = len(inputs)
    body = {"signature_name": "sonify_wav", "inputs": {"wav_bytes": inputs, "layer": [4] * rows, "feature": [0] * rows}}
    status, out = rest(server, "/v1/models/cnn:predict", body)
    assert status == 400 and message in out["error"], out
    status, out = rest(server, "/v1/models/cnn:predict", {"signature_name": "sonify_wav", "inputs": {
        "wav_bytes": [_b64(wav)], "layer": [4], "feature": [0]}})
    assert status == 200  # still serving


def test_fuzzed_wav_bodies_get_an_answer_or_400_never_500(server, wave):
    """The hostile corpus of tests/fuzz_corpus.py (and a valid 16-bit WAV truncated or corrupted) through the
    sonify_wav signature: 200 with a whole sonification, or 400 with a one-line error; the server keeps serving."""
    import random

    from fuzz_corpus import corpus

    valid = _wav(wave)
    rng = random.Random(26)
    bodies = [data for _, _, data in corpus(seed=1, per_seed=0)]
    bodies += [valid[:rng.randrange(len(valid))] for _ in range(4)]
    for _ in range(4):
        mutated = bytearray(valid)
        mutated[rng.randrange(44)] = rng.getrandbits(8)
        bodies.append(bytes(mutated))
    seen = set()
    for data in bodies:
        status, out = rest(server, "/v1/models/cnn:predict", {"signature_name": "sonify_wav", "inputs": {
            "wav_bytes": [_b64(data)], "layer": [2], "feature": [0]}})
        seen.add(status)
        assert status in (200, 400), (status, out)
        if status == 400:
            assert set(out) == {"error"} and "\n" not in out["error"]
    assert seen == {200, 400}
    status, _ = rest(server, "/v1/models/cnn:predict", {"signature_name": "sonify_wav", "inputs": {
        "wav_bytes": [_b64(valid)], "layer": [2], "feature": [0]}})
    assert status == 200


# ------------------------------------------------------------------ misbehaving clients
def _slow_sender(port: int, stop: threading.Event, sent: list):
    """Declares a 100 kB predict body and sends one byte every 50 ms until ``stop`` (bounded: at most 400 bytes)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /v1/models/cnn:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\n\r\n{")
        for _ in range(400):
            if stop.wait(0.05):
                break
            sock.sendall(b" ")
            sent.append(1)


def test_idle_slow_sending_and_slow_reading_clients_do_not_lock_out_normal_ones(server, wave):
    """200 idle connections (over the 64-request limit: idle sockets must not count), two slow senders and a client
    that never reads its response; meanwhile 4 normal clients x 5 requests all get 200."""
    import socket

    idle = [socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) for _ in range(200)]
    stop, sent = threading.Event(), []
    senders = [threading.Thread(target=_slow_sender, args=(server.rest_port, stop, sent), daemon=True) for _ in range(2)]
    for thread in senders:
        thread.start()
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect(("127.0.0.1", server.rest_port))
    big = json.dumps(_sonify_body(np.tile(wave, 20))).encode()  # a 60,000-sample answer it never reads
    reader.sendall(b"POST /v1/models/cnn:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   + f"Content-Length: {len(big)}\r\n\r\n".encode() + big)
    statuses = []

    def normal():
        for _ in range(5):
            statuses.append(rest(server, "/v1/models/cnn:predict", _sonify_body(wave))[0])

    try:
        clients = [threading.Thread(target=normal) for _ in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(300)
    finally:
        stop.set()
        for thread in senders:
            thread.join(30)
        reader.close()
        for sock in idle:
            sock.close()
    assert statuses == [200] * 20 and sent  # the slow senders were sending all along


class _Borrowed:
    """The module server's repository, lent to a second server without letting its stop() close it."""

    close = None

    def __init__(self, repository):
        self._repository = repository

    def __getattr__(self, name):
        return getattr(self._repository, name)


def test_in_flight_limit_and_stalled_bodies(server, wave):
    """--max-concurrency counts requests, not connections: one stalled upload holds the only slot (503 for
    others, naming the option) until its body has been idle for body_idle_seconds (408), then requests pass."""
    import socket

    from tfsonify.serving.server import Server

    running = Server(_Borrowed(server.repository), port=0, grpc_port=None, max_concurrency=1, body_idle_seconds=1.0,
                     grace=1).start()
    try:
        stalled = socket.create_connection(("127.0.0.1", running.rest_port), timeout=30)
        stalled.sendall(b"POST /v1/models/cnn:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        busy = None
        for _ in range(100):  # until the stalled request occupies the slot (bounded)
            status, body = rest(running, "/v1/models/cnn")
            if status == 503:
                busy = body
                break
            threading.Event().wait(0.01)
        assert busy is not None and "--max-concurrency" in busy["error"]
        answer = b""
        for _ in range(20):  # headers and body may arrive apart (after about one idle second)
            chunk = stalled.recv(4096)
            answer += chunk
            if not chunk or b"stalled" in answer:
                break
        answer = answer.decode()
        assert answer.startswith("HTTP/1.1 408") and "request body stalled" in answer
        stalled.close()
        assert rest(running, "/v1/models/cnn")[0] == 200
    finally:
        running.stop()


def test_connections_that_never_send_are_closed_after_idle_seconds(server, wave):
    """40 sockets that open and never send a byte, and 10 that send half a header line and stall, are closed by
    the server within ``idle_seconds`` (bounded wait); normal clients are answered 200 meanwhile, and a
    connection that sends its request in time is served."""
    import socket
    import time

    from tfsonify.serving.server import Server

    with pytest.raises(ValueError, match="idle_seconds must be a positive number"):
        Server(_Borrowed(server.repository), port=0, grpc_port=None, idle_seconds=0)
    running = Server(_Borrowed(server.repository), port=0, grpc_port=None, idle_seconds=1.0, grace=1).start()
    try:
        opened = time.monotonic()
        idle = [socket.create_connection(("127.0.0.1", running.rest_port), timeout=10) for _ in range(50)]
        for sock in idle[40:]:
            sock.sendall(b"GET /v1/models/cnn HTTP/1.1\r\nHo")
        statuses = [rest(running, "/v1/models/cnn:predict", _sonify_body(wave))[0] for _ in range(3)]
        closed, waited = 0, []
        for sock in idle:
            try:
                if sock.recv(1) == b"":  # the server closed it (EOF); a timeout would raise
                    closed += 1
                    waited.append(time.monotonic() - opened)
            except OSError:
                pass
            sock.close()
        assert statuses == [200] * 3
        assert closed == 50 and max(waited) < 8.0, (closed, waited[-3:])
        late = socket.create_connection(("127.0.0.1", running.rest_port), timeout=10)
        time.sleep(0.3)  # well inside idle_seconds
        late.sendall(b"GET /v1/models/cnn HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert late.recv(64).startswith(b"HTTP/1.1 200")
        late.close()
    finally:
        running.stop()


def test_malformed_grpc_messages_get_a_status_and_the_server_keeps_serving(server, wave):
    """Bytes that are not a PredictRequest (random, truncated, a wrong field type), a request whose tensor
    content does not match its shape, and an empty request: each gets a gRPC error status, none a result, and a
    valid request on the same channel afterwards is answered. (Measured: INTERNAL for the 9 undecodable messages,
    from grpcio; NOT_FOUND for the empty request.) The shape mismatch is the caller's error: INVALID_ARGUMENT
    naming the input and its declared shape."""
    import random

    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    good = sonify_request(wave)
    raw = good.SerializeToString()
    garbage = [bytes(random.Random(seed).getrandbits(8) for _ in range(200)) for seed in range(5)]
    garbage += [raw[:len(raw) // 2], raw[:7], b"\x0a\xff\xff\xff\xff\x0f", b"\x12" * 50]
    bad_shape = predict_pb2.PredictRequest()
    bad_shape.CopyFrom(good)
    bad_shape.inputs["waveform"].tensor_shape.dim[1].size = wave.size * 4  # claims 4x the samples it carries
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                      request_serializer=lambda b: b, response_deserializer=lambda b: b)
        codes = []
        for body in garbage + [bad_shape.SerializeToString(), b""]:
            try:
                predict(body, timeout=60)
                codes.append("OK")
            except grpc.RpcError as error:
                codes.append(error.code().name)
                assert "Traceback" not in (error.details() or ""), error.details()
        assert "OK" not in codes, codes
        with pytest.raises(grpc.RpcError) as mismatch:
            predict(bad_shape.SerializeToString(), timeout=60)
        assert mismatch.value.code() == grpc.StatusCode.INVALID_ARGUMENT, mismatch.value.code()
        assert "'waveform'" in mismatch.value.details() and "tensor_shape" in mismatch.value.details()
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(good, timeout=120)
        assert tf.make_ndarray(response.outputs["sonification"]).shape == (1, wave.size)
