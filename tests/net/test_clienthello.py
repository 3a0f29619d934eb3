"""ClientHello parsing (proxycore.net.clienthello): real hellos from Python's ssl and
pyOpenSSL, hand-built hellos and malformed ones, and hypothesis properties for
chunking, record splitting and arbitrary input."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from OpenSSL import SSL

from proxycore.net.clienthello import (
    ClientHello,
    get_client_hello,
    parse_client_hello,
    starts_like_tls,
)
from tests.hypothesis_budget import budget

# --- hello sources -----------------------------------------------------------


def python_hello(server_hostname: str | None, alpn: list[str] | None = None) -> bytes:
    """The first flight of a Python ssl client, produced without any socket."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if server_hostname is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def pyopenssl_hello(sni: bytes | None, alpn: list[bytes] | None) -> bytes:
    """The first flight of a pyOpenSSL client on a memory BIO."""
    conn = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    conn.set_connect_state()
    if sni is not None:
        conn.set_tlsext_host_name(sni)
    if alpn:
        conn.set_alpn_protos(alpn)
    with pytest.raises(SSL.WantReadError):
        conn.do_handshake()
    return conn.bio_read(65536)


def record(payload: bytes, version: bytes = b"\x03\x01", content_type: int = 0x16) -> bytes:
    return bytes([content_type]) + version + len(payload).to_bytes(2, "big") + payload


def vec(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def extension(ext_type: int, data: bytes) -> bytes:
    return ext_type.to_bytes(2, "big") + vec(data, 2)


def sni_ext(*names: bytes, name_type: int = 0) -> bytes:
    return extension(0, vec(b"".join(bytes([name_type]) + vec(n, 2) for n in names), 2))


def alpn_ext(*protocols: bytes) -> bytes:
    return extension(16, vec(b"".join(vec(p, 1) for p in protocols), 2))


def hello_body(
    extensions: bytes | None = b"",
    suites: tuple[int, ...] = (0x1301, 0x1302, 0xC02F),
    session_id: bytes = b"\x07" * 32,
    trailer: bytes = b"",
) -> bytes:
    """A ClientHello body; ``extensions=None`` leaves the extensions block out."""
    body = b"\x03\x03" + bytes(range(32)) + vec(session_id, 1)
    body += vec(b"".join(s.to_bytes(2, "big") for s in suites), 2) + vec(b"\x00", 1)
    if extensions is not None:
        body += vec(extensions, 2)
    return body + trailer


def handshake(body: bytes, msg_type: int = 1) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def in_records(message: bytes, sizes: list[int]) -> bytes:
    """``message`` carried in consecutive handshake records of the given sizes (cycled)."""
    out = []
    pos = 0
    i = 0
    while pos < len(message):
        size = sizes[i % len(sizes)]
        out.append(record(message[pos : pos + size]))
        pos += size
        i += 1
    return b"".join(out)


def summary(hello: ClientHello | None) -> tuple:
    assert hello is not None
    return hello.sni, hello.alpn_protocols, hello.cipher_suites, hello.extensions


PY_HELLO = python_hello("example.com", ["h2", "http/1.1"])
BUILT_BODY = hello_body(sni_ext(b"built.example") + alpn_ext(b"h2", b"http/1.1"))
BUILT_MESSAGE = handshake(BUILT_BODY)

# --- real hellos --------------------------------------------------------------


def test_python_hello_with_sni_and_alpn() -> None:
    hello = parse_client_hello(PY_HELLO)
    assert hello is not None
    assert hello.sni == "example.com"
    assert hello.alpn_protocols == [b"h2", b"http/1.1"]
    assert hello.cipher_suites and all(0 <= c <= 0xFFFF for c in hello.cipher_suites)
    assert 0x1301 in hello.cipher_suites  # TLS_AES_128_GCM_SHA256
    assert hello.legacy_version == (3, 3)
    assert len(hello.random) == 32
    assert len(hello.session_id) <= 32
    assert starts_like_tls(PY_HELLO)
    assert get_client_hello(PY_HELLO) == PY_HELLO[9:]


@pytest.mark.parametrize(
    "server_hostname, alpn, sni, protocols",
    [
        ("example.com", None, "example.com", []),
        (None, ["h2", "http/1.1"], None, [b"h2", b"http/1.1"]),
        (None, None, None, []),
        ("xn--bcher-kva.example", ["http/1.1"], "xn--bcher-kva.example", [b"http/1.1"]),
    ],
)
def test_python_hello_variants(server_hostname, alpn, sni, protocols) -> None:
    hello = parse_client_hello(python_hello(server_hostname, alpn))
    assert hello is not None
    assert hello.sni == sni
    assert hello.alpn_protocols == protocols
    assert hello.cipher_suites


def test_python_hello_with_unicode_hostname_is_sent_and_read_as_a_labels() -> None:
    hello = parse_client_hello(python_hello("bücher.example"))
    assert hello is not None and hello.sni == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "sni, alpn",
    [
        (b"a.example", [b"h2", b"http/1.1"]),
        (b"a.example", None),
        (None, [b"http/1.1"]),
        (None, None),
    ],
)
def test_pyopenssl_hellos(sni, alpn) -> None:
    hello = parse_client_hello(pyopenssl_hello(sni, alpn))
    assert hello is not None
    assert hello.sni == (sni.decode() if sni else None)
    assert hello.alpn_protocols == (alpn or [])
    assert hello.cipher_suites


