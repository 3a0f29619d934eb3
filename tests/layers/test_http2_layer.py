"""HttpLayer with HTTP/2 on both sides (or h2 <-> HTTP/1), driven by h2-library peers. No sockets."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
from hypothesis import given
from hypothesis import strategies as st

from proxycore.connection import ConnectionState, Server
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.proxy import commands, events
from proxycore.testing import Pump, make_context
from tests.hypothesis_budget import budget


def h2_peer(client_side: bool, window: int | None = None, lax: bool = False) -> h2.connection.H2Connection:
    """An h2 endpoint; ``lax`` lets it send headers a strict peer would refuse."""
    config = h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=not lax,
        normalize_outbound_headers=not lax,
    )
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    if window is not None:
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    return conn


class H2Pump(Pump):
    """Runs an HttpLayer(transparent) for an h2 client; the server is an h2 (or HTTP/1) peer."""

    def __init__(
        self,
        server_h2: bool = True,
        server_window: int | None = None,
        lax_client: bool = False,
        hold_hooks: bool = False,
        hold_connects: bool = False,
        **options: object,
    ) -> None:
        """``hold_hooks``: hooks wait in ``held`` until ``release_hooks`` (an addon taking its
        time); ``hold_connects``: connections open only on ``release_connects``."""
        context = make_context()
        context.options.update(**options)
        context.client.alpn = b"h2"
        context.server = Server(address=("example.com", 80))
        self.client = h2_peer(client_side=True, lax=lax_client)
        self.server = h2_peer(client_side=False, window=server_window) if server_h2 else None
        self.server_h2 = server_h2
        self.hold_hooks = hold_hooks
        self.held: list[commands.StartHook] = []
        self.hold_connects = hold_connects
        self.held_connects: list[commands.OpenConnection] = []
        self.client_events: list[h2.events.Event] = []
        self.server_events: list[h2.events.Event] = []
        super().__init__(HttpLayer(context, HTTPMode.transparent))  # Start, then the client preface

    @property
    def to_server_raw(self) -> bytes:
        """What an HTTP/1 server (``server_h2=False``) received."""
        return bytes(self.sent["server"])

    def on_send(self, command: commands.SendData) -> None:
        if command.connection is self.context.client:
            self.client_events += self.client.receive_data(command.data)
        elif self.server is not None:
            self.server_events += self.server.receive_data(command.data)
        else:
            super().on_send(command)

    def on_open(self, command: commands.OpenConnection) -> events.Event | None:
        if self.hold_connects:
            self.held_connects.append(command)
            return None
        command.connection.alpn = b"h2" if self.server_h2 else b""
        return super().on_open(command)

    def on_hook(self, command: commands.StartHook) -> events.Event | None:
        if self.hold_hooks:
            self.held.append(command)
            return None
        return super().on_hook(command)

    def release_connects(self) -> None:
        self.hold_connects = False
        while self.held_connects:
            command = self.held_connects.pop(0)
            command.connection.state = ConnectionState.OPEN
            command.connection.alpn = b"h2" if self.server_h2 else b""
            self.feed(events.OpenConnectionCompleted(command, None))

    def release_hooks(self) -> None:
        """Answer the held hooks (and any they lead to) until none is left."""
        self.hold_hooks = False
        while self.held:
            self.feed(events.HookCompleted(self.held.pop(0)))

    def after_event(self) -> None:
        # The head/idle timer is published on the client for the driver, not yielded.
        timer = getattr(self.context.client, "head_timer", None)
        if isinstance(timer, commands.RequestTimeout) and not any(t is timer for t in self.timeouts):
            self.timeouts.append(timer)
        self.pump_peers()

    def pump_peers(self) -> None:
        data = self.client.data_to_send()
        if data:
            self.feed(events.DataReceived(self.context.client, data))
        if self.server is not None and self.server_conn is not None:
            data = self.server.data_to_send()
            if data:
                self.feed(events.DataReceived(self.server_conn, data))

    @property
    def server_conn(self) -> Server | None:
        """The upstream connection, once the layer has opened it."""
        return next((c for c in self.layer.connections if isinstance(c, Server) and c.connected), None)

    def request(self, path: str, body: bytes = b"", end: bool = True) -> int:
        stream_id = self.client.get_next_available_stream_id()
        headers = [(b":method", b"POST" if body else b"GET"), (b":scheme", b"http"),
                   (b":authority", b"example.com"), (b":path", path.encode())]
        self.client.send_headers(stream_id, headers, end_stream=end and not body)
        if body:
            step = self.client.max_outbound_frame_size
            for i in range(0, len(body), step):
                self.client.send_data(stream_id, body[i : i + step], end_stream=end and i + step >= len(body))
        self.pump_peers()
        return stream_id

    def server_requests(self) -> dict[int, dict]:
        """Requests the server peer saw: stream id -> {path, body, ended}."""
        seen: dict[int, dict] = {}
        for e in self.server_events:
            if isinstance(e, h2.events.RequestReceived):
                seen[e.stream_id] = {"path": dict(e.headers)[b":path"], "body": b"", "ended": False}
            elif isinstance(e, h2.events.DataReceived):
                seen[e.stream_id]["body"] += e.data
            elif isinstance(e, h2.events.StreamEnded):
                seen[e.stream_id]["ended"] = True
        return seen

    def respond(self, server_stream: int, body: bytes, trailers: list | None = None) -> None:
        assert self.server is not None
        self.server.send_headers(server_stream, [(b":status", b"200")])
        sent = 0
        while sent < len(body):
            window = min(self.server.local_flow_control_window(server_stream), self.server.max_outbound_frame_size)
            chunk = body[sent : sent + window]
            self.server.send_data(server_stream, chunk)
            sent += len(chunk)
            self.pump_peers()
        if trailers:
            self.server.send_headers(server_stream, trailers, end_stream=True)
        else:
            self.server.end_stream(server_stream)
        self.pump_peers()

    def respond_partly(self, server_stream: int, body: bytes) -> dict[int, dict]:
        """A 200 and ``body`` from the server without ending the stream; then client_responses()."""
        assert self.server is not None
        self.server.send_headers(server_stream, [(b":status", b"200")])
        self.server.send_data(server_stream, body)
        self.pump_peers()
        return self.client_responses()

    def client_responses(self) -> dict[int, dict]:
        got: dict[int, dict] = {}
        for e in self.client_events:
            if isinstance(e, h2.events.ResponseReceived):
                got[e.stream_id] = {"status": dict(e.headers)[b":status"], "body": b"", "ended": False, "trailers": None}
            elif isinstance(e, h2.events.DataReceived):
                got[e.stream_id]["body"] += e.data
                self.client.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.TrailersReceived):
                got[e.stream_id]["trailers"] = e.headers
            elif isinstance(e, h2.events.StreamEnded):
                got.setdefault(e.stream_id, {})["ended"] = True
            elif isinstance(e, h2.events.StreamReset):
                got.setdefault(e.stream_id, {})["reset"] = e.error_code
        return got


def test_many_concurrent_streams_with_interleaved_data():
    pump = H2Pump()
    ids = [pump.request(f"/s{i}", body=b"", end=False) for i in range(40)]
    for round_ in range(3):
        for sid in ids:
            pump.client.send_data(sid, b"%d-%d;" % (sid, round_))
        pump.pump_peers()
    for sid in ids:
        pump.client.end_stream(sid)
    pump.pump_peers()
    seen = pump.server_requests()
    assert len(seen) == 40 and all(r["ended"] for r in seen.values())
    by_path = {r["path"]: (sid, r) for sid, r in seen.items()}
    for i, client_sid in enumerate(ids):
        server_sid, req = by_path[f"/s{i}".encode()]
        assert req["body"] == b"".join(b"%d-%d;" % (client_sid, r) for r in range(3))
        pump.respond(server_sid, b"response %d" % i)
    got = pump.client_responses()
    for i, client_sid in enumerate(ids):
        assert got[client_sid]["body"] == b"response %d" % i and got[client_sid]["ended"]
    assert pump.hooks.count("response") == 40


def test_window_exhaustion_and_recovery_toward_the_server():
    pump = H2Pump(server_window=1000)
    body = bytes(range(256)) * 800  # 204,800 bytes: far beyond the windows
    sid = pump.request("/upload", body=body)
    seen = pump.server_requests()
    (server_sid, req), = seen.items()
    assert len(req["body"]) <= 65535 and not req["ended"]  # the proxy waits for WINDOW_UPDATE
    # The server reopens its windows a bit at a time; the proxy sends the rest as they grow.
    for _ in range(400):
        pump.server.increment_flow_control_window(2000, server_sid)
        pump.server.increment_flow_control_window(2000)
        pump.pump_peers()
        if pump.server_requests()[server_sid]["ended"]:
            break
    assert pump.server_requests()[server_sid]["body"] == body
    pump.respond(server_sid, b"ok")
    assert pump.client_responses()[sid]["body"] == b"ok"


def test_large_response_to_the_client():
    pump = H2Pump()
    sid = pump.request("/big")
    (server_sid,) = pump.server_requests()
    body = b"z" * 300_000  # beyond the client's default 64 KiB window: flushed as it updates
    pump.respond(server_sid, body)
    for _ in range(20):
        pump.client_responses()  # acknowledges what arrived, opening the window
        pump.pump_peers()
    assert pump.client_responses()[sid]["body"] == body


def test_trailers_are_forwarded():
    pump = H2Pump()
    sid = pump.request("/trailers")
    (server_sid,) = pump.server_requests()
    pump.respond(server_sid, b"body", trailers=[(b"x-checksum", b"abc")])
    got = pump.client_responses()[sid]
    assert got["body"] == b"body" and got["trailers"] == [(b"x-checksum", b"abc")]


def test_client_reset_mid_body_cancels_only_that_stream():
    pump = H2Pump()
    a = pump.request("/a", body=b"part", end=False)
    b = pump.request("/b")
    pump.client.reset_stream(a, h2.errors.ErrorCodes.CANCEL)
    pump.pump_peers()
    assert "error" in pump.hooks
    seen = pump.server_requests()
    server_b = next(s for s, r in seen.items() if r["path"] == b"/b")
    pump.respond(server_b, b"b ok")
    assert pump.client_responses()[b]["body"] == b"b ok"


def test_server_reset_gives_the_client_an_error_page():
    pump = H2Pump()
    sid = pump.request("/x")
    (server_sid,) = pump.server_requests()
    pump.server.send_headers(server_sid, [(b":status", b"200")])
    pump.server.send_data(server_sid, b"half")
    pump.server.reset_stream(server_sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
    pump.pump_peers()
    got = pump.client_responses()[sid]
    assert got["status"] == b"502" and b"Stream reset by server" in got["body"]


def test_goaway_fails_open_streams():
    pump = H2Pump()
    sids = [pump.request(f"/g{i}") for i in range(3)]
    pump.server.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
    pump.pump_peers()
    got = pump.client_responses()
    assert all(got[s]["status"] == b"502" for s in sids)
    assert b"ENHANCE_YOUR_CALM" in got[sids[0]]["body"]
    assert "server" in pump.closed


def test_invalid_client_headers_close_the_connection():
    pump = H2Pump(lax_client=True)
    sid = pump.client.get_next_available_stream_id()
    pump.client.send_headers(sid, [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"),
                                   (b":authority", b"example.com"), (b"Bad-Upper", b"x")], end_stream=True)
    pump.pump_peers()
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in pump.client_events)
    assert "client" in pump.closed


def test_h2_client_to_http1_server():
    pump = H2Pump(server_h2=False)
    sid = pump.request("/h1", body=b"data")
    head, _, body = pump.to_server_raw.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /h1 HTTP/1.1\r\nHost: example.com\r\n")
    assert b"data" in body
    pump.feed(events.DataReceived(pump.server_conn, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nhi"))
    got = pump.client_responses()[sid]
    assert got["status"] == b"200" and got["body"] == b"hi"


@budget(100, deadline=None)
@given(st.binary(max_size=500), st.integers(min_value=1, max_value=64))
def test_arbitrary_client_bytes_never_raise(data, step):
    context = make_context()
    context.client.alpn = b"h2"
    layer = HttpLayer(context, HTTPMode.transparent)
    list(layer.handle_event(events.Start()))
    preface = h2_peer(client_side=True).data_to_send()
    for chunk in [preface] + [data[i : i + step] for i in range(0, len(data), step)]:
        for command in layer.handle_event(events.DataReceived(context.client, chunk)):
            if command.blocking:
                break


@budget(30, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=6), st.integers(min_value=100, max_value=5000))
def test_bodies_arrive_intact_under_random_windows(bodies, window):
    pump = H2Pump(server_window=window)
    sids = [pump.request(f"/r{i}", body=b) for i, b in enumerate(bodies)]
    for _ in range(400):
        seen = pump.server_requests()
        if len(seen) == len(bodies) and all(r["ended"] for r in seen.values()):
            break
        for server_sid in seen:
            try:
                pump.server.increment_flow_control_window(window, server_sid)
            except Exception:
                pass
        pump.server.increment_flow_control_window(window)
        pump.pump_peers()
    seen = pump.server_requests()
    by_path = {r["path"]: r["body"] for r in seen.values()}
    for i, body in enumerate(bodies):
        assert by_path[f"/r{i}".encode()] == body
    assert len(sids) == len(bodies)


def test_idle_upstream_gets_keepalive_pings():
    from proxycore.layers.http._http2 import Http2Client

    context = make_context()
    context.options.update(http2_ping_keepalive=58)
    context.server = Server(address=("example.com", 443), state=ConnectionState.OPEN)
    layer = Http2Client(context)
    start = list(layer.handle_event(events.Start()))
    wakeups = [c for c in start if isinstance(c, commands.RequestWakeup)]
    assert [w.delay for w in wakeups] == [58.0]
    layer.last_activity -= 60  # nothing happened for a minute
    out = list(layer.handle_event(events.Wakeup(wakeups[0])))
    peer = h2_peer(client_side=False)
    sent = b"".join(c.data for c in start + out if isinstance(c, commands.SendData))
    received = peer.receive_data(sent)
    assert any(isinstance(e, h2.events.PingReceived) for e in received)
    assert any(isinstance(c, commands.RequestWakeup) for c in out)  # re-armed


def test_stream_large_bodies_streams_over_http2():
    pump = H2Pump()
    pump.context.options.update(stream_large_bodies="10k")
    sid = pump.request("/streamed")
    (server_sid,) = pump.server_requests()
    got = pump.respond_partly(server_sid, b"a" * 12000)
    assert got[sid]["body"] == b"a" * 12000  # already forwarded: past the limit, streaming began
    pump.server.send_data(server_sid, b"b" * 5000, end_stream=True)
    pump.pump_peers()
    got = pump.client_responses()
    assert got[sid]["body"] == b"a" * 12000 + b"b" * 5000 and got[sid]["ended"]
    assert not pump.layer.streams and "response" in pump.hooks  # done: the stream is gone


def test_a_killed_stream_is_reset_with_internal_error_and_its_server_stream_too():
    pump = H2Pump(hold_hooks=True)
    sid = pump.request("/kill-me")
    while pump.held:
        hook = pump.held.pop(0)
        if hook.name == "request":
            hook.flow.kill()
        pump.feed(events.HookCompleted(hook))
    resets = [e for e in pump.client_events if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)]
    assert "client" not in pump.closed  # only the stream ends: other streams go on
    other = pump.request("/next")
    pump.release_hooks()
    assert any(r["path"] == b"/next" for r in pump.server_requests().values()) and other != sid
