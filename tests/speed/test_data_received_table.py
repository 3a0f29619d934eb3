"""DataReceived reaches an HTTP/1 layer's _handle_event through the ``_senders`` table, by
exact type (issue 15: one isinstance check and a bound method less, twice per request).
The general path (Layer.handle_event) is compared in test_layer_fast_paths; here: a
subclass of DataReceived still takes handle_event's general branch, with the same result."""

from __future__ import annotations

import pytest

from proxycore.layers.http._http1 import Http1Client, Http1Server
from proxycore.proxy import events
from proxycore.testing import make_context

REQUEST = b"GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc"


class MyDataReceived(events.DataReceived):
    pass


@pytest.mark.parametrize("cls", [Http1Server, Http1Client])
def test_data_received_is_in_the_table(cls: type) -> None:
    assert cls._senders[events.DataReceived] is cls._handle_event
    assert MyDataReceived not in cls._senders


def test_a_subclass_of_data_received_reads_the_same() -> None:
    def received(event_type: type[events.DataReceived]) -> list[object]:
        layer = Http1Server(make_context())
        layer.bare_received = True
        list(layer.handle_event(events.Start()))
        out = []
        for part in (REQUEST[:10], REQUEST[10:]):
            for command in layer.handle_event(event_type(layer.conn, part)):
                out.append((type(command), getattr(command, "data", None)))  # (the bare events: by kind)
        return out

    direct = received(events.DataReceived)
    assert direct and received(MyDataReceived) == direct
