"""RawQuicLayer (reverse:quic://) without sockets: an aioquic client and server in memory."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from aioquic.buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived, StreamReset
from aioquic.quic.packet import pull_quic_header

import proxycore.layers.quic as quic_module
from proxycore.connection import ConnectionState, Server, TransportProtocol
from proxycore.layers.quic import QuicStartClientHook, QuicStartServerHook, QuicTlsSettings
from proxycore.layers.quic_raw import RawQuicLayer
from proxycore.layers.tcp import TcpEndHook, TcpStartHook
from proxycore.proxy import commands, events
from proxycore.proxy.commands import StartHook
from proxycore.testing import Playbook, make_context
from tests.h3_peers import CLIENT_ADDR, SERVER_ADDR, Clock, make_cert

ALPN = ["echo"]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_cert(tmp_path_factory.mktemp("raw-quic"))


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(quic_module, "clock", fake)
    return fake


def raw_context() -> Any:
    tctx = make_context()
    tctx.client.transport_protocol = TransportProtocol.UDP
    tctx.client.peername = CLIENT_ADDR
    tctx.server = Server(address=SERVER_ADDR, transport_protocol=TransportProtocol.UDP, peername=SERVER_ADDR)
    tctx.server.state = ConnectionState.OPEN  # reverse mode, eager: the socket is open
    tctx.server.tls = True
    return tctx


class RawPump:
    """The layer between an in-memory QUIC client and a QUIC echo server (upper-cases)."""

    def __init__(self, clock: Clock, cert: Any) -> None:
        certificate, key, cert_path = cert
        self.clock, self.cert = clock, cert
        self.tctx = raw_context()
        self.layer = RawQuicLayer(self.tctx)
        config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="example.com")
        config.verify_mode = ssl.CERT_NONE
        self.client = QuicConnection(configuration=config)
        self.client.connect(SERVER_ADDR, clock())
        self.server_config = QuicConfiguration(is_client=False, alpn_protocols=ALPN)
        self.server_config.certificate, self.server_config.private_key = certificate, key
        self.server: QuicConnection | None = None
        self.client_events: list[Any] = []
        self.server_events: list[Any] = []
        self.hooks: list[StartHook] = []
        self.commands: list[commands.Command] = []
        self.queue: list[events.Event] = [events.Start()]
        self.received: dict[int, bytes] = {}
        self.wakeups: list[tuple[float, commands.RequestWakeup]] = []

    def run(self, rounds: int = 2000) -> None:
        idle = 0
        for _ in range(rounds):
            if not self.queue:
                self.queue += [events.DataReceived(self.tctx.client, d) for d, _ in self.client.datagrams_to_send(self.clock())]
                if self.server is not None:
                    self.queue += [events.DataReceived(self.tctx.server, d) for d, _ in self.server.datagrams_to_send(self.clock())]
            if not self.queue:
                idle += 1
                if idle > 40:
                    return
                self.clock.now += 0.05
                due = [w for at, w in self.wakeups if at <= self.clock.now]
                self.wakeups = [(at, w) for at, w in self.wakeups if at > self.clock.now]
                self.queue += [events.Wakeup(w) for w in due]
                continue
            idle = 0
            for command in self.layer.handle_event(self.queue.pop(0)):
                self.commands.append(command)
                self.carry_out(command)
        raise AssertionError("did not settle")

    def carry_out(self, command: commands.Command) -> None:
        if isinstance(command, commands.SendData) and command.connection is self.tctx.client:
            self.client.receive_datagram(command.data, SERVER_ADDR, self.clock())
            self.client_events += iter(self.client.next_event, None)
        elif isinstance(command, commands.SendData) and command.connection is self.tctx.server:
            if self.server is None:
                header = pull_quic_header(Buffer(data=command.data), host_cid_length=8)
                self.server = QuicConnection(
                    configuration=self.server_config, original_destination_connection_id=header.destination_cid
                )
            self.server.receive_datagram(command.data, CLIENT_ADDR, self.clock())
            for event in iter(self.server.next_event, None):
                self.server_events.append(event)
                if isinstance(event, StreamDataReceived):
                    self.received[event.stream_id] = self.received.get(event.stream_id, b"") + event.data
                    if event.end_stream:
                        self.server.send_stream_data(event.stream_id, self.received[event.stream_id].upper(), True)
        elif isinstance(command, commands.CloseConnection):
            command.connection.state = ConnectionState.CLOSED
        elif isinstance(command, commands.RequestWakeup):
            self.wakeups.append((self.clock.now + command.delay, command))
        elif isinstance(command, commands.OpenConnection):
            command.connection.state = ConnectionState.OPEN
            self.queue.insert(0, events.OpenConnectionCompleted(command, None))
        elif isinstance(command, StartHook):
            self.hooks.append(command)
            if isinstance(command, QuicStartClientHook):
                command.data.settings = QuicTlsSettings(
                    alpn_protocols=[self.tctx.server.alpn.decode()],
                    certificate=self.cert[0], certificate_private_key=self.cert[1],
                )
            elif isinstance(command, QuicStartServerHook):
                command.data.settings = QuicTlsSettings(
                    alpn_protocols=[p.decode() for p in self.tctx.server.alpn_offers],
                    verify_mode=ssl.CERT_REQUIRED, ca_file=str(self.cert[2]),
                )
            self.queue.insert(0, events.HookCompleted(command))

    def answers(self) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for event in self.client_events:
            if isinstance(event, StreamDataReceived):
                out[event.stream_id] = out.get(event.stream_id, b"") + event.data
        return out


def test_streams_are_relayed_as_tcp_flows_after_both_handshakes(fake_clock: Clock, tls: Any) -> None:
    clock = fake_clock
    pump = RawPump(clock, tls)
    pump.run()
    names = [h.name for h in pump.hooks]
    assert names == ["quic_start_server", "tls_established_server", "quic_start_client", "tls_established_client"]
    assert pump.tctx.client.alpn == pump.tctx.server.alpn == b"echo"
    assert pump.tctx.client.sni == "example.com"
    pump.client.send_stream_data(0, b"hello ", end_stream=False)
    pump.client.send_stream_data(0, b"quic", end_stream=True)
    pump.client.send_stream_data(4, b"other", end_stream=True)
    pump.run()
    assert pump.answers() == {0: b"HELLO QUIC", 4: b"OTHER"}
    starts = [h for h in pump.hooks if isinstance(h, TcpStartHook)]
    ends = [h for h in pump.hooks if isinstance(h, TcpEndHook)]
    assert len(starts) == 2 and {id(h.flow) for h in ends} == {id(h.flow) for h in starts}
    flow = starts[0].flow
    assert b"".join(m.content for m in flow.messages if m.from_client) == b"hello quic"
    assert b"".join(m.content for m in flow.messages if not m.from_client) == b"HELLO QUIC"
    assert flow.client_conn.transport_protocol == "tcp" and flow.client_conn is not pump.tctx.client


def test_resets_and_the_end_of_the_connection_are_passed_on(fake_clock: Clock, tls: Any) -> None:
    clock = fake_clock
    pump = RawPump(clock, tls)
    pump.run()
    assert not any(isinstance(c, commands.RequestWakeup) and c.delay == quic_module.KEEPALIVE_SECONDS
                   for c in pump.commands)
    pump.client.send_stream_data(0, b"half", end_stream=False)
    pump.run()
    # An open stream: the client is pinged now and then (see KEEPALIVE_SECONDS).
    assert any(isinstance(c, commands.RequestWakeup) and c.delay == quic_module.KEEPALIVE_SECONDS
               for c in pump.commands)
    pump.client.reset_stream(0, 0x77)
    pump.run()
    assert [(e.stream_id, e.error_code) for e in pump.server_events if isinstance(e, StreamReset)] == [(0, 0x77)]
    pump.client.close(error_code=0x42, reason_phrase="bye")
    pump.run()
    clock.now += 10  # the server's draining period
    assert pump.server is not None
    pump.server.handle_timer(clock.now)
    seen = pump.server_events + list(iter(pump.server.next_event, None))
    ended = [e for e in seen if isinstance(e, ConnectionTerminated)]
    assert [(e.error_code, e.reason_phrase) for e in ended] == [(0x42, "bye")]
    assert pump.tctx.client.state == pump.tctx.server.state == ConnectionState.CLOSED


def test_a_datagram_that_is_not_quic_ends_it(fake_clock: Clock) -> None:
    tctx = raw_context()
    assert (
        Playbook(RawQuicLayer(tctx), logs=True)
        >> events.DataReceived(tctx.client, b"hello")
        << commands.Log("Client sent a datagram that does not start a QUIC connection.", "info")
        << commands.CloseConnection(tctx.client)
        << commands.CloseConnection(tctx.server)
    )


def test_with_the_lazy_strategy_the_server_socket_is_opened_first(fake_clock: Clock, tls: Any) -> None:
    pump = RawPump(fake_clock, tls)
    pump.tctx.server.state = ConnectionState.CLOSED  # ReverseProxy left it to us
    pump.run()
    opened = [c for c in pump.commands if isinstance(c, commands.OpenConnection)]
    assert [c.connection for c in opened] == [pump.tctx.server]
    first_to_server = next(c for c in pump.commands if isinstance(c, commands.SendData) and c.connection is pump.tctx.server)
    assert pump.commands.index(opened[0]) < pump.commands.index(first_to_server)
    assert pump.tctx.client.alpn == b"echo"
