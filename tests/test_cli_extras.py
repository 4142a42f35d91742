"""Extras and the version: a missing optional package names its extra in one line; one version source."""
from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from tfsonify import cli


@pytest.mark.parametrize("module, command, extra", [
    ("starlette.applications", "explore", "explore"), ("uvicorn", "explore", "explore"), ("PIL", "explore", "explore"),
    ("starlette", "serve", "serve"), ("tensorflow_serving.apis", "request", "serve"), ("grpc", "serve", "serve"),
    ("apache_beam", "sonify-dataset", "beam"), ("ai_edge_litert.interpreter", "export", "lite"),
    ("sounddevice", "listen", "live"), ("tensorflow", "sonify", "tf"), ("keras", "report", "tf")])
def test_a_missing_package_names_its_extra(module, command, extra):
    message = cli._missing_extra(ModuleNotFoundError(name=module), command)
    assert message.endswith(f"pip install 'tfsonify[{extra}]'") and "\n" not in message


def test_other_missing_modules_are_not_hidden():
    assert cli._missing_extra(ModuleNotFoundError(name="tfsonify.nothing"), "sonify") is None


def test_every_extra_the_messages_name_exists(tmp_path):
    with open(cli.__file__.replace("tfsonify/cli.py", "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    extras = project["optional-dependencies"]
    assert set(cli.EXTRA_OF.values()) <= set(extras)
    assert extras["serving"] == ["tfsonify[explore,serve]"]
    assert project["dynamic"] == ["version"]


def test_version_has_one_source():
    import tfsonify

    done = subprocess.run([sys.executable, "-m", "tfsonify", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"tfsonify {tfsonify.__version__}"
