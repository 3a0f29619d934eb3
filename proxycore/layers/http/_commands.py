"""Commands exchanged between HTTP connection layers, streams and the HttpLayer."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

from proxycore.connection import Address, Connection, Server
from proxycore.layers.http._events import HttpEvent
from proxycore.proxy.commands import Command
from proxycore.proxy.layer import CommandGenerator

T = TypeVar("T")

#: What the layers inside the HttpLayer yield to it: commands, and bare HTTP events. A
#: stream yields the event it sends ("send this", by exact type to the client or to its
#: server connection), an HTTP/1 connection layer with ``bare_received`` the one it read;
#: the HttpLayer routes them (no SendHttp/ReceiveHttp object per event), and passes only
#: commands on, so no layer above it and no driver ever sees an event yielded.
HttpGenerator = Generator[Command | HttpEvent, Any, T]


def _ended() -> CommandGenerator[Any]:
    return
    yield  # pragma: no cover


#: An ended generator: what an HTTP handler returns when it has no command to yield, instead
#: of a new generator that yields nothing (~1.2k instructions to make, run and free, several
#: times per request). Iterating it, ``yield from`` it and Layer._run's ``next`` end at once;
#: the HttpLayer does not even route it (``is NOTHING``).
NOTHING: CommandGenerator[Any] = _ended()
next(NOTHING, None)


class ReceiveHttp(Command):
    """A connection layer parsed ``event``; the HttpLayer hands it to the stream."""

    def __init__(self, event: HttpEvent) -> None:
        self.event = event

    def __repr__(self) -> str:
        return f"ReceiveHttp({self.event!r})"


class SendHttp(Command):
    """``event`` to be written to ``connection`` by its connection layer.

    Our streams yield the bare event to the HttpLayer instead (see HttpGenerator: routed
    by its type, no object around it per event); this names the connection explicitly,
    for the general path. ``connection`` is None when there is no server connection (yet): the event is
    dropped, as it would be for a connection that is gone."""

    def __init__(self, event: HttpEvent, connection: Connection | None) -> None:
        self.event = event
        self.connection = connection

    def __repr__(self) -> str:
        return f"SendHttp({self.event!r}, {self.connection!r})"


class GetHttpConnection(Command):
    """Ask for a (possibly reused) upstream connection; replied with (conn, None) or (None, err)."""

    blocking = True

    def __init__(self, address: Address, tls: bool, via: Any = None, transport_protocol: str = "tcp") -> None:
        self.address = address
        self.tls = tls
        self.via = via
        # "udp" (with tls): HTTP/3 over QUIC, e.g. set by an addon on flow.server_conn.
        self.transport_protocol = transport_protocol
        self.blocking = True

    def connection_spec_matches(self, connection: Server) -> bool:
        return (
            connection.address == self.address
            and connection.tls == self.tls
            and connection.via == self.via
            and connection.transport_protocol == self.transport_protocol
        )


class RegisterHttpConnection(Command):
    """An upstream connection finished opening (``err`` None) or failed."""

    def __init__(self, connection: Server, err: str | None) -> None:
        self.connection = connection
        self.err = err


class DropStream(Command):
    """The stream is finished; the HttpLayer forgets it. (Our streams leave the HttpLayer's
    ``streams`` themselves when they finish: HttpStream.finish.)"""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
