"""Several processes for one proxy (``--workers N``): what primary and workers share.

Worker processes accept on the proxy's port (SO_REUSEPORT) and run the layers and the
addons for their connections.  The primary process keeps what must exist once: the
flow view and web API, the ``-w`` writer and proxydump's output.  Each worker talks to
the primary over one Unix socket; a message is a 4-byte length and a ``marshal``-ed
tuple (flows travel as their ``get_state()``, plain data that marshal handles fast).

Worker to primary: ``("hello", index, pid)``, ``("flow", hook, live, state)``; in such a
state a connection the primary was sent before and that is the same since is its id alone
(``KeptConnections``).
Worker to primary, instead of a flow when only ``-w`` needs it: ``("record", tnetstring)``;
besides the flow when ``-w`` and other observers need it: ``("flow", hook, live, state,
tnetstring | None)``, the record the primary's ``-w`` writes for that flow.
Worker to primary, for a message hook of a flow the primary has with all earlier messages:
``("message", hook, flow_id, message_state)``; ``("log", levelno, text)`` once asked for its
log lines; ``("shutdown", exit_code)`` when a script or command in the worker stops the proxy;
``("listeners", [(mode spec, [[host, port]...], error | None)], error | None)`` once its
listeners run and after each change of them the primary sent (the second error: why that
change failed, the listeners then being the old ones); then ``("listen_update", error |
None)``, the answer to each ``options`` message that changes ``LISTEN_OPTIONS``.
Primary to worker: ``("logs", wanted)`` (whether to send your log lines, those
written before it too), ``("options", {name: value})``, ``("hooks", [names], [record names],
[names with a record])`` (the flow hooks the primary wants to hear about, those of them it
only appends to its flow file, and those whose flow it also writes to it),
``("resume", flow_id, state)``, ``("kill", flow_id)``,
``("inject", flow_id, "tcp" | "websocket", from_client, content, opcode)``.
"""

from __future__ import annotations

import asyncio
import marshal
import os
import struct
from typing import TYPE_CHECKING, Any

from proxycore.connection import frozen_key, same_objects

if TYPE_CHECKING:
    from proxycore.io.io import FlowEncoder

# Set in a worker process: its proxy listeners bind with SO_REUSEPORT, and it never
# starts workers of its own.
IN_WORKER = False

_LENGTH = struct.Struct("!I")
MAX_MESSAGE = 1 << 31  # a flow with a buffered body may be large, but not unbounded

# Flow hooks a worker can forward, and the hook that introduces a flow of each type.
FORWARDABLE = (
    "requestheaders", "request", "responseheaders", "response", "error", "http_connect",
    "http_connect_error", "websocket_start", "websocket_message", "websocket_end",
    "tcp_start", "tcp_message", "tcp_end", "tcp_error",
)
FIRST_HOOK = {"http": "requestheaders", "tcp": "tcp_start"}
# Hooks after which the worker is done with the flow (unless it is intercepted).
LAST_HOOKS = frozenset({"response", "error", "http_connect_error", "websocket_end", "tcp_end", "tcp_error"})
# The options that say where the proxy listens: a change of them in the primary is answered
# by each worker with ("listen_update", error | None) once its listeners follow it.
LISTEN_OPTIONS = frozenset({"mode", "listen_host", "listen_port", "server"})
# Hooks after which the primary keeps a WebSocket or TCP flow (its messages may come alone),
# and the hooks that end such a flow: the primary asks for those too, or it would keep the
# flow until its worker exits.
STREAM_HOOKS = {
    "websocket_start": ("websocket_end",),
    "websocket_message": ("websocket_end",),
    "tcp_start": ("tcp_end", "tcp_error"),
    "tcp_message": ("tcp_end", "tcp_error"),
}


def flow_messages(flow: Any) -> list[Any] | None:
    """The messages of a TCP flow or of an HTTP flow's WebSocket (None: it has none), which
    a worker may send one at a time (``message``) and the primary appends."""
    if flow.type == "tcp":
        return flow.messages
    websocket = getattr(flow, "websocket", None)
    return None if websocket is None else websocket.messages


def worker_count(value: str) -> int:
    """The ``workers`` option as a number of processes (``auto``: the cores we may use)."""
    if value == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1
    return max(1, int(value))


def serves_elsewhere(options: Any) -> bool:
    """True in a primary whose workers do the serving (its own listeners stay closed)."""
    return not IN_WORKER and worker_count(getattr(options, "workers", "1")) > 1


def encode(message: tuple[Any, ...]) -> bytes:
    data = marshal.dumps(message)
    return _LENGTH.pack(len(data)) + data


