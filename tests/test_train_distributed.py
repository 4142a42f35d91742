"""Strategy selection, Mirrored ``fit`` == one device, the 2-worker loop, XLA step == eager, kill-and-resume.

Distributed cases run in subprocesses (tests/train_worker.py): logical CPU devices must be configured
before TensorFlow initialises, and each worker of a cluster is its own process.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsonify.models.cnn12 import CNN12
from tfsonify.train.loop import tf_config_for, train_loop
from tfsonify.train.schedule import adamw
from tfsonify.train.strategy import describe, global_batch_size, strategy
from tfsonify.train.supervised import make_train_step

WORKER = str(Path(__file__).with_name("train_worker.py"))
TIMEOUT = 420


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)
    env.pop("TF_CONFIG", None) if "TF_CONFIG" not in extra else None
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_strategy_selection_falls_back_on_this_machine(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    chosen = strategy("auto")  # no TPU answers, no cluster, no GPUs here: the default strategy
    assert chosen.num_replicas_in_sync == 1 and "Default" in describe(chosen)
    assert global_batch_size(16, chosen) == 16
    with pytest.raises(ValueError, match="no TPU"):
        strategy("tpu")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        strategy("multi_worker")
    with pytest.raises(ValueError, match="kind must be one of"):
        strategy("gpu")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        strategy("auto")
    with pytest.raises(ValueError, match="per_replica_batch_size"):
        global_batch_size(0, chosen)


def test_mirrored_fit_over_two_logical_cpus_matches_one_device(tmp_path):
    runs = {replicas: subprocess.Popen([sys.executable, WORKER, "fit", "--replicas", str(replicas), "--out",
                                        str(tmp_path / f"{replicas}.json")], env=_env(), stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True) for replicas in (1, 2)}
    for replicas, process in runs.items():
        output, _ = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, output[-3000:]
    one, two = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (1, 2))
    assert two["strategy"] == "MirroredStrategy (2 replicas)"
    assert len(one["loss"]) == len(two["loss"]) == 3
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-4)
    assert one["loss"][-1] < one["loss"][0]  # it trains


def test_multi_worker_loop_two_local_workers_end_identical(tmp_path):
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes = [subprocess.Popen([sys.executable, WORKER, "worker", "--out", str(tmp_path / f"w{i}.npz"),
                                   "--checkpoints", str(tmp_path / "ckpt")],
                                  env=_env(TF_CONFIG=tf_config_for(workers, i)), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=TIMEOUT)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
        assert "epoch 2/2" in output
    first, second = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert str(first["strategy"]) == str(second["strategy"]) == "CollectiveAllReduceStrategy (2 replicas)"
    arrays = [name for name in first.files if name != "strategy"]
    assert len(arrays) == 26  # 13 dense/conv layers x (kernel, bias)
    for name in arrays:
        np.testing.assert_array_equal(first[name], second[name])
    initial = CNN12(width_multiplier=0.0625, num_classes=3, dropout=0.0).get_weights()  # different seed: sanity
    assert any(not np.array_equal(first[name], w) for name, w in zip(arrays, initial))
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir() if p.name.startswith("ckpt-2"))  # chief saved


def _tiny_classifier(seed=0):
    keras.utils.set_random_seed(seed)
    return CNN12(width_multiplier=0.0625, num_classes=3, dropout=0.0)


def test_train_step_under_xla_equals_eager():
    rng = np.random.default_rng(1)
    waveforms = rng.standard_normal((4, 2400)).astype("float32")
    targets = np.eye(3, dtype="float32")[[0, 1, 2, 1]]
    results = []
    for jit in (False, True):
        model = _tiny_classifier()
        optimizer = adamw(1e-3)
        step = make_train_step(model, optimizer, multi_label=False, global_batch_size=4, jit_compile=jit)
        losses = [float(step(waveforms, targets)) for _ in range(3)]
        results.append((losses, model.get_weights()))
    (eager_losses, eager_weights), (xla_losses, xla_weights) = results
    np.testing.assert_allclose(xla_losses, eager_losses, rtol=1e-4)
    for eager, xla in zip(eager_weights, xla_weights):
        np.testing.assert_allclose(xla, eager, rtol=1e-3, atol=1e-5)


def test_loop_resumes_from_checkpoint_and_validates(tmp_path):
    def dataset_fn(context):
        rng = np.random.default_rng(0)
        waveforms = rng.standard_normal((8, 2400)).astype("float32")
        targets = np.eye(3, dtype="float32")[rng.integers(0, 3, 8)]
        return tf.data.Dataset.from_tensor_slices((waveforms, targets)).batch(4).repeat()

    lines = []
    kwargs = dict(strategy=strategy("default"), steps_per_epoch=2, per_replica_batch_size=4, multi_label=False,
                  learning_rate=1e-3, warmup_epochs=1, checkpoint_dir=tmp_path, log=lines.append)
    train_loop(_tiny_classifier, dataset_fn, epochs=2, **kwargs)
    model = train_loop(_tiny_classifier, dataset_fn, epochs=3, **kwargs)
    assert lines[0].startswith("epoch 1/2") and "resumed" in lines[2] and "after epoch 2" in lines[2]
    assert lines[3].startswith("epoch 3/3") and len(lines) == 4
    with pytest.raises(ValueError, match="steps_per_epoch"):
        train_loop(_tiny_classifier, dataset_fn, epochs=2, **{**kwargs, "steps_per_epoch": 0})


def test_sigkill_mid_run_then_restart_resumes_and_finishes(tmp_path):
    command = [sys.executable, WORKER, "resume", "--out", str(tmp_path), "--epochs", "5", "--epoch-seconds", "0.5"]
    events = tmp_path / "events.txt"
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT
        while not (events.exists() and "begin 3" in events.read_text()):
            assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "training never reached epoch 3"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert "end 3" not in events.read_text()  # killed inside epoch 3
    rerun = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    log = events.read_text().split("\n")
    restart = log.index("begin 3", log.index("begin 3") + 1)  # the second run's first epoch
    assert log[restart:] == ["begin 3", "end 3", "begin 4", "end 4", "begin 5", "end 5", "finished 20", ""]
    # 5 epochs x 4 steps: the optimiser's step counter was restored with the weights
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [f"epoch-00{i}.keras" for i in range(1, 6)]
    assert any((tmp_path / "logs").rglob("*tfevents*"))


def test_custom_loop_and_fit_take_the_same_steps(tmp_path):
    """The multi-worker loop and Keras ``fit`` (compile_classifier) train identically: same loss scaling,
    optimiser, weight decay and schedule, so switching strategies does not change the recipe."""
    from tfsonify.train.supervised import compile_classifier

    rng = np.random.default_rng(2)
    waveforms = rng.standard_normal((8, 2400)).astype("float32")
    targets = np.eye(3, dtype="float32")[rng.integers(0, 3, 8)]

    def dataset_fn(context=None):
        return tf.data.Dataset.from_tensor_slices((waveforms, targets)).batch(4).repeat()

    settings = dict(learning_rate=3e-3, warmup_epochs=1, weight_decay=1e-3)
    keras.utils.set_random_seed(0)
    looped = train_loop(_tiny_classifier, dataset_fn, strategy=strategy("default"), epochs=3, steps_per_epoch=2,
                        per_replica_batch_size=4, multi_label=False, checkpoint_dir=tmp_path / "loop", log=None,
                        **settings)
    keras.utils.set_random_seed(0)
    fitted = _tiny_classifier()
    compile_classifier(fitted, multi_label=False, steps_per_epoch=2, epochs=3, jit_compile=False, **settings)
    fitted.fit(dataset_fn(), epochs=3, steps_per_epoch=2, verbose=0)
    assert fitted.optimizer.iterations.numpy() == 6
    for name in ("conv1", "conv11", "embedding", "classifier"):
        for loop_weight, fit_weight in zip(looped.get_layer(name).get_weights(), fitted.get_layer(name).get_weights()):
            np.testing.assert_allclose(fit_weight, loop_weight, rtol=1e-4, atol=1e-6)
