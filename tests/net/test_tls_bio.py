"""proxycore.net.tls_bio: RawPipe (cffi) and PublicPipe (public API) move the same bytes.

Two pyOpenSSL connections over memory BIOs talk to each other only through the pipes
under test, so every byte either side sees went through feed/read/write/take.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from OpenSSL import SSL

from proxycore.net import tls_bio
from tests.e2e_servers import make_self_signed


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    return make_self_signed(tmp_path_factory.mktemp("tls_bio"))


@pytest.fixture(params=["raw", "public"])
def make_pipe(request):
    if request.param == "raw":
        assert tls_bio.bindings is not None, "pyOpenSSL's cffi bindings are expected here"
        return lambda conn: tls_bio.RawPipe(conn, tls_bio.bindings)
    return tls_bio.PublicPipe


def pair(cert, make_pipe):
    crt, key = cert
    server_ctx = SSL.Context(SSL.TLS_METHOD)
    server_ctx.use_certificate_file(str(crt))
    server_ctx.use_privatekey_file(str(key))
    server = SSL.Connection(server_ctx, None)
    server.set_accept_state()
    client = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    client.set_connect_state()
    c, s = make_pipe(client), make_pipe(server)
    for _ in range(5):
        for conn in (client, server):
            try:
                conn.do_handshake()
            except SSL.WantReadError:
                pass
        s.feed(c.take())
        c.feed(s.take())
    return c, s


def test_a_handshake_and_records_both_ways(cert, make_pipe):
    c, s = pair(cert, make_pipe)
    assert c.take() == b"" and s.take() == b""  # an empty BIO: no exception, no bytes
    c.write(b"GET / HTTP/1.1\r\n\r\n")
    s.feed(c.take())
    assert s.read() == (b"GET / HTTP/1.1\r\n\r\n", None)
    c.read()  # the server's session tickets, if any
    s.write(b"")  # nothing to send: no record
    assert s.take() == b""
    s.write(bytearray(b"HTTP/1.1 200 OK\r\n\r\n"))
    c.feed(memoryview(s.take()))
    assert c.read() == (b"HTTP/1.1 200 OK\r\n\r\n", None)


@pytest.mark.parametrize("size", [1, 16384, 40000, 3 * tls_bio.READ_CHUNK + 7])
def test_many_records_in_one_feed_are_read_at_once(cert, make_pipe, size):
    c, s = pair(cert, make_pipe)
    payload = bytes(range(256)) * (size // 256) + b"y" * (size % 256)
    c.write(b"first;")
    c.write(payload)
    ciphertext = c.take()  # more than READ_CHUNK for the largest: the public take loops
    assert ciphertext[0] == 0x17 and len(ciphertext) > size
    s.feed(ciphertext)
    assert s.read() == (b"first;" + payload, None)
    assert s.read() == (b"", None)


def test_a_partial_record_waits_for_its_rest(cert, make_pipe):
    c, s = pair(cert, make_pipe)
    c.write(b"x" * 40000)
    ciphertext = c.take()
    for cut in (3, 16000, 16450):
        s.feed(ciphertext[:cut])
        got, end = s.read()
        assert end is None and b"x" * len(got) == got
        s.feed(ciphertext[cut:])
        rest, end = s.read()
        assert end is None and len(got) + len(rest) == 40000
        c.write(b"x" * 40000)
        ciphertext = c.take()


def test_close_notify_and_errors_end_the_reading(cert, make_pipe):
    c, s = pair(cert, make_pipe)
    c.write(b"last words")
    try:
        c.tls.shutdown()
    except SSL.Error:
        pass
    s.feed(c.take())
    assert s.read() == (b"last words", "")  # "" is a close_notify
    c2, s2 = pair(cert, make_pipe)
    s2.feed(b"\x17\x03\x03\x00\x05hello")  # an application record that does not decrypt
    data, end = s2.read()
    assert data == b"" and end


def test_writing_after_a_failure_raises_the_public_exception(cert, make_pipe):
    c, s = pair(cert, make_pipe)
    s.feed(b"\x17\x03\x03\x00\x05hello")
    s.read()
    with pytest.raises(SSL.Error):
        s.write(b"too late")


def test_pipe_for_prefers_the_raw_pipe(cert, monkeypatch):
    conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    assert isinstance(tls_bio.pipe_for(conn), tls_bio.RawPipe)
    monkeypatch.setattr(tls_bio, "bindings", None)
    assert isinstance(tls_bio.pipe_for(conn), tls_bio.PublicPipe)


def test_threads_read_through_their_own_scratch_buffers(cert):
    """RawPipe reads into a per-thread scratch buffer: pipes read in several threads at
    once each get their own bytes."""
    import threading

    errors: list[str] = []

    def talk(tag: bytes) -> None:
        c, s = pair(cert, lambda conn: tls_bio.RawPipe(conn, tls_bio.bindings))
        for i in range(300):
            message = tag * (1 + i % 50)
            c.write(message)
            s.feed(c.take())
            got, _ = s.read()
            if got != message:
                errors.append(f"{tag!r}: {got[:20]!r}")
                return

    threads = [threading.Thread(target=talk, args=(bytes([65 + n]),)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
