"""WebsocketLayer against wsproto peers: frames in, frames out, hooks in between. No sockets."""

from __future__ import annotations

import wsproto
import wsproto.events as ws
from hypothesis import given
from hypothesis import strategies as st
from wsproto.extensions import PerMessageDeflate

from proxycore import testing
from proxycore.connection import ConnectionState, Server
from proxycore.http import HTTPFlow, Request, Response
from proxycore.layers.websocket import FRAGMENT_SIZE, Fragmentizer, WebsocketLayer
from proxycore.proxy import commands, events
from proxycore.testing import make_context
from proxycore.websocket import Opcode, WebSocketMessage
from tests.hypothesis_budget import budget

DEFLATE = "permessage-deflate"


def make_flow(extensions: str | None = None) -> tuple[HTTPFlow, object]:
    context = make_context()
    context.server = Server(address=("example.com", 80), state=ConnectionState.OPEN)
    flow = HTTPFlow(context.client, context.server, live=True)
    flow.request = Request.make("GET", "http://example.com/ws", headers={"upgrade": "websocket", "connection": "Upgrade"})
    headers = {"upgrade": "websocket", "connection": "Upgrade"}
    if extensions:
        headers["sec-websocket-extensions"] = extensions
    flow.response = Response.make(101, b"", headers)
    return flow, context


class Relay(testing.Pump):
    """Runs a WebsocketLayer between a wsproto client and a wsproto server."""

    def __init__(self, extensions: str | None = None, on_message=None) -> None:
        self.flow, context = make_flow(extensions)
        exts_c = [PerMessageDeflate()] if extensions else []
        exts_s = [PerMessageDeflate()] if extensions else []
        if extensions:
            exts_c[0].finalize(extensions)
            exts_s[0].finalize(extensions)
        self.client = wsproto.Connection(wsproto.ConnectionType.CLIENT, extensions=exts_c)
        self.server = wsproto.Connection(wsproto.ConnectionType.SERVER, extensions=exts_s)
        self.on_message = on_message
        super().__init__(WebsocketLayer(context, self.flow))

    def on_send(self, command: commands.SendData) -> None:
        peer = self.client if command.connection is self.context.client else self.server
        peer.receive_data(command.data)

    def on_hook(self, command: commands.StartHook) -> events.Event | None:
        if command.name == "websocket_message" and self.on_message:
            self.on_message(self.flow.websocket.messages[-1])
        return super().on_hook(command)

    def from_client(self, *evs: ws.Event, split: int | None = None) -> None:
        data = b"".join(self.client.send(e) for e in evs)
        self._deliver(self.context.client, data, split)

    def from_server(self, *evs: ws.Event, split: int | None = None) -> None:
        data = b"".join(self.server.send(e) for e in evs)
        self._deliver(self.context.server, data, split)

    def _deliver(self, conn, data: bytes, split: int | None) -> None:
        step = split or len(data) or 1
        for i in range(0, len(data), step):
            self.feed(events.DataReceived(conn, data[i : i + step]))

    @staticmethod
    def received(peer: wsproto.Connection) -> list[ws.Event]:
        return list(peer.events())


def messages(evs: list[ws.Event]) -> list[tuple[type, object, bool]]:
    return [(type(e), e.data, e.message_finished) for e in evs if isinstance(e, ws.Message)]


def test_text_and_binary_messages_both_ways():
    relay = Relay()
    relay.from_client(ws.TextMessage("hello"))
    relay.from_server(ws.BytesMessage(b"\x00\x01"))
    assert messages(relay.received(relay.server)) == [(ws.TextMessage, "hello", True)]
    assert messages(relay.received(relay.client)) == [(ws.BytesMessage, bytearray(b"\x00\x01"), True)]
    assert relay.hooks == ["websocket_start", "websocket_message", "websocket_message"]
    first, second = relay.flow.websocket.messages
    assert (first.type, first.from_client, first.content) == (Opcode.TEXT, True, b"hello")
    assert (second.type, second.from_client, second.content) == (Opcode.BINARY, False, b"\x00\x01")


def test_fragmented_message_is_one_hook_and_keeps_its_fragments():
    relay = Relay()
    relay.from_client(
        ws.TextMessage("ab", message_finished=False),
        ws.Ping(b"p"),  # control frames may sit between fragments
        ws.TextMessage("cd", message_finished=False),
        ws.TextMessage("ef"),
    )
    got = relay.received(relay.server)
    assert [e.payload for e in got if isinstance(e, ws.Ping)] == [bytearray(b"p")]
    assert messages(got) == [(ws.TextMessage, "ab", False), (ws.TextMessage, "cd", False), (ws.TextMessage, "ef", True)]
    assert relay.hooks.count("websocket_message") == 1
    assert relay.flow.websocket.messages[0].content == b"abcdef"


