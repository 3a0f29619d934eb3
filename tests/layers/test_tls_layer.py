"""ClientTLS/ServerTLS layers against Python ``ssl`` peers over memory BIOs: no sockets.

A small pump plays the driver: it feeds events to the layer, answers hooks
through the real TlsConfig addon, opens connections instantly, and carries
ciphertext between the layer and ``ssl.SSLObject`` peers.
"""

from __future__ import annotations

import gc
import ssl
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore import testing
from proxycore.addons.tlsconfig import TlsConfig
from proxycore.connection import ConnectionState, Server
from proxycore.layers.tcp import TCPLayer
from proxycore.layers.tls import READ_CHUNK, ClientTLSLayer, ServerTLSLayer
from proxycore.master import Master
from proxycore.proxy import commands, events
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.testing import make_context
from tests.e2e_servers import make_self_signed
from tests.hypothesis_budget import budget
from tests.processes import seed_ca


class Echo(Layer):
    """Child layer: answers every plaintext chunk from the client with b"echo:" + chunk."""

    def __init__(self, context) -> None:
        super().__init__(context)
        self.started = False
        self.closed = False

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.Start):
            self.started = True
        elif isinstance(event, events.DataReceived) and event.connection is self.context.client:
            yield commands.SendData(self.context.client, b"echo:" + event.data)
        elif isinstance(event, events.ConnectionClosed):
            self.closed = True
            yield commands.CloseConnection(event.connection)


class OpenAndGreet(Layer):
    """Child layer for the server side: opens the server connection, sends b"hi", keeps replies."""

    def __init__(self, context) -> None:
        super().__init__(context)
        self.open_error: str | None = "not answered"
        self.received = b""

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.Start):
            err = yield commands.OpenConnection(self.context.server)
            self.open_error = err
            if not err:
                yield commands.SendData(self.context.server, b"hi")
        elif isinstance(event, events.DataReceived):
            self.received += event.data


class Pump(testing.Pump):
    """Runs a layer with real hooks (TlsConfig) and ssl peers on the other end of each connection."""

    def __init__(self, layer: Layer, master: Master) -> None:
        self.master = master
        self.hook_handler: Callable[[commands.StartHook], None] | None = None
        super().__init__(layer)

    @property
    def to_client(self) -> bytearray:
        return self.sent["client"]

    @property
    def to_server(self) -> bytearray:
        return self.sent["server"]

    def on_hook(self, command: commands.StartHook) -> events.Event | None:
        if self.hook_handler is not None:
            self.hook_handler(command)
        for _addon, handler in self.master.addons.handlers(command.name):
            handler(*command.args())
        return super().on_hook(command)

    def client_sends(self, data: bytes) -> None:
        self.feed(events.DataReceived(self.context.client, data))

    def server_sends(self, data: bytes) -> None:
        self.feed(events.DataReceived(self.context.server, data))


class Peer:
    """An ssl.SSLObject over memory BIOs: the real client or server on the other side."""

    def __init__(self, context: ssl.SSLContext, server_side: bool, server_hostname: str | None = None) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side, server_hostname)
        self.done = False
        self.error: ssl.SSLError | None = None

    def step(self, received: bytes = b"") -> bytes:
        """Take ciphertext in, advance the handshake, return ciphertext to send."""
        if received:
            self.incoming.write(received)
        if not self.done and self.error is None:
            try:
                self.obj.do_handshake()
                self.done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                self.error = e
        return self.outgoing.read()

    def read(self) -> bytes:
        out = b""
        while True:
            try:
                chunk = self.obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                return out
            if not chunk:
                return out
            out += chunk


@pytest.fixture
def master(tmp_path: Path) -> Master:
    seed_ca(tmp_path / "conf")  # the test process's CA: no RSA key per test
    m = Master()
    m.options.update(confdir=str(tmp_path / "conf"))
    m.addons.add(TlsConfig())
    return m


def ca_file(master: Master) -> str:
    return str(Path(master.options.confdir) / "proxycore-ca-cert.pem")


