"""Waveform augmentations of the paper (App. A.2, A.3): random gain, additive Gaussian noise, random time
masking, mixup, background mixing at a random SNR ("mix-back"), and random crops.

Every function is pure TensorFlow built from *stateless* random ops, so it runs inside ``tf.data.map``,
inside ``tf.function`` (also with ``jit_compile=True``) and on a TPU, and gives the same output for the
same ``seed``. Waveforms are float32 ``[..., time]`` at the pipeline's rate (8 kHz in tfsonify); the leading
axes are examples (one random draw per example), the last axis is time in samples.

``seed`` is an int32/int64 tensor of shape ``[2]`` (as for ``tf.random.stateless_uniform``); split one
seed into several with ``tf.random.split`` (what :class:`Augmenter` does).

API summary::

    random_gain(wave, seed, min_db=-6.0, max_db=6.0)                  -> wave * 10**(g/20), g ~ U[min_db, max_db]
    gaussian_noise(wave, seed, min_snr_db=20.0, max_snr_db=40.0)      -> wave + N(0, P_wave / 10**(snr/10))
    time_mask(wave, seed, max_fraction=0.1, num_masks=1)              -> spans of U[0, max_fraction*T] samples zeroed
    mix_background(wave, background, seed, min_snr_db, max_snr_db)   -> (mixture, scaled_background)
    mix_back(waves, seed, min_snr_db=..., max_snr_db=...)             -> batch mixed with a shuffled copy of itself
    mixup(waves, labels, seed, alpha=0.2)                             -> (mixed_waves, mixed_labels) for a batch
    random_crop(wave, length, seed)                                   -> [length] (zero-padded at a random offset if short)
    random_crop_starts(lengths, length, seed)                         -> [B] window starts of random_crop, vectorised
    pad_or_crop(wave, length)                                         -> [length] deterministic (start / zero-pad end)
    Augmenter(gain_db=(-6, 6), noise_snr_db=(20, 40), mask_fraction=0.1)  callable (wave, seed) -> wave
    seeds_dataset(seed) -> tf.data stream of [2] seeds, new each epoch but reproducible
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

__all__ = [
    "as_seed",
    "split_seed",
    "uniform",
    "speed_perturb",
    "random_gain",
    "gaussian_noise",
    "time_mask",
    "mix_background",
    "mix_back",
    "mixup",
    "beta_symmetric",
    "random_crop",
    "random_crop_starts",
    "pad_or_crop",
    "Augmenter",
    "seeds_dataset",
]

_EPSILON = 1e-12
#: One counter-based RNG everywhere: "auto_select" picks different generators on CPU and under XLA,
#: so the same seed would give different augmentations eagerly and with ``jit_compile=True``.
_ALG = "philox"


def split_seed(seed, num: int) -> tf.Tensor:
    """``num`` independent stateless seeds ``[num, 2]`` from one seed ``[2]`` (Philox, XLA-reproducible)."""
    return tf.random.split(seed, num, alg=_ALG)


def uniform(shape, seed, minval=0, maxval=None, dtype=tf.float32) -> tf.Tensor:
    """Uniform ``[minval, maxval)`` (float, default ``[0, 1)``) or integer ``[minval, maxval)``.

    Built from Philox's raw 32-bit words, which are bit-identical on CPU and under XLA (the stock
    float conversion of ``stateless_uniform`` is not), then the top 24 bits are mapped to ``[0, 1)``.
    """
    bits = tf.random.stateless_uniform(shape, seed, minval=None, maxval=None, dtype=tf.uint32, alg=_ALG)
    unit = tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * (1.0 / (1 << 24))
    if dtype.is_integer:
        if maxval is None:
            raise ValueError("integer uniform draws need maxval")
        minval = tf.cast(minval, tf.float32)
        span = tf.cast(maxval, tf.float32) - minval
        return tf.cast(tf.minimum(tf.floor(minval + unit * span), tf.cast(maxval, tf.float32) - 1.0), dtype)
    maxval = 1.0 if maxval is None else maxval
    return tf.cast(minval + unit * (maxval - minval), dtype)


def _normal(shape, seed) -> tf.Tensor:
    """Standard normal float32 by Box-Muller (same values eagerly and under XLA).

    Generating random bits is the expensive part on a CPU (Philox: ~4 ns per 32-bit word), so each word
    feeds one Box-Muller pair — its high 16 bits the radius, its low 16 bits the angle, each as
    ``(k + 0.5) / 2**16`` — and both outputs ``r cos θ`` and ``r sin θ`` of the pair are used: ``n`` normals
    cost ``n / 2`` words. The 16-bit radius bounds ``|z|`` by 4.86 (a normal exceeds that with probability
    1.2e-6), which is immaterial for additive noise.
    """
    shape = tf.convert_to_tensor(shape, tf.int32)
    count = tf.reduce_prod(shape)
    half = (count + 1) // 2
    bits = tf.random.stateless_uniform([half], seed, minval=None, maxval=None, dtype=tf.uint32, alg=_ALG)
    scale = 1.0 / (1 << 16)
    high = (tf.cast(tf.bitwise.right_shift(bits, 16), tf.float32) + 0.5) * scale
    low = (tf.cast(tf.bitwise.bitwise_and(bits, 0xFFFF), tf.float32) + 0.5) * scale
    radius = tf.sqrt(-2.0 * tf.math.log(high))
    angle = (2.0 * np.pi) * low
    pairs = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)
    return tf.reshape(pairs[:count], shape)


def _check_range(name: str, low: float, high: float) -> None:
    if not low <= high:
        raise ValueError(f"{name}: expected min <= max; received min={low}, max={high}")


def _per_example_shape(wave: tf.Tensor) -> tf.Tensor:
    """``[..., 1]``: one random draw per example (all axes but time)."""
    shape = tf.shape(wave)
    return tf.concat([shape[:-1], [1]], axis=0)


def as_seed(seed) -> tf.Tensor:
    """``seed`` as an int32/int64 tensor (the dtypes stateless random ops take)."""
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        seed = tf.cast(seed, tf.int64)
    return seed


def random_gain(wave: tf.Tensor, seed, min_db: float = -6.0, max_db: float = 6.0) -> tf.Tensor:
    """Multiply each example by a random gain ``10**(g/20)``, ``g ~ U[min_db, max_db]`` dB.

    Args:
        wave: float32 ``[..., time]``.
        seed: int ``[2]`` stateless seed.
        min_db, max_db: gain range in decibels.

    Returns:
        float32 ``[..., time]``.
    """
    _check_range("random_gain", min_db, max_db)
    wave = tf.convert_to_tensor(wave, tf.float32)
    gain_db = uniform(_per_example_shape(wave), as_seed(seed), min_db, max_db)
    return wave * tf.pow(10.0, gain_db / 20.0)


def _power(wave: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(wave), axis=-1, keepdims=True)


def gaussian_noise(wave: tf.Tensor, seed, min_snr_db: float = 20.0, max_snr_db: float = 40.0) -> tf.Tensor:
    """Add white Gaussian noise at a random SNR ``~ U[min_snr_db, max_snr_db]`` dB per example.

    The noise variance is ``mean(wave**2) / 10**(snr/10)`` (power over the whole example), so a
    silent example stays silent (no NaN).

    Args:
        wave: float32 ``[..., time]``.
        seed: int ``[2]`` stateless seed.
        min_snr_db, max_snr_db: signal-to-noise range in dB.

    Returns:
        float32 ``[..., time]``.
    """
    _check_range("gaussian_noise", min_snr_db, max_snr_db)
    wave = tf.convert_to_tensor(wave, tf.float32)
    snr_seed, noise_seed = tf.unstack(split_seed(as_seed(seed), 2))
    snr_db = uniform(_per_example_shape(wave), snr_seed, min_snr_db, max_snr_db)
    stddev = tf.sqrt(_power(wave) / tf.pow(10.0, snr_db / 10.0))
    return wave + stddev * _normal(tf.shape(wave), noise_seed)


def time_mask(wave: tf.Tensor, seed, max_fraction: float = 0.1, num_masks: int = 1) -> tf.Tensor:
    """Zero ``num_masks`` random spans per example, each ``U[0, max_fraction * time]`` samples long.

    Args:
        wave: float32 ``[..., time]``.
        seed: int ``[2]`` stateless seed.
        max_fraction: longest span as a fraction of the example length, in ``[0, 1]``.
        num_masks: spans per example (they may overlap).

    Returns:
        float32 ``[..., time]``.
    """
    if not 0.0 <= max_fraction <= 1.0:
        raise ValueError(f"time_mask: max_fraction must be in [0, 1]; received {max_fraction}")
    if num_masks < 0:
        raise ValueError(f"time_mask: num_masks must be >= 0; received {num_masks}")
    wave = tf.convert_to_tensor(wave, tf.float32)
    length = tf.shape(wave)[-1]
    length_f = tf.cast(length, tf.float32)
    positions = tf.range(length, dtype=tf.float32)
    for seed_i in tf.unstack(split_seed(as_seed(seed), max(num_masks, 1)))[:num_masks]:
        width_seed, start_seed = tf.unstack(split_seed(seed_i, 2))
        width = tf.floor(uniform(_per_example_shape(wave), width_seed) * (max_fraction * length_f + 1.0))
        width = tf.minimum(width, length_f)
        start = tf.floor(uniform(_per_example_shape(wave), start_seed) * (length_f - width + 1.0))
        # inside the span <=> |t - centre| < width / 2 (exact in float32 for t, start, width < 2**23)
        inside = tf.abs(positions - (start + 0.5 * (width - 1.0))) < 0.5 * width
        wave = tf.where(inside, 0.0, wave)
    return wave


def mix_background(wave: tf.Tensor, background: tf.Tensor, seed, min_snr_db: float = 0.0,
                   max_snr_db: float = 20.0) -> tuple[tf.Tensor, tf.Tensor]:
    """Add ``background`` scaled so that ``10 log10(P_wave / P_scaled) = snr``, ``snr ~ U[min, max]`` dB.

    Power is measured over each whole example. A silent background adds nothing; a silent
    ``wave`` gets nothing added either (the SNR is undefined), so no NaN can appear.

    Args:
        wave: float32 ``[..., time]`` foreground.
        background: float32, same shape as ``wave``.
        seed: int ``[2]`` stateless seed.
        min_snr_db, max_snr_db: SNR range in dB.

    Returns:
        ``(mixture, scaled_background)``, float32 ``[..., time]`` each; ``mixture = wave + scaled_background``.
    """
    _check_range("mix_background", min_snr_db, max_snr_db)
    wave = tf.convert_to_tensor(wave, tf.float32)
    background = tf.convert_to_tensor(background, tf.float32)
    snr_db = uniform(_per_example_shape(wave), as_seed(seed), min_snr_db, max_snr_db)
    power_bg = _power(background)
    scale = tf.sqrt(_power(wave) / (tf.maximum(power_bg, _EPSILON) * tf.pow(10.0, snr_db / 10.0)))
    scale = tf.where(power_bg > _EPSILON, scale, tf.zeros_like(scale))
    scaled = background * scale
    return wave + scaled, scaled


def _permutation(size: tf.Tensor, seed) -> tf.Tensor:
    return tf.argsort(uniform([size], as_seed(seed)))


def mix_back(waves: tf.Tensor, seed, min_snr_db: float = 5.0, max_snr_db: float = 20.0) -> tf.Tensor:
    """Mix-back (Fonseca et al., 2021): each example plus another example of the batch as background.

    The partner is drawn by a random permutation of the batch and added at a random SNR
    ``~ U[min_snr_db, max_snr_db]`` dB, so the example itself stays dominant. Labels are kept.

    Args:
        waves: float32 ``[batch, time]``.
        seed: int ``[2]`` stateless seed.

    Returns:
        float32 ``[batch, time]``.
    """
    waves = tf.convert_to_tensor(waves, tf.float32)
    perm_seed, snr_seed = tf.unstack(split_seed(as_seed(seed), 2))
    partners = tf.gather(waves, _permutation(tf.shape(waves)[0], perm_seed))
    return mix_background(waves, partners, snr_seed, min_snr_db, max_snr_db)[0]


def mixup(waves: tf.Tensor, labels: tf.Tensor, seed, alpha: float = 0.2) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixup (Zhang et al., 2017) within a batch: ``λ x_i + (1-λ) x_π(i)``, same for the labels.

    ``λ ~ Beta(alpha, alpha)`` per example (:func:`beta_symmetric`, XLA-compatible),
    ``π`` a random permutation of the batch.

    Args:
        waves: float32 ``[batch, time]``.
        labels: float ``[batch, classes]`` one-hot or multi-hot targets (not class indices).
        seed: int ``[2]`` stateless seed.
        alpha: Beta concentration, > 0.

    Returns:
        ``(mixed_waves [batch, time], mixed_labels [batch, classes])``, float32.
    """
    if alpha <= 0:
        raise ValueError(f"mixup: alpha must be > 0; received {alpha}")
    waves = tf.convert_to_tensor(waves, tf.float32)
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank is not None and labels.shape.rank != 2:
        raise ValueError(f"mixup: labels must be one-hot/multi-hot [batch, classes]; received shape {labels.shape}")
    labels = tf.cast(labels, tf.float32)
    batch = tf.shape(waves)[0]
    perm_seed, seed_a = tf.unstack(split_seed(as_seed(seed), 2))
    lam = beta_symmetric([batch, 1], seed_a, alpha)
    perm = _permutation(batch, perm_seed)
    mixed_waves = lam * waves + (1.0 - lam) * tf.gather(waves, perm)
    mixed_labels = lam * labels + (1.0 - lam) * tf.gather(labels, perm)
    return mixed_waves, mixed_labels


