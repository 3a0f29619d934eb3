"""UDP flows: the datagrams of one client/server "connection" (a peer pair), both ways."""

from __future__ import annotations

import time
from typing import Any

from proxycore.connection import Client, Server
from proxycore.flow import Flow


class UDPMessage:
    """One datagram; ``content`` may be changed by a udp_message hook before it is sent on."""

    def __init__(self, from_client: bool, content: bytes, timestamp: float | None = None) -> None:
        self.from_client = from_client
        self.content = content
        self.timestamp = timestamp if timestamp is not None else time.time()

    def __repr__(self) -> str:
        arrow = "->" if self.from_client else "<-"
        return f"UDPMessage({arrow} {self.content!r})"

    def get_state(self) -> list[Any]:
        return [self.from_client, self.content, self.timestamp]

    def set_state(self, state: list[Any]) -> None:
        self.from_client, self.content, self.timestamp = state

    @classmethod
    def from_state(cls, state: list[Any]) -> UDPMessage:
        from_client, content, timestamp = state
        return cls(from_client, content, timestamp)

    def copy(self) -> UDPMessage:
        return UDPMessage.from_state(self.get_state())


class UDPFlow(Flow):
    """Stored as mitmproxy stores it: the common flow fields plus ``messages``."""

    type = "udp"

    def __init__(self, client_conn: Client, server_conn: Server, live: bool = False) -> None:
        super().__init__(client_conn, server_conn, live)
        self.messages: list[UDPMessage] = []

    def __repr__(self) -> str:
        return f"<UDPFlow ({len(self.messages)} messages)>"

    def state_with(self, client_conn: Any, server_conn: Any) -> dict[str, Any]:
        state = super().state_with(client_conn, server_conn)
        state["messages"] = [m.get_state() for m in self.messages]
        return state

    def set_state_with(self, state: dict[str, Any], client_conn: Client, server_conn: Server) -> None:
        self.messages = [UDPMessage.from_state(m) for m in state.get("messages", [])]
        super().set_state_with(state, client_conn, server_conn)