def client_ssl_context(master: Master, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file(master))
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def exchange(pump: Pump, peer: Peer, rounds: int = 10) -> None:
    """Shuttle bytes between the layer's client side and the peer until both are quiet."""
    data = peer.step()
    for _ in range(rounds):
        if data:
            pump.client_sends(data)
        reply = bytes(pump.to_client)
        pump.to_client.clear()
        data = peer.step(reply)
        if not data and not reply:
            return


def client_tls(master: Master, server_address=("example.com", 443)) -> tuple[ClientTLSLayer, Echo]:
    context = make_context(master.options)
    context.server = Server(address=server_address)
    layer = ClientTLSLayer(context)
    child = Echo(context)
    layer.child_layer = child
    return layer, child


# client side ---------------------------------------------------------------------------


def test_client_handshake_with_sni_and_alpn(master):
    layer, child = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master, ["h2", "http/1.1"]), False, "example.com")
    exchange(pump, peer)
    assert peer.done, peer.error
    assert pump.hooks == ["tls_clienthello", "tls_start_client", "tls_established_client"]
    client = layer.context.client
    assert client.sni == "example.com"
    assert client.alpn_offers == [b"h2", b"http/1.1"]
    assert client.alpn == b"h2"  # nothing known about the server: the client's first choice
    assert peer.obj.selected_alpn_protocol() == "h2"
    assert client.tls_established and client.tls_version and client.cipher
    cert = peer.obj.getpeercert()
    assert ("DNS", "example.com") in cert["subjectAltName"]
    assert child.started
    # Application data both ways.
    peer.obj.write(b"ping")
    pump.client_sends(peer.outgoing.read())
    peer.step(bytes(pump.to_client))
    pump.to_client.clear()
    assert peer.read() == b"echo:ping"


def test_http2_option_off_means_no_h2(master):
    master.options.update(http2=False)
    layer, _ = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master, ["h2", "http/1.1"]), False, "example.com")
    exchange(pump, peer)
    assert peer.obj.selected_alpn_protocol() == "http/1.1"


def test_client_without_sni_gets_a_cert_for_the_address(master):
    layer, child = client_tls(master, server_address=("10.1.2.3", 443))
    pump = Pump(layer, master)
    context = client_ssl_context(master)
    context.check_hostname = False
    peer = Peer(context, False, None)
    exchange(pump, peer)
    assert peer.done, peer.error
    assert layer.context.client.sni is None
    names = peer.obj.getpeercert()["subjectAltName"]
    assert ("IP Address", "10.1.2.3") in names and ("IP Address", "127.0.0.1") in names
    assert layer.context.client.alpn == b""


def test_alpn_mismatch_means_no_alpn(master):
    layer, _ = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master, ["spdy/3"]), False, "example.com")
    exchange(pump, peer)
    assert peer.done, peer.error
    assert peer.obj.selected_alpn_protocol() is None
    assert layer.context.client.alpn == b""


def test_alpn_mirrors_the_server_choice(master):
    layer, _ = client_tls(master)
    server = layer.context.server
    server.tls = True
    server.timestamp_tls_setup = 1.0
    server.alpn = b"http/1.0"
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master, ["http/1.1", "http/1.0"]), False, "example.com")
    exchange(pump, peer)
    assert peer.obj.selected_alpn_protocol() == "http/1.0"


def test_client_that_does_not_trust_us_fails_cleanly(master):
    layer, child = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(ssl.create_default_context(), False, "example.com")  # system roots only
    exchange(pump, peer)
    assert peer.error is not None
    assert "tls_failed_client" in pump.hooks and "tls_established_client" not in pump.hooks
    assert "client" in pump.closed
    assert any("does not trust the proxycore CA" in m for m in pump.logs)
    assert not child.started


def test_client_disconnecting_mid_handshake(master):
    layer, _ = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master), False, "example.com")
    pump.client_sends(peer.step())
    layer.context.client.state &= ~ConnectionState.CAN_READ
    pump.feed(events.ConnectionClosed(layer.context.client))
    assert "tls_failed_client" in pump.hooks
    assert layer.context.client.error == "The client disconnected during the handshake."