async def receive(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None once the peer is gone."""
    try:
        (length,) = _LENGTH.unpack(await reader.readexactly(4))
        if length > MAX_MESSAGE:
            raise ValueError(f"channel message of {length} bytes")
        return marshal.loads(await reader.readexactly(length))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def encode_record(flow: Any) -> bytes:
    """The ``record`` message: the flow as the ``-w`` file stores it (by a FlowEncoder kept
    for the process, which reuses a connection's frame from its previous flow)."""
    try:
        return encode(("record", _encoder().encode(flow)))
    except ValueError:
        return encode(("record", _record_without_metadata(flow)))


def _encoder() -> FlowEncoder:
    """The process's FlowEncoder for records (made on first use: -w is rare)."""
    global _record_encoder
    if _record_encoder is None:
        from proxycore.io.io import FlowEncoder

        _record_encoder = FlowEncoder()
    return _record_encoder


_record_encoder: FlowEncoder | None = None


class KeptConnections:
    """The connections both ends of a channel know, by id: every connection state a
    ``flow`` message carries in full is kept, by the worker with its ``state_key`` (None when
    the key is not ``frozen_key``) and by the primary as the object it made of it, emptied
    at the same size on both ends; so while a connection's key holds the same objects, the
    worker sends its id instead of its state, and the primary uses the object it has.
    (The connections of a keep-alive connection's flows are the same, and the primary
    receives a flow four times: making them anew was a third of its work per flow.)"""

    MAX_KEPT = 1024

    def __init__(self) -> None:
        self.kept: dict[str, Any] = {}

    def keep(self, ident: str, value: Any) -> None:
        if len(self.kept) >= self.MAX_KEPT and ident not in self.kept:
            self.kept.clear()
        self.kept[ident] = value

    def state(self, connection: Any) -> tuple[Any, Any]:
        """The worker's side: the connection's id if the primary has its state, else its
        state and the key to keep once the message is sent (``sent``)."""
        key = connection.state_key()
        if key is None:  # (its state can change unseen: sent in full every time)
            return connection.get_state(), None
        kept = self.kept.get(connection.id)
        if kept is not None and same_objects(kept, key):
            return connection.id, None
        return connection.get_state(), key if frozen_key(key) else None

    def sent(self, state: dict[str, Any], keys: tuple[Any, Any]) -> None:
        """Keep the connections ``state`` carried in full (as the primary will)."""
        for name, key in zip(_CONNECTION_FIELDS, keys, strict=True):
            connection = state.get(name)
            if type(connection) is dict and type(connection.get("id")) is str:
                self.keep(connection["id"], key)


_CONNECTION_FIELDS = ("client_conn", "server_conn")
_sent_connections = KeptConnections()  # a worker's, for its one channel


def encode_flow(hook: str, flow: Any, with_record: bool = False) -> bytes:
    """The ``flow`` message for ``hook``.  Metadata a script filled with objects marshal
    cannot carry is left out rather than failing the flow.  ``with_record``: the flow as the
    primary's ``-w`` file stores it comes along (None if the file cannot store it), so that
    the primary does not make the state and its frames for every flow again."""
    from proxycore.flow import Flow

    keys: tuple[Any, Any] = (None, None)
    if type(flow).get_state is Flow.get_state:  # (a class with its own sends it all)
        client, client_key = _sent_connections.state(flow.client_conn)
        server, server_key = _sent_connections.state(flow.server_conn)
        state = flow.state_with(client, server)
        keys = (client_key, server_key)
    else:
        state = flow.get_state()
    message: tuple[Any, ...] = ("flow", hook, flow.live, state)
    if with_record:
        message += (_record_of(flow, emptied=False),)
    try:
        data = encode(message)
    except ValueError:
        state["metadata"] = {}
        if with_record:  # the primary's flow has none either
            message = (*message[:4], _record_of(flow, emptied=True))
        data = encode(message)
    _sent_connections.sent(state, keys)  # (only once it is on its way)
    return data


def _record_of(flow: Any, emptied: bool) -> bytes | None:
    """``flow`` as a flow file stores it (``emptied``: without its metadata, as the
    message carries it); None if it cannot be stored (the primary's -w says why)."""
    try:
        return _record_without_metadata(flow) if emptied else _encoder().encode(flow)
    except ValueError:
        return None


def _record_without_metadata(flow: Any) -> bytes:
    """``flow`` as a flow file stores it, its metadata left out (a script put objects there
    that neither marshal nor tnetstring can carry)."""
    state = flow.get_state()
    state["metadata"] = {}
    return _encoder().encode_state(state)
