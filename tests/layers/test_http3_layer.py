"""The HTTP/3 layers without sockets: aioquic peers in memory talk to the HTTP layer.

QUIC packets are encrypted, so most tests here do not script bytes: ``Pump`` feeds the
layer's datagrams to a real aioquic client (and, toward servers, a real aioquic HTTP/3
server or an HTTP/1 responder) in memory, answers hooks as addons would, and runs
everything on a fake clock. The Playbook tests cover the steps that are deterministic
(what happens before any handshake). ``read_client_hello`` gets hypothesis properties.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived as H3Data
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated
from hypothesis import example, given
from hypothesis import strategies as st

import proxycore.layers.quic as quic_module
from proxycore.connection import ConnectionState, Server, TransportProtocol
from proxycore.http import HTTPFlow
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import HttpRequestHeadersHook
from proxycore.layers.quic import (
    QuicStartClientHook,
    QuicStartServerHook,
    QuicTlsData,
    QuicTlsSettings,
    read_client_hello,
)
from proxycore.proxy import commands, events
from proxycore.proxy.commands import StartHook
from proxycore.testing import Placeholder, Playbook, make_context, reply
from tests.e2e_servers import make_self_signed
from tests.h3_peers import CLIENT_ADDR, SERVER_ADDR, Clock, make_cert
from tests.hypothesis_budget import budget


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    return make_cert(tmp_path_factory.mktemp("h3cert"))


def quic_client(clock: Clock, cafile: Path | None, server_name: str = "example.com") -> QuicConnection:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=server_name)
    if cafile is None:
        config.verify_mode = ssl.CERT_NONE
    else:
        config.load_verify_locations(str(cafile))
    quic = QuicConnection(configuration=config)
    quic.connect(SERVER_ADDR, clock())
    return quic


def h3_context(clock: Clock) -> Any:
    tctx = make_context()
    tctx.client.transport_protocol = TransportProtocol.UDP
    tctx.client.peername = CLIENT_ADDR
    tctx.server = Server(address=SERVER_ADDR, transport_protocol=TransportProtocol.UDP)
    tctx.server.tls = True
    return tctx


def http3_layer(tctx: Any, clock: Clock) -> HttpLayer:
    """The HTTP layer as next_layer makes it for a QUIC client (``clock`` is installed)."""
    assert quic_module.clock is clock
    return HttpLayer(tctx, HTTPMode.transparent)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Every QUIC connection in the test runs on this fake clock."""
    fake = Clock()
    monkeypatch.setattr(quic_module, "clock", fake)
    return fake


