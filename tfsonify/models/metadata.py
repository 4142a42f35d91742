"""What a model needs to be sonified without its Python class: geometry, sample rate and class names.

One small, JSON-serialisable record (:class:`ModelMetadata`) travels with every artefact tfsonify writes:

- ``.keras`` files: the member ``tfsonify.json`` of the archive (:data:`ARCHIVE_MEMBER`), written by
  :func:`tfsonify.models.checkpoint.save_model` and read by :func:`tfsonify.models.checkpoint.load_checkpoint`
  (Keras ignores the extra member; a file saved with plain ``model.save`` simply has none);
- SavedModels: the same fields in ``assets.extra/tfsonify.json`` (:mod:`tfsonify.export.savedmodel`);
- ``.tflite`` files: a flatbuffer metadata entry named ``tfsonify`` (:mod:`tfsonify.export.tflite`), read without
  TensorFlow by :func:`tfsonify.edge.metadata.read_metadata`.

The record holds, per sonifiable layer (``LayerInfo`` of :class:`tfsonify.engine.walk.DeconvNet`), its Keras name,
block index (or None), number of maps, receptive field and total stride in input samples and the fewest input samples
it accepts; and the model's sample rate in Hz, fixed input length (or None) and class names (or None).

This module imports no TensorFlow (only :func:`describe` walks a model, importing the engine when called).
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["ARCHIVE_MEMBER", "FORMAT", "DEFAULT_SAMPLE_RATE", "LayerGeometry", "ModelMetadata", "describe",
           "read_archive_metadata", "write_archive_metadata", "metadata_of", "attach", "sample_rate_of",
           "class_names_of", "check_class_names", "class_label", "load_class_names"]

FORMAT = "tfsonify-model/1"
ARCHIVE_MEMBER = "tfsonify.json"
DEFAULT_SAMPLE_RATE = 8000
"""The rate in Hz assumed for a model that carries none (no metadata, no ``sample_rate`` attribute): the paper's
8 kHz, as :class:`tfsonify.Sonifier` assumes. Save a model with ``save_model(model, path, sample_rate=HZ)`` to
record its own."""

_ATTRIBUTE = "_tfsonify_metadata"


@dataclass(frozen=True)
class LayerGeometry:
    """One sonifiable layer: ``name`` (Keras), ``block`` (1-based conv block index or None), ``channels`` (maps),
    ``receptive_field`` and ``stride`` (input samples), ``min_length`` (fewest input samples giving one step),
    ``window_obstacle`` (why exact windows cannot reproduce the whole-clip pass there, e.g. "layer 'c1' ('same'
    padding)", or None: :meth:`tfsonify.engine.walk.DeconvNet.window_obstacle`)."""

    name: str
    block: int | None
    channels: int
    receptive_field: int
    stride: int
    min_length: int
    window_obstacle: str | None = None


