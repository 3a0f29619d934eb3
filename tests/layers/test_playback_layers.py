"""Server playback layers (proxycore.layers.playback): a recorded TCP or WebSocket server
answers the client, in conversation order, with no server connection. No sockets."""

from __future__ import annotations

import wsproto
import wsproto.events as ws
from hypothesis import given
from hypothesis import strategies as st

from proxycore import testing
from proxycore.connection import Server
from proxycore.http import HTTPFlow, Request, Response
from proxycore.layers.playback import TcpPlaybackLayer, WebsocketPlaybackLayer, script
from proxycore.layers.tcp import TcpEndHook, TcpMessageHook, TcpStartHook
from proxycore.proxy import commands, events
from proxycore.tcp import TCPFlow, TCPMessage
from proxycore.testing import Placeholder, Playbook, make_context, reply
from proxycore.websocket import Opcode, WebSocketData, WebSocketMessage
from tests.hypothesis_budget import budget


def tcp_recording(*messages: tuple[bool, bytes, float]) -> TCPFlow:
    context = make_context()
    flow = TCPFlow(context.client, Server(address=("example.com", 7)))
    flow.messages = [TCPMessage(c, data, ts) for c, data, ts in messages]
    return flow


def test_script_waits_for_what_the_client_sent_before_each_server_message():
    recorded = tcp_recording((False, b"banner", 1.0), (True, b"ab", 2.0), (True, b"c", 2.5), (False, b"x", 4.0))
    steps = script(recorded.messages, None, "bytes")
    assert [(s.after, s.delay, s.message.content) for s in steps] == [(0, 0.0, b"banner"), (3, 1.5, b"x")]
    steps = script(recorded.messages, 30.0, "messages")
    assert [(s.after, s.delay) for s in steps] == [(0, 0.0), (2, 1.5), (2, 10.0)]  # pauses at most MAX_GAP
    assert steps[-1].message is None  # the close


def test_tcp_playback_answers_in_conversation_order_without_a_server():
    tctx = make_context()
    tctx.server = Server(address=("example.com", 7))
    recorded = tcp_recording((False, b"hi", 1.0), (True, b"one", 2.0), (False, b"ONE", 2.1), (True, b"two", 3.0),
                             (False, b"TWO", 3.1))
    flow = Placeholder(TCPFlow)
    assert (
        Playbook(TcpPlaybackLayer(tctx, recorded, timing=False))
        << TcpStartHook(flow)
        >> reply()
        << TcpMessageHook(flow)  # what the server said first goes at once
        >> reply()
        << commands.SendData(tctx.client, b"hi")
        >> events.DataReceived(tctx.client, b"on")  # chunks need not be cut as recorded
        << TcpMessageHook(flow)
        >> reply()
        >> events.DataReceived(tctx.client, b"e")
        << TcpMessageHook(flow)
        >> reply()
        << TcpMessageHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"ONE")
        >> events.DataReceived(tctx.client, b"two")
        << TcpMessageHook(flow)
        >> reply()
        << TcpMessageHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"TWO")
        << commands.CloseTcpConnection(tctx.client, half_close=True)  # the recording is over
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseConnection(tctx.client)
        << TcpEndHook(flow)
        >> reply()
    )
    assert flow().is_replay == "response" and not flow().live
    assert [(m.from_client, m.content) for m in flow().messages] == [
        (False, b"hi"), (True, b"on"), (True, b"e"), (False, b"ONE"), (True, b"two"), (False, b"TWO"),
    ]
    assert not tctx.server.connected and tctx.server.timestamp_start is None


def test_tcp_playback_keeps_the_recorded_pauses_with_timing():
    tctx = make_context()
    tctx.server = Server(address=("example.com", 7))
    recorded = tcp_recording((True, b"q", 1.0), (False, b"a1", 1.5), (False, b"a2", 3.5))
    flow = Placeholder(TCPFlow)
    assert (
        Playbook(TcpPlaybackLayer(tctx, recorded, timing=True))
        << TcpStartHook(flow)
        >> reply()
        >> events.DataReceived(tctx.client, b"q")
        << TcpMessageHook(flow)
        >> reply()
        << commands.RequestWakeup(0.5)
        >> reply(to=commands.RequestWakeup)
        << TcpMessageHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"a1")
        << commands.RequestWakeup(2.0)
        >> reply(to=commands.RequestWakeup)
        << TcpMessageHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"a2")
        << commands.CloseTcpConnection(tctx.client, half_close=True)
    )


def ws_flow(recorded: WebSocketData) -> tuple[HTTPFlow, object]:
    context = make_context()
    flow = HTTPFlow(context.client, Server(address=("example.com", 80)), live=True)
    flow.request = Request.make("GET", "http://example.com/ws", headers={"upgrade": "websocket", "connection": "Upgrade"})
    flow.response = Response.make(101, b"", {"upgrade": "websocket", "connection": "Upgrade"})
    flow.websocket = WebSocketData()
    flow.websocket_playback = recorded
    return flow, context


