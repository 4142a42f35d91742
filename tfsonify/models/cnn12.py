"""The CNN12 family of raw-waveform encoders (paper §3.1, Appendix A.1, Figure A.1).

CNN12 has 11 ``conv-relu-[maxpool]`` blocks (stride 1, valid padding, bias, no
normalisation layers; max pool of size 2 after blocks 1-8), temporal average
pooling, Dropout 0.4 and a 512-unit dense layer. The input is a mono float32
waveform ``[batch, time]`` at 8 kHz, scaled to unit peak inside the model.
Full width: 13,757,248 parameters; ``CNN12_x2`` (every width doubled): 52,917,376.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from tfsonify.layers import MaxPool1DWithSwitches, PeakNormalization
from tfsonify.validation import check_int

#: CNN12's input rate in Hz (the paper's 8 kHz); other models carry their own (``models.metadata.sample_rate_of``).
SAMPLE_RATE = 8000

__all__ = ["BlockSpec", "BLOCKS", "NUM_BLOCKS", "CNN12", "CNN12_x2", "block_widths", "min_length", "output_length"]


@dataclass(frozen=True)
class BlockSpec:
    """One ``conv-relu-[maxpool]`` block of Figure A.1 at full width."""

    filters: int
    kernel_size: int
    pooled: bool


BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(64, 7, True),
    BlockSpec(64, 7, True),
    BlockSpec(128, 5, True),
    BlockSpec(128, 5, True),
    BlockSpec(256, 5, True),
    BlockSpec(256, 3, True),
    BlockSpec(512, 3, True),
    BlockSpec(512, 3, True),
    BlockSpec(1024, 3, False),
    BlockSpec(1024, 3, False),
    BlockSpec(2048, 3, False),
)
NUM_BLOCKS = len(BLOCKS)


def block_widths(width_multiplier: float) -> list[int]:
    """Number of filters of ``conv1`` ... ``conv11`` for a width multiplier."""
    return [max(1, int(round(spec.filters * width_multiplier))) for spec in BLOCKS]


def check_layer(layer: int) -> int:
    """``layer`` if it is a CNN12 block index 1..11, else a ValueError saying so."""
    return check_int("layer", layer, 1, NUM_BLOCKS, expected=f"an integer block index in 1..{NUM_BLOCKS}")


def output_length(num_samples: int, layer: int = NUM_BLOCKS) -> int:
    """Time length of block ``layer``'s output (after its pool, if any) for an input of ``num_samples``.

    Returns 0 or less when the input is too short for that block.
    """
    check_layer(layer)
    length = int(num_samples)
    for spec in BLOCKS[:layer]:
        length = length - spec.kernel_size + 1
        if length < 1:
            return 0
        if spec.pooled:
            length //= 2
    return length


def min_length(layer: int = NUM_BLOCKS) -> int:
    """Fewest input samples for which block ``layer`` yields at least one time step.

    ``min_length(11) == 2370`` (0.296 s at 8 kHz): the whole model's minimum.
    """
    check_layer(layer)
    needed = 1
    for spec in reversed(BLOCKS[:layer]):
        if spec.pooled:
            needed *= 2
        needed += spec.kernel_size - 1
    return needed


class ArgumentsConfig:
    """``get_config``/``from_config`` of a model whose config is its ``name``, ``trainable`` and the constructor
    arguments named in ``CONFIG_ARGUMENTS`` (kept as attributes of the same names), in that order."""

    CONFIG_ARGUMENTS: tuple[str, ...] = ()

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                **{argument: getattr(self, argument) for argument in self.CONFIG_ARGUMENTS}}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfsonify")
class CNN12(ArgumentsConfig, keras.Model):
    """CNN12 raw-waveform encoder, optionally with a classification head.

    Layers are named ``peak_normalization``, ``conv1`` ... ``conv11`` (ReLU
    fused), ``pool1`` ... ``pool8``, ``temporal_pool``, ``dropout``,
    ``embedding`` and, with a head, ``classifier``.

    ``pool1`` ... ``pool8`` are :class:`tfsonify.layers.MaxPool1DWithSwitches`
    (the design card's "custom MaxPool layer that returns argmax switches"):
    each returns ``(pooled, switches)``; the next block reads ``pooled`` and the
    deconvnet (:mod:`tfsonify.engine.walk`) unpools with the ``switches`` output of
    the model's own layer. ``get_layer("pool3").output`` is therefore the pair
    ``[pooled, switches]``, both ``[batch, time // 2, channels]``.

    Args:
        width_multiplier: scales every conv width (1.0 = the paper's CNN12,
            2.0 = CNN12_x2; 0.125 or 0.25 give small models for tests and CPU demos).
        num_classes: if given, a dense head on the 512-d embedding.
        multi_label: head activation, sigmoid if True (multi-label BCE, e.g.
            AudioSet, FSD50K) else softmax (categorical CE, e.g. Speech Commands).
        embedding_dim: width of the final dense layer (512 in the paper).
        dropout: dropout rate before the dense layer (0.4 in the paper).
        sample_rate: the rate in Hz the model expects (8000 in the paper);
            stored in the config for readers and exporters, not used in the graph.

    Input: float32 ``[batch, time]`` with ``time >= min_length(11)`` (2370).
    Output: ``[batch, embedding_dim]`` embedding, or ``[batch, num_classes]``
    class probabilities with a head.

    Example:
    >>> model = CNN12(width_multiplier=0.125)
    >>> model(np.zeros((2, 8000), "float32")).shape
    TensorShape([2, 512])
    """

    def __init__(
        self,
        width_multiplier: float = 1.0,
        num_classes: int | None = None,
        multi_label: bool = False,
        embedding_dim: int = 512,
        dropout: float = 0.4,
        sample_rate: int = SAMPLE_RATE,
        **kwargs,
    ):
        if not isinstance(width_multiplier, (int, float)) or isinstance(width_multiplier, bool) or width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be a positive number; received {width_multiplier!r}")
        check_int("num_classes", num_classes, minimum=1, allow_none=True)
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"embedding_dim must be a positive integer; received {embedding_dim!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); received {dropout!r}")
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer in Hz; received {sample_rate!r}")

        # === Functional model ===
        waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
        x = PeakNormalization(name="peak_normalization")(waveform)
        x = keras.layers.Reshape((-1, 1), name="add_channel")(x)
        for index, (spec, width) in enumerate(zip(BLOCKS, block_widths(width_multiplier)), start=1):
            x = keras.layers.Conv1D(width, spec.kernel_size, padding="valid", activation="relu", name=f"conv{index}")(x)
            if spec.pooled:
                x, _switches = MaxPool1DWithSwitches(name=f"pool{index}")(x)  # switches: the deconvnet's
        x = keras.layers.GlobalAveragePooling1D(name="temporal_pool")(x)
        x = keras.layers.Dropout(dropout, name="dropout")(x)
        outputs = keras.layers.Dense(embedding_dim, name="embedding")(x)
        if num_classes is not None:
            activation = "sigmoid" if multi_label else "softmax"
            outputs = keras.layers.Dense(num_classes, activation=activation, name="classifier")(outputs)
        super().__init__(inputs=waveform, outputs=outputs, **kwargs)

        # === Config ===
        self.width_multiplier = float(width_multiplier)
        self.num_classes = num_classes
        self.multi_label = bool(multi_label)
        self.embedding_dim = embedding_dim
        self.dropout = float(dropout)
        self.sample_rate = sample_rate

    CONFIG_ARGUMENTS = ("width_multiplier", "num_classes", "multi_label", "embedding_dim", "dropout", "sample_rate")

    @property
    def conv_layers(self) -> list[keras.layers.Conv1D]:
        """``[conv1, ..., conv11]``: the layers whose kernels the deconvnet shares."""
        return [self.get_layer(f"conv{i}") for i in range(1, NUM_BLOCKS + 1)]

    def encoder(self) -> keras.Model:
        """A model sharing this one's layers: waveform ``[batch, time]`` -> embedding ``[batch, embedding_dim]``."""
        return keras.Model(self.input, self.get_layer("embedding").output, name=f"{self.name}_encoder")


def CNN12_x2(**kwargs) -> CNN12:
    """CNN12 with every conv width doubled (Appendix A.1): 52,917,376 parameters.

    Accepts the same keyword arguments as :class:`CNN12` except ``width_multiplier``.
    """
    if "width_multiplier" in kwargs:
        raise ValueError("CNN12_x2 fixes width_multiplier=2.0; use CNN12(width_multiplier=...) for other widths")
    kwargs.setdefault("name", "cnn12_x2")
    return CNN12(width_multiplier=2.0, **kwargs)


def validate_waveform(waveform, layer: int = NUM_BLOCKS) -> np.ndarray:
    """Check a waveform for CNN12 block ``layer`` and return it as float32 ``[batch, time]``
    (:func:`tfsonify.validation.check_clip`; the minimum is ``min_length(layer)`` samples at 8 kHz)."""
    from tfsonify.validation import check_clip

    check_layer(layer)
    return check_clip(waveform, min_length(layer), f"block {layer}")
