"""The Raw view: the bytes as UTF-8, undecodable bytes as ``\\xNN``; the fallback of every view."""

from __future__ import annotations

from proxycore.contentviews.api import Contentview, Metadata


class RawContentview(Contentview):
    name = "Raw"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return data.decode("utf-8", "backslashreplace")

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return 0.1


raw = RawContentview()