def test_garbage_instead_of_a_client_hello_closes_the_client(master):
    layer, child = client_tls(master)
    pump = Pump(layer, master)
    pump.client_sends(b"\x16\x03\x01\x00\x04\x02\x00\x00\x00")  # a ServerHello type, not a hello
    assert pump.closed == {"client"}
    assert any("invalid TLS ClientHello" in m for m in pump.logs)
    assert not child.started and "tls_start_client" not in pump.hooks


def test_clienthello_hook_can_ignore_the_connection(master):
    layer, _ = client_tls(master)
    pump = Pump(layer, master)

    def ignore(hook: commands.StartHook) -> None:
        if hook.name == "tls_clienthello":
            hook.data.ignore_connection = True

    pump.hook_handler = ignore
    hello = Peer(client_ssl_context(master), False, "example.com").step()
    pump.client_sends(hello)
    assert isinstance(layer.child_layer, TCPLayer) and layer.child_layer.ignore
    assert bytes(pump.to_server) == hello  # replayed untouched toward the server
    assert not layer.context.client.tls


@budget(25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=8))
def test_handshake_survives_any_chunking(cuts, tmp_path_factory):
    master = Master()
    master.options.update(confdir=str(tmp_path_factory.getbasetemp() / "chunking-conf"))
    master.addons.add(TlsConfig())
    layer, child = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master), False, "example.com")
    data = peer.step()
    for _ in range(10):
        pos = 0
        for cut in cuts:
            if pos >= len(data):
                break
            pump.client_sends(data[pos : pos + cut])
            pos += cut
        if pos < len(data):
            pump.client_sends(data[pos:])
        reply = bytes(pump.to_client)
        pump.to_client.clear()
        data = peer.step(reply)
        if not data and not reply:
            break
    assert peer.done and child.started


# server side -------------------------------------------------------------------------------


def server_tls(master: Master, address=("upstream.test", 443)) -> tuple[ServerTLSLayer, OpenAndGreet]:
    context = make_context(master.options)
    context.server = Server(address=address)
    context.client.alpn_offers = [b"h2", b"http/1.1"]
    layer = ServerTLSLayer(context)
    child = OpenAndGreet(context)
    layer.child_layer = child
    return layer, child


def server_exchange(pump: Pump, peer: Peer) -> None:
    for _ in range(10):
        data = bytes(pump.to_server)
        pump.to_server.clear()
        reply = peer.step(data)
        if reply:
            pump.server_sends(reply)
        if not data and not reply:
            return


@pytest.fixture
def upstream_cert(tmp_path: Path) -> tuple[str, str]:
    cert, key = make_self_signed(tmp_path, "upstream.test", ("upstream.test", "127.0.0.1"))
    return str(cert), str(key)


def server_peer(upstream_cert: tuple[str, str], alpn: list[str] | None = None) -> Peer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*upstream_cert)
    if alpn:
        context.set_alpn_protocols(alpn)
    return Peer(context, True)


def test_server_handshake_verified_against_a_trusted_ca(master, upstream_cert):
    master.options.update(ssl_verify_upstream_trusted_ca=upstream_cert[0])
    layer, child = server_tls(master)
    pump = Pump(layer, master)
    peer = server_peer(upstream_cert, ["http/1.1"])
    server_exchange(pump, peer)
    assert child.open_error is None
    assert pump.hooks == ["tls_start_server", "tls_established_server"]
    server = layer.context.server
    assert server.sni == "upstream.test"
    assert server.alpn == b"http/1.1"
    assert server.certificate_list[0].cn == "upstream.test"
    assert peer.read() == b"hi"
    # Offered ALPNs: the client's (h2, http/1.1); this server only speaks http/1.1.
    assert peer.obj.selected_alpn_protocol() == "http/1.1"


def test_server_with_untrusted_certificate_fails_with_the_reason(master, upstream_cert):
    layer, child = server_tls(master)
    pump = Pump(layer, master)
    server_exchange(pump, server_peer(upstream_cert))
    assert child.open_error == "Certificate verify failed: self-signed certificate"
    assert layer.context.server.error == child.open_error
    assert "tls_failed_server" in pump.hooks and "server" in pump.closed