def test_pings_and_pongs_are_forwarded():
    relay = Relay()
    relay.from_client(ws.Ping(b"x"))
    assert [type(e) for e in relay.received(relay.server)] == [ws.Ping]
    relay.from_server(ws.Pong(b"x"))
    assert [type(e) for e in relay.received(relay.client)] == [ws.Pong]


def test_addon_can_rewrite_and_drop():
    def rewrite(message: WebSocketMessage) -> None:
        if message.content == b"drop me":
            message.drop()
        else:
            message.text = message.text.upper() * 3000

    relay = Relay(on_message=rewrite)
    relay.from_client(ws.TextMessage("drop me"))
    assert messages(relay.received(relay.server)) == []
    relay.from_client(ws.TextMessage("ab", message_finished=False), ws.TextMessage("c"))
    got = messages(relay.received(relay.server))
    assert "".join(str(d) for _, d, _ in got) == "ABC" * 3000
    assert len(got) == 3  # changed content: re-fragmented in 4 KiB pieces
    assert relay.flow.websocket.messages[0].dropped


def test_close_from_client_with_code_and_reason():
    relay = Relay()
    relay.from_client(ws.CloseConnection(code=4000, reason="bye"))
    got = relay.received(relay.server)
    assert [(e.code, e.reason) for e in got if isinstance(e, ws.CloseConnection)] == [(4000, "bye")]
    # As mitmproxy: the closer gets its reply and both connections end at once.
    assert [(e.code, e.reason) for e in relay.received(relay.client)] == [(4000, "bye")]
    assert relay.hooks[-1] == "websocket_end"
    websocket = relay.flow.websocket
    assert (websocket.closed_by_client, websocket.close_code, websocket.close_reason) == (True, 4000, "bye")
    assert relay.closed == {"client", "server"}
    assert relay.client.state.name in ("CLOSED", "REMOTE_CLOSING", "LOCAL_CLOSING")


def test_close_from_server():
    relay = Relay()
    relay.from_server(ws.CloseConnection(code=1001, reason="restart"))
    relay.from_client(ws.CloseConnection(code=1001, reason="restart"))
    websocket = relay.flow.websocket
    assert (websocket.closed_by_client, websocket.close_code) == (False, 1001)
    assert relay.hooks[-1] == "websocket_end"


def test_tcp_drop_is_an_abnormal_close():
    relay = Relay()
    relay.context.server.state &= ~ConnectionState.CAN_READ
    relay.feed(events.ConnectionClosed(relay.context.server))
    assert relay.flow.websocket.close_code == 1006
    assert relay.flow.error is not None
    assert relay.hooks[-1] == "websocket_end" and relay.closed == {"client", "server"}
    # mitmproxy sends the side that is left a normal close (the flow records 1006)
    assert [e.code for e in relay.received(relay.client) if isinstance(e, ws.CloseConnection)] == [1000]


def test_invalid_frame_gets_a_protocol_close_and_the_layer_survives():
    relay = Relay()
    # A masked-bit-less client frame is a protocol violation (clients must mask).
    relay.feed(events.DataReceived(relay.context.client, b"\x81\x05hello"))
    to_client = [e for e in relay.received(relay.client) if isinstance(e, ws.CloseConnection)]
    to_server = [e for e in relay.received(relay.server) if isinstance(e, ws.CloseConnection)]
    assert [e.code for e in to_client] == [1002]
    assert [e.code for e in to_server] == [1002]  # the protocol error's close goes to both
    assert to_server[0].reason == to_client[0].reason != ""
    assert relay.closed == {"client", "server"}
    assert relay.flow.websocket.close_code == 1002


def test_oversized_frame_length_is_a_protocol_error():
    relay = Relay()
    # 64-bit length with the most significant bit set: not a valid frame length.
    relay.feed(events.DataReceived(relay.context.server, b"\x82\x7f\x80" + b"\x00" * 7))
    to_server = [e.code for e in relay.received(relay.server) if isinstance(e, ws.CloseConnection)]
    assert to_server == [1002]
    assert relay.flow.websocket.close_code == 1002 and relay.flow.websocket.closed_by_client is False
    relay.from_client(ws.TextMessage("after"))  # the other side lives on until it closes too


def test_compressed_messages():
    offer = "permessage-deflate; client_max_window_bits=15; server_max_window_bits=15"
    relay = Relay(offer)
    relay.from_client(ws.TextMessage("compress me " * 100))
    relay.from_server(ws.BytesMessage(b"\x00" * 5000))
    assert messages(relay.received(relay.server)) == [(ws.TextMessage, "compress me " * 100, True)]
    assert relay.flow.websocket.messages[1].content == b"\x00" * 5000


