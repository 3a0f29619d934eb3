"""WebSocket data attached to an HTTP flow (``flow.websocket``), shaped like mitmproxy's.

The handshake is the flow's request and its 101 response; the messages that
follow live here, one entry per reassembled message, in both directions.
"""

from __future__ import annotations

import enum
import time
from typing import Any


class Opcode(enum.IntEnum):
    """WebSocket frame opcodes (RFC 6455 section 5.2)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class WebSocketMessage:
    """One complete message; addons may change ``content``/``text`` or ``drop()`` it."""

    def __init__(
        self,
        type: int | Opcode,
        from_client: bool,
        content: bytes,
        timestamp: float | None = None,
        dropped: bool = False,
        injected: bool = False,
    ) -> None:
        self.type = Opcode(type)
        self.from_client = from_client
        self.content = content
        self.timestamp = timestamp if timestamp is not None else time.time()
        self.dropped = dropped
        self.injected = injected

    def __repr__(self) -> str:
        arrow = "->" if self.from_client else "<-"
        shown = self.text if self.is_text else self.content
        return f"WebSocketMessage({arrow} {shown!r})"

    @property
    def is_text(self) -> bool:
        return self.type == Opcode.TEXT

    @property
    def text(self) -> str:
        """The content decoded as UTF-8 (text messages are UTF-8 by definition)."""
        return self.content.decode("utf-8", "replace")

    @text.setter
    def text(self, value: str) -> None:
        self.content = value.encode()

    def drop(self) -> None:
        """Do not forward this message to the other side."""
        self.dropped = True

    def kill(self) -> None:  # mitmproxy's deprecated name for drop()
        self.drop()

    def get_state(self) -> list[Any]:
        return [int(self.type), self.from_client, self.content, self.timestamp, self.dropped, self.injected]

    @classmethod
    def from_state(cls, state: list[Any]) -> WebSocketMessage:
        type_, from_client, content, timestamp, dropped, injected = state
        return cls(type_, from_client, content, timestamp, dropped, injected)


class WebSocketData:
    """All messages of one WebSocket connection plus how it ended."""

    def __init__(self) -> None:
        self.messages: list[WebSocketMessage] = []
        self.closed_by_client: bool | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.timestamp_end: float | None = None

    def __repr__(self) -> str:
        return f"<WebSocketData ({len(self.messages)} messages)>"

    def get_state(self) -> dict[str, Any]:
        return {
            "messages": [m.get_state() for m in self.messages],
            "closed_by_client": self.closed_by_client,
            # (the layer keeps wsproto's CloseReason for known codes: the state is plain data,
            # which --workers marshals)
            "close_code": None if self.close_code is None else int(self.close_code),
            "close_reason": self.close_reason,
            "timestamp_end": self.timestamp_end,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.messages = [WebSocketMessage.from_state(m) for m in state.get("messages", [])]
        self.closed_by_client = state.get("closed_by_client")
        self.close_code = state.get("close_code")
        self.close_reason = state.get("close_reason")
        self.timestamp_end = state.get("timestamp_end")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WebSocketData:
        data = cls()
        data.set_state(state)
        return data