def _server_context() -> SSL.Context:
    import tempfile
    from pathlib import Path

    from tests.e2e_servers import make_self_signed

    cert, key = make_self_signed(Path(tempfile.mkdtemp()), "example.com", ("example.com",))
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.use_certificate_file(str(cert))
    ctx.use_privatekey_file(str(key))
    return ctx


@pytest.mark.parametrize("split", [False, True])
def test_raw_bytes_replays_into_a_fresh_pyopenssl_server(split) -> None:
    data = in_records(PY_HELLO[5:], [50]) if split else PY_HELLO
    hello = parse_client_hello(data)
    assert hello is not None
    server = SSL.Connection(_server_context(), None)
    server.set_accept_state()
    server.bio_write(hello.raw_bytes())
    with pytest.raises(SSL.WantReadError):
        server.do_handshake()
    answer = server.bio_read(65536)
    assert answer[:1] == b"\x16" and answer[5] == 2  # a ServerHello came back


# --- hand-built hellos ------------------------------------------------------------


def test_hand_built_hello_in_one_record() -> None:
    hello = parse_client_hello(record(BUILT_MESSAGE))
    assert summary(hello) == (
        "built.example",
        [b"h2", b"http/1.1"],
        [0x1301, 0x1302, 0xC02F],
        [
            (0, vec(b"\x00" + vec(b"built.example", 2), 2)),
            (16, vec(b"\x02h2\x08http/1.1", 2)),
        ],
    )
    assert hello is not None and hello.session_id == b"\x07" * 32
    assert hello.compression_methods == b"\x00"


@pytest.mark.parametrize("sizes", [[1], [4], [3, 1], [2, 5, 11], [len(BUILT_MESSAGE) - 1]])
def test_hand_built_hello_split_across_records(sizes) -> None:
    data = in_records(BUILT_MESSAGE, sizes)
    assert data.count(b"\x16\x03\x01") >= 2
    assert summary(parse_client_hello(data)) == summary(parse_client_hello(record(BUILT_MESSAGE)))


def test_hello_without_extensions_block() -> None:
    hello = parse_client_hello(record(handshake(hello_body(None))))
    assert hello is not None
    assert (hello.sni, hello.alpn_protocols, hello.extensions) == (None, [], [])


def test_unknown_extensions_are_kept_in_order() -> None:
    exts = extension(0xFAFA, b"") + sni_ext(b"x.test") + extension(43, b"\x02\x03\x04")
    hello = parse_client_hello(record(handshake(hello_body(exts))))
    assert hello is not None
    assert [t for t, _ in hello.extensions] == [0xFAFA, 0, 43]
    assert hello.extensions[2] == (43, b"\x02\x03\x04")


def test_sni_is_lowercased_and_other_name_types_skipped() -> None:
    names = vec(b"\x05" + vec(b"ignored", 2) + b"\x00" + vec(b"MiXeD.Example", 2), 2)
    hello = parse_client_hello(record(handshake(hello_body(extension(0, names)))))
    assert hello is not None and hello.sni == "mixed.example"


def test_sni_with_only_unknown_name_types_is_none() -> None:
    hello = parse_client_hello(record(handshake(hello_body(sni_ext(b"x", name_type=7)))))
    assert hello is not None and hello.sni is None


def test_bytes_after_the_hello_are_ignored() -> None:
    hello = parse_client_hello(PY_HELLO + b"\x17\x03\x03\x00\x02hi" + b"GET")
    assert hello is not None and hello.sni == "example.com"


