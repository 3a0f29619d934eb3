"""Paths to data files that sit next to a module (``tdata.path("...")`` in tests)."""

from __future__ import annotations

import importlib
import inspect
import os


class Data:
    """Resolves paths relative to the folder of module ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        source = inspect.getsourcefile(importlib.import_module(name))
        if source is None:
            raise ValueError(f"module {name} has no source file to resolve data paths from")
        self.dirname = os.path.abspath(os.path.dirname(source))

    def push(self, subpath: str) -> Data:
        """The same kind of resolver, rooted at ``subpath`` below this one."""
        moved = Data(self.name)
        moved.dirname = os.path.normpath(os.path.join(self.dirname, subpath))
        return moved

    def path(self, path: str) -> str:
        """The absolute path of ``path``; ValueError if nothing is there (a typo in a test)."""
        full = os.path.normpath(os.path.join(self.dirname, path))
        if not os.path.exists(full):
            raise ValueError(f"dataPath: {full} does not exist.")
        return full


pkg_data = Data(__name__).push("..")
