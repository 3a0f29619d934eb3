"""The test suite (docs/testing.md).

Transitional: test modules moved from ``tests/`` into folders (``tests/e2e/``, ``tests/layers/``,
...). Branches written before the move import e.g. ``tests.test_e2e``; the finder below maps
such a name to the one module of that name in a folder, so their tests keep importing while
they are merged. New code imports the helpers (tests/processes.py, tests/flows.py, ...) or
the folder path. Remove this once no branch imports the old names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
from importlib.machinery import ModuleSpec
from pathlib import Path

_HERE = Path(__file__).parent


class _Alias(importlib.abc.Loader):
    def __init__(self, real: str) -> None:
        self.real = real

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        return importlib.import_module(self.real)

    def exec_module(self, module: types.ModuleType) -> None:
        """The real module has run already."""


class _MovedTestModules(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or not name.startswith("test_") or (_HERE / f"{name}.py").exists():
            return None
        found = [p for p in _HERE.glob(f"*/{name}.py") if p.parent.name != "adversarial"]
        if len(found) != 1:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(f"{__name__}.{found[0].parent.name}.{name}"))


sys.meta_path.append(_MovedTestModules())