class Pump:
    """Runs an HttpLayer against in-memory peers until nothing moves any more."""

    def __init__(self, layer: HttpLayer, clock: Clock, client: QuicConnection, cert: Any, origin: Any = None) -> None:
        self.layer = layer
        self.clock = clock
        self.client = client
        self.client_h3 = H3Connection(client)
        self.cert = cert
        self.origin = origin  # an Origin below, or None
        self.server_ca: Path | None = None  # what quic_start_server trusts (default: the origin's cert)
        self.client_reads = True  # False: datagrams to the client wait in ``withheld``
        self.withheld: list[bytes] = []
        self.commands: list[commands.Command] = []
        self.hooks: list[str] = []
        self.wakeups: list[tuple[float, commands.RequestWakeup]] = []
        self.responses: dict[int, dict[str, Any]] = {}
        self.client_events: list[Any] = []
        self.flows: list[HTTPFlow] = []
        self.queue: list[events.Event] = [events.Start()]
        self.client_flush()

    def client_flush(self) -> None:
        for data, _ in self.client.datagrams_to_send(self.clock()):
            self.queue.append(events.DataReceived(self.layer.context.client, data))

    def run(self, rounds: int = 500, settle: bool = True) -> None:
        """Until nothing moves for a while; when idle, time passes in small steps (aioquic
        paces its sending, so some datagrams only leave once the clock moved on)."""
        idle = 0
        for _ in range(rounds):
            if not self.queue:
                self.client_flush()
                if self.origin is not None and self.origin.server.state != ConnectionState.CLOSED:
                    self.queue.extend(self.origin.flush())  # a closed socket hears no more
            if not self.queue:
                idle += 1
                if idle > 10:
                    return
                self.clock.now += 0.02
                due = [w for w in self.wakeups if w[0] <= self.clock.now]
                self.wakeups = [w for w in self.wakeups if w[0] > self.clock.now]
                self.queue.extend(events.Wakeup(w) for _, w in due)
                continue
            idle = 0
            event = self.queue.pop(0)
            if isinstance(event, events.ConnectionClosed):
                event.connection.state &= ~ConnectionState.CAN_READ
            for command in self.layer.handle_event(event):
                self.commands.append(command)
                self.carry_out(command)
        if settle:
            raise AssertionError("the exchange did not settle")

    def carry_out(self, command: commands.Command) -> None:
        tctx = self.layer.context
        if isinstance(command, commands.SendData):
            if command.connection is tctx.client and not self.client_reads:
                self.withheld.append(command.data)
            elif command.connection is tctx.client:
                self.client.receive_datagram(command.data, SERVER_ADDR, self.clock())
                for quic_event in iter(self.client.next_event, None):
                    self.client_events.append(quic_event)
                    for h3_event in self.client_h3.handle_event(quic_event):
                        self.client_h3_event(h3_event)
            elif self.origin is not None:
                self.origin.receive(command.data)
        elif isinstance(command, commands.RequestWakeup):
            self.wakeups.append((self.clock.now + command.delay, command))
        elif isinstance(command, commands.OpenConnection):
            command.connection.state = ConnectionState.OPEN
            command.connection.peername = SERVER_ADDR
            command.connection.timestamp_start = self.clock()
            if isinstance(self.origin, H1Origin):
                # HTTP/1 servers get one request per connection from an HTTP/3 client (as in
                # mitmproxy): the origin answers on the newest one.
                self.origin.server = command.connection
            self.queue.insert(0, events.OpenConnectionCompleted(command, None))
        elif isinstance(command, commands.CloseConnection):
            command.connection.state = ConnectionState.CLOSED
        elif isinstance(command, StartHook):
            self.hooks.append(command.name)
            self.answer_hook(command)
            self.queue.insert(0, events.HookCompleted(command))

    def answer_hook(self, hook: StartHook) -> None:
        certificate, key, cert_path = self.cert
        if isinstance(hook, QuicStartClientHook):
            hook.data.settings = QuicTlsSettings(certificate=certificate, certificate_private_key=key)
        elif isinstance(hook, QuicStartServerHook):
            ca = self.server_ca or cert_path
            hook.data.settings = QuicTlsSettings(verify_mode=ssl.CERT_REQUIRED, ca_file=str(ca))
        elif isinstance(hook, HttpRequestHeadersHook):
            self.flows.append(hook.flow)

    def client_h3_event(self, event: Any) -> None:
        response = self.responses.setdefault(event.stream_id, {"headers": [], "body": b"", "ended": False})
        if isinstance(event, HeadersReceived):
            response["headers"] += event.headers
        elif isinstance(event, H3Data):
            response["body"] += event.data
        if getattr(event, "stream_ended", False):
            response["ended"] = True

    def request(self, method: bytes, path: bytes, body: bytes = b"", end: bool = True) -> int:
        stream_id = self.client.get_next_available_stream_id()
        head = [(b":method", method), (b":scheme", b"https"), (b":authority", b"example.com"), (b":path", path)]
        self.client_h3.send_headers(stream_id, head, end_stream=end and not body)
        if body:
            self.client_h3.send_data(stream_id, body, end_stream=end)
        return stream_id

    def fire_wakeups(self) -> None:
        pending, self.wakeups = self.wakeups, []
        self.queue.extend(events.Wakeup(w) for _, w in pending)


