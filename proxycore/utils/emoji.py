"""The one table of flow markers: name -> the character shown for it.

A flow's ``marked`` is one of these names or empty: GitHub's emoji short codes
(``:red_circle:``), ``:default:`` (the plain dot), or a letter or digit standing for
itself.  The table is data (``markers.json`` beside this module), written by
``tools/make_markers.py``, which names its source; commands, the console and the web
API all read it from here.  ``emoji`` is the name mitmproxy's module exports.

The file (~1,900 names) is read at the first use of a name below, not at import: a start
marks no flow.
"""

from __future__ import annotations

import os
from typing import Any

emoji: dict[str, str]  # name -> character
MARKERS: dict[str, str]  # the same table
#: What an unknown marker shows as (mitmproxy's web UI does the same).
UNKNOWN_MARKER: str

_LAZY = ("emoji", "MARKERS", "UNKNOWN_MARKER")
_UNKNOWN_NAME = ":red_circle:"


def _load() -> dict[str, str]:
    import json

    with open(os.path.join(os.path.dirname(__file__), "markers.json"), encoding="utf-8") as f:
        table: dict[str, str] = json.load(f)
    globals().update(emoji=table, MARKERS=table, UNKNOWN_MARKER=table[_UNKNOWN_NAME])
    return table


def markers() -> dict[str, str]:
    """The table (``emoji``), read on the first call."""
    table: dict[str, str] | None = globals().get("emoji")
    return table if table is not None else _load()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        markers()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def marker_char(marked: str) -> str:
    """The character a UI shows for a flow's ``marked`` value ('' when unmarked)."""
    if not marked:
        return ""
    table = markers()
    return table.get(marked, table[_UNKNOWN_NAME])