def test_injection_goes_to_one_side_after_the_hook():
    relay = Relay()
    relay.feed(events.MessageInjected(relay.flow, WebSocketMessage(Opcode.TEXT, False, b"injected")))
    assert messages(relay.received(relay.client)) == [(ws.TextMessage, "injected", True)]
    assert relay.flow.websocket.messages[-1].injected
    assert relay.hooks[-1] == "websocket_message"
    assert relay.received(relay.server) == []


def test_a_changed_message_of_the_same_length_keeps_the_frame_sizes():
    frames = list(Fragmentizer([b"ab", b"cde"], True)(b"xyzzy"))
    assert [(f.data, f.message_finished) for f in frames] == [("xy", False), ("zzy", True)]
    frames = list(Fragmentizer([b"ab"], False)(b"\x00" * 9000))
    assert [len(f.data) for f in frames] == [FRAGMENT_SIZE, FRAGMENT_SIZE, 9000 - 2 * FRAGMENT_SIZE]
    # a UTF-8 character split across frames is carried into the next one
    frames = list(Fragmentizer([b"a\xc3", b"\xa9b"], True)("aéb".encode()))
    assert "".join(f.data for f in frames) == "aéb"


def test_unknown_extensions_are_logged_and_ignored():
    flow, _ = make_flow("x-funky; a=1, permessage-deflate")
    layer = WebsocketLayer(make_context(), flow)
    logs = [c.message for c in layer.handle_event(events.Start()) if isinstance(c, commands.Log)]
    assert logs == ["Ignoring unknown WebSocket extension 'x-funky'."]


@budget(100, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_arbitrary_bytes_never_raise(data, step):
    relay = Relay()
    for i in range(0, len(data), step):
        relay.feed(events.DataReceived(relay.context.client, data[i : i + step]))
        relay.feed(events.DataReceived(relay.context.server, data[i : i + step]))


@budget(50, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=12),
    st.integers(min_value=1, max_value=97),
)
def test_random_message_sequences_arrive_identical(payloads, split):
    relay = Relay()
    for payload in payloads:
        event = ws.TextMessage(payload) if isinstance(payload, str) else ws.BytesMessage(payload)
        relay.from_client(event, split=split)
    got = messages(relay.received(relay.server))
    assert [bytes(d) if isinstance(d, bytearray) else d for _, d, _ in got] == payloads


def relay_one_frame_peak(size: int, from_client: bool) -> tuple[int, bytes]:
    """Relay one data frame of ``size`` bytes through the layer; return the peak of Python
    allocations while doing so (the test's own copy of the frame excluded) and a digest of
    the payload the receiving wsproto peer got."""
    import hashlib
    import tracemalloc

    flow, context = make_flow()
    layer = WebsocketLayer(context, flow)
    (start_hook,) = layer.handle_event(events.Start())
    assert list(layer.handle_event(events.HookCompleted(start_hook))) == []
    sender = wsproto.Connection(wsproto.ConnectionType.CLIENT if from_client else wsproto.ConnectionType.SERVER)
    receiver = wsproto.Connection(wsproto.ConnectionType.SERVER if from_client else wsproto.ConnectionType.CLIENT)
    wire = sender.send(ws.BytesMessage(b"m" * size))
    source, target = (context.client, context.server) if from_client else (context.server, context.client)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for start in range(0, len(wire), 256 * 1024):
            queue: list[events.Event] = [events.DataReceived(source, bytes(wire[start : start + 256 * 1024]))]
            while queue:
                for command in layer.handle_event(queue.pop()):
                    if isinstance(command, commands.SendData):
                        assert command.connection is target
                        data = memoryview(command.data)  # the peer reads it as a socket would
                        for at in range(0, len(data), 1024 * 1024):
                            receiver.receive_data(bytes(data[at : at + 1024 * 1024]))
                            for event in receiver.events():
                                digest.update(event.data)
                    elif isinstance(command, commands.StartHook):
                        queue.append(events.HookCompleted(command))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(flow.websocket.messages) == 1 and len(flow.websocket.messages[0].content) == size
    return peak, digest.digest()


def test_one_large_frame_is_relayed_without_copies_of_the_whole_message():
    """A 16 MiB message in one frame, both ways: the layer holds the message (which the
    flow keeps) and pieces of at most a MiB, never extra copies of the whole (wsproto's own
    framing made five of them: 64 MiB frames peaked at 365 MB of proxy RSS)."""
    import hashlib

    size = 16 * 1024 * 1024
    for from_client in (True, False):
        peak, digest = relay_one_frame_peak(size, from_client)
        assert digest == hashlib.sha256(b"m" * size).digest()
        assert peak < 1.5 * size, f"from_client={from_client}: peak {peak / size:.2f} x the message"
