"""Version lifecycle: hot swap under load, refused broken versions, models.config with labels, ModelService stubs."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from test_export_savedmodel import exported_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return exported_model(tmp_path_factory)


@pytest.fixture(scope="module")
def wave():
    rng = np.random.default_rng(5)
    return (0.4 * np.sin(np.arange(2000) * 0.07) + rng.normal(0, 0.05, 2000)).astype(np.float32)


def publish(source, base, version: int) -> float:
    """Write ``base/VERSION`` as the exporter does (stage in ``.tmp-V-*``, then one rename); returns the rename time."""
    staging = base / f".tmp-{version}-copy"
    shutil.copytree(source, staging)
    os.rename(staging, base / str(version))
    return time.monotonic()


def rest(port, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def grpc_sonify(stub, wave, name="cnn", label=None, layer=3):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if label is not None:
        request.model_spec.version_label = label
    request.model_spec.signature_name = "sonify"
    request.inputs["waveform"].CopyFrom(tf.make_tensor_proto(wave[np.newaxis]))
    request.inputs["layer"].CopyFrom(tf.make_tensor_proto(np.array([layer], np.int32)))
    request.inputs["feature"].CopyFrom(tf.make_tensor_proto(np.array([1], np.int32)))
    response = stub.Predict(request, timeout=120)
    return response.model_spec.version.value, tf.make_ndarray(response.outputs["sonification"])[0]


def test_new_version_is_served_under_load_without_failures(exported, tmp_path, wave):
    """4 clients (2 gRPC, 2 REST) keep sending while version 2 appears; it is loaded, warmed, swapped in. (8 clients
    on 2 cores made the load and warm-up of version 2 take over a minute; 4 keep both cores busy.)"""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfsonify.serving import Client
    from tfsonify.serving.config import specs_from_folder
    from tfsonify.serving.lifecycle import ModelManager
    from tfsonify.serving.server import Server

    base = tmp_path / "models" / "cnn"
    base.mkdir(parents=True)
    publish(exported["version_dir"], base, 1)
    poll = 0.5
    manager = ModelManager(specs_from_folder(tmp_path / "models"), warmup=True, poll_seconds=poll)
    server = Server(manager, port=0, grpc_port=0, grace=2).start()
    expected = exported_sonify(exported, wave)
    stop = threading.Event()
    seen: dict[int, list] = {i: [] for i in range(4)}
    errors: list = []

    def grpc_worker(index):
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set():
                try:
                    version, sound = grpc_sonify(stub, wave)
                    np.testing.assert_allclose(sound, expected, atol=1e-5)
                    seen[index].append((time.monotonic(), version))
                except Exception as error:  # collected, asserted below
                    errors.append(repr(error))

    def rest_worker(index):
        with Client(f"http://127.0.0.1:{server.rest_port}/v1/models/cnn") as client:
            while not stop.is_set():
                try:
                    np.testing.assert_allclose(client.sonify(wave, 3, 1), expected, atol=1e-5)
                    seen[index].append((time.monotonic(), None))
                except Exception as error:
                    errors.append(repr(error))

    threads = [threading.Thread(target=grpc_worker if i < 2 else rest_worker, args=(i,)) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
        while min(len(seen[i]) for i in range(4)) < 2:  # every client is being served by version 1
            assert not errors, errors[:3]
            time.sleep(0.05)
        published = publish(exported["version_dir"], base, 2)
        deadline = time.monotonic() + 600
        while not all(any(v == 2 for _, v in seen[i]) for i in range(2)) and time.monotonic() < deadline:
            time.sleep(0.05)
        settled = time.monotonic()
        while time.monotonic() < settled + 1.0:  # keep the load on after the swap
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    status = {s.version: s for s in manager.status("cnn")}
    server.stop()
    assert not errors, errors[:3]
    assert status[2].state == "AVAILABLE" and status[1].state == "END"
    # served within one poll interval plus the load and warm-up time the manager measured (+0.5 s of scheduling)
    assert status[2].available_since - published <= poll + status[2].load_seconds + 0.5
    first_v2 = min(t for i in range(2) for t, v in seen[i] if v == 2)
    assert first_v2 >= status[2].available_since - 0.01
    for i in range(2):  # once a client got version 2, it never got version 1 again
        versions = [v for _, v in seen[i]]
        assert versions[-1] == 2 and versions == sorted(versions)
    assert sum(len(seen[i]) for i in range(4)) > 8 and all(seen[i][-1][0] > first_v2 for i in range(2, 4))


def exported_sonify(exported, wave):
    import tfsonify

    return tfsonify.Sonifier(exported["model"]).sonify(wave, 3, feature=1)


def test_broken_version_is_refused_and_the_old_one_keeps_serving(exported, tmp_path, wave):
    from tfsonify.serving.config import specs_from_folder
    from tfsonify.serving.lifecycle import ModelManager
    from tfsonify.serving.server import Server

    base = tmp_path / "models" / "cnn"
    base.mkdir(parents=True)
    publish(exported["version_dir"], base, 1)
    manager = ModelManager(specs_from_folder(tmp_path / "models"), warmup=False, poll_seconds=0)
    server = Server(manager, port=0, grpc_port=None, grace=1).start()
    try:
        broken = base / "2"
        (broken / "variables").mkdir(parents=True)
        (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel protobuf")
        manager.poll()
        states = {s.version: s for s in manager.status("cnn")}
        assert states[2].state == "END" and states[2].error_code != "OK"
        assert "Failed to load servable 'cnn' version 2" in states[2].error_message
        assert states[1].state == "AVAILABLE" and manager.get("cnn").version == 1
        status, body = rest(server.rest_port, "/v1/models/cnn")
        assert status == 200
        by_version = {entry["version"]: entry for entry in body["model_version_status"]}
        assert by_version["1"]["state"] == "AVAILABLE" and by_version["2"]["state"] == "END"
        assert by_version["2"]["status"]["error_code"] != "OK" and "Failed to load" in by_version["2"]["status"]["error_message"]
        body = {"signature_name": "sonify", "inputs": {"waveform": [wave.tolist()], "layer": [3], "feature": [1]}}
        status, out = rest(server.rest_port, "/v1/models/cnn:predict", body)
        assert status == 200
        np.testing.assert_allclose(out["outputs"][0], exported_sonify(exported, wave), atol=1e-5)
        assert rest(server.rest_port, "/v1/models/cnn/versions/2:predict", body)[0] == 404

        manager.poll()  # unchanged files are not retried
        assert manager.status("cnn", 2)[0].state == "END"
        shutil.rmtree(broken)  # repaired in place: its files change, so it is tried again and served
        publish(exported["version_dir"], base, 2)
        manager.poll()
        assert manager.status("cnn", 2)[0].state == "AVAILABLE" and manager.get("cnn").version == 2
        assert manager.status("cnn", 1)[0].state == "END"
    finally:
        server.stop()


def test_deleted_version_falls_back_and_the_last_one_stays_served_from_memory(exported, tmp_path, wave, caplog):
    """The served newest folder deleted: the previous version takes over; every folder deleted: the loaded
    version keeps answering from memory and its status names the removed folder."""
    from tfsonify.serving.config import specs_from_folder
    from tfsonify.serving.lifecycle import ModelManager
    from tfsonify.serving.server import Server

    base = tmp_path / "models" / "cnn"
    base.mkdir(parents=True)
    publish(exported["version_dir"], base, 1)
    publish(exported["version_dir"], base, 2)
    manager = ModelManager(specs_from_folder(tmp_path / "models"), warmup=False, poll_seconds=0)
    server = Server(manager, port=0, grpc_port=None, grace=1).start()
    body = {"signature_name": "sonify", "inputs": {"waveform": [wave.tolist()], "layer": [3], "feature": [1]}}
    try:
        assert manager.get("cnn").version == 2
        shutil.rmtree(base / "2")
        manager.poll()
        assert manager.get("cnn").version == 1
        assert [s.version for s in manager.status("cnn")] == [1]
        assert rest(server.rest_port, "/v1/models/cnn/versions/2:predict", body)[0] == 404
        shutil.rmtree(base / "1")
        with caplog.at_level("WARNING", logger="tfsonify.serving"):
            manager.poll()
            manager.poll()  # said once, not at every poll
        assert [r.getMessage() for r in caplog.records].count(manager.status("cnn", 1)[0].error_message) == 1
        state = manager.status("cnn", 1)[0]
        assert state.state == "AVAILABLE" and "was removed from disk" in state.error_message
        assert str(base / "1") in state.error_message
        status, out = rest(server.rest_port, "/v1/models/cnn:predict", body)
        assert status == 200
        np.testing.assert_allclose(out["outputs"][0], exported_sonify(exported, wave), atol=1e-5)
        publish(exported["version_dir"], base, 3)
        manager.poll()
        assert manager.get("cnn").version == 3 and [s.version for s in manager.status("cnn")] == [3]
    finally:
        server.stop()


def test_warmup_failure_is_reported_and_not_served(exported, tmp_path):
    from tfsonify.serving.config import specs_from_folder
    from tfsonify.serving.lifecycle import ModelManager
    from tfsonify.serving.repository import load_version

    base = tmp_path / "models" / "cnn"
    base.mkdir(parents=True)
    publish(exported["version_dir"], base, 1)

    def loader(name, folder, warmup):
        if folder.name == "2":
            raise ValueError("warm-up call of 'sonify' failed: simulated")
        return load_version(name, folder, warmup)

    manager = ModelManager(specs_from_folder(tmp_path / "models"), warmup=False, poll_seconds=0, loader=loader)
    publish(exported["version_dir"], base, 2)
    manager.poll()
    assert manager.get("cnn").version == 1
    failed = manager.status("cnn", 2)[0]
    assert failed.state == "END" and failed.error_code == "INVALID_ARGUMENT" and "simulated" in failed.error_message


def test_model_config_two_models_labels_and_model_service(exported, tmp_path, wave):
    """models.config: 'cnn' (latest) and 'small' (specific 1, 2; labels stable/canary); GetModelStatus and reload via stubs."""
    import grpc
    from google.protobuf import text_format
    from tensorflow_serving.apis import (get_model_status_pb2, model_management_pb2, model_service_pb2_grpc,
                                         prediction_service_pb2_grpc)
    from tensorflow_serving.config import model_server_config_pb2

    from tfsonify.serving.config import read_model_config
    from tfsonify.serving.lifecycle import ModelManager
    from tfsonify.serving.server import Server

    for name, versions in (("cnn", [1]), ("small", [1, 2, 3])):
        (tmp_path / name).mkdir()
        for version in versions:
            publish(exported["version_dir"], tmp_path / name, version)
    config = tmp_path / "models.config"
    config.write_text("""model_config_list {
  config { name: "cnn" base_path: "cnn" model_platform: "tensorflow" model_version_policy { latest { num_versions: 1 } } }
  config { name: "small" base_path: "small" model_platform: "tensorflow"
           model_version_policy { specific { versions: 1 versions: 2 } }
           version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } }
}
""")
    manager = ModelManager(read_model_config(config), warmup=False, poll_seconds=0)
    server = Server(manager, port=0, grpc_port=0, grace=1).start()
    port = server.rest_port
    try:
        assert sorted(manager.models["small"]) == [1, 2]  # the specific policy leaves version 3 out
        body = {"signature_name": "sonify", "inputs": {"waveform": [wave.tolist()], "layer": [3], "feature": [1]}}
        assert rest(port, "/v1/models/cnn:predict", body)[0] == 200
        status, out = rest(port, "/v1/models/small/labels/stable:predict", body)
        assert status == 200
        np.testing.assert_allclose(out["outputs"][0], exported_sonify(exported, wave), atol=1e-5)
        status, meta = rest(port, "/v1/models/small/labels/canary/metadata")
        assert status == 200 and meta["model_spec"]["version"] == "2"
        status, out = rest(port, "/v1/models/small/labels/canary")
        assert status == 200 and [e["version"] for e in out["model_version_status"]] == ["2"]
        status, out = rest(port, "/v1/models/small")
        assert [(e["version"], e["state"]) for e in out["model_version_status"]] == [("1", "AVAILABLE"), ("2", "AVAILABLE")]
        status, out = rest(port, "/v1/models/small/labels/nightly:predict", body)
        assert status == 404 and "Unrecognized servable version label" in out["error"]
        assert rest(port, "/v1/models/small/versions/3:predict", body)[0] == 404

        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = "small"
            response = models.GetModelStatus(request, timeout=60)
            available = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")
            assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == \
                [(1, available, 0), (2, available, 0)]
            request.model_spec.version_label = "canary"
            assert [s.version for s in models.GetModelStatus(request, timeout=60).model_version_status] == [2]
            request.model_spec.name = "nope"
            with pytest.raises(grpc.RpcError) as info:
                models.GetModelStatus(request, timeout=60)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND

            predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert grpc_sonify(predictions, wave, name="small", label="canary")[0] == 2
            assert grpc_sonify(predictions, wave, name="small", label="stable")[0] == 1

            reload = model_management_pb2.ReloadConfigRequest()
            text_format.Parse(f'model_config_list {{ config {{ name: "small" base_path: "{tmp_path / "small"}" '
                              'model_version_policy { all {} } } }', reload.config)
            assert isinstance(reload.config, model_server_config_pb2.ModelServerConfig)
            answer = models.HandleReloadConfigRequest(reload, timeout=300)
            assert answer.status.error_code == 0, answer.status.error_message
            assert sorted(manager.models["small"]) == [1, 2, 3] and "cnn" not in manager.models
            assert rest(port, "/v1/models/cnn:predict", body)[0] == 404
            assert grpc_sonify(predictions, wave, name="small")[0] == 3
    finally:
        server.stop()


def test_serve_cli_arguments(tmp_path, capsys):
    from tfsonify import cli

    assert cli.main(["serve"]) == 2 and "exactly one" in capsys.readouterr().err
    assert cli.main(["serve", "--model_config_file", str(tmp_path / "missing.config")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["serve", str(tmp_path), "--file_system_poll_wait_seconds", "-1"]) == 2
    assert "--file_system_poll_wait_seconds must be >= 0" in capsys.readouterr().err
    (tmp_path / "bad.config").write_text("model_config_list { config { name: 'a' } }")
    assert cli.main(["serve", "--model_config_file", str(tmp_path / "bad.config")]) == 2
    assert "no base_path" in capsys.readouterr().err


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_serve_cli_reads_the_exporters_config_and_stops_on_a_signal_in_one_line(exported, tmp_path, capsys,
                                                                              monkeypatch, signal_name):
    """`tfsonify serve --model_config_file models/models.config` as the exporter wrote it (relative base_path, read
    from another working directory); Ctrl-C or SIGTERM once it answers: uvicorn drains, one line, 130 / 143."""
    import signal

    from tfsonify import cli

    config = exported["models_dir"] / "models.config"
    assert 'base_path: "cnn"' in config.read_text() and "relative to this file's folder" in config.read_text()
    monkeypatch.chdir(tmp_path)
    port, running, answered = _free_port(), threading.Event(), []

    def stop_once_serving():
        deadline = time.monotonic() + 240
        while running.is_set() and time.monotonic() < deadline and not answered:
            try:
                answered.append(rest(port, "/v1/models/cnn")[0])
            except OSError:
                time.sleep(0.2)
        if running.is_set():  # never signal the test process after cli.main has returned
            os.kill(os.getpid(), getattr(signal, signal_name))

    running.set()
    killer = threading.Thread(target=stop_once_serving, daemon=True)
    killer.start()
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # SIG_IGN under a background shell
    try:
        status = cli.main(["serve", "--model_config_file", str(config), "--port", str(port), "--grpc-port", "-1",
                           "--no-warmup", "--file_system_poll_wait_seconds", "0", "--grace", "1"])
    finally:
        running.clear()
        killer.join(10)
    out, err = capsys.readouterr()
    assert answered == [200] and "serving cnn version 1" in out
    assert status == 128 + getattr(signal, signal_name), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    how = "Ctrl-C" if signal_name == "SIGINT" else "SIGTERM"
    assert err.strip().splitlines()[-1] == f"tfsonify serve: interrupted ({how}); in-flight requests drained, server stopped"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # the CLI put them back


def test_serve_cli_finds_a_port_in_use_before_loading_and_names_the_searched_path(exported, tmp_path, capsys):
    import socket

    from tfsonify import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flags in (["--port", str(port), "--grpc-port", "-1"], ["--port", "0", "--grpc-port", str(port)]):
            assert cli.main(["serve", str(exported["models_dir"]), *flags]) == 2
            err = capsys.readouterr().err
            assert "loading" not in err and "Traceback" not in err  # refused before any model is loaded
            option = "--port" if flags[1] != "0" else "--grpc-port"
            assert err.strip() == (f"tfsonify serve: error: {'REST' if option == '--port' else 'gRPC'} port {port} on "
                                   f"127.0.0.1 is already in use (another server running?); stop it or choose another "
                                   f"{option}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "models.config").write_text('model_config_list { config { name: "e" base_path: "empty" } }')
    assert cli.main(["serve", "--model_config_file", str(tmp_path / "models.config"), "--port", "0",
                     "--grpc-port", "-1", "--file_system_poll_wait_seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert f"could be loaded from {tmp_path.resolve() / 'empty'} (no version folders" in err, err
