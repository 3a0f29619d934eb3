"""The driver's per-read fast path makes its DataReceived without the dataclass's
``__init__`` (issue 15): the event must be the one ``DataReceived(connection, data)``
makes, and the class must stay one that this can make (two fields, nothing run after
``__init__``)."""

from __future__ import annotations

import dataclasses

from proxycore.connection import Client, ConnectionState
from proxycore.master import Master
from proxycore.options import Options
from proxycore.proxy import commands, events
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.proxy.server import ConnectionHandler, _ConnectionProtocol


class Recorder(Layer):
    seen: list[events.Event] = []

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        Recorder.seen.append(event)
        return
        yield commands.Log("unreachable")  # pragma: no cover


def test_data_received_has_only_what_the_fast_path_sets() -> None:
    assert [f.name for f in dataclasses.fields(events.DataReceived)] == ["connection", "data"]
    assert not hasattr(events.DataReceived, "__post_init__")
    assert events.DataReceived.__slots__ == ("data",)  # (connection: ConnectionEvent's slot)


def test_the_protocol_queues_the_event_the_general_path_makes() -> None:
    client = Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2), state=ConnectionState.OPEN)
    handler = ConnectionHandler(Master(Options()), client, Recorder)
    protocol = _ConnectionProtocol(handler, client)
    Recorder.seen = []
    protocol.data_received(b"fast")  # the written-out path
    handler.data_received(client, b"general")  # ConnectionHandler's own
    fast, general = Recorder.seen
    assert type(fast) is type(general) is events.DataReceived
    assert fast == events.DataReceived(client, b"fast")
    assert general == events.DataReceived(client, b"general")
    assert fast.connection is client and fast.data == b"fast"
    assert repr(fast) == "DataReceived(client, b'fast')"