def test_server_hostname_mismatch_is_refused(master, upstream_cert):
    master.options.update(ssl_verify_upstream_trusted_ca=upstream_cert[0])
    layer, child = server_tls(master, address=("other.test", 443))
    pump = Pump(layer, master)
    server_exchange(pump, server_peer(upstream_cert))
    assert child.open_error == "Certificate verify failed: hostname mismatch"


def test_ip_target_gets_no_sni_and_is_verified_as_ip(master, upstream_cert):
    master.options.update(ssl_verify_upstream_trusted_ca=upstream_cert[0])
    layer, child = server_tls(master, address=("127.0.0.1", 443))
    pump = Pump(layer, master)
    sni_seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*upstream_cert)
    context.sni_callback = lambda obj, name, ctx: sni_seen.append(name)
    server_exchange(pump, Peer(context, True))
    assert child.open_error is None
    assert sni_seen == [None]


def test_ssl_insecure_accepts_anything(master, upstream_cert):
    master.options.update(ssl_insecure=True)
    layer, child = server_tls(master, address=("wrong.test", 443))
    pump = Pump(layer, master)
    server_exchange(pump, server_peer(upstream_cert))
    assert child.open_error is None


def test_server_closing_during_handshake(master, upstream_cert):
    layer, child = server_tls(master)
    pump = Pump(layer, master)
    assert pump.to_server  # our ClientHello went out
    layer.context.server.state &= ~ConnectionState.CAN_READ
    pump.feed(events.ConnectionClosed(layer.context.server))
    assert child.open_error == "Server closed the connection during the TLS handshake."
    assert "tls_failed_server" in pump.hooks


def test_a_mitmproxy_confdir_is_used(tmp_path):
    from proxycore.certs import CertStore

    CertStore.create_store(str(tmp_path), "mitmproxy", 2048)
    master = Master()
    master.options.update(confdir=str(tmp_path))
    addon = TlsConfig()
    master.addons.add(addon)
    ca = (tmp_path / "mitmproxy-ca-cert.pem").read_bytes()
    assert addon.certstore.ca_pem() == ca
    assert not (tmp_path / "proxycore-ca.pem").exists()


def test_client_certificate_is_presented_to_servers_that_ask(master, upstream_cert, tmp_path):
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    cert, key = make_self_signed(client_dir, "proxy-client", ("client.test",))
    pem = client_dir / "client.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())

    def demanding_server() -> Peer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*upstream_cert)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(cert))
        return Peer(context, True)

    master.options.update(ssl_insecure=True)
    layer, child = server_tls(master)
    pump = Pump(layer, master)
    peer = demanding_server()
    server_exchange(pump, peer)
    assert child.open_error is not None or peer.error is not None  # no certificate: refused

    master.options.update(client_certs=str(pem))
    layer, child = server_tls(master)
    pump = Pump(layer, master)
    peer = demanding_server()
    server_exchange(pump, peer)
    assert child.open_error is None and peer.error is None
    assert peer.obj.getpeercert()["subject"] == ((("commonName", "proxy-client"),),)


def test_a_client_that_left_during_the_hooks_gets_no_server_hello(master):
    layer, _ = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master), False, "example.com")

    def leave(hook: commands.StartHook) -> None:
        if hook.name == "tls_clienthello":
            layer.context.client.state &= ~ConnectionState.CAN_READ

    pump.hook_handler = leave
    pump.client_sends(peer.step())
    assert pump.hooks == ["tls_clienthello", "tls_start_client", "tls_failed_client"]
    assert pump.to_client == b"" and pump.closed == {"client"}
    assert layer.context.client.error == "The client disconnected during the handshake."


def test_our_last_flight_goes_out_after_the_established_hook(master):
    layer, _ = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master), False, "example.com")
    at_hook: list[int] = []

    def note(hook: commands.StartHook) -> None:
        if hook.name == "tls_established_client":
            at_hook.append(len(pump.to_client))

    pump.hook_handler = note
    exchange(pump, peer)
    assert peer.done, peer.error
    # TLS 1.3: the flight after the client's Finished (session tickets) is written only
    # once the hook has run, as mitmproxy does.
    assert at_hook == [0]
    assert layer.context.client.tls_version == "TLSv1.3"


