"""supervised.fit progress output: a bar on a terminal, one line per epoch in logs."""
from __future__ import annotations

import io

import numpy as np


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_verbosity():
    from tfsonify.train.supervised import progress_verbosity

    assert progress_verbosity("auto", _Terminal()) == 1
    assert progress_verbosity("auto", io.StringIO()) == 2
    assert progress_verbosity(0, _Terminal()) == 0 and progress_verbosity(1, io.StringIO()) == 1


def test_fit_prints_one_line_per_epoch_when_not_a_terminal(tmp_path, capfd):
    import keras
    import tensorflow as tf

    from tfsonify.train.supervised import fit

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = keras.utils.to_categorical(np.arange(64) % 2, 2)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    capfd.readouterr()
    fit(model, data, epochs=3, out_dir=tmp_path)
    out = capfd.readouterr().out
    assert "\r" not in out and "\x1b" not in out and "\b" not in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert epoch_lines == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert sum("loss:" in line for line in out.splitlines()) == 3  # one summary line per epoch