class H3Origin:
    """An aioquic HTTP/3 server in memory that answers every request with its path."""

    def __init__(self, pump_clock: Clock, cert: Any, server: Server) -> None:
        certificate, key, _ = cert
        config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        config.certificate, config.private_key = certificate, key
        self.config = config
        self.clock = pump_clock
        self.server = server
        self.quic: QuicConnection | None = None
        self.h3: H3Connection | None = None
        self.requests: dict[int, dict[str, Any]] = {}

    def receive(self, data: bytes) -> None:
        if self.quic is None:
            from aioquic.buffer import Buffer
            from aioquic.quic.packet import pull_quic_header

            header = pull_quic_header(Buffer(data=data), host_cid_length=8)
            self.quic = QuicConnection(configuration=self.config, original_destination_connection_id=header.destination_cid)
            self.h3 = H3Connection(self.quic)
        assert self.h3 is not None
        self.quic.receive_datagram(data, CLIENT_ADDR, self.clock())
        for quic_event in iter(self.quic.next_event, None):
            for h3_event in self.h3.handle_event(quic_event):
                request = self.requests.setdefault(h3_event.stream_id, {"headers": [], "body": b""})
                if isinstance(h3_event, HeadersReceived):
                    request["headers"] += h3_event.headers
                elif isinstance(h3_event, H3Data):
                    request["body"] += h3_event.data
                if getattr(h3_event, "stream_ended", False):
                    path = dict(request["headers"])[b":path"]
                    self.h3.send_headers(h3_event.stream_id, [(b":status", b"200"), (b"x-origin", b"h3")])
                    self.h3.send_data(h3_event.stream_id, b"you asked for " + path + b" " + request["body"], end_stream=True)

    def flush(self) -> list[events.Event]:
        if self.quic is None:
            return []
        return [events.DataReceived(self.server, d) for d, _ in self.quic.datagrams_to_send(self.clock())]