def test_mitmproxy_clienthello_helpers_work_on_records():
    from proxycore.layers.tls import get_client_hello, handshake_record_contents, parse_client_hello

    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(incoming, outgoing, server_hostname="helpers.example")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    records = outgoing.read()
    (payload,) = handshake_record_contents(records)
    assert get_client_hello(records) == payload and payload[0] == 1  # header included
    # the same message cut into two records
    cut = 40
    two = b"\x16\x03\x01" + cut.to_bytes(2, "big") + payload[:cut]
    two += b"\x16\x03\x01" + (len(payload) - cut).to_bytes(2, "big") + payload[cut:]
    assert get_client_hello(two) == payload and get_client_hello(two[:50]) is None
    assert parse_client_hello(two).sni == "helpers.example"
    assert list(handshake_record_contents(records[:4])) == []
    for bad in (b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x00\x00"):
        with pytest.raises(ValueError):
            next(handshake_record_contents(bad))


@pytest.mark.parametrize("size", [10, READ_CHUNK - 100, READ_CHUNK, 3 * READ_CHUNK + 7])
def test_flush_sends_everything_the_bio_holds(master, size, bio_query):
    """flush stops at the first short BIO read: ciphertext of any size still goes out whole,
    including flights that fill the read size exactly or several times."""
    layer, _child = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master), False, "example.com")
    exchange(pump, peer)
    assert peer.done, peer.error
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    peer.obj.write(payload)
    pump.client_sends(peer.outgoing.read())
    peer.step(bytes(pump.to_client))
    pump.to_client.clear()
    assert peer.read() == b"echo:" + payload


@pytest.fixture(params=["bio-query", "no-bio-query"])
def bio_query(request, monkeypatch):
    """Run with pyOpenSSL's cffi bindings (RawPipe) and without them (PublicPipe)."""
    from proxycore.net import tls_bio

    if request.param == "no-bio-query":
        monkeypatch.setattr(tls_bio, "bindings", None)
    return request.param


def test_several_records_and_close_notify_in_one_feed(master, bio_query):
    """The read loop stops early only once no ciphertext is left: every record of one feed
    reaches the child as one chunk, and a close_notify behind them closes."""
    layer, child = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master), False, "example.com")
    exchange(pump, peer)
    assert peer.done, peer.error
    for part in (b"one;", b"two;", b"x" * 40000):  # the last one spans three records
        peer.obj.write(part)
    with pytest.raises(ssl.SSLWantReadError):
        peer.obj.unwrap()
    pump.client_sends(peer.outgoing.read())
    peer.step(bytes(pump.to_client))
    pump.to_client.clear()
    assert peer.read() == b"echo:one;two;" + b"x" * 40000
    assert child.closed


def test_a_record_split_over_two_feeds(master, bio_query):
    layer, _child = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master), False, "example.com")
    exchange(pump, peer)
    peer.obj.write(b"hello")
    ciphertext = peer.outgoing.read()
    pump.client_sends(ciphertext[:7])
    assert not pump.to_client
    pump.client_sends(ciphertext[7:])
    peer.step(bytes(pump.to_client))
    assert peer.read() == b"echo:hello"


class Burst(Layer):
    """Child layer: answers a client chunk with several sends and a log line in between."""

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.DataReceived) and event.connection is self.context.client:
            client = self.context.client
            yield commands.SendData(client, b"head;")
            yield commands.SendData(client, b"body;")
            yield commands.Log("between")
            yield commands.SendData(client, b"tail;")
            yield commands.SendData(client, b"x" * 40000)


def application_records(ciphertext: bytes) -> int:
    count, pos = 0, 0
    while pos + 5 <= len(ciphertext):
        count += ciphertext[pos] == 0x17
        pos += 5 + int.from_bytes(ciphertext[pos + 3 : pos + 5], "big")
    return count


