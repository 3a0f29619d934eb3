"""The content view routes' bridge to ``proxycore.contentviews`` (web API spec, sections 3.2, 5.6).

The API needs two things from a content view registry:

* ``view_names() -> list[str]``: the names ``/state`` lists (lowercase, ``auto``
  first, then sorted, without ``query``);
* ``prettify_message(message, flow, view_name="auto")`` returning an object with
  ``text``, ``view_name``, ``syntax_highlight`` and ``description``.

When ``proxycore.contentviews`` is not installed, a plain "raw" rendering stands
in, so that the routes and the UI work with just the body text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from proxycore.flow import Flow


class NoContent(Exception):
    """The flow has nothing for that part (no messages, no response): a 400."""


@dataclass
class Pretty:
    text: str
    view_name: str | None
    syntax_highlight: str
    description: str


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


MISSING = Pretty("Content is missing.", None, "error", "")


def _raw(message: Any) -> Pretty:
    """Fallback view: the decoded body as text, control characters shown as dots."""
    if hasattr(message, "get_content"):
        content = message.get_content(strict=False) or b""
        coding = message.headers.get("content-encoding")
        description = f"[decoded {coding}]" if coding and content != message.raw_content else ""
    else:
        content, description = message.content, ""
    text = content.decode("utf-8", "replace")
    return Pretty(_CONTROL.sub(".", text), "Raw", "none", description)


def _registry() -> Any:
    try:
        from proxycore import contentviews  # type: ignore[attr-defined]
    except ImportError:
        return None
    return contentviews


def view_names() -> list[str]:
    registry = _registry()
    if registry is None:
        return ["auto", "raw"]
    names = [n.lower() for n in registry.view_names() if n.lower() not in ("auto", "query")]
    return ["auto", *sorted(set(names))]


def prettify(message: Any, flow: Flow, view_name: str) -> Pretty:
    if getattr(message, "raw_content", b"") is None:  # a streamed body that was not kept
        return MISSING
    registry = _registry()
    if registry is None:
        return _raw(message)
    return registry.prettify_message(message, flow, view_name=view_name)


def cut_after_n_lines(text: str, n: int) -> str:
    """Keep the text up to and including its ``n``-th newline."""
    position = -1
    for _ in range(n):
        position = text.find("\n", position + 1)
        if position == -1:
            return text
    return text[: position + 1]


def _to_json(message: Any, flow: Flow, view_name: str, max_lines: int | None) -> dict[str, Any]:
    pretty = prettify(message, flow, view_name)
    text = pretty.text
    if max_lines:
        text = cut_after_n_lines(text, max_lines)
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
    if part == "messages":
        websocket = getattr(flow, "websocket", None)
        if websocket is not None:
            messages = websocket.messages
        elif flow.type in ("tcp", "udp"):
            messages = flow.messages  # type: ignore[attr-defined]
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