class H1Origin:
    """Answers each HTTP/1 request head it is sent with a fixed response."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.received = b""
        self.out: list[events.Event] = []

    def receive(self, data: bytes) -> None:
        self.received += data
        if b"\r\n\r\n" in data:
            body = b"plain old HTTP/1.1"
            self.out.append(events.DataReceived(
                self.server, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)))

    def flush(self) -> list[events.Event]:
        out, self.out = self.out, []
        return out


# Playbook tests: before the handshake ---------------------------------------------------------


def test_a_datagram_that_is_not_quic_closes_the_client_quietly(clock: Clock) -> None:
    tctx = h3_context(clock)
    assert (
        Playbook(http3_layer(tctx, clock), logs=True)
        >> events.DataReceived(tctx.client, b"\x00hello, not QUIC")
        << commands.Log("Client sent a datagram that does not start a QUIC connection.", "debug")
        << commands.CloseConnection(tctx.client)
    )


def quic_hello_but_its_last_datagram(clock: Clock) -> tuple[Any, Playbook, bytes]:
    """An HTTP/3 layer fed a client's Initial datagrams but the last (returned), which makes
    the layer ask quic_start_client."""
    tctx = h3_context(clock)
    client = quic_client(clock, None, server_name="h3.example")
    initial = [d for d, _ in client.datagrams_to_send(clock())]
    playbook = Playbook(http3_layer(tctx, clock), logs=True)
    for datagram in initial[:-1]:
        playbook >> events.DataReceived(tctx.client, datagram)
    return tctx, playbook, initial[-1]


def test_quic_start_client_sees_sni_and_alpn_and_no_settings_means_no_handshake(clock: Clock) -> None:
    tctx, playbook, last = quic_hello_but_its_last_datagram(clock)
    data = Placeholder(QuicTlsData)
    assert (
        playbook
        >> events.DataReceived(tctx.client, last)
        << QuicStartClientHook(data)
        >> reply()
        << commands.Log(
            "Client QUIC handshake failed: No QUIC TLS settings were provided by any addon (quic_start_client).", "warn"
        )
        << commands.CloseConnection(tctx.client)
    )
    assert tctx.client.sni == "h3.example"
    assert tctx.client.alpn_offers == [b"h3"]
    assert data().conn is tctx.client and data().settings is None


def test_an_addon_that_says_why_it_gave_no_settings_is_heard(clock: Clock) -> None:
    """The reason an addon put on the client (tlsconfig: the CA could not be loaded) is the
    one logged and kept, not the generic one."""
    tctx, playbook, last = quic_hello_but_its_last_datagram(clock)
    data = Placeholder(QuicTlsData)

    def the_ca_is_broken(hook_data: QuicTlsData) -> None:
        hook_data.conn.error = "Cannot load the CA in /conf: bad key"

    assert (
        playbook
        >> events.DataReceived(tctx.client, last)
        << QuicStartClientHook(data)
        >> reply(side_effect=the_ca_is_broken)
        << commands.Log("Client QUIC handshake failed: Cannot load the CA in /conf: bad key", "warn")
        << commands.CloseConnection(tctx.client)
    )
    assert tctx.client.error == "Cannot load the CA in /conf: bad key"

# Full exchanges with in-memory peers ----------------------------------------------------------


def test_http3_client_to_http3_server(cert: Any, clock: Clock) -> None:
    tctx = h3_context(clock)
    origin = H3Origin(clock, cert, tctx.server)
    pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert, origin)
    pump.run()
    assert tctx.client.alpn == b"h3" and tctx.client.tls_version == "QUICv1"
    first = pump.request(b"GET", b"/one")
    second = pump.request(b"POST", b"/two", b"payload")
    pump.run()
    assert pump.hooks[:1] == ["quic_start_client"]
    assert "quic_start_server" in pump.hooks
    assert pump.responses[first]["ended"] and pump.responses[second]["ended"]
    assert pump.responses[first]["body"] == b"you asked for /one "
    assert pump.responses[second]["body"] == b"you asked for /two payload"
    assert (b"x-origin", b"h3") in pump.responses[first]["headers"]
    assert sorted(f.request.path for f in pump.flows) == ["/one", "/two"]
    for flow in pump.flows:
        assert flow.request.http_version == "HTTP/3"
        assert flow.response is not None and flow.response.http_version == "HTTP/3"
        assert flow.server_conn.alpn == b"h3"
    assert pump.hooks.count("response") == 2
    assert "tls_established_client" in pump.hooks and "tls_established_server" in pump.hooks
    assert pump.flows[0].server_conn.certificate_list[0].cn == "example.com"
    assert pump.flows[0].client_conn.cipher and pump.flows[0].server_conn.tls_version == "QUICv1"


def test_a_server_that_fails_verification_fails_the_requests(cert: Any, tmp_path: Path, clock: Clock) -> None:
    other_ca, _ = make_self_signed(tmp_path, cn="someone-else", names=("example.com",))
    tctx = h3_context(clock)
    origin = H3Origin(clock, cert, tctx.server)
    pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert, origin)
    pump.server_ca = other_ca
    pump.run()
    stream = pump.request(b"GET", b"/nope")
    pump.run()
    assert "tls_failed_server" in pump.hooks
    assert (b":status", b"502") in pump.responses[stream]["headers"]
    assert b"QUIC handshake with the server failed" in pump.responses[stream]["body"]
    assert pump.flows[0].error is not None


def test_http3_client_to_http1_server(cert: Any, clock: Clock) -> None:
    tctx = h3_context(clock)
    tctx.server.transport_protocol = TransportProtocol.TCP
    tctx.server.tls = False
    origin = H1Origin(tctx.server)
    pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert, origin)
    pump.run()
    stream = pump.request(b"GET", b"/h1")
    pump.run()
    assert origin.received.startswith(b"GET /h1 HTTP/1.1\r\n")
    assert b"host: example.com" in origin.received.lower()
    assert pump.responses[stream]["body"] == b"plain old HTTP/1.1"
    assert (b":status", b"200") in pump.responses[stream]["headers"]
    flow = pump.flows[0]
    assert flow.request.http_version == "HTTP/3" and flow.response.http_version == "HTTP/1.1"


def test_each_http3_request_gets_its_own_http1_server_connection(cert: Any, clock: Clock) -> None:
    """As mitmproxy: an HTTP/1 server connection carries one request of an HTTP/3 client
    (the driver's per-server limits then manage the concurrency), then it is closed."""
    tctx = h3_context(clock)
    tctx.server.transport_protocol = TransportProtocol.TCP
    tctx.server.tls = False
    origin = H1Origin(tctx.server)
    pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert, origin)
    pump.run()
    first = pump.request(b"GET", b"/one")
    pump.run()
    second = pump.request(b"GET", b"/two")
    pump.run()
    assert pump.responses[first]["body"] == pump.responses[second]["body"] == b"plain old HTTP/1.1"
    opened = [c.connection for c in pump.commands if isinstance(c, commands.OpenConnection)]
    closed = [c.connection for c in pump.commands if isinstance(c, commands.CloseConnection)]
    assert len(opened) == 2 and opened[0] is not opened[1]
    assert opened[0] in closed


