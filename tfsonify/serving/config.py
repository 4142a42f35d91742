"""Which models to serve: TF Serving's ``--model_config_file`` (``ModelServerConfig`` text proto) or a folder.

Parsed with ``tensorflow_serving.config.model_server_config_pb2`` and ``google.protobuf.text_format``
(the ``tensorflow-serving-api`` package), so a ``models.config`` that ``tensorflow_model_server``
accepts means the same here: ``name``, ``base_path``, ``model_platform`` ("tensorflow"),
``model_version_policy`` (``latest { num_versions }``, ``all {}``, ``specific { versions }``) and
``version_labels`` (label -> version). Relative ``base_path`` values are resolved against the
config file's folder (TF Serving resolves them against its working directory); the exporter
writes ``NAME`` (relative) unless given ``--base-path`` (absolute for TF Serving, e.g. ``/models/cnn12`` in Docker),
see :func:`ModelSpec.from_proto`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ModelSpec", "VersionPolicy", "parse_model_config", "read_model_config", "specs_from_folder"]


@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ``model_version_policy``: ``kind`` "latest" (``num_versions`` newest), "all" or "specific"."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __post_init__(self):
        if self.kind not in ("latest", "all", "specific"):
            raise ValueError(f"model_version_policy must be latest, all or specific; received {self.kind!r}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"latest {{ num_versions }} must be >= 1; received {self.num_versions}")
        if self.kind == "specific" and not self.versions:
            raise ValueError("specific { versions } needs at least one version")

    def select(self, available: list[int]) -> list[int]:
        """The versions to serve among ``available`` (loadable version numbers), ascending."""
        ordered = sorted(set(available))
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[-self.num_versions:]


@dataclass(frozen=True)
class ModelSpec:
    """One served model: ``name``, its ``base_path`` (holding integer version folders), policy and labels."""

    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)

    def __hash__(self):  # labels is a dict; specs are compared by value
        return hash((self.name, str(self.base_path), self.policy, tuple(sorted(self.labels.items()))))

    @classmethod
    def from_proto(cls, config, relative_to: Path | None = None) -> "ModelSpec":
        """From a ``tensorflow.serving.ModelConfig`` message; ``ValueError`` for what TF Serving would refuse."""
        if not config.name:
            raise ValueError("every model config needs a name")
        if not config.base_path:
            raise ValueError(f"model {config.name!r} has no base_path")
        if config.model_platform and config.model_platform != "tensorflow":
            raise ValueError(f"model {config.name!r}: model_platform must be 'tensorflow'; received {config.model_platform!r}")
        which = config.model_version_policy.WhichOneof("policy_choice")
        if which == "all":
            policy = VersionPolicy("all")
        elif which == "specific":
            policy = VersionPolicy("specific", versions=tuple(int(v) for v in config.model_version_policy.specific.versions))
        else:  # unset means latest { num_versions: 1 }, as in TF Serving
            num = config.model_version_policy.latest.num_versions if which == "latest" else 1
            policy = VersionPolicy("latest", num_versions=int(num) or 1)
        base = Path(config.base_path)
        if not base.is_absolute() and relative_to is not None:
            base = relative_to / base
        labels = {str(label): int(version) for label, version in config.version_labels.items()}
        for label in labels:
            if not label or label.isdecimal():
                raise ValueError(f"model {config.name!r}: version label {label!r} must be a non-numeric name")
        return cls(config.name, base, policy, labels)


def parse_model_config(text: str, relative_to: Path | None = None) -> list[ModelSpec]:
    """Parse a ``ModelServerConfig`` text proto (``model_config_list { config { ... } }``)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    message = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ValueError(f"model config is not a valid ModelServerConfig text proto: {error}") from None
    return specs_from_proto(message, relative_to)


def specs_from_proto(message, relative_to: Path | None = None) -> list[ModelSpec]:
    """The :class:`ModelSpec` list of a ``tensorflow.serving.ModelServerConfig`` message."""
    if message.WhichOneof("config") != "model_config_list":
        raise ValueError("model config must hold a model_config_list (custom_model_config is not supported)")
    specs = [ModelSpec.from_proto(config, relative_to) for config in message.model_config_list.config]
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"model config names {duplicates} more than once")
    if not specs:
        raise ValueError("model config lists no models")
    return specs


def read_model_config(path: str | os.PathLike) -> list[ModelSpec]:
    """Read ``--model_config_file``; relative base paths are taken relative to the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model config file {str(path)!r} does not exist")
    return parse_model_config(path.read_text(), relative_to=path.parent.resolve())


def _has_versions(base: Path) -> bool:
    return any(p.is_dir() and p.name.isdecimal() and (p / "saved_model.pb").is_file() for p in base.iterdir())


def specs_from_folder(root: str | os.PathLike) -> list[ModelSpec]:
    """One ``latest`` spec per ``root/NAME/`` holding versions (or ``root`` itself if it is a model base path)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"model folder {str(root)!r} does not exist")
    bases = [root] if _has_versions(root) else [p for p in sorted(root.iterdir()) if p.is_dir() and _has_versions(p)]
    if not bases:
        raise ValueError(f"no exported models under {str(root)!r}: expected NAME/VERSION/saved_model.pb "
                         f"(write one with `tfsonify export savedmodel MODEL.keras --out {root}/NAME`)")
    return [ModelSpec(base.name, base.resolve()) for base in bases]
