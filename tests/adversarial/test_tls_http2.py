"""TLS and HTTP/2 attacks (issue 18, items 2 and 4, and the 500 MB HTTP/2 upload): every
handshake gets a certificate for its own name, rapid reset gets GOAWAY without reaching
the origin, and a huge HTTP/2 upload is streamed under flow control."""

from __future__ import annotations

import json
import ssl
import time

import pytest
from cryptography import x509

from tests.adversarial.harness import run_client
from tests.e2e_servers import start_h2, start_http
from tests.h2_clients import h2_get
from tests.processes import connect_tunnel

ENHANCE_YOUR_CALM = 0xB


@pytest.fixture(scope="module")
def h2_origin(tmp_path_factory):
    seen: list[str] = []
    _loop, port = start_h2(tmp_path_factory.mktemp("h2origin"), seen)
    return port, seen


def test_many_snis_each_get_their_own_certificate(attack, tmp_path):
    """More names than the certificate store keeps (100), on one origin: a certificate for
    another name would let one site's page impersonate another's."""
    server, port = start_http(tmp_path)
    try:
        proxy = attack.proxy("--set", "ssl_insecure=true")
        context = ssl.create_default_context(cafile=proxy.ca)
        context.check_hostname = False  # checked below, by name
        wrong = []
        names = 400  # four times what the store keeps; the run used 1,000 (19 s here)
        started = time.monotonic()
        for i in range(names):
            sni = f"site{i}.sni.test"
            with connect_tunnel(proxy, "127.0.0.1", port) as raw, context.wrap_socket(raw, server_hostname=sni) as tls:
                der = tls.getpeercert(binary_form=True)
            assert der is not None
            san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName)
            if sni not in san.value.get_values_for_type(x509.DNSName):
                wrong.append(sni)
        took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert not wrong, f"{len(wrong)} of {names} handshakes got another name's certificate: {wrong[:5]}"
    attack.outcome = f"{names} SNIs, 0 wrong certificates ({names / took:.0f} handshakes/s)"
    attack.check()


def test_http2_rapid_reset(attack, h2_origin):
    port, seen = h2_origin
    proxy = attack.proxy("-k")
    assert h2_get(proxy.port, "localhost", port, "/warmup")[0] == 200
    before = sum(1 for path in seen if path.startswith("/reset/"))
    result = run_client("rapid_reset", proxy.port, "localhost", port, 20_000)
    reached = sum(1 for path in seen if path.startswith("/reset/")) - before
    assert result["goaway_code"] == ENHANCE_YOUR_CALM, result
    assert result["streams_sent"] < 20_000
    # Only a stream whose RST_STREAM was not read yet when it was forwarded can get there.
    assert reached <= 20, reached
    canary_started = time.monotonic()
    assert h2_get(proxy.port, "localhost", port, "/after")[0] == 200
    assert time.monotonic() - canary_started < 3
    attack.outcome = (
        f"GOAWAY ENHANCE_YOUR_CALM after {result['streams_sent']} streams, {result['goaway_seconds']:.2f} s; "
        f"{reached} reached the origin"
    )
    attack.check()


def test_http2_500mb_upload(attack, h2_origin):
    port, _seen = h2_origin
    proxy = attack.proxy("-k")
    size = 500 * 1024 * 1024
    result = run_client("h2_upload", proxy.port, "localhost", port, "/sink", size, 30)
    assert result["status"] == 200, result
    assert json.loads(result["body"])["received"] == size
    attack.outcome = f"{size >> 20} MiB streamed to the origin in {result['seconds']:.1f} s"
    attack.check()
