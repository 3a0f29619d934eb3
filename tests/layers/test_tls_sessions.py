"""TLS session resumption toward servers (TlsConfig): a new connection offers the session of
the last one made for the same server, name, ALPN offers and verification settings.

Driven like test_tls_layer: ServerTLSLayer under a pump with the real TlsConfig addon,
against a Python ``ssl`` server whose context (and so ticket key) outlives each connection,
so ``session_reused`` on the server's side says whether a session was resumed."""

from __future__ import annotations

import gc
import ssl

import pytest

from proxycore.addons import tlsconfig
from proxycore.addons.tlsconfig import TlsConfig
from proxycore.master import Master
from proxycore.proxy import commands, events
from proxycore.proxy.layer import CommandGenerator
from proxycore.proxy.server_hooks import ServerConnectionHookData
from tests.layers.test_tls_layer import OpenAndGreet, Peer, Pump, server_exchange, server_tls
from tests.processes import seed_ca


@pytest.fixture
def master(tmp_path) -> Master:
    seed_ca(tmp_path / "conf")
    m = Master()
    m.options.update(confdir=str(tmp_path / "conf"))
    m.addons.add(TlsConfig())
    return m


@pytest.fixture
def server_context(upstream_cert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*upstream_cert)
    return context


@pytest.fixture
def upstream_cert(tmp_path):
    from tests.e2e_servers import make_self_signed

    cert, key = make_self_signed(tmp_path, "upstream.test", ("upstream.test", "127.0.0.1"))
    return str(cert), str(key)


class GreetAndClose(OpenAndGreet):
    """OpenAndGreet that closes its side when the server closes, as the HTTP layer does."""

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.ConnectionClosed):
            yield commands.CloseConnection(event.connection)
        else:
            yield from super()._handle_event(event)


def connect(master, server_context, address=("upstream.test", 443), offers=(b"h2", b"http/1.1"), clean=True):
    """One connection: handshake, a few bytes each way (the server's tickets arrive with
    them), the server's close_notify answered with ours (``clean``) or the connection just
    dropped, then the driver's server_disconnected.  Returns the server's SSLObject and the
    proxy's server connection."""
    layer, child = server_tls(master, address)
    child = layer.child_layer = GreetAndClose(layer.context)
    layer.context.client.alpn_offers = list(offers)
    pump = Pump(layer, master)
    peer = Peer(server_context, True)
    server_exchange(pump, peer)
    assert child.open_error is None, child.open_error
    assert peer.read() == b"hi"
    peer.obj.write(b"answer")
    pump.server_sends(peer.outgoing.read())
    assert child.received == b"answer"
    server = layer.context.server
    if clean:
        with pytest.raises(ssl.SSLWantReadError):
            peer.obj.unwrap()
        pump.server_sends(peer.outgoing.read())
        assert "server" in pump.closed
    addon = master.addons.get("tlsconfig")
    addon.server_disconnected(ServerConnectionHookData(server, layer.context.client))
    del layer, pump, child
    gc.collect()  # the SSL object goes now, as it would once the proxy drops the connection
    return peer.obj, server


@pytest.fixture
def verifying(master, upstream_cert):
    master.options.update(ssl_verify_upstream_trusted_ca=upstream_cert[0])
    return master


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_the_next_connection_resumes_and_still_records_the_certificate(verifying, server_context, version):
    server_context.maximum_version = version
    first, _ = connect(verifying, server_context)
    second, server = connect(verifying, server_context)
    third, _ = connect(verifying, server_context)
    assert not first.session_reused
    assert second.session_reused and third.session_reused
    # The session carries the verified chain: flows and upstream_cert see it as before.
    assert server.certificate_list and server.certificate_list[0].cn == "upstream.test"
    assert server.tls_version == ("TLSv1.3" if version == ssl.TLSVersion.TLSv1_3 else "TLSv1.2")


def test_sessions_are_kept_apart_by_name_alpn_and_verification(verifying, server_context):
    connect(verifying, server_context)
    other_name, _ = connect(verifying, server_context, address=("127.0.0.1", 443))  # no SNI
    other_alpn, _ = connect(verifying, server_context, offers=(b"http/1.1",))
    other_port, _ = connect(verifying, server_context, address=("upstream.test", 8443))
    assert not other_name.session_reused and not other_alpn.session_reused and not other_port.session_reused
    same, _ = connect(verifying, server_context)
    assert same.session_reused


def test_a_session_made_without_verification_is_never_offered_with_it(master, upstream_cert, server_context):
    master.options.update(ssl_insecure=True)
    insecure, _ = connect(master, server_context)
    insecure_again, _ = connect(master, server_context)
    assert insecure_again.session_reused
    master.options.update(ssl_insecure=False, ssl_verify_upstream_trusted_ca=upstream_cert[0])
    verified, _ = connect(master, server_context)
    assert not verified.session_reused


def test_a_failed_handshake_keeps_no_session(master, server_context):
    layer, child = server_tls(master)  # the self-signed upstream is not trusted
    pump = Pump(layer, master)
    server_exchange(pump, Peer(server_context, True))
    assert child.open_error == "Certificate verify failed: self-signed certificate"
    addon = master.addons.get("tlsconfig")
    addon.server_disconnected(ServerConnectionHookData(layer.context.server, layer.context.client))
    assert addon._sessions == {} and addon._session_owners == {}


def test_the_cache_keeps_the_most_recent_servers(verifying, server_context, monkeypatch):
    monkeypatch.setattr(tlsconfig, "SESSION_CACHE_SIZE", 2)
    for port in (1, 2, 3):
        connect(verifying, server_context, address=("upstream.test", port))
    addon: TlsConfig = verifying.addons.get("tlsconfig")
    assert [key[0] for key in addon._sessions] == [("upstream.test", 2), ("upstream.test", 3)]
    evicted, _ = connect(verifying, server_context, address=("upstream.test", 1))
    kept, _ = connect(verifying, server_context, address=("upstream.test", 3))
    assert not evicted.session_reused and kept.session_reused


def test_a_connection_that_ended_without_close_notify_leaves_no_resumable_session(verifying, server_context):
    """OpenSSL's own rule, kept: the session of a connection it saw end badly is not offered."""
    connect(verifying, server_context, clean=False)
    after_bad_end, _ = connect(verifying, server_context)
    resumed, _ = connect(verifying, server_context)
    assert not after_bad_end.session_reused and resumed.session_reused


def test_a_session_is_not_offered_once_its_ca_is_no_longer_trusted(verifying, server_context, tmp_path):
    """A resumed session skips certificate verification, so changing what is trusted drops
    every session: the next handshake is verified again, and here refused."""
    from tests.e2e_servers import make_self_signed

    connect(verifying, server_context)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other_ca, _ = make_self_signed(other_dir, "other.test", ("other.test",))
    verifying.options.update(ssl_verify_upstream_trusted_ca=str(other_ca))
    layer, child = server_tls(verifying)
    pump = Pump(layer, verifying)
    peer = Peer(server_context, True)
    server_exchange(pump, peer)
    assert child.open_error == "Certificate verify failed: self-signed certificate"
    assert not peer.obj.session_reused
