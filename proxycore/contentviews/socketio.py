"""The Socket.IO view: the Engine.IO / Socket.IO packet type of a WebSocket message, then
its payload.  Pings, pongs and acknowledgements show as nothing."""

from __future__ import annotations

from proxycore.contentviews.api import Contentview, Metadata
from proxycore.utils.strutils import bytes_to_escaped_str

# Engine.IO packet types by their digit; "4" (message) carries a Socket.IO packet.
ENGINE_IO = {"0": "OPEN", "1": "CLOSE", "2": "PING", "3": "PONG", "4": "MESSAGE", "5": "UPGRADE", "6": "NOOP"}
SOCKET_IO = {"0": "CONNECT", "1": "DISCONNECT", "2": "EVENT", "3": "ACK", "4": "CONNECT_ERROR",
             "5": "BINARY_EVENT", "6": "BINARY_ACK"}
HIDDEN = {"EngineIO.PING", "EngineIO.PONG", "SocketIO.ACK", "SocketIO.BINARY_ACK"}


def packet_type(data: bytes) -> tuple[str, bytes]:
    """``("SocketIO.EVENT", payload)``; ValueError if the data is not a packet."""
    if not data or chr(data[0]) not in ENGINE_IO:
        raise ValueError("not an Engine.IO packet")
    engine = ENGINE_IO[chr(data[0])]
    if engine != "MESSAGE":
        return f"EngineIO.{engine}", data[1:]
    if len(data) < 2 or chr(data[1]) not in SOCKET_IO:
        raise ValueError("not a Socket.IO packet")
    return f"SocketIO.{SOCKET_IO[chr(data[1])]}", data[2:]


class SocketIOContentview(Contentview):
    name = "Socket.IO"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        kind, payload = packet_type(data)
        if kind in HIDDEN:
            return ""
        return f"{kind} {bytes_to_escaped_str(payload)}"

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        flow = metadata.flow
        if not data or getattr(flow, "websocket", None) is None:
            return 0
        request = getattr(flow, "request", None)
        return 1 if request is not None and "/socket.io/?" in request.path else 0


socket_io = SocketIOContentview()