def test_consecutive_small_sends_become_one_record_in_order(master):
    """A head and its body go out as one record; a command in between (here a log line)
    first gets what came before it, and a large send is not copied into a smaller one."""
    layer, _ = client_tls(master)
    layer.child_layer = Burst(layer.context)
    order: list[tuple[str, int]] = []

    class Recording(Pump):
        def execute(self, command):
            if isinstance(command, commands.SendData):
                order.append(("send", application_records(command.data)))
            elif isinstance(command, commands.Log) and command.message == "between":
                order.append(("log", 0))
            return super().execute(command)

    pump = Recording(layer, master)
    peer = Peer(client_ssl_context(master), False, "example.com")
    exchange(pump, peer)
    order.clear()
    peer.obj.write(b"go")
    pump.client_sends(peer.outgoing.read())
    # head+body: one record; then the log; then "tail;" alone (40000 bytes would pass
    # MERGE_LIMIT) and the 40000 bytes in three records of at most 16 KiB.
    assert order == [("send", 1), ("log", 0), ("send", 1), ("send", 3)]
    peer.step(bytes(pump.to_client))
    assert peer.read() == b"head;body;tail;" + b"x" * 40000


@pytest.mark.parametrize("cut", [1, 5, 100, 16000, 16421, 16500, 30000, -50, -1])
def test_records_cut_anywhere_are_all_delivered(master, bio_query, cut):
    """However the ciphertext of several full records is cut, everything reaches the child
    once the rest arrives: OpenSSL may have half read a record from the first part, whose
    plaintext is then larger than the ciphertext of the second."""
    layer, _child = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master), False, "example.com")
    exchange(pump, peer)
    payload = bytes(range(256)) * 160  # 40960 bytes: three records
    peer.obj.write(payload)
    ciphertext = peer.outgoing.read()
    pump.client_sends(ciphertext[:cut])
    pump.client_sends(ciphertext[cut:])
    peer.step(bytes(pump.to_client))
    assert peer.read().replace(b"echo:", b"") == payload


def test_reading_leaves_no_frame_to_the_cyclic_collector(master, bio_query):
    """A partial record ends the reading with WantReadError: kept with its traceback, that
    exception made a cycle through the reading frame, whose plaintext and buffers (a feed's
    worth each) then lived until the cyclic collector ran: ~50 MB more peak RSS for a
    128 MiB HTTP/2 upload."""
    layer, _child = client_tls(master)
    pump = Pump(layer, master)
    peer = Peer(client_ssl_context(master), False, "example.com")
    exchange(pump, peer)
    peer.obj.write(b"x" * 40000)
    ciphertext = peer.outgoing.read()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        pump.client_sends(ciphertext[:-100])  # the last record stays partial
        gc.collect()
        frames = [o.f_code.co_name for o in gc.garbage if isinstance(o, types.FrameType)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not [name for name in frames if name.startswith("_recv")], frames
    pump.client_sends(ciphertext[-100:])
    peer.step(bytes(pump.to_client))
    assert peer.read().replace(b"echo:", b"") == b"x" * 40000



class GreetThenHangUp(OpenAndGreet):
    """Opens the server, and closes the client (or half-closes it) when it says b"bye", as
    the HTTP layer does for a client that leaves."""

    half_close = False

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.DataReceived) and event.connection is self.context.client:
            if event.data == b"bye":
                yield commands.CloseConnection(self.context.client, half_close=self.half_close)
            return
        yield from super()._handle_event(event)


class ServerBeside(Layer):
    """What an HTTP layer inside an intercepted tunnel does for a new server: a
    ServerTLSLayer of its own beside the client's side, which the client's close does not
    pass through. Client bytes go to GreetThenHangUp's client handling, the rest below."""

    def __init__(self, context, half_close: bool) -> None:
        super().__init__(context)
        forked = context.fork()
        self.server_side = ServerTLSLayer(forked)
        self.server_side.child_layer = OpenAndGreet(forked)
        self.hang_up = GreetThenHangUp(context)
        self.hang_up.half_close = half_close
        self.context.layers.remove(self.hang_up)

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.ConnectionEvent) and event.connection is self.context.client:
            yield from self.hang_up.handle_event(event)
        else:
            yield from self.server_side.handle_event(event)