class SlowOrigin(H1Origin):
    """Answers with a 4 MiB body: half at once, a quarter at each ``more()``."""

    SIZE = 4 * 2**20

    def receive(self, data: bytes) -> None:
        self.received += data
        if b"\r\n\r\n" in data:
            head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % self.SIZE
            self.out.append(events.DataReceived(self.server, head + b"a" * (self.SIZE // 2)))

    def more(self) -> None:
        self.out.append(events.DataReceived(self.server, b"b" * (self.SIZE // 4)))


@pytest.mark.parametrize("limit", [2**20, 2**40])
def test_a_slow_http3_client_pauses_the_server_it_streams_from(
    cert: Any, clock: Clock, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import proxycore.layers.http._http3 as http3

    monkeypatch.setattr(http3, "SEND_BUFFER_LIMIT", limit)
    tctx = h3_context(clock)
    tctx.options.update(stream_large_bodies="64k")
    tctx.server.transport_protocol = TransportProtocol.TCP
    tctx.server.tls = False
    origin = SlowOrigin(tctx.server)
    pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert, origin)
    pump.run()
    stream = pump.request(b"GET", b"/big")
    pump.client_reads = False  # the client stops acknowledging what we send
    pump.run(settle=False)
    origin.more()
    pump.run(settle=False)
    # (The HTTP layer also holds the server briefly while the response hooks run.)
    if limit > SlowOrigin.SIZE:  # without the limit nothing stops the server
        assert reading(pump, tctx.server) != "paused"
        return
    assert reading(pump, tctx.server) == "paused"
    pump.client_reads = True
    for datagram in pump.withheld:
        pump.client.receive_datagram(datagram, SERVER_ADDR, clock())
    pump.withheld.clear()
    pump.run(rounds=5000, settle=False)
    assert reading(pump, tctx.server) == "resumed"
    origin.more()
    pump.run(rounds=5000)
    assert pump.responses[stream]["ended"]
    assert pump.responses[stream]["body"] == b"a" * (SlowOrigin.SIZE // 2) + b"b" * (SlowOrigin.SIZE // 2)


def reading(pump: Pump, conn: Any) -> str | None:
    """The last reading switch the layers asked for on ``conn``."""
    for command in reversed(pump.commands):
        if isinstance(command, (commands.PauseReading, commands.ResumeReading)) and command.connection is conn:
            return "paused" if isinstance(command, commands.PauseReading) else "resumed"
    return None


def test_the_quic_timer_runs_on_wakeups_and_idle_connections_end(cert: Any, clock: Clock) -> None:
    tctx = h3_context(clock)
    pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert)
    pump.run()
    assert pump.wakeups, "the QUIC layer asked for no timer"
    assert all(w.delay >= 0 for _, w in pump.wakeups)
    clock.now += 120  # past aioquic's idle timeout (60 s): the client stays silent
    pump.fire_wakeups()
    pump.run()
    assert any(isinstance(c, commands.CloseConnection) and c.connection is tctx.client for c in pump.commands)
    assert tctx.client.state == ConnectionState.CLOSED


def test_a_stream_reset_by_the_client_fails_its_flow(cert: Any, clock: Clock) -> None:
    tctx = h3_context(clock)
    tctx.server.transport_protocol = TransportProtocol.TCP
    tctx.server.tls = False
    origin = H1Origin(tctx.server)
    origin.receive = lambda data: None  # type: ignore[method-assign]  # never answers
    pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert, origin)
    pump.run()
    stream = pump.request(b"POST", b"/slow", b"part", end=False)
    pump.run()
    assert pump.hooks[-1] == "requestheaders"
    pump.client.reset_stream(stream, 0x10C)
    pump.run()
    flow = pump.flows[0]
    assert flow.error is not None and flow.error.msg.startswith("Client disconnected")
    assert pump.hooks[-1] == "error"


def test_closing_the_client_connection_ends_quic_and_its_flows(cert: Any, clock: Clock) -> None:
    tctx = h3_context(clock)
    pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert)
    pump.run()
    pump.queue.append(events.ConnectionClosed(tctx.client))
    pump.run()
    assert tctx.client.state == ConnectionState.CLOSED
    clock.now += 10  # the client's draining period ends: it reports why the connection closed
    pump.client.handle_timer(clock.now)
    ended = [e for e in iter(pump.client.next_event, None) if isinstance(e, ConnectionTerminated)]
    assert [(e.error_code, e.reason_phrase) for e in ended] == [(0, "proxy closing")]


# read_client_hello --------------------------------------------------------------------------------


def test_read_client_hello_from_aioquic_initials() -> None:
    clock = Clock()
    client = quic_client(clock, None, server_name="hello.example")
    datagrams = [d for d, _ in client.datagrams_to_send(clock())]
    info = read_client_hello(datagrams)
    assert info is not None
    assert info.client_hello.sni == "hello.example"
    assert info.client_hello.alpn_protocols == [b"h3"]
    assert info.version == 1


@budget(200, deadline=None)
@given(st.binary(max_size=1500))
def test_read_client_hello_only_ever_raises_value_error(data: bytes) -> None:
    try:
        read_client_hello([data])
    except ValueError:
        pass


@budget(100, deadline=None)
@given(st.data())
def test_damaged_initial_packets_are_refused_not_crashed_on(data: st.DataObject) -> None:
    clock = Clock()  # only for the client: the reader needs no time
    datagram = bytearray([d for d, _ in quic_client(clock, None).datagrams_to_send(clock())][0])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(datagram) - 1))
        datagram[position] ^= data.draw(st.integers(1, 255))
    try:
        read_client_hello([bytes(datagram)])
    except ValueError:
        pass


# Bad input from an HTTP/3 client ------------------------------------------------------------

_field_bytes = st.binary(min_size=0, max_size=20)


# A well-formed head goes to the origin and is answered: the next request is on a new connection.
@example(head=[], pseudo=[b":method", b":path", b":scheme", b":authority"], junk=[])
@budget(30, deadline=None)
@given(
    head=st.lists(st.tuples(_field_bytes, _field_bytes), max_size=6),
    pseudo=st.lists(st.sampled_from([b":method", b":path", b":scheme", b":authority", b":status", b":bogus"]), max_size=5),
    junk=st.lists(st.binary(min_size=1, max_size=200), max_size=3),
)
def test_any_request_head_or_junk_leaves_the_layer_standing(
    cert: Any, head: list[tuple[bytes, bytes]], pseudo: list[bytes], junk: list[bytes]
) -> None:
    clock = Clock()
    original = quic_module.clock
    quic_module.clock = clock
    try:
        tctx = h3_context(clock)
        tctx.server.transport_protocol = TransportProtocol.TCP
        tctx.server.tls = False
        origin = H1Origin(tctx.server)
        pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert, origin)
        pump.run()
        stream = pump.client.get_next_available_stream_id()
        fields = [(name, b"x") for name in pseudo] + head
        try:
            pump.client_h3.send_headers(stream, fields, end_stream=True)
        except Exception:
            return  # aioquic's client refuses to encode it: nothing reaches us
        for data in junk:
            pump.queue.append(events.DataReceived(tctx.client, data))
        pump.run()  # no exception may escape the layers
        good = pump.request(b"GET", b"/still-alive")
        pump.run()
        if tctx.client.state == ConnectionState.OPEN:
            assert pump.responses[good]["body"] == b"plain old HTTP/1.1"
    finally:
        quic_module.clock = original


def test_a_long_wait_for_the_server_keeps_the_client_connection_alive(cert: Any, clock: Clock) -> None:
    http3 = quic_module  # KEEPALIVE_SECONDS
    tctx = h3_context(clock)
    tctx.server.transport_protocol = TransportProtocol.TCP
    tctx.server.tls = False
    origin = H1Origin(tctx.server)
    origin.receive = lambda data: None  # type: ignore[method-assign]  # a server that thinks long
    pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert, origin)
    pump.run()
    assert not any(w.delay == http3.KEEPALIVE_SECONDS for _, w in pump.wakeups)  # nothing open: no PINGs
    pump.request(b"GET", b"/long-poll")
    pump.run()
    keepalive = [w for _, w in pump.wakeups if w.delay == http3.KEEPALIVE_SECONDS]
    assert len(keepalive) == 1
    sent = sum(isinstance(c, commands.SendData) and c.connection is tctx.client for c in pump.commands)
    clock.now += http3.KEEPALIVE_SECONDS
    pump.run()  # the wakeup is due: a PING goes out, and the next one is asked for
    assert sum(isinstance(c, commands.SendData) and c.connection is tctx.client for c in pump.commands) > sent
    assert [w for _, w in pump.wakeups if w.delay == http3.KEEPALIVE_SECONDS]


