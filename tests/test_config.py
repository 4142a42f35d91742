"""tfsonify.train.config: every dataclass field is a flag, with types from the annotations."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from tfsonify.train.config import add_config_arguments, config_from_args


@dataclasses.dataclass
class Example:
    epochs: int = 3
    rate: float = 1e-3
    name: str = dataclasses.field(default="auto", metadata={"choices": ("auto", "tpu")})
    crop: float | None = None
    mix: bool = True
    jit: bool = False
    gain_db: tuple[float, float] | None = (-6.0, 6.0)
    speed: tuple[float, float] | None = None
    fixed: bool = dataclasses.field(default=False, metadata={"flag": False})


def parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Example())
    return config_from_args(parser.parse_args(argv), Example()), parser


def test_defaults_and_help_list_every_flagged_field():
    config, parser = parse([])
    assert config == Example()
    text = parser.format_help()
    for flag in ("--epochs", "--rate", "--name", "--crop", "--mix", "--no-mix", "--jit", "--gain-db", "--speed"):
        assert flag in text
    assert "--fixed" not in text and "(default -6.0,6.0)" in text


def test_values_of_every_kind():
    config, _ = parse(["--epochs", "5", "--rate", "0.5", "--name", "tpu", "--crop", "2.5", "--no-mix", "--jit",
                       "--gain-db", "none", "--speed", "0.8", "1.25"])
    assert config == Example(epochs=5, rate=0.5, name="tpu", crop=2.5, mix=False, jit=True, gain_db=None,
                             speed=(0.8, 1.25))
    config, _ = parse(["--speed", "0.75,1.33", "--crop", "off"])
    assert config.speed == (0.75, 1.33) and config.crop is None


def test_bad_values_are_rejected_with_the_flag_named(capsys):
    with pytest.raises(SystemExit):
        parse(["--epochs", "x"])
    assert "--epochs takes a int" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--name", "gpu"])
    with pytest.raises(ValueError, match="--speed takes LOW,HIGH"):
        parse(["--speed", "0.8"])
    with pytest.raises(ValueError, match="dataclass instance"):
        add_config_arguments(argparse.ArgumentParser(), Example)