def beta_symmetric(shape, seed, alpha: float, candidates: int = 64) -> tf.Tensor:
    """float32 samples of ``Beta(alpha, alpha)`` by Jöhnk's rejection method, vectorised and XLA-compatible.

    ``tf.random.stateless_gamma`` has no XLA kernel, so each sample takes the first accepted of
    ``candidates`` proposals ``(U**(1/a), V**(1/a))`` (accepted when their sum is <= 1; computed in log
    space so small ``alpha`` cannot underflow). Acceptance per proposal is
    ``Γ(1+a)² / Γ(1+2a)``: 0.95 at a=0.2, 0.5 at a=1; if all proposals fail (probability ``< 1e-19``
    at a <= 1) the sample is 0.5.
    """
    shape = tf.concat([tf.reshape(tf.convert_to_tensor(shape, tf.int32), [-1]), [candidates]], axis=0)
    seed_u, seed_v = tf.unstack(split_seed(as_seed(seed), 2))
    tiny = 1e-30
    log_x = tf.math.log(tf.maximum(uniform(shape, seed_u), tiny)) / alpha
    log_y = tf.math.log(tf.maximum(uniform(shape, seed_v), tiny)) / alpha
    log_sum = tf.reduce_logsumexp(tf.stack([log_x, log_y]), axis=0)
    accepted = log_sum <= 0.0
    samples = tf.exp(log_x - log_sum)
    first = tf.argmax(tf.cast(accepted, tf.int32), axis=-1)
    chosen = tf.gather(samples, first, axis=-1, batch_dims=len(samples.shape) - 1)
    return tf.where(tf.reduce_any(accepted, axis=-1), chosen, 0.5 * tf.ones_like(chosen))


