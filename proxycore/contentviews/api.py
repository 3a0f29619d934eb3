"""The content view protocol (mitmproxy 12's ``Contentview`` API) and the metadata views get."""

from __future__ import annotations

import typing
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

SyntaxHighlight = Literal["css", "javascript", "xml", "yaml", "none", "error"]


@typing.runtime_checkable
class Contentview(typing.Protocol):
    """A way to show bytes as text.

    Subclass it (or write any class with these members) and register an instance with
    :func:`proxycore.contentviews.add`.  ``prettify`` may raise (e.g. ``ValueError``)
    when the data does not fit the view; ``render_priority`` says how well the view
    fits when the user did not pick one (the highest wins; below 0 means "cannot").
    """

    @property
    def name(self) -> str:
        """Display name, e.g. ``"XML/HTML"``; by default the class name minus "Contentview"."""
        return type(self).__name__.removesuffix("Contentview")

    @property
    def syntax_highlight(self) -> SyntaxHighlight:
        return "none"

    @abstractmethod
    def prettify(self, data: bytes, metadata: Metadata) -> str:
        raise NotImplementedError

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return 0

    def __lt__(self, other: Any) -> bool:
        return self.name < other.name


@typing.runtime_checkable
class InteractiveContentview(Contentview, typing.Protocol):
    """A view whose (edited) output can be turned back into bytes."""

    @abstractmethod
    def reencode(self, prettified: str, metadata: Metadata) -> bytes:
        raise NotImplementedError


@dataclass
class Metadata:
    """What a view may know about the data besides the bytes; any field may be None."""

    flow: Any = None
    #: ``type/subtype`` of the HTTP Content-Type header, lowercase, without parameters
    content_type: str | None = None
    http_message: Any = None
    tcp_message: Any = None
    udp_message: Any = None
    websocket_message: Any = None
    dns_message: Any = None
    protobuf_definitions: Path | None = None
    #: when re-encoding: the data that was prettified
    original_data: bytes | None = None
