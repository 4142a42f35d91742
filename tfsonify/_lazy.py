"""PEP 562 lazy exports: a package lists its public names and the modules that define them; each module is imported
on the first look-up of one of its names (so a package's ``__init__`` can stay free of TensorFlow)."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping


def lazy_exports(package: str, exports: Mapping[str, str]):
    """``(__getattr__, __dir__)`` for the package ``package`` (already in ``sys.modules``, i.e. called from its
    ``__init__``): ``exports`` maps each public name to the module that defines it. A name, once imported, is bound
    in the package's namespace, so later look-ups skip ``__getattr__``."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
