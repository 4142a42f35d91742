"""What a microphone and a room do to speech, as on-graph augmentations (the demo's :class:`MicrophoneAugmenter`).

Pitch shift (phase vocoder, length kept), equaliser presets (telephone, laptop, bright, dull, ...), synthetic room
impulse responses at a drawn RT60 and direct-to-reverberant ratio, coloured noise at a drawn SNR and spectral slope,
and a DC offset. Like :mod:`tfsonify.data.augment` (whose seed helpers these use), every function is pure TensorFlow
from stateless random ops: it runs in ``tf.data.map`` and ``tf.function`` and gives the same output for the same
``seed`` (int ``[2]``). Waveforms are float32 ``[batch, time]`` at ``sample_rate`` Hz.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfsonify.data.augment import (_EPSILON, _check_range, _normal, _per_example_shape, _power, as_seed, mix_background,
                                   random_gain, speed_perturb, split_seed, time_mask, uniform)

__all__ = ["pitch_shift", "eq_response", "random_eq", "synthetic_rir", "room_reverb", "coloured_noise", "dc_offset", "MicrophoneAugmenter", "EQ_PRESETS"]


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


#: :func:`random_eq` presets: ``name: (probability, high-pass Hz range, low-pass Hz range, peak (Hz range, dB range),
#: tilt dB/octave range)``. ``flat`` leaves the clip alone; ``telephone`` is the 300-3400 Hz voice band; ``laptop`` a
#: small MEMS/electret mic: bass roll-off, a presence peak, a soft top; ``random`` a random 3-band parametric EQ (±8 dB)
#: between random high-pass and low-pass corners; ``muffled`` a covered or distant microphone, a voice behind a door or
#: a dark synthesiser: a gentle (2nd-order) low-pass at 0.7-2 kHz; ``band_stop`` cuts one band (a Gaussian dip 0.15-0.5 octaves wide) by
#: 15-30 dB, the waveform counterpart of SpecAugment's frequency mask, so no single band is indispensable. The tilt is a spectral slope around 1 kHz: a
#: synthesiser, a voice and a microphone differ most in how fast their spectrum falls with frequency (measured on the
#: demo data: SVOX Pico's en-GB voice is 10-15 dB darker above 2 kHz than the training engines, and a model trained
#: without tilt loses 39 points on flite at -6 dB/octave).
EQ_PRESETS = {
    "flat": (0.15, None, None, None, None),
    "telephone": (0.15, (250.0, 400.0), (2800.0, 3400.0), ((800.0, 2500.0), (-3.0, 3.0)), None),
    "laptop": (0.2, (120.0, 450.0), (3000.0, 3900.0), ((1800.0, 3500.0), (3.0, 9.0)), None),
    "random": (0.25, (30.0, 300.0), (1500.0, 3990.0), ((150.0, 3800.0), (-8.0, 8.0)), (-6.0, 3.0)),
    "muffled": (0.15, None, (700.0, 2000.0), None, (-6.0, 0.0)),
    "band_stop": (0.1, None, None, ((250.0, 3000.0), (-30.0, -15.0)), None),
}
#: Low-pass order per preset (default 4): the telephone band's edges are steep, a muffled microphone's are not.
_LOW_PASS_ORDER = {"telephone": 8.0, "muffled": 2.0}
#: Width range (standard deviation in octaves) of the presets' Gaussian peaks (default 0.3-1.5): a band stop is narrow.
_PEAK_OCTAVES = {"band_stop": (0.15, 0.5)}


def eq_response(frequencies, seed, batch, presets: dict | None = None, return_preset: bool = False):
    """Random magnitude responses ``[batch, len(frequencies)]`` of :func:`random_eq` (linear gain, not dB).

    Per example: a preset drawn with the probabilities of ``presets`` (default :data:`EQ_PRESETS`); a 2nd-order
    Butterworth high-pass and a 4th-order low-pass (8th for ``telephone``, 2nd for ``muffled``) at log-uniform corners
    in the preset's ranges; three Gaussian peaks (in log-frequency, 0.3-1.5 octaves wide) with centres log-uniform and
    gains uniform in the preset's ranges (the ``telephone`` and ``laptop`` presets: one peak at the preset's gain, two
    more at ±2 dB); a spectral tilt, uniform in the preset's dB/octave range, about 1 kHz (below 50 Hz it stays at its
    50 Hz gain). A preset tuple of four entries (no tilt) is accepted too.
    """
    presets = EQ_PRESETS if presets is None else presets
    names = list(presets)
    probabilities = np.asarray([presets[n][0] for n in names], np.float64)
    if probabilities.min() < 0 or probabilities.sum() <= 0:
        raise ValueError(f"eq presets need non-negative probabilities with a positive sum; received {probabilities}")
    edges = tf.constant(np.cumsum(probabilities / probabilities.sum())[:-1], tf.float32)
    seeds = tf.unstack(split_seed(as_seed(seed), 13))
    choice = tf.reduce_sum(tf.cast(uniform([batch, 1], seeds[0])[..., None] >= edges, tf.int32), axis=-1)  # [B, 1]
    f = tf.maximum(tf.convert_to_tensor(frequencies, tf.float32)[None], 1.0)
    log_gain = tf.zeros([batch, tf.shape(f)[1]])
    for index, name in enumerate(names):
        _, high_pass, low_pass, peak, *rest = presets[name]
        tilt = rest[0] if rest else None
        curve = tf.zeros_like(log_gain)
        if high_pass is not None:
            corner = _log_uniform([batch, 1], seeds[1], *high_pass)
            curve += -0.5 * tf.math.log(1.0 + tf.pow(corner / f, 4.0))
        if low_pass is not None:
            corner = _log_uniform([batch, 1], seeds[2], *low_pass)
            order = _LOW_PASS_ORDER.get(name, 4.0)
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
                octaves = uniform([batch, 1], seeds[9 + band], *_PEAK_OCTAVES.get(name, (0.3, 1.5)))
                distance = tf.math.log(f / centre) / np.log(2.0)
                curve += gain_db / 20.0 * np.log(10.0) * tf.exp(-0.5 * tf.square(distance / octaves))
        if tilt is not None:
            slope_db = uniform([batch, 1], seeds[12], *tilt)
            curve += slope_db / 20.0 * np.log(10.0) * tf.math.log(tf.maximum(f, 50.0) / 1000.0) / np.log(2.0)
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
