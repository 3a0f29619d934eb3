"""The content view routes (web API spec, sections 3.2 and 5.6) on top of ``proxycore.contentviews``."""

from __future__ import annotations

from typing import Any

from proxycore import contentviews
from proxycore.flow import Flow
from proxycore.tcp import TCPFlow
from proxycore.udp import UDPFlow
from proxycore.utils.textutils import cut_after_lines


class NoContent(Exception):
    """The flow has nothing for that part (no messages, no response): a 400."""


def view_names() -> list[str]:
    """What ``/state`` lists as ``contentViews``."""
    return contentviews.view_names()


def _to_json(message: Any, flow: Flow, view_name: str, max_lines: int | None) -> dict[str, Any]:
    pretty = contentviews.prettify_message(message, flow, view_name)
    text = pretty.text
    if max_lines:
        text = cut_after_lines(text, max_lines)
    return {
        "text": text,
        "view_name": pretty.view_name,
        "syntax_highlight": pretty.syntax_highlight,
        "description": pretty.description,
    }


def render(flow: Flow, part: str, view_name: str, max_lines: int | None) -> Any:
    """The JSON for ``/flows/<id>/<part>/content/<view_name>.json``."""
    if view_name.lower() == "auto":
        view_name = "auto"
    elif contentviews.get(view_name) is None:
        # mitmweb silently shows the best view instead; a client asking for a view it
        # expects (a protobuf view, say) should learn that it is not there.
        raise NoContent(f"Unknown content view: {view_name}")
    if part == "messages":
        websocket = getattr(flow, "websocket", None)
        if websocket is not None:
            messages = websocket.messages
        elif isinstance(flow, TCPFlow | UDPFlow):
            messages = flow.messages
        else:
            raise NoContent("This flow has no messages.")
        result = []
        for m in messages:
            data = _to_json(m, flow, view_name, max_lines)
            data["from_client"] = m.from_client
            data["timestamp"] = m.timestamp
            result.append(data)
            if max_lines:
                max_lines -= data["text"].count("\n") + 1
                if max_lines <= 0:
                    break
        return result
    if not hasattr(flow, part):
        raise NoContent(f"This flow has no {part}.")
    message = getattr(flow, part)
    if message is None:
        raise NoContent(f"This flow has no {part}.")
    return _to_json(message, flow, view_name, max_lines)