def pad_or_crop(wave: tf.Tensor, length: int) -> tf.Tensor:
    """Deterministic: keep the first ``length`` samples, or zero-pad at the end. ``[time]`` -> ``[length]``."""
    wave = tf.convert_to_tensor(wave, tf.float32)
    return tf.ensure_shape(tf.pad(wave, [[0, length]])[:length], [length])


def random_crop(wave: tf.Tensor, length: int, seed) -> tf.Tensor:
    """A random ``length``-sample window of a ``[time]`` clip; a shorter clip is zero-padded at a random offset.

    Args:
        wave: float32 ``[time]``.
        length: crop length in samples (e.g. 2.5 s × 8000 = 20000 for FSD50K), > 0.
        seed: int ``[2]`` stateless seed.

    Returns:
        float32 ``[length]``.
    """
    if length <= 0:
        raise ValueError(f"random_crop: length must be a positive number of samples; received {length}")
    wave = tf.convert_to_tensor(wave, tf.float32)
    time = tf.shape(wave)[0]
    # Pad by ``length`` on both sides (a static amount, so XLA compiles it), then take one window of
    # static size: a random window inside a long clip, or a short clip at a random place in the window.
    offset = uniform([], as_seed(seed), 0, tf.abs(time - length) + 1, dtype=tf.int32)
    start = tf.where(time >= length, length + offset, length - offset)
    padded = tf.pad(wave, [[length, length]])
    return tf.ensure_shape(tf.slice(padded, [start], [length]), [length])


