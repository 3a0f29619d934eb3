"""End-to-end checks of the per-connection limits (docs/hardening.md) with real peers.

A real proxydump process, real Python ``ssl``/socket clients and curl, real
origin servers on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import socket
import ssl
from collections.abc import Iterator

import pytest
from cryptography import x509

from tests.e2e_servers import start_http
from tests.test_e2e import Proxy

pytestmark = [pytest.mark.e2e]

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def connect_tunnel(proxy: Proxy, host: str, port: int, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"proxy closed during CONNECT: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


# TLS certificate cache ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory) -> Iterator[int]:
    server, port = start_http(tmp_path_factory.mktemp("tls"))
    yield port
    server.shutdown()


def test_many_snis_through_one_origin_each_get_their_own_certificate(tmp_path, tls_upstream):
    """More SNIs than the cert store holds (100): every handshake gets a leaf for its name."""
    proxy = Proxy(["--set", "ssl_insecure=true"], tmp_path)
    try:
        client_context = ssl.create_default_context(cafile=proxy.ca)
        client_context.check_hostname = False  # we check the names ourselves, below
        wrong = []
        for i in range(150):
            sni = f"site{i}.sni.test"
            with connect_tunnel(proxy, "127.0.0.1", tls_upstream) as raw:
                with client_context.wrap_socket(raw, server_hostname=sni) as tls:
                    der = tls.getpeercert(binary_form=True)
            assert der is not None
            cert = x509.load_der_x509_certificate(der)
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if sni not in san.get_values_for_type(x509.DNSName):
                wrong.append(sni)
        assert not wrong, f"{len(wrong)} handshakes got another name's certificate: {wrong[:5]}"
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()
