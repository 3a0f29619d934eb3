"""The ClientHello parser (proxycore.net.tls) on real hellos and on arbitrary bytes."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from proxycore.net.tls import get_client_hello, parse_client_hello, starts_like_tls


def python_hello(server_hostname: str | None = "example.com", alpn: list[str] | None = None) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if server_hostname is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def openssl_hello(sni: bytes | None, alpn: list[bytes]) -> bytes:
    conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    conn.set_connect_state()
    if sni:
        conn.set_tlsext_host_name(sni)
    if alpn:
        conn.set_alpn_protos(alpn)
    with pytest.raises(SSL.WantReadError):
        conn.do_handshake()
    return conn.bio_read(65536)


HELLO = python_hello("example.com", ["h2", "http/1.1"])


def resplit_records(hello: bytes, sizes: list[int]) -> bytes:
    """The same handshake message carried in records of the given sizes."""
    message = hello[5:]
    out = b""
    pos = 0
    i = 0
    while pos < len(message):
        size = sizes[i % len(sizes)] if sizes else len(message)
        part = message[pos : pos + size]
        out += b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part
        pos += size
        i += 1
    return out


def test_python_hello_with_sni_and_alpn():
    hello = parse_client_hello(HELLO)
    assert hello is not None
    assert hello.sni == "example.com"
    assert hello.alpn_protocols == [b"h2", b"http/1.1"]
    assert hello.cipher_suites and all(isinstance(c, int) for c in hello.cipher_suites)
    assert len(hello.random) == 32
    assert starts_like_tls(HELLO)


def test_hello_without_sni_or_alpn():
    hello = parse_client_hello(python_hello(None))
    assert hello is not None and hello.sni is None and hello.alpn_protocols == []


@pytest.mark.parametrize("sni", [b"a.example", None])
def test_pyopenssl_hellos(sni):
    hello = parse_client_hello(openssl_hello(sni, [b"http/1.1"]))
    assert hello is not None
    assert hello.sni == (sni.decode() if sni else None)
    assert hello.alpn_protocols == [b"http/1.1"]


def test_every_prefix_needs_more_data():
    for end in range(len(HELLO)):
        assert parse_client_hello(HELLO[:end]) is None


def test_hello_spread_over_several_records():
    data = resplit_records(HELLO, [1, 7, 100])
    assert parse_client_hello(data).sni == "example.com"


def test_bytes_after_the_hello_are_ignored():
    assert parse_client_hello(HELLO + b"\x17\x03\x03junk").sni == "example.com"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "content type"),
        (b"\x16\x02\x00\x00\x10" + b"\x01" * 16, "record version"),
        (b"\x16\x03\x01\x00\x00", "record length"),
        (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "ClientHello"),
        (b"\x16\x03\x01\x00\x04\x01\xff\xff\xff", "too large"),
        (b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03", "truncated"),
    ],
)
def test_malformed_input_is_a_value_error(data, message):
    with pytest.raises(ValueError, match=message):
        parse_client_hello(data)


def test_raw_bytes_round_trip():
    hello = parse_client_hello(resplit_records(HELLO, [50]))
    again = parse_client_hello(hello.raw_bytes())
    assert again == hello
    assert hello.raw_bytes(wrap_in_record=False)[4:] == get_client_hello(HELLO)


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_give_a_result_none_or_value_error(data):
    try:
        parse_client_hello(data)
    except ValueError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_behind_a_plausible_header(data):
    framed = b"\x16\x03\x01" + len(data).to_bytes(2, "big") + data
    try:
        parse_client_hello(framed)
    except ValueError:
        pass


@given(st.lists(st.integers(min_value=0, max_value=len(HELLO)), max_size=10))
def test_cumulative_chunks_give_none_until_complete(cuts):
    expected = parse_client_hello(HELLO)
    for cut in sorted(cuts):
        partial = parse_client_hello(HELLO[:cut])
        assert partial is None or cut == len(HELLO)
    assert parse_client_hello(HELLO) == expected


@given(st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=6))
def test_any_record_sizes_parse_the_same(sizes):
    hello = parse_client_hello(resplit_records(HELLO, sizes))
    assert hello is not None
    assert (hello.sni, hello.alpn_protocols, hello.cipher_suites) == (
        "example.com",
        [b"h2", b"http/1.1"],
        parse_client_hello(HELLO).cipher_suites,
    )
