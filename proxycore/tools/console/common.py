"""Flow-list symbols of mitmproxy's console, for code that renders markers the same way."""

from __future__ import annotations

from proxycore.utils.emoji import MARKERS

SYMBOL_MARK = MARKERS[":default:"]


def render_marker(marker: str) -> str:
    """One glyph for a flow marker: its emoji, the marker itself if it is a known single
    character, else the default mark (a zero-width-joined emoji shows its first glyph)."""
    return MARKERS.get(marker, SYMBOL_MARK)[0]