def test_handshake_message_may_end_mid_record() -> None:
    data = record(BUILT_MESSAGE + b"\x0b\x00\x00\x00")  # trailing bytes of a next message
    assert summary(parse_client_hello(data))[0] == "built.example"


def test_large_hello_is_wrapped_in_several_records() -> None:
    padding = extension(21, b"\x00" * 20000)
    message = handshake(hello_body(sni_ext(b"big.example") + padding))
    hello = parse_client_hello(in_records(message, [2**14]))
    assert hello is not None and hello.sni == "big.example"
    raw = hello.raw_bytes()
    assert raw[3:5] == (2**14).to_bytes(2, "big")
    assert parse_client_hello(raw) == hello
    assert hello.raw_bytes(wrap_in_record=False) == message[4:]  # the body, as mitmproxy's


# --- incomplete and invalid input -----------------------------------------------


@pytest.mark.parametrize(
    "data",
    [PY_HELLO, in_records(BUILT_MESSAGE, [3, 1, 17]), record(handshake(hello_body(None)))],
    ids=["python", "built-split", "no-extensions"],
)
def test_every_prefix_needs_more_data(data) -> None:
    for end in range(len(data)):
        assert parse_client_hello(data[:end]) is None, end
        assert get_client_hello(data[:end]) is None, end
    assert parse_client_hello(data) is not None


@pytest.mark.parametrize(
    "data, message",
    [
        (b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "content type"),
        (b"\x80\x2e\x01\x00\x02", "content type"),  # SSLv2-style hello
        (b"\x17\x03\x03\x00\x10", "content type"),
        (record(BUILT_MESSAGE[:10]) + record(b"x", content_type=0x15), "content type"),
        (b"\x16\x02\x00\x00\x10", "record version"),
        (b"\x16\x04\x01\x00\x10", "record version"),
        (b"\x16\x03\x01\x00\x00", "record length"),
        (b"\x16\x03\x01\xff\xff", "record length"),
        (record(b"\x02"), "ClientHello"),
        (record(b"\x02\x00\x00\x00"), "ClientHello"),
        (record(b"\x01\xff\xff\xff"), "too large"),
        (record(b"\x01\x00\x00\x02\x03\x03"), "truncated"),
    ],
)
def test_not_a_client_hello_is_a_value_error(data, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_client_hello(data)


def test_garbage_is_rejected_before_the_record_is_complete() -> None:
    with pytest.raises(ValueError):
        parse_client_hello(b"\x16\x03\x01\x01\x00\x02")  # 256-byte record, wrong message type


MALFORMED_BODIES = [
    hello_body(sni_ext(b"a.test")[:-1]),  # extension longer than its block
    hello_body(extension(0, b"\x00\x05\x00\x00")),  # server name list truncated
    hello_body(extension(0, b"\x00\x06\x00\x00\x09abc")),  # host name truncated
    hello_body(extension(0, b"")),
    hello_body(extension(0, b"\x00\x00")),  # empty server name list
    hello_body(extension(0, vec(b"\x00" + vec(b"a.test", 2), 2) + b"x")),
    hello_body(extension(16, b"")),
    hello_body(extension(16, b"\x00\x00")),
    hello_body(extension(16, b"\x00\x04\x02h2")),
    hello_body(extension(16, b"\x00\x03\x05h2")),
    hello_body(alpn_ext(b"h2", b"")),
    hello_body(alpn_ext(b"h2") + alpn_ext(b"h2")),  # duplicate extension
    hello_body(b"\x00"),  # half an extension type
    hello_body(b"\x00\x2b\x00"),
    hello_body(alpn_ext(b"h2") + b"\x00\x2b\x00"),  # a type and half a length after a good one
    hello_body(alpn_ext(b"h2") + b"\x00\x2b\x00\x05\x01"),  # data shorter than its length
    hello_body(b"", trailer=b"\x00"),  # bytes after the extensions block
    hello_body(b"", session_id=b"\x00" * 33),
    b"\x03\x03" + b"\x00" * 33 + b"\x00\x03\x13\x01\x00" + b"\x01\x00",  # odd suites
    b"\x03\x03" + b"\x00" * 31,
    b"\x03\x03" + b"\x00" * 32 + b"\x20",
]


UNUSABLE_SNI = [
    sni_ext(b"a.test", b"b.test"),  # more than one host name
    sni_ext(b"b\xc3\xbccher.example"),  # not ASCII (IDNA A-labels are)
    sni_ext(b""),
    sni_ext(b"a..b"),
    sni_ext(b"evil.example/path"),
    sni_ext(b"a b"),
    sni_ext(b"a\x00b"),
    sni_ext(b"a" * 64 + b".example"),
]


@pytest.mark.parametrize("ext", UNUSABLE_SNI, ids=[str(i) for i in range(len(UNUSABLE_SNI))])
def test_unusable_server_name_gives_no_sni(ext) -> None:
    """A well-formed extension with a name that is no DNS name: intercepted, just without SNI."""
    hello = parse_client_hello(record(handshake(hello_body(ext))))
    assert hello is not None and hello.sni is None


@pytest.mark.parametrize(
    "body", MALFORMED_BODIES, ids=[str(i) for i in range(len(MALFORMED_BODIES))]
)
def test_malformed_body_is_a_value_error(body) -> None:
    with pytest.raises(ValueError):
        parse_client_hello(record(handshake(body)))


def test_starts_like_tls() -> None:
    for minor in range(5):
        assert starts_like_tls(bytes([0x16, 3, minor]) + b"\x00\x10")
    assert not starts_like_tls(b"\x16\x03\x05\x00\x10")
    assert not starts_like_tls(b"\x16\x03")
    assert not starts_like_tls(b"GET / HTTP/1.1\r\n")
    assert not starts_like_tls(b"\x17\x03\x03\x00\x10")
    assert not starts_like_tls(b"")


# --- properties ------------------------------------------------------------------


@budget(1000)
@given(st.binary(max_size=1000))
def test_arbitrary_bytes_give_a_hello_none_or_value_error(data: bytes) -> None:
    try:
        result = parse_client_hello(data)
    except ValueError:
        return
    assert result is None or isinstance(result, ClientHello)


@budget(500)
@given(st.binary(max_size=400), st.sampled_from([b"\x01", b"\x03\x03", b""]))
def test_arbitrary_bytes_behind_plausible_headers(data: bytes, prefix: bytes) -> None:
    body = prefix + data
    framed = record(handshake(body)) if prefix == b"\x03\x03" else record(prefix + data or b"x")
    try:
        result = parse_client_hello(framed)
    except ValueError:
        return
    assert result is None or isinstance(result, ClientHello)


@budget(500)
@given(st.data())
def test_mutated_real_hello_gives_a_hello_none_or_value_error(data: st.DataObject) -> None:
    hello = bytearray(PY_HELLO)
    for _ in range(data.draw(st.integers(1, 8))):
        index = data.draw(st.integers(0, len(hello) - 1))
        hello[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(hello)))
    try:
        result = parse_client_hello(bytes(hello[:cut]))
    except ValueError:
        return
    assert result is None or isinstance(result, ClientHello)