@pytest.mark.parametrize("half_close", [False, True])
@pytest.mark.parametrize("server_tls_is", ["above", "beside"])
def test_a_client_that_leaves_closes_tls_toward_its_servers_first(master, upstream_cert, server_tls_is, half_close):
    """The driver drops every server connection once the client is closed: TLS toward them
    ends with close_notify first (OpenSSL keeps the session of such a connection only),
    whether the server's TLS layer is above the client's (a CONNECT target, which the HTTP
    layer reuses) or beside it, below the HTTP layer (a new server). A half close of the
    client closes nothing."""
    master.options.update(ssl_insecure=True, connection_strategy="lazy")
    context = make_context(master.options)
    context.server = Server(address=("upstream.test", 443))
    if server_tls_is == "above":
        top = server_layer = ServerTLSLayer(context)
        client_layer = ClientTLSLayer(context)
        child = GreetThenHangUp(context)
        child.half_close = half_close
        server_layer.child_layer, client_layer.child_layer = client_layer, child
    else:
        top = client_layer = ClientTLSLayer(context)
        beside = client_layer.child_layer = ServerBeside(context, half_close)
        server_layer = beside.server_side
    order: list[str] = []

    class Recording(Pump):
        def execute(self, command):
            if isinstance(command, (commands.SendData, commands.CloseConnection)):
                order.append(f"{type(command).__name__}:{self.side(command.connection)}")
            return super().execute(command)

    pump = Recording(top, master)
    client = Peer(client_ssl_context(master), False, "example.com")
    exchange(pump, client)
    server = server_peer(upstream_cert)
    server_exchange(pump, server)
    assert client.done and server.done, (client.error, server.error)
    assert server.read() == b"hi"
    assert client_layer.server_layers == ([server_layer] if server_tls_is == "beside" else [])
    order.clear()
    client.obj.write(b"bye")
    pump.client_sends(client.outgoing.read())
    if half_close:
        assert order == ["CloseConnection:client"] and server_layer.state == "open"
        return
    # close_notify to the server and its close before the client's close (our close_notify
    # to the client is sent by its layer, which is below the server's or above it).
    server_part = ["SendData:server", "CloseConnection:server"]
    if server_tls_is == "above":
        assert order == ["SendData:client", *server_part, "CloseConnection:client"]
    else:
        assert order == [*server_part, "SendData:client", "CloseConnection:client"]
    server.incoming.write(bytes(pump.to_server))
    assert server.read() == b""  # a close_notify, not a record of data
    server.obj.unwrap()  # completes (no SSLWantReadError): the server has our close_notify


class OpenOnRequest(Layer):
    """Below an inactive ServerTLSLayer: opens the server when the client (plaintext here)
    says b"open", greets it, and notes every client chunk in order."""

    def __init__(self, context) -> None:
        super().__init__(context)
        self.seen: list[bytes] = []
        self.open_error: str | None = "not answered"

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.DataReceived) and event.connection is self.context.client:
            self.seen.append(event.data)
            if event.data == b"open":
                self.open_error = yield commands.OpenConnection(self.context.server)
                yield commands.SendData(self.context.server, b"hi")
                self.seen.append(b"opened")


def test_a_relayed_event_whose_child_opens_our_connection_pauses_us(master, upstream_cert):
    """Events that only pass through skip Layer._run; a child command for our connection
    (here an open, which blocks on the handshake's hooks) puts the rest under _run again:
    we pause, later events wait in order, and the child goes on once TLS is up."""
    master.options.update(ssl_insecure=True)
    context = make_context(master.options)
    context.server = Server(address=("upstream.test", 443))
    layer = ServerTLSLayer(context)
    child = layer.child_layer = OpenOnRequest(context)
    held: list[commands.OpenConnection] = []

    class Holding(Pump):
        def on_open(self, command):
            held.append(command)  # the driver connects later
            return None

    pump = Holding(layer, master)
    pump.client_sends(b"open")
    assert held and layer._paused is not None and child.seen == [b"open"]
    pump.client_sends(b"later")  # waits: the layer is paused
    assert child.seen == [b"open"]
    context.server.state = ConnectionState.OPEN
    pump.feed(events.OpenConnectionCompleted(held[0], None))
    server_exchange(pump, server_peer(upstream_cert))
    assert child.open_error is None
    assert child.seen == [b"open", b"opened", b"later"]