class TrailerOrigin(H3Origin):
    """Answers with a body and trailers, and remembers the request's trailers."""

    def receive(self, data: bytes) -> None:
        if self.quic is None:
            super().receive(data)  # sets up the connection (and answers nothing yet)
            return
        assert self.h3 is not None
        self.quic.receive_datagram(data, CLIENT_ADDR, self.clock())
        for quic_event in iter(self.quic.next_event, None):
            for h3_event in self.h3.handle_event(quic_event):
                request = self.requests.setdefault(h3_event.stream_id, {"headers": [], "body": b""})
                if isinstance(h3_event, HeadersReceived):
                    request["headers"].append(list(h3_event.headers))
                elif isinstance(h3_event, H3Data):
                    request["body"] += h3_event.data
                if getattr(h3_event, "stream_ended", False):
                    self.h3.send_headers(h3_event.stream_id, [(b":status", b"200")])
                    self.h3.send_data(h3_event.stream_id, b"body", end_stream=False)
                    self.h3.send_headers(h3_event.stream_id, [(b"x-checksum", b"abc")], end_stream=True)


def test_trailers_pass_both_ways_between_http3_peers(cert: Any, clock: Clock) -> None:
    tctx = h3_context(clock)
    origin = TrailerOrigin(clock, cert, tctx.server)
    pump = Pump(http3_layer(tctx, clock), clock, quic_client(clock, cert[2]), cert, origin)
    pump.run()
    stream = pump.request(b"POST", b"/t", b"data", end=False)
    pump.client_h3.send_headers(stream, [(b"x-request-trailer", b"1")], end_stream=True)
    pump.run()
    (request,) = origin.requests.values()
    assert request["body"] == b"data"
    assert request["headers"][-1] == [(b"x-request-trailer", b"1")]
    assert pump.responses[stream]["body"] == b"body"
    assert pump.responses[stream]["headers"][-1] == (b"x-checksum", b"abc")
    flow = pump.flows[0]
    assert flow.request.trailers["x-request-trailer"] == "1"
    assert flow.response.trailers["x-checksum"] == "abc"