def random_crop_starts(lengths, length: int, seed) -> tf.Tensor:
    """Window starts of :func:`random_crop` for a batch of clips, vectorised (one draw per clip).

    For a clip of ``T ≥ length`` samples the start is ``U{0 … T − length}``; for a shorter clip it is
    ``−U{0 … length − T}`` (the clip lands at a random offset inside a zero-padded window). Read the windows
    with :func:`tfsonify.data.pipeline.packed_windows` (samples outside the clip are 0).

    Args:
        lengths: int ``[B]`` clip lengths in samples.
        length: window length in samples, > 0.
        seed: int ``[2]`` stateless seed.

    Returns:
        int64 ``[B]`` start samples (negative for clips shorter than ``length``). Offsets come from a 24-bit uniform
        draw (as in :func:`random_crop`), so every offset is reachable while ``|T − length| < 2**24`` samples (35 min
        at 8 kHz); beyond that the offsets are spread evenly but not every one occurs.
    """
    if length <= 0:
        raise ValueError(f"random_crop_starts: length must be a positive number of samples; received {length}")
    lengths = tf.cast(lengths, tf.int64)
    span = tf.abs(lengths - length) + 1
    offset = tf.cast(tf.floor(uniform(tf.shape(lengths), as_seed(seed)) * tf.cast(span, tf.float32)), tf.int64)
    offset = tf.minimum(offset, span - 1)
    return tf.where(lengths >= length, offset, -offset)