@given(st.lists(st.integers(min_value=1, max_value=len(PY_HELLO) - 1), max_size=12, unique=True))
def test_chunks_fed_cumulatively_give_none_until_complete(cuts: list[int]) -> None:
    expected = summary(parse_client_hello(PY_HELLO))
    bounds = [0, *sorted(cuts), len(PY_HELLO)]
    buffer = b""
    for start, end in zip(bounds, bounds[1:], strict=False):
        buffer += PY_HELLO[start:end]
        result = parse_client_hello(buffer)
        if end < len(PY_HELLO):
            assert result is None
        else:
            assert summary(result) == expected


@given(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=8))
def test_any_record_sizes_parse_the_same(sizes: list[int]) -> None:
    expected = parse_client_hello(PY_HELLO)
    resplit = parse_client_hello(in_records(PY_HELLO[5:], sizes))
    assert resplit == expected
    assert summary(resplit) == ("example.com", [b"h2", b"http/1.1"], *summary(expected)[2:])


@given(
    st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=8),
    st.sampled_from([PY_HELLO, record(BUILT_MESSAGE), record(handshake(hello_body(None)))]),
)
def test_raw_bytes_round_trips(sizes: list[int], data: bytes) -> None:
    hello = parse_client_hello(in_records(data[5:], sizes))
    assert hello is not None
    raw = hello.raw_bytes()
    assert starts_like_tls(raw)
    assert parse_client_hello(raw) == hello
    assert hello.raw_bytes(wrap_in_record=False) == data[9:]  # the body, as mitmproxy's
    assert get_client_hello(raw) == hello.body