class Client(testing.Pump):
    """A wsproto client in front of a WebsocketPlaybackLayer."""

    def __init__(self, recorded: WebSocketData, timing: bool = False) -> None:
        self.flow, context = ws_flow(recorded)
        self.peer = wsproto.Connection(wsproto.ConnectionType.CLIENT)
        super().__init__(WebsocketPlaybackLayer(context, self.flow, recorded, timing))

    def on_send(self, command: commands.SendData) -> None:
        assert command.connection is self.context.client, "nothing goes to a server"
        self.peer.receive_data(command.data)

    def send(self, event: ws.Event) -> None:
        self.feed(events.DataReceived(self.context.client, self.peer.send(event)))

    def got(self) -> list[object]:
        out: list[object] = []
        for e in self.peer.events():
            if isinstance(e, ws.Message):
                out.append(e.data)
            elif isinstance(e, ws.CloseConnection):
                out.append(("close", e.code, e.reason))
            elif isinstance(e, ws.Pong):
                out.append(("pong", bytes(e.payload)))
        return out


def ws_recording(closed_by_client: bool | None, code: int | None, *messages: tuple[bool, object, float]) -> WebSocketData:
    data = WebSocketData()
    for from_client, content, ts in messages:
        text = isinstance(content, str)
        raw = content.encode() if isinstance(content, str) else content
        data.messages.append(WebSocketMessage(Opcode.TEXT if text else Opcode.BINARY, from_client, raw, ts))
    data.closed_by_client, data.close_code, data.close_reason = closed_by_client, code, "bye" if code else None
    data.timestamp_end = 10.0
    return data


def test_websocket_playback_answers_each_client_message_then_closes_as_recorded():
    recorded = ws_recording(False, 4000, (False, "welcome", 1.0), (True, "a", 2.0), (False, "A", 2.1),
                            (False, b"\x00A", 2.2), (True, "b", 3.0), (False, "B", 3.1))
    c = Client(recorded)
    assert c.got() == ["welcome"]
    c.send(ws.TextMessage("a"))
    assert c.got() == ["A", b"\x00A"]
    c.send(ws.TextMessage("whatever"))  # the contents need not match: the order counts
    assert c.got() == ["B", ("close", 4000, "bye")]
    c.send(ws.CloseConnection(4000, "bye"))
    assert "client" in c.closed and c.hooks[-1] == "websocket_end"
    websocket = c.flow.websocket
    assert [(m.from_client, m.content) for m in websocket.messages] == [
        (False, b"welcome"), (True, b"a"), (False, b"A"), (False, b"\x00A"), (True, b"whatever"), (False, b"B"),
    ]
    assert (websocket.closed_by_client, websocket.close_code, websocket.close_reason) == (False, 4000, "bye")
    assert not c.flow.live


def test_websocket_playback_of_a_client_closed_recording_waits_for_the_client():
    recorded = ws_recording(True, 1000, (True, "a", 2.0), (False, "A", 2.1))
    c = Client(recorded)
    c.send(ws.Ping(b"p"))
    assert c.got() == [("pong", b"p")]  # no server to forward a ping to: we answer it
    c.send(ws.TextMessage("a"))
    assert c.got() == ["A"]
    assert "client" not in c.closed
    c.send(ws.CloseConnection(1000))
    assert c.got() == [("close", 1000, "")]
    assert c.flow.websocket.closed_by_client is True and c.hooks[-1] == "websocket_end"


def test_websocket_playback_leaves_out_injected_and_dropped_messages():
    recorded = ws_recording(None, None, (True, "a", 2.0), (False, "A", 2.1), (False, "injected", 2.2),
                            (True, "dropped", 2.3), (False, "B", 2.4))
    recorded.messages[2].injected = True
    recorded.messages[3].dropped = True  # the server never saw it: B answered "a" too
    c = Client(recorded)
    c.send(ws.TextMessage("a"))
    assert c.got() == ["A", "B"]


def test_websocket_playback_timing_uses_wakeups():
    recorded = ws_recording(None, None, (True, "a", 2.0), (False, "A", 2.5))
    c = Client(recorded, timing=True)
    c.send(ws.TextMessage("a"))
    assert c.got() == [] and [w.delay for w in c.wakeups] == [0.5]
    c.feed(events.Wakeup(c.wakeups[0]))
    assert c.got() == ["A"]


@budget(100, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=8)), max_size=10),
    st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=5),
)
def test_tcp_playback_sends_each_server_chunk_once_the_bytes_before_it_came(recording, cuts):
    """However the client cuts its bytes, the client gets exactly the recorded server bytes
    that followed what it has sent so far, in order, and nothing ever goes to a server."""
    tctx = make_context()
    tctx.server = Server(address=("example.com", 7))
    recorded = tcp_recording(*((c, data, float(i)) for i, (c, data) in enumerate(recording)))
    pump = testing.Pump(TcpPlaybackLayer(tctx, recorded, timing=False))

    def expected(sent: int) -> bytes:
        out, seen = b"", 0
        for from_client, data in recording:
            if from_client:
                seen += len(data)
            elif seen <= sent:
                out += data
        return out

    client_bytes = b"".join(data for c, data in recording if c)
    sent, i = 0, 0
    assert bytes(pump.sent["client"]) == expected(0)
    while sent < len(client_bytes):
        chunk = client_bytes[sent : sent + cuts[i % len(cuts)]]
        pump.feed(events.DataReceived(tctx.client, chunk))
        sent, i = sent + len(chunk), i + 1
        assert bytes(pump.sent["client"]) == expected(sent)
    assert bytes(pump.sent["client"]) == b"".join(data for c, data in recording if not c)
    assert not pump.sent["server"]
