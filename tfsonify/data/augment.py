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
        waves: float32 ``[batch, time]``.
        seed: int ``[2]`` stateless seed.

    Returns:
        float32 ``[batch, time]``.
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


def _per_row(waves: tf.Tensor, name: str) -> tf.Tensor:
    waves = tf.convert_to_tensor(waves, tf.float32)
    if waves.shape.rank != 2:
        raise ValueError(f"{name} expects waves [batch, time]; received shape {waves.shape}")
    return waves


def _log_uniform(shape, seed, low: float, high: float) -> tf.Tensor:
    return tf.exp(uniform(shape, seed, float(np.log(low)), float(np.log(high))))


def _fft_length(length) -> tf.Tensor:
    """The power of two >= ``length`` (int32 scalar tensor)."""
    length = tf.cast(length, tf.float32)
    return tf.cast(tf.pow(2.0, tf.math.ceil(tf.math.log(length) / np.log(2.0))), tf.int32)


def _match_power(out: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    """Scale each row of ``out`` to the power of the same row of ``reference`` (silent rows stay silent)."""
    scale = tf.sqrt(_power(reference) / tf.maximum(_power(out), _EPSILON))
    return out * tf.where(_power(out) > _EPSILON, scale, tf.zeros_like(scale))


def pitch_shift(waves, seed, min_semitones: float = -3.0, max_semitones: float = 3.0, frame: int = 256,
                hop: int = 128) -> tf.Tensor:
    """Shift pitch (and formants) by ``U[min_semitones, max_semitones]`` semitones per example, duration kept.

    Granular overlap-add: Hann-windowed grains of ``frame`` samples every ``hop`` are each
    resampled about their centre by ``2**(s/12)`` and added back at their original place (32 ms / 16 ms at 8 kHz), so the clip keeps its
    length and timing while its spectrum moves by ``s`` semitones. (:func:`speed_perturb` changes pitch and tempo
    together; the two combined give independent speed and pitch.)

    Args:
        waves: float32 ``[batch, time]``.
        seed: int ``[2]`` stateless seed.
        min_semitones, max_semitones: shift range; 0 leaves the clip unchanged up to the grain window's
            overlap-add (exact reconstruction away from the edges).

    Returns:
        float32 ``[batch, time]``.
    """
    _check_range("pitch_shift", min_semitones, max_semitones)
    waves = _per_row(waves, "pitch_shift")
    batch, length = tf.shape(waves)[0], tf.shape(waves)[1]
    ratio = tf.pow(2.0, uniform([batch, 1, 1], as_seed(seed), min_semitones, max_semitones) / 12.0)
    padded = tf.pad(waves, [[0, 0], [frame, frame]])
    grains = tf.signal.frame(padded, frame, hop, pad_end=True)  # [B, F, frame]
    centre = (frame - 1) / 2.0
    position = centre + (tf.range(frame, dtype=tf.float32) - centre) * ratio  # [B, 1, frame]
    lower = tf.floor(position)
    fraction = position - lower
    lower = tf.cast(lower, tf.int32)
    num_frames = tf.shape(grains)[1]
    index_shape = tf.stack([batch, num_frames, frame])
    left = tf.gather(grains, tf.broadcast_to(tf.clip_by_value(lower, 0, frame - 1), index_shape), batch_dims=2)
    right = tf.gather(grains, tf.broadcast_to(tf.clip_by_value(lower + 1, 0, frame - 1), index_shape), batch_dims=2)
    inside = (position >= 0.0) & (position <= frame - 1.0)
    window = tf.signal.hann_window(frame, periodic=True)
    resampled = tf.where(inside, left * (1.0 - fraction) + right * fraction, 0.0) * window
    out = tf.signal.overlap_and_add(resampled, hop)
    norm = tf.signal.overlap_and_add(tf.broadcast_to(window, tf.shape(resampled[:1])), hop)  # the windows' sum
    out = out / tf.maximum(norm, 1e-3)
    return tf.ensure_shape(out[:, frame : frame + length], waves.shape)


#: :func:`random_eq` presets: ``name: (probability, high-pass Hz range, low-pass Hz range, peak (Hz range, dB range))``.
#: ``flat`` leaves the clip alone; ``telephone`` is the 300-3400 Hz voice band; ``laptop`` a small MEMS/electret mic:
#: bass roll-off, a presence peak, a soft top; ``random`` a random 3-band parametric EQ (±8 dB) between random
#: high-pass and low-pass corners.
EQ_PRESETS = {
    "flat": (0.25, None, None, None),
    "telephone": (0.2, (250.0, 400.0), (2800.0, 3400.0), ((800.0, 2500.0), (-3.0, 3.0))),
    "laptop": (0.25, (120.0, 450.0), (3000.0, 3900.0), ((1800.0, 3500.0), (3.0, 9.0))),
    "random": (0.3, (30.0, 300.0), (2200.0, 3990.0), ((150.0, 3800.0), (-8.0, 8.0))),
}


def eq_response(frequencies, seed, batch, presets: dict | None = None, return_preset: bool = False):
    """Random magnitude responses ``[batch, len(frequencies)]`` of :func:`random_eq` (linear gain, not dB).

    Per example: a preset drawn with the probabilities of ``presets`` (default :data:`EQ_PRESETS`); a 2nd-order
    Butterworth high-pass and a 4th-order low-pass (8th for ``telephone``) at log-uniform corners in the preset's ranges; three Gaussian
    peaks (in log-frequency, 0.3-1.5 octaves wide) with centres log-uniform and gains uniform in the preset's ranges
    (the ``telephone`` and ``laptop`` presets: one peak at the preset's gain, two more at ±2 dB).
    """
    presets = EQ_PRESETS if presets is None else presets
    names = list(presets)
    probabilities = np.asarray([presets[n][0] for n in names], np.float64)
    if probabilities.min() < 0 or probabilities.sum() <= 0:
        raise ValueError(f"eq presets need non-negative probabilities with a positive sum; received {probabilities}")
    edges = tf.constant(np.cumsum(probabilities / probabilities.sum())[:-1], tf.float32)
    seeds = tf.unstack(split_seed(as_seed(seed), 12))
    choice = tf.reduce_sum(tf.cast(uniform([batch, 1], seeds[0])[..., None] >= edges, tf.int32), axis=-1)  # [B, 1]
    f = tf.maximum(tf.convert_to_tensor(frequencies, tf.float32)[None], 1.0)
    log_gain = tf.zeros([batch, tf.shape(f)[1]])
    for index, name in enumerate(names):
        _, high_pass, low_pass, peak = presets[name]
        curve = tf.zeros_like(log_gain)
        if high_pass is not None:
            corner = _log_uniform([batch, 1], seeds[1], *high_pass)
            curve += -0.5 * tf.math.log(1.0 + tf.pow(corner / f, 4.0))
        if low_pass is not None:
            corner = _log_uniform([batch, 1], seeds[2], *low_pass)
            order = 8.0 if name == "telephone" else 4.0  # the telephone band's edges are steep
            curve += -0.5 * tf.math.log(1.0 + tf.pow(f / corner, 2.0 * order))
        if peak is not None:
            (centre_low, centre_high), (gain_low, gain_high) = peak
            for band in range(3):
                centre = _log_uniform([batch, 1], seeds[3 + band], centre_low if band == 0 else 150.0,
                                      centre_high if band == 0 else 3800.0)
                if band == 0 or name == "random":
                    gain_db = uniform([batch, 1], seeds[6 + band], gain_low, gain_high)
                else:
                    gain_db = uniform([batch, 1], seeds[6 + band], -2.0, 2.0)
                octaves = uniform([batch, 1], seeds[9 + band], 0.3, 1.5)
                distance = tf.math.log(f / centre) / np.log(2.0)
                curve += gain_db / 20.0 * np.log(10.0) * tf.exp(-0.5 * tf.square(distance / octaves))
        log_gain = tf.where(choice == index, curve, log_gain)
    response = tf.exp(log_gain)
    return (response, choice[:, 0]) if return_preset else response


def random_eq(waves, seed, sample_rate: int = 8000, presets: dict | None = None) -> tf.Tensor:
    """Filter each example by a random microphone / channel response of :func:`eq_response` (zero phase).

    The response is applied to the spectrum of the zero-padded clip (FFT length >= 1.25 x the clip, so the short
    impulse responses do not wrap) and the result is scaled back to the clip's power: EQ changes timbre, not level.

    Returns:
        float32 ``[batch, time]``.
    """
    waves = _per_row(waves, "random_eq")
    batch, length = tf.shape(waves)[0], tf.shape(waves)[1]
    n_fft = _fft_length(length + length // 4)
    # the responses are smooth: evaluate them on 257 bins and interpolate linearly to the FFT's bins
    coarse = eq_response(tf.linspace(0.0, sample_rate / 2.0, 257), seed, batch, presets)
    response = tf.image.resize(coarse[:, None, :, None], tf.stack([1, n_fft // 2 + 1]), method="bilinear")[:, 0, :, 0]
    spectrum = tf.signal.rfft(waves, [n_fft]) * tf.cast(response, tf.complex64)
    out = tf.signal.irfft(spectrum, [n_fft])[:, :length]
    return tf.ensure_shape(_match_power(out, waves), waves.shape)


def synthetic_rir(batch, seed, length: int = 8000, sample_rate: int = 8000, rt60_s=(0.2, 1.0),
                  drr_db=(-3.0, 12.0), reflections: int = 6) -> tuple[tf.Tensor, tf.Tensor]:
    """Random room impulse responses ``[batch, length]`` and their reverberation times ``[batch]`` (seconds).

    Each: a direct path at t = 0, ``reflections`` early reflections at 2-40 ms (random signs, amplitudes 0.2-0.7 of
    the direct path), and a diffuse tail of Gaussian noise starting at 5 ms that decays by 60 dB in
    ``RT60 ~ U[rt60_s]`` seconds, scaled so the direct-to-reverberant energy ratio is ``U[drr_db]`` dB.
    """
    seeds = tf.unstack(split_seed(as_seed(seed), 6))
    rt60 = uniform([batch, 1], seeds[0], *rt60_s)
    drr = uniform([batch, 1], seeds[1], *drr_db)
    t = tf.range(length, dtype=tf.float32)[None] / sample_rate
    tail = _normal(tf.stack([batch, length]), seeds[2]) * tf.exp(-6.907755 * t / rt60)
    tail = tf.where(t >= 0.005, tail, 0.0)
    delays = uniform([batch, reflections], seeds[3], int(0.002 * sample_rate), int(0.040 * sample_rate) + 1, dtype=tf.int32)
    amplitudes = uniform([batch, reflections], seeds[4], 0.2, 0.7)
    signs = tf.where(uniform([batch, reflections], seeds[5]) < 0.5, -1.0, 1.0)
    early = tf.reduce_sum(tf.one_hot(delays, length) * (amplitudes * signs)[..., None], axis=1)
    reverberant = early + tail
    reverberant *= tf.sqrt(tf.pow(10.0, -drr / 10.0) / tf.maximum(_power(reverberant) * length, _EPSILON))
    direct = tf.one_hot(tf.zeros([batch], tf.int32), length)
    return direct + reverberant, rt60[:, 0]


def room_reverb(waves, seed, sample_rate: int = 8000, rt60_s=(0.2, 1.0), drr_db=(-3.0, 12.0),
                rir_seconds: float = 1.0) -> tf.Tensor:
    """Convolve each example with its own :func:`synthetic_rir` (RT60 ``U[rt60_s]`` s, DRR ``U[drr_db]`` dB).

    The direct path stays at the clip's own time (the output is the first ``time`` samples of the convolution), and
    the output is scaled back to the input's power.

    Returns:
        float32 ``[batch, time]``.
    """
    _check_range("room_reverb rt60_s", *rt60_s)
    _check_range("room_reverb drr_db", *drr_db)
    waves = _per_row(waves, "room_reverb")
    batch, length = tf.shape(waves)[0], tf.shape(waves)[1]
    taps = int(round(rir_seconds * sample_rate))
    rir, _ = synthetic_rir(batch, seed, taps, sample_rate, rt60_s, drr_db)
    n_fft = _fft_length(length + taps)
    out = tf.signal.irfft(tf.signal.rfft(waves, [n_fft]) * tf.signal.rfft(rir, [n_fft]), [n_fft])[:, :length]
    return tf.ensure_shape(_match_power(out, waves), waves.shape)


def coloured_noise(waves, seed, min_snr_db: float = 10.0, max_snr_db: float = 40.0, exponent=(0.0, 2.0),
                   sample_rate: int = 8000) -> tf.Tensor:
    """Add ``1/f**β`` noise (β ~ U[exponent]: 0 white, 1 pink, 2 brown; flat below 20 Hz) at ``U[min, max]`` dB SNR.

    Returns:
        float32 ``[batch, time]``.
    """
    _check_range("coloured_noise", min_snr_db, max_snr_db)
    waves = _per_row(waves, "coloured_noise")
    batch, length = tf.shape(waves)[0], tf.shape(waves)[1]
    seeds = tf.unstack(split_seed(as_seed(seed), 3))
    n_fft = _fft_length(length)
    white = _normal(tf.stack([batch, n_fft]), seeds[0])
    beta = uniform([batch, 1], seeds[1], *exponent)
    f = tf.maximum(tf.cast(tf.range(n_fft // 2 + 1), tf.float32) * (sample_rate / tf.cast(n_fft, tf.float32)), 20.0)
    shaped = tf.signal.irfft(tf.signal.rfft(white) * tf.cast(tf.pow(f[None], -beta / 2.0), tf.complex64))[:, :length]
    return mix_background(waves, shaped, seeds[2], min_snr_db, max_snr_db)[0]


def dc_offset(waves, seed, max_offset: float = 0.01) -> tf.Tensor:
    """Add a constant ``U[-max_offset, max_offset]`` (full scale 1) to each example: a cheap ADC's DC bias."""
    waves = tf.convert_to_tensor(waves, tf.float32)
    return waves + uniform(_per_example_shape(waves), as_seed(seed), -max_offset, max_offset)


class MicrophoneAugmenter:
    """What a voice takes on between a speaker and a recording, on a batch ``[batch, time]``, one draw per example.

    Two halves, so a pipeline can mix backgrounds in between (:func:`tfsonify.data.pipeline.training_dataset`
    applies ``foreground`` before its background mixing and ``__call__`` after it):

    * :meth:`foreground` — the talker and the room: :func:`speed_perturb` (``speed``, tempo and pitch together),
      :func:`pitch_shift` (``pitch_semitones``, duration kept) with probability ``pitch_probability``,
      :func:`room_reverb` (``rt60_s``, ``drr_db``) with probability ``reverb_probability``;
    * ``__call__`` — the microphone and the converter: :func:`random_eq` (presets :data:`EQ_PRESETS`, flat among them)
      with probability ``eq_probability``, :func:`coloured_noise` (``noise_snr_db``, β 0-2) with probability
      ``noise_probability``, :func:`random_gain` (``gain_db``), :func:`dc_offset` (``dc_offset``), then
      :func:`time_mask` (``mask_fraction``).

    Any range set to None skips its stage. Every stage is stateless: the same seed gives the same batch.
    """

    def __init__(self, speed=(0.85, 1.15), pitch_semitones=(-3.0, 3.0), pitch_probability: float = 0.5,
                 rt60_s=(0.2, 1.0), drr_db=(-3.0, 12.0), reverb_probability: float = 0.5,
                 eq_probability: float = 0.8, noise_snr_db=(10.0, 40.0), noise_probability: float = 0.5,
                 gain_db=(-6.0, 6.0), dc_offset: float | None = 0.01, mask_fraction: float | None = 0.1,
                 sample_rate: int = 8000):
        for name, value in (("speed", speed), ("pitch_semitones", pitch_semitones), ("rt60_s", rt60_s),
                            ("drr_db", drr_db), ("noise_snr_db", noise_snr_db), ("gain_db", gain_db)):
            if value is not None:
                _check_range(f"MicrophoneAugmenter {name}", *value)
        for name, value in (("pitch_probability", pitch_probability), ("reverb_probability", reverb_probability),
                            ("eq_probability", eq_probability), ("noise_probability", noise_probability)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"MicrophoneAugmenter: {name} must be in [0, 1]; received {value}")
        if rt60_s is not None and rt60_s[0] <= 0:
            raise ValueError(f"MicrophoneAugmenter: rt60_s must be > 0; received {rt60_s}")
        self.speed, self.pitch_semitones, self.pitch_probability = speed, pitch_semitones, pitch_probability
        self.rt60_s, self.drr_db, self.reverb_probability = rt60_s, drr_db, reverb_probability
        self.eq_probability, self.noise_snr_db, self.noise_probability = eq_probability, noise_snr_db, noise_probability
        self.gain_db, self.dc_offset, self.mask_fraction, self.sample_rate = gain_db, dc_offset, mask_fraction, sample_rate

    @staticmethod
    def _sometimes(waves, changed, seed, probability: float):
        if probability >= 1.0:
            return changed
        use = uniform(_per_example_shape(waves), seed) < probability
        return tf.where(use, changed, waves)

    def foreground(self, waves, seed) -> tf.Tensor:
        """Speed, pitch and room on clean speech ``[batch, time]``."""
        waves = _per_row(waves, "MicrophoneAugmenter.foreground")
        seeds = tf.unstack(split_seed(as_seed(seed), 5))
        if self.speed is not None:
            waves = speed_perturb(waves, seeds[0], *self.speed)
        if self.pitch_semitones is not None and self.pitch_probability > 0:
            waves = self._sometimes(waves, pitch_shift(waves, seeds[1], *self.pitch_semitones), seeds[2],
                                    self.pitch_probability)
        if self.rt60_s is not None and self.reverb_probability > 0:
            reverberant = room_reverb(waves, seeds[3], self.sample_rate, self.rt60_s, self.drr_db or (0.0, 0.0))
            waves = self._sometimes(waves, reverberant, seeds[4], self.reverb_probability)
        return waves

    def __call__(self, waves, seed) -> tf.Tensor:
        """Microphone EQ, noise, gain, DC offset and time mask on ``[batch, time]`` (speech, maybe with background)."""
        waves = _per_row(waves, "MicrophoneAugmenter")
        seeds = tf.unstack(split_seed(as_seed(seed), 7))
        if self.eq_probability > 0:
            waves = self._sometimes(waves, random_eq(waves, seeds[0], self.sample_rate), seeds[1], self.eq_probability)
        if self.noise_snr_db is not None and self.noise_probability > 0:
            noisy = coloured_noise(waves, seeds[2], *self.noise_snr_db, sample_rate=self.sample_rate)
            waves = self._sometimes(waves, noisy, seeds[3], self.noise_probability)
        if self.gain_db is not None:
            waves = random_gain(waves, seeds[4], *self.gain_db)
        if self.dc_offset:
            waves = dc_offset(waves, seeds[5], self.dc_offset)
        if self.mask_fraction is not None:
            waves = time_mask(waves, seeds[6], self.mask_fraction)
        return waves

    def get_config(self) -> dict:
        return {name: getattr(self, name) for name in (
            "speed", "pitch_semitones", "pitch_probability", "rt60_s", "drr_db", "reverb_probability", "eq_probability",
            "noise_snr_db", "noise_probability", "gain_db", "dc_offset", "mask_fraction", "sample_rate")}


__all__ += ["pitch_shift", "EQ_PRESETS", "eq_response", "random_eq", "synthetic_rir", "room_reverb", "coloured_noise",
            "dc_offset", "MicrophoneAugmenter"]
