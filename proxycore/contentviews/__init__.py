"""Content views: how message bodies are shown as text (mitmproxy 12's contentview API).

proxydump (``--flow-detail 3``/``4``) and the web API show bodies through
:func:`prettify_message`.  Addons add their own views with :func:`add`::

    from proxycore import contentviews

    class Upper(contentviews.Contentview):
        def prettify(self, data, metadata):
            return data.decode().upper()

    contentviews.add(Upper)
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any

from proxycore.contentviews.api import (
    Contentview,
    InteractiveContentview,
    Metadata,
    SyntaxHighlight,
)
from proxycore.contentviews.css import css
from proxycore.contentviews.dns_view import dns
from proxycore.contentviews.forms import multipart, query, urlencoded
from proxycore.contentviews.graphql import graphql
from proxycore.contentviews.grpc_view import grpc
from proxycore.contentviews.hexdump import hex_dump, hex_stream
from proxycore.contentviews.image import image
from proxycore.contentviews.javascript import javascript
from proxycore.contentviews.json_view import json_view
from proxycore.contentviews.mqtt import mqtt
from proxycore.contentviews.msgpack_view import msgpack
from proxycore.contentviews.protobuf_view import protobuf
from proxycore.contentviews.raw import raw
from proxycore.contentviews.registry import ContentviewRegistry
from proxycore.contentviews.socketio import socket_io
from proxycore.contentviews.wbxml_view import wbxml
from proxycore.contentviews.xml_html import xml_html
from proxycore.contentviews.zip_view import zip_archive
from proxycore.http import Message as HTTPMessage
from proxycore.http import parse_content_type
from proxycore.utils.textutils import escape_control

__all__ = [
    "Contentview",
    "ContentviewResult",
    "InteractiveContentview",
    "Metadata",
    "SyntaxHighlight",
    "add",
    "get",
    "get_data",
    "make_metadata",
    "prettify_message",
    "registry",
    "remove",
    "view_names",
]

logger = logging.getLogger("proxycore.contentviews")


@dataclass
class ContentviewResult:
    text: str
    syntax_highlight: SyntaxHighlight
    view_name: str | None
    description: str


registry = ContentviewRegistry()
for _view in (css, dns, graphql, hex_dump, hex_stream, image, javascript, json_view, mqtt, msgpack, multipart,
              query, raw, socket_io, urlencoded, xml_html, zip_archive,
              protobuf, grpc, wbxml):  # mitmproxy 12 has protobuf and grpc from mitmproxy-rs
    registry.register(_view)


def add(view: Contentview | type[Contentview]) -> None:
    """Register a view (an instance, or a class that is instantiated without arguments).

    A view with the name of an existing one replaces it."""
    registry.register(view)


def remove(view: Contentview | type[Contentview] | str) -> None:
    """Unregister a view, given as the view, its class or its name."""
    if isinstance(view, type):
        view = view()
    registry.unregister(view)


def get(name: str) -> Contentview | None:
    """The view called ``name`` (any case), or None."""
    try:
        return registry[name]
    except KeyError:
        return None


def view_names() -> list[str]:
    """Names for choosing a view, as mitmweb's ``/state.contentViews`` lists them:
    ``"auto"`` first, then the lowercase names sorted, without ``"query"`` (chosen
    automatically for requests without a body, never by hand)."""
    return [name for name in registry.available_views() if name != "query"]


def get_data(message: Any) -> tuple[bytes | None, str]:
    """The bytes to show and a description of what was done to them.

    HTTP bodies are shown with their Content-Encoding undone (``"[decoded gzip]"``);
    if that fails, the raw bytes are shown (``"[cannot decode]"``)."""
    try:
        content = message.content
    except ValueError:
        return message.raw_content, "[cannot decode]"
    if isinstance(message, HTTPMessage) and content != message.raw_content:
        return content, f"[decoded {message.headers.get('content-encoding')}]"
    return content, ""


def make_metadata(message: Any, flow: Any) -> Metadata:
    from proxycore.dns import DNSMessage
    from proxycore.tcp import TCPMessage
    from proxycore.udp import UDPMessage
    from proxycore.websocket import WebSocketMessage

    metadata = Metadata(flow=flow)
    options = _options()
    if options is not None and getattr(options, "protobuf_definitions", None):
        from pathlib import Path

        metadata.protobuf_definitions = Path(options.protobuf_definitions).expanduser()
    if isinstance(message, HTTPMessage):
        metadata.http_message = message
        parsed = parse_content_type(message.headers.get("content-type") or "")
        if parsed:
            metadata.content_type = f"{parsed[0]}/{parsed[1]}"
    elif isinstance(message, TCPMessage):
        metadata.tcp_message = message
    elif isinstance(message, UDPMessage):
        metadata.udp_message = message
    elif isinstance(message, DNSMessage):
        metadata.dns_message = message
    elif isinstance(message, WebSocketMessage):
        metadata.websocket_message = message
    return metadata


def _options() -> Any:
    from proxycore import ctx

    return getattr(ctx, "options", None)


def prettify_message(
    message: Any, flow: Any, view_name: str = "auto", registry: ContentviewRegistry = registry
) -> ContentviewResult:
    """Show an HTTP request/response body, a WebSocket message or a TCP message as text.

    ``view_name`` is a view's name in any case; "auto" or an unknown name picks the
    view with the highest render priority.  If the picked view fails, Raw is used and
    the description says so; if the user picked a view that fails, the text explains
    why.  Control characters in the text are shown as ".".
    """
    data, description = get_data(message)
    if data is None:
        return ContentviewResult(
            text="Content is missing.", syntax_highlight="error", view_name=None, description=""
        )
    metadata = make_metadata(message, flow)
    view = registry.get_view(data, metadata, view_name)
    try:
        result = ContentviewResult(
            text=view.prettify(data, metadata),
            syntax_highlight=view.syntax_highlight,
            view_name=view.name,
            description=description,
        )
    except Exception as e:
        logger.debug(f"Contentview {view.name!r} failed: {e}", exc_info=True)
        if view_name == "auto":
            result = ContentviewResult(
                text=raw.prettify(data, metadata),
                syntax_highlight=raw.syntax_highlight,
                view_name=raw.name,
                description=f"{description}[failed to parse as {view.name}]",
            )
        else:
            tb = e.__traceback__.tb_next if e.__traceback__ else None  # from the view's frame on
            details = "".join(traceback.format_exception(type(e), e, tb))
            result = ContentviewResult(
                text=f"Couldn't parse as {view.name}:\n{details}",
                syntax_highlight="error",
                view_name=view.name,
                description=description,
            )
    result.text = escape_control(result.text)
    return result


# HTTP/3 frames in raw QUIC streams (reverse:quic://); registered here, after the others.
from proxycore.contentviews.http3_frames import http3_frames  # noqa: E402

registry.register(http3_frames)