class Augmenter:
    """The supervised chain of App. A.3 (gain, Gaussian noise, time mask) on one example or a batch.

    Any stage set to ``None`` is skipped. Example::

        augment = Augmenter(gain_db=(-6, 6), noise_snr_db=(20, 40), mask_fraction=0.1)
        wave = augment(wave, seed)          # float32 [..., time], seed int [2]

    Args:
        gain_db: ``(min_db, max_db)`` for :func:`random_gain`, or None.
        noise_snr_db: ``(min_snr_db, max_snr_db)`` for :func:`gaussian_noise`, or None.
        mask_fraction: ``max_fraction`` for :func:`time_mask`, or None.
        num_masks: spans per example for :func:`time_mask`.
    """

    def __init__(self, gain_db: Sequence[float] | None = (-6.0, 6.0), noise_snr_db: Sequence[float] | None = (20.0, 40.0),
                 mask_fraction: float | None = 0.1, num_masks: int = 1):
        if gain_db is not None:
            _check_range("Augmenter gain_db", *gain_db)
        if noise_snr_db is not None:
            _check_range("Augmenter noise_snr_db", *noise_snr_db)
        if mask_fraction is not None and not 0.0 <= mask_fraction <= 1.0:
            raise ValueError(f"Augmenter: mask_fraction must be in [0, 1]; received {mask_fraction}")
        self.gain_db = None if gain_db is None else tuple(float(v) for v in gain_db)
        self.noise_snr_db = None if noise_snr_db is None else tuple(float(v) for v in noise_snr_db)
        self.mask_fraction = mask_fraction
        self.num_masks = num_masks

    def __call__(self, wave: tf.Tensor, seed) -> tf.Tensor:
        seeds = tf.unstack(split_seed(as_seed(seed), 3))
        wave = tf.convert_to_tensor(wave, tf.float32)
        if self.gain_db is not None:
            wave = random_gain(wave, seeds[0], *self.gain_db)
        if self.noise_snr_db is not None:
            wave = gaussian_noise(wave, seeds[1], *self.noise_snr_db)
        if self.mask_fraction is not None:
            wave = time_mask(wave, seeds[2], self.mask_fraction, self.num_masks)
        return wave

    def get_config(self) -> dict:
        return {"gain_db": self.gain_db, "noise_snr_db": self.noise_snr_db, "mask_fraction": self.mask_fraction,
                "num_masks": self.num_masks}


