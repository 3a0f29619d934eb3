"""ClientHello made as mitmproxy makes it (from the message body, TLS or DTLS) and the DTLS
record helpers of proxycore.layers.tls. The DTLS hellos are built here field by field."""

from __future__ import annotations

import pytest

from proxycore.layers import tls
from proxycore.net.clienthello import ClientHello


def vec(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


SNI = (0, vec(b"\x00" + vec(b"dtls.example", 2), 2))
ALPN = (16, vec(vec(b"h2", 1), 2))


def hello_body(dtls: bool, extensions: list[tuple[int, bytes]]) -> bytes:
    version = b"\xfe\xfd" if dtls else b"\x03\x03"
    cookie = vec(b"c00k1e", 1) if dtls else b""
    ext = b"".join(t.to_bytes(2, "big") + vec(d, 2) for t, d in extensions)
    return version + b"\x11" * 32 + vec(b"", 1) + cookie + vec(b"\x13\x01\xc0\x2b", 2) + vec(b"\x00", 1) + vec(ext, 2)


def dtls_message(body: bytes) -> bytes:
    n = len(body).to_bytes(3, "big")
    return b"\x01" + n + b"\x00\x00" + b"\x00\x00\x00" + n + body


def dtls_record(content: bytes) -> bytes:
    return b"\x16\xfe\xfd" + b"\x00" * 8 + vec(content, 2)


def test_tls_hello_from_its_body():
    body = hello_body(False, [SNI, ALPN])
    hello = ClientHello(body)
    assert hello.sni == "dtls.example" and hello.alpn_protocols == [b"h2"]
    assert hello.cipher_suites == [0x1301, 0xC02B]
    assert hello.raw_bytes(False) == body
    assert hello.raw_bytes(True) == b"\x16\x03\x03" + vec(b"\x01" + vec(body, 3), 2)
    with pytest.raises(ValueError):
        ClientHello(body[:-3])


def test_dtls_hello_skips_the_cookie():
    hello = ClientHello(hello_body(True, [SNI]), dtls=True)
    assert hello.sni == "dtls.example" and hello.cipher_suites == [0x1301, 0xC02B]


def test_dtls_records_are_taken_apart_and_the_hello_joined_across_them():
    message = dtls_message(hello_body(True, [SNI, ALPN]))
    data = dtls_record(message[:20]) + dtls_record(message[20:])
    assert list(tls.dtls_handshake_record_contents(data)) == [message[:20], message[20:]]
    assert tls.get_dtls_client_hello(data) == message
    assert tls.get_dtls_client_hello(data[:-1]) is None  # the second record is incomplete
    assert tls.dtls_parse_client_hello(data).alpn_protocols == [b"h2"]
    assert tls.dtls_parse_client_hello(dtls_record(message[:20])) is None


def test_dtls_record_errors():
    with pytest.raises(ValueError, match="Expected DTLS record"):
        next(tls.dtls_handshake_record_contents(b"GET / HTTP/1.1\r\nHost: x\r\n"))
    with pytest.raises(ValueError, match="must not be empty"):
        next(tls.dtls_handshake_record_contents(dtls_record(b"")))
