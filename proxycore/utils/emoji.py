"""The one table of flow markers: name -> the character shown for it.

A flow's ``marked`` is one of these names or empty: GitHub's emoji short codes
(``:red_circle:``), ``:default:`` (the plain dot), or a letter or digit standing for
itself.  The table is data (``markers.json`` beside this module), written by
``tools/make_markers.py``, which names its source; commands, the console and the web
API all read it from here.  ``emoji`` is the name mitmproxy's module exports.
"""

from __future__ import annotations

import json
from pathlib import Path

emoji: dict[str, str] = json.loads((Path(__file__).parent / "markers.json").read_text(encoding="utf-8"))
MARKERS = emoji

#: What an unknown marker shows as (mitmproxy's web UI does the same).
UNKNOWN_MARKER = emoji[":red_circle:"]


def marker_char(marked: str) -> str:
    """The character a UI shows for a flow's ``marked`` value ('' when unmarked)."""
    if not marked:
        return ""
    return emoji.get(marked, UNKNOWN_MARKER)