def seeds_dataset(seed: int) -> tf.data.Dataset:
    """An endless ``tf.data`` stream of int64 ``[2]`` seeds: reproducible for ``seed``, different each epoch.

    Zip it with a dataset to give every element its own stateless seed.
    """
    return tf.data.Dataset.random(seed=int(seed), rerandomize_each_iteration=True).batch(2, drop_remainder=True)


def speed_perturb(waves, seed, low: float = 0.85, high: float = 1.15):
    """Random speed change per example (pitch and tempo together), about the clip centre, on-graph.

    Resamples each row by linear interpolation at ``centre + (t - centre) * factor`` with ``factor ~ U[low,
    high]`` (> 1 speeds up and raises the pitch); samples that fall outside the clip become 0. A speaker-
    variation augmentation (used by the demo) (voices differ mostly in pitch and rate); XLA- and ``tf.data``-safe.

    Args:
        waves: float32 ``[batch, time]`` (rank 2; ``ValueError`` otherwise).
        seed: int ``[2]`` stateless seed (one factor per row).
        low, high: the factor's range, ``0 < low <= high``.

    Returns:
        float32 ``[batch, time]``, the same length as ``waves``.
    """
    waves = tf.convert_to_tensor(waves, tf.float32)
    if waves.shape.rank != 2:
        raise ValueError(f"speed_perturb expects waves [batch, time]; received shape {waves.shape}")
    batch, length = tf.shape(waves)[0], tf.shape(waves)[1]
    factor = uniform([batch, 1], as_seed(seed), low, high)
    centre = tf.cast(length - 1, tf.float32) / 2.0
    position = centre + (tf.cast(tf.range(length), tf.float32)[None] - centre) * factor
    lower = tf.floor(position)
    fraction = position - lower
    lower = tf.cast(lower, tf.int32)
    left = tf.gather(waves, tf.clip_by_value(lower, 0, length - 1), batch_dims=1)
    right = tf.gather(waves, tf.clip_by_value(lower + 1, 0, length - 1), batch_dims=1)
    inside = (position >= 0.0) & (position <= tf.cast(length - 1, tf.float32))
    return tf.where(inside, left * (1.0 - fraction) + right * fraction, 0.0)


# --- what a real microphone adds: pitch shift, EQ / band-limiting, rooms, coloured noise, DC -------------------
# All batch functions take float32 ``[batch, time]`` at ``sample_rate`` (8 kHz) and a stateless seed ``[2]``,
# draw their parameters once per example and are tf.data-safe (no Python-side randomness).