@dataclass(frozen=True)
class ModelMetadata:
    """Geometry, rate and labels of a model (see the module docstring).

    Attributes:
        sample_rate: input rate in Hz.
        layers: every sonifiable layer in graph order (empty when the deconvnet cannot walk the model).
        class_names: one name per output unit of the model's head, or None.
        input_length: the model's fixed input length in samples (CREPE: 1024), or None for any length.
        model: the Keras model name (informative).
    """

    sample_rate: int
    layers: tuple[LayerGeometry, ...] = ()
    class_names: tuple[str, ...] | None = None
    input_length: int | None = None
    model: str = ""
    format: str = field(default=FORMAT)

    @property
    def blocks(self) -> list[LayerGeometry]:
        """The layers with a block index, in block order (layer ids ``1..N`` of the exported signatures)."""
        return sorted((layer for layer in self.layers if layer.block is not None), key=lambda layer: layer.block)

    def layer(self, layer: int | str) -> LayerGeometry:
        """The geometry of block index ``layer`` (1-based) or of the layer named ``layer``; ``ValueError`` if absent."""
        for info in self.layers:
            if (info.name == layer) if isinstance(layer, str) else (info.block == layer):
                return info
        what = f"layer {layer!r}" if isinstance(layer, str) else f"block {layer}"
        raise ValueError(f"{what} is not a sonifiable layer of model {self.model!r} (blocks 1..{len(self.blocks)}; "
                         f"layers {[info.name for info in self.layers]})")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["layers"] = [asdict(layer) for layer in self.layers]
        data["class_names"] = None if self.class_names is None else list(self.class_names)
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "metadata") -> "ModelMetadata":
        """Parse :meth:`to_dict`'s output; ``ValueError`` naming ``source`` for a malformed or unknown record."""
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            rate = data["sample_rate"]
            if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
                raise ValueError(f"sample_rate {rate!r} is not a positive integer")
            layers = tuple(LayerGeometry(**layer) for layer in data.get("layers", ()))
            names = data.get("class_names")
            if names is not None and not all(isinstance(n, str) for n in names):
                raise ValueError("class_names must be strings")
            length = data.get("input_length")
            return cls(int(rate), layers, None if names is None else tuple(names),
                       None if length is None else int(length), str(data.get("model", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{source} holds no valid tfsonify model record: {error}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "metadata") -> "ModelMetadata":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{source} holds no valid tfsonify model record: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{source} holds no valid tfsonify model record: not a JSON object")
        return cls.from_dict(data, source)


def check_class_names(class_names: Sequence[str] | None, num_classes: int | None, model: str = "model") -> tuple[str, ...] | None:
    """``class_names`` as a tuple of strings, checked against the head's ``num_classes`` (None: not checked)."""
    if class_names is None:
        return None
    if isinstance(class_names, str) or not all(isinstance(name, str) for name in class_names):
        raise ValueError(f"class_names must be a list of strings; received {class_names!r}")
    names = tuple(class_names)
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(f"{len(names)} class names given for model {model!r}, whose output has {num_classes} units")
    return names


def _num_outputs(model) -> int | None:
    """Units of the model's (first) output's last axis, or None if unknown."""
    try:
        size = model.outputs[0].shape[-1]
    except (AttributeError, IndexError, ValueError, TypeError):
        return None
    return None if size is None else int(size)


def _encoder(model):
    """A contrastive model's encoder (a Keras model held as the attribute ``encoder``), or None (CNN12's
    ``encoder`` is a method that builds a truncated copy, not a part to describe)."""
    import keras

    encoder = getattr(model, "encoder", None)
    return encoder if isinstance(encoder, keras.Model) else None


def describe(model, sample_rate: int | None = None, class_names: Sequence[str] | None = None) -> ModelMetadata:
    """The :class:`ModelMetadata` of a Keras model (walks it with :class:`tfsonify.engine.walk.DeconvNet`).

    Args:
        model: any Keras model; a contrastive model is described by its encoder's layers. A model the deconvnet
            cannot walk gets an empty ``layers``.
        sample_rate: its rate in Hz; default: its stored metadata, else its ``sample_rate`` attribute, else
            :data:`DEFAULT_SAMPLE_RATE`.
        class_names: names of its output units (checked against the output width); default: the stored ones.
    """
    from tfsonify.engine.walk import DeconvNet

    stored = getattr(model, _ATTRIBUTE, None)
    rate = sample_rate_of(model) if sample_rate is None else sample_rate
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz; received {rate!r}")
    if class_names is None and stored is not None:
        class_names = stored.class_names
    names = check_class_names(class_names, _num_outputs(model), getattr(model, "name", "model"))
    target = model if _encoder(model) is None else _encoder(model)
    try:
        walk = DeconvNet(target)
        layers = tuple(LayerGeometry(i.name, i.block, int(i.channels), int(i.receptive_field), int(i.stride),
                                     int(i.min_length), walk.window_obstacle(i.name)) for i in walk.layers())
    except ValueError:
        layers = ()
    try:
        fixed = target.inputs[0].shape[1]
    except (AttributeError, IndexError, ValueError, TypeError):
        fixed = None
    return ModelMetadata(int(rate), layers, names, None if fixed is None else int(fixed), str(getattr(model, "name", "")))


def read_archive_metadata(path: str | os.PathLike) -> ModelMetadata | None:
    """The record stored in a ``.keras`` archive, or None if it holds none (saved with plain ``model.save``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if ARCHIVE_MEMBER not in archive.namelist():
                return None
            text = archive.read(ARCHIVE_MEMBER)
    except (OSError, zipfile.BadZipFile):
        return None
    return ModelMetadata.from_json(text, f"{str(path)!r} ({ARCHIVE_MEMBER})")


def write_archive_metadata(path: str | os.PathLike, metadata: ModelMetadata) -> None:
    """Add (or replace) the record in the ``.keras`` archive ``path`` (a zip file Keras wrote)."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info.filename)) for info in archive.infolist() if info.filename != ARCHIVE_MEMBER]
    if len(members) == len(zipfile.ZipFile(path).infolist()):  # no old record: append in place
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(ARCHIVE_MEMBER, metadata.to_json())
        return
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
        archive.writestr(ARCHIVE_MEMBER, metadata.to_json())


def attach(model, metadata: ModelMetadata) -> None:
    """Keep ``metadata`` on ``model`` (and on a contrastive model's encoder); set ``model.sample_rate`` when the
    model has no such attribute, so :class:`tfsonify.Sonifier` reads the stored rate."""
    targets = [model] + ([] if _encoder(model) is None else [_encoder(model)])
    for target in targets:
        object.__setattr__(target, _ATTRIBUTE, metadata)  # a plain attribute: not tracked, not serialised
        if getattr(target, "sample_rate", None) is None:
            object.__setattr__(target, "sample_rate", metadata.sample_rate)


def metadata_of(model) -> ModelMetadata | None:
    """The record attached by :func:`tfsonify.models.checkpoint.load_checkpoint` (or :func:`attach`), or None."""
    return getattr(model, _ATTRIBUTE, None)


def sample_rate_of(model) -> int:
    """The rate in Hz of ``model``: its stored metadata, else its ``sample_rate`` attribute (CNN12: its config,
    CREPE: 16000), else :data:`DEFAULT_SAMPLE_RATE`."""
    stored = metadata_of(model)
    if stored is not None:
        return stored.sample_rate
    rate = getattr(model, "sample_rate", None)
    return DEFAULT_SAMPLE_RATE if rate is None else int(rate)


def class_names_of(model) -> list[str] | None:
    """The class names stored with ``model`` (see :func:`tfsonify.models.checkpoint.save_model`), or None."""
    stored = metadata_of(model)
    names = None if stored is None else stored.class_names
    if names is None:
        names = getattr(model, "class_names", None)
    return None if names is None else [str(name) for name in names]


def class_label(class_names: Sequence[str] | None, index: int) -> str:
    """``class_names[index]`` or ``"class {index}"`` without names (for messages and pages)."""
    if class_names is not None and 0 <= index < len(class_names):
        return str(class_names[index])
    return f"class {index}"


def load_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a text file (one per line) or a JSON list of strings; ``ValueError`` naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"cannot read labels file {str(path)!r}: {error.strerror}") from None
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"labels file {str(path)!r} is not a JSON list: {error}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"labels file {str(path)!r} must hold a JSON list of strings")
        return names
    return [line.strip() for line in text.splitlines() if line.strip()]
