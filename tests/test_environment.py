"""The set-up installs exactly the versions recorded in requirements/lock.txt (scripts/check_lock.py)."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"


@pytest.fixture(scope="module")
def check_lock():
    spec = importlib.util.spec_from_file_location("check_lock", REPO / "scripts" / "check_lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lock_parser_keeps_the_pins_whose_markers_hold(check_lock):
    text = (
        "numpy==2.2.6 ; python_full_version < '3.0'\n"
        "    # via tfsonify (pyproject.toml)\n"
        "numpy==2.4.6 ; python_full_version >= '3.0'\n"
        "Typing_Extensions==4.16.0\n"
        "colorama==0.4.6 ; sys_platform == 'no-such-platform'\n"
    )
    assert check_lock.locked_versions(text) == {"numpy": "2.4.6", "typing-extensions": "4.16.0"}
    with pytest.raises(ValueError, match="not 'name==version"):
        check_lock.locked_versions("numpy>=2\n")


def test_mismatches_name_every_difference(check_lock):
    pins = {"numpy": "2.4.6", "keras": "3.15.1", "protobuf": "7.36.2"}
    installed = {"numpy": "2.4.6", "keras": "3.12.0"}
    assert check_lock.mismatches(pins, installed) == [
        "keras: locked 3.15.1, installed 3.12.0",
        "protobuf: locked 7.36.2, not installed",
    ]
    assert check_lock.mismatches(pins, {**installed, "keras": "3.15.1", "protobuf": "7.36.2"}) == []


def test_the_lock_pins_the_core_stack(check_lock):
    pins = check_lock.locked_versions(LOCK.read_text())
    for name in ("tensorflow", "keras", "numpy", "protobuf", "ai-edge-litert", "tensorflow-serving-api"):
        assert name in pins, f"{name} missing from {LOCK}"


@pytest.mark.skipif(Path(sys.prefix).resolve() != (REPO / ".venv").resolve(),
                    reason="runs in the project's own .venv (scripts/setup.sh); elsewhere versions are the user's")
def test_the_project_environment_holds_the_locked_versions(check_lock):
    """In the set-up's environment every locked package is installed at its recorded version (CI runs here)."""
    pins = check_lock.locked_versions(LOCK.read_text())
    assert check_lock.mismatches(pins, check_lock.installed_versions()) == []
