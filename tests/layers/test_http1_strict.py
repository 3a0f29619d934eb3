"""Strict HTTP/1 framing (issue 18, docs/hardening.md "HTTP/1 framing"): every head, body
and authority the proxy refuses, at the layer level, and that nothing reaches the server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.connection import ConnectionState
from proxycore.http import Headers, Request, Response
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import HttpResponseHook
from proxycore.net import http1
from proxycore.proxy import commands, events
from proxycore.testing import BytesMatching, Playbook, make_context, run_events

ORIGIN = b"http://example.com"
SMUGGLE = (
    b"POST http://example.com/innocent HTTP/1.1\r\nHost: example.com\r\nX-A: a\nContent-Length: 0\r\n"
    b"Content-Length: 55\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: example.com\r\n\r\n"
)


def run_client(data: list[bytes], server_data: list[bytes] = (), **options: object):
    """A regular-mode HttpLayer fed ``data`` from the client; an opened server connection gets
    ``server_data`` and then closes. Returns (context, commands, client bytes, server bytes)."""
    tctx = make_context()
    tctx.options.update(**options)
    layer = HttpLayer(tctx, HTTPMode.regular)
    servers = []

    def answer(command):
        if isinstance(command, commands.OpenConnection):
            servers.append(command.connection)
        return None

    issued = run_events(layer, [events.DataReceived(tctx.client, d) for d in data], answer)
    for server in servers:
        if server.state is ConnectionState.OPEN and server_data:
            evs = [events.DataReceived(server, d) for d in server_data] + [events.ConnectionClosed(server)]
            issued += run_events(layer, evs, answer, start=False)
    to_client = b"".join(c.data for c in issued if isinstance(c, commands.SendData) and c.connection is tctx.client)
    to_server = b"".join(
        c.data for c in issued if isinstance(c, commands.SendData) and c.connection is not tctx.client
    )
    return tctx, issued, to_client, to_server


def assert_rejected(request: bytes, status: bytes = b"400") -> None:
    """The client gets ``status`` and a closed connection; the server hears nothing."""
    tctx, issued, to_client, to_server = run_client([request])
    assert to_client.startswith(b"HTTP/1.1 " + status), to_client[:200]
    assert to_client.count(b"HTTP/1.1 ") == 1
    assert to_server == b""
    assert not any(isinstance(c, commands.OpenConnection) for c in issued)
    assert any(isinstance(c, commands.CloseConnection) and c.connection is tctx.client for c in issued)


# Heads --------------------------------------------------------------------------------------

BAD_HEADS = {
    "issue 18 smuggling payload": SMUGGLE,
    "bare LF ends a header in a CRLF head": b"GET http://example.com/ HTTP/1.1\r\nA: b\nHost: example.com\r\n\r\n",
    "bare LF ends the request line": b"GET http://example.com/ HTTP/1.1\nHost: example.com\r\n\r\n",
    "bare LF before the final CRLF": b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\n\r\n",
    "CRLF head ended by LF LF": b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nA: b\n\n",
    "bare CR in a value": b"GET http://example.com/ HTTP/1.1\r\nA: b\rContent-Length: 5\r\n\r\n",
    "bare CR in a LF-only head": b"GET http://example.com/ HTTP/1.1\nA: b\rc\n\n",
    "bare CR in the request line": b"GET http://example.com/\r HTTP/1.1\r\n\r\n",
    "bare CR in a name": b"GET http://example.com/ HTTP/1.1\r\nA\rB: c\r\n\r\n",
    "NUL in a value": b"GET http://example.com/ HTTP/1.1\r\nA: b\x00c\r\n\r\n",
    "NUL in a name": b"GET http://example.com/ HTTP/1.1\r\nA\x00: c\r\n\r\n",
    "NUL in the target": b"GET http://example.com/\x00 HTTP/1.1\r\n\r\n",
    "NUL in the method": b"G\x00T http://example.com/ HTTP/1.1\r\n\r\n",
    "control character in a value": b"GET http://example.com/ HTTP/1.1\r\nA: b\x01c\r\n\r\n",
    "vertical tab in a value": b"GET http://example.com/ HTTP/1.1\r\nA: b\x0bc\r\n\r\n",
    "DEL in the target": b"GET http://example.com/a\x7fb HTTP/1.1\r\n\r\n",
    "obs-fold": b"GET http://example.com/ HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
    "obs-fold with a tab": b"GET http://example.com/ HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",
    "space before the colon": b"GET http://example.com/ HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello",
    "tab before the colon": b"GET http://example.com/ HTTP/1.1\r\nHost\t: example.com\r\n\r\n",
    "name not a token": b"GET http://example.com/ HTTP/1.1\r\nA(b): c\r\n\r\n",
    "empty name": b"GET http://example.com/ HTTP/1.1\r\n: c\r\n\r\n",
    "two spaces in the request line": b"GET  http://example.com/ HTTP/1.1\r\n\r\n",
    "tab in the request line": b"GET\thttp://example.com/ HTTP/1.1\r\n\r\n",
    "lower-case version": b"GET http://example.com/ http/1.1\r\n\r\n",
    "non-ASCII digit in the version": b"GET http://example.com/ HTTP/\xd9\xa1.1\r\n\r\n",
    "leading bare CR": b"\rGET http://example.com/ HTTP/1.1\r\n\r\n",
    "two Host headers": b"GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
}


@pytest.mark.parametrize("head", list(BAD_HEADS.values()), ids=list(BAD_HEADS))
def test_bad_request_head_gets_400(head):
    assert_rejected(head)


def test_smuggling_payload_playbook():
    tctx = make_context()
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), hooks=False)
        >> events.DataReceived(tctx.client, SMUGGLE)
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 400 Bad Request\r\n.*bare LF"))
        << commands.CloseConnection(tctx.client)
    )


@pytest.mark.parametrize(
    "head",
    [
        b"GET http://example.com/ HTTP/1.1\nHost: example.com\n\n",  # LF only: as mitmproxy and h11
        b"\r\n\r\nGET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",  # blank lines first
        b"GET http://example.com/ HTTP/1.1\r\nA:\r\nB: \t x \t\r\nHost: example.com\r\n\r\n",  # OWS, empty
        b"GET http://example.com/\xc3\xa4 HTTP/1.1\r\nA: caf\xc3\xa9 \x7f\r\nHost: example.com\r\n\r\n",
    ],
)
def test_lenient_where_framing_cannot_change(head):
    tctx, issued, to_client, to_server = run_client([head], [b"HTTP/1.1 204 No Content\r\n\r\n"])
    assert to_client.startswith(b"HTTP/1.1 204"), to_client
    assert to_server.startswith(b"GET /")


# Content-Length and Transfer-Encoding ---------------------------------------------------------

BAD_FRAMING = {
    "superscript two": "²",
    "arabic-indic digit": "٣",
    "plus sign": "+5",
    "minus sign": "-5",
    "underscore": "1_0",
    "space inside": "1 0",
    "hex": "0x5",
    "empty": "",
    "list of two sizes": "5, 6",
    "trailing comma": "5,",
    "huge": "9" * 40,
}


@pytest.mark.parametrize("value", list(BAD_FRAMING.values()), ids=list(BAD_FRAMING))
def test_bad_content_length_gets_400(value):
    head = b"POST http://example.com/ HTTP/1.1\r\nContent-Length: " + value.encode() + b"\r\n\r\nhello"
    assert_rejected(head)


def test_differing_content_lengths_get_400_and_equal_ones_are_one():
    assert_rejected(b"POST http://example.com/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
    _, _, to_client, to_server = run_client(
        [b"POST http://example.com/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
    )
    assert to_client.startswith(b"HTTP/1.1 200")
    assert to_server.endswith(b"\r\n\r\nhello")


@pytest.mark.parametrize(
    "te",
    [b"xchunked", b"chunkedx", b"chunked, gzip", b"gzip, chunked", b"gzip", b"identity", b"chunked;q=1",
     b"chunked, chunked", b",chunked", b"\"chunked\"", b"ch\xc3\xbcnked"],
)
def test_request_transfer_encoding_other_than_chunked_gets_400(te):
    assert_rejected(b"POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n")


def test_two_transfer_encoding_headers_get_400():
    assert_rejected(
        b"POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )


def test_transfer_encoding_with_content_length_gets_400():
    assert_rejected(
        b"POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"
    )


def test_transfer_encoding_in_http10_request_gets_400():
    assert_rejected(b"POST http://example.com/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")


# Chunked bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",  # int("1_0", 16) is 16
        b"0x10\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",
        b"+a\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n",
        b" a\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n",
        b"\xd9\xa1\r\nx\r\n0\r\n\r\n",  # a non-ASCII digit
        b"a\n" + b"x" * 10 + b"\r\n0\r\n\r\n",  # chunk line ended by bare LF
        b"a\r\n" + b"x" * 10 + b"\n0\r\n\r\n",  # chunk data followed by bare LF
        b"a\r\n" + b"x" * 10 + b"XX0\r\n\r\n",  # no CRLF after chunk data
        b"a;=x\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n",  # chunk-ext without a name
        b"a;x=\x01\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n",
        b"a;x=\"unterminated\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n",
        b"a ;x\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n",  # whitespace before the extension
        b"a\rb\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n",
        b"1" * 17 + b"\r\n",  # more hex digits than any body
        b"1;" + b"e" * 5000 + b"\r\n",  # chunk line beyond 4 KiB
        b"0\r\nT: a\nX: b\r\n\r\n",  # bare LF in the trailer section
        b"0\r\nT : a\r\n\r\n",
        b"0\r\nT: a\x00\r\n\r\n",
        b"0\r\n folded\r\n\r\n",
        b"0\r\n" + b"T: aaaaaaaa\r\n" * 6000 + b"\r\n",  # trailers beyond 64 KiB
    ],
)
def test_bad_chunked_request_body_gets_400_and_nothing_is_sent(body):
    head = b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
    tctx, issued, to_client, to_server = run_client([head + body])
    assert to_client.startswith(b"HTTP/1.1 400"), to_client[:200]
    assert to_server == b""


def test_chunk_extensions_and_whitespace_that_are_allowed():
    body = b"5;a=b;c=\"d e\" ; f \t\r\nhello\r\n5 \r\nworld\r\n00;last\r\nT: 1\r\n\r\n"
    head = b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
    _, _, to_client, to_server = run_client([head + body], [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    assert to_client.startswith(b"HTTP/1.1 200"), to_client
    assert b"helloworld" in http1.BodyReader(http1.CHUNKED).feed(to_server.partition(b"\r\n\r\n")[2])[0][0].data


# Hosts and ports ------------------------------------------------------------------------------

BAD_AUTHORITIES = {
    "NUL in host": b"exa\x00mple.com",
    "empty label": b"a..example.com",
    "label over 63": b"a" * 64 + b".com",
    "invalid IDNA": b"xn--\xc3\xa4.com",
    "U+FFFD": b"a\xef\xbf\xbd.com",
    "not UTF-8": b"\xff.com",
    "percent": b"a%41.com",
    "backslash": b"a\\b.com",
    "port 0": b"example.com:0",
    "port too large": b"example.com:65536",
    "superscript port": "example.com:8²".encode(),
    "arabic-indic port": "example.com:٨٠".encode(),
    "plus port": b"example.com:+80",
    "underscore port": b"example.com:8_0",
    "bad IPv6": b"[::g]:80",
    "unclosed IPv6": b"[::1:80",
    "userinfo": b"user@example.com",
}


@pytest.mark.parametrize("authority", list(BAD_AUTHORITIES.values()), ids=list(BAD_AUTHORITIES))
def test_bad_absolute_form_authority_gets_400(authority):
    assert_rejected(b"GET http://" + authority + b"/ HTTP/1.1\r\n\r\n")


@pytest.mark.parametrize("authority", list(BAD_AUTHORITIES.values()), ids=list(BAD_AUTHORITIES))
def test_bad_connect_authority_gets_400(authority):
    if b":" not in authority.replace(b"[::", b""):
        authority += b":443"
    assert_rejected(b"CONNECT " + authority + b" HTTP/1.1\r\n\r\n")


def test_good_authorities():
    assert http1.parse_authority("bücher.example:8080".encode(), None) == ("bücher.example", 8080)
    assert http1.parse_authority(b"[::1]:443", None) == ("::1", 443)
    assert http1.parse_authority(b"under_score.example", 80) == ("under_score.example", 80)
    assert http1.parse_authority(b"Example.COM.:", 80) == ("example.com.", 80)
    assert http1.parse_authority(b"10.0.0.1:65535", None) == ("10.0.0.1", 65535)


# Responses ------------------------------------------------------------------------------------

GET = b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"

BAD_RESPONSES = {
    "Set-Cookie behind a bare LF": b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nhi",
    "bare CR in a value": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nhi",
    "NUL in a value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nhi",
    "NUL in the reason": b"HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\n\r\nhi",
    "control character in the reason": b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nhi",
    "bare LF after the status line": b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nhi",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nhi",
    "space before the colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nhi",
    "status not digits": b"HTTP/1.1 2O0 OK\r\nContent-Length: 2\r\n\r\nhi",
    "non-ASCII status digit": "HTTP/1.1 20٠ OK\r\nContent-Length: 2\r\n\r\nhi".encode(),
    "Content-Length superscript": "HTTP/1.1 200 OK\r\nContent-Length: ²\r\n\r\nhi".encode(),
    "differing Content-Lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!",
    "xchunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    "chunked, gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    "chunked twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "unknown coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n0\r\n\r\n",
    "TE and CL": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    "chunk size 1_0": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",
    "chunk line with bare LF": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nhi\r\n0\r\n\r\n",
    "trailer behind a bare LF": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\nSet-Cookie: x\r\n\r\n",
}


@pytest.mark.parametrize("response", list(BAD_RESPONSES.values()), ids=list(BAD_RESPONSES))
def test_bad_response_gets_502(response):
    _, issued, to_client, _ = run_client([GET], [response])
    assert to_client.startswith(b"HTTP/1.1 502"), to_client[:200]
    head = to_client.partition(b"\r\n\r\n")[0].lower()
    assert b"set-cookie" not in head and b"x-a" not in head
    flows = [c.flow for c in issued if isinstance(c, HttpResponseHook)]
    assert not flows  # no response hook for a response that was refused


def test_response_codings_before_chunked_are_chunked():
    _, _, to_client, _ = run_client(
        [GET], [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"]
    )
    assert to_client.startswith(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n")
    assert to_client.endswith(b"\r\n\r\n2\r\nhi\r\n0\r\n\r\n")


def test_response_coding_without_chunked_runs_until_close():
    _, _, to_client, _ = run_client([GET], [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", b"abc", b"def"])
    assert to_client.startswith(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n")
    assert to_client.endswith(b"\r\n\r\nabcdef")


# head_size_limit ------------------------------------------------------------------------------


def test_request_head_over_the_limit_gets_431():
    big = b"GET http://example.com/ HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n"
    assert_rejected(big, b"431")
    # Also when it arrives bit by bit, before its end is seen.
    tctx, _, to_client, _ = run_client([big[i : i + 1000] for i in range(0, 66_000, 1000)])
    assert to_client.startswith(b"HTTP/1.1 431")


def test_head_size_limit_option():
    head = b"GET http://example.com/ HTTP/1.1\r\nX-Pad: " + b"a" * 2000 + b"\r\n\r\n"
    _, _, to_client, _ = run_client([head], head_size_limit="1k")
    assert to_client.startswith(b"HTTP/1.1 431")
    _, _, to_client, _ = run_client([head], [b"HTTP/1.1 204 No Content\r\n\r\n"], head_size_limit="4k")
    assert to_client.startswith(b"HTTP/1.1 204")
    big = b"GET http://example.com/ HTTP/1.1\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n"
    _, _, to_client, _ = run_client([big], [b"HTTP/1.1 204 No Content\r\n\r\n"], head_size_limit="0")
    assert to_client.startswith(b"HTTP/1.1 204")


def test_response_head_over_the_limit_gets_502():
    response = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n"
    _, _, to_client, _ = run_client([GET], [response])
    assert to_client.startswith(b"HTTP/1.1 502")
    assert b"head larger than 65536 bytes" in to_client
    _, _, to_client, _ = run_client([GET], [response[i : i + 4096] for i in range(0, len(response), 4096)])
    assert to_client.startswith(b"HTTP/1.1 502")


def test_pipelined_data_beyond_the_limit_pauses_reading_the_client():
    tctx = make_context()
    layer = HttpLayer(tctx, HTTPMode.regular)
    servers = []

    def answer(command):
        if isinstance(command, commands.OpenConnection):
            servers.append(command.connection)
        return None

    pipelined = [b"GET http://example.com/%d HTTP/1.1\r\nHost: example.com\r\n\r\n" % i for i in range(3000)]
    issued = run_events(layer, [events.DataReceived(tctx.client, GET)], answer)
    (server,) = servers
    issued = run_events(layer, [events.DataReceived(tctx.client, b"".join(pipelined[:100]))], answer, start=False)
    assert not any(isinstance(c, commands.PauseReading) for c in issued)  # under 64 KiB: buffered
    issued = run_events(layer, [events.DataReceived(tctx.client, b"".join(pipelined[100:]))], answer, start=False)
    flow_control = [c for c in issued if isinstance(c, (commands.PauseReading, commands.ResumeReading))]
    assert [(type(c), c.connection) for c in flow_control] == [(commands.PauseReading, tctx.client)]
    # Once the first response is out, the next request is taken from the buffer, which is
    # still over the limit: reading stays paused. It resumes when the rest fits.
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    issued = run_events(layer, [events.DataReceived(server, ok)], answer, start=False)
    assert not any(isinstance(c, (commands.PauseReading, commands.ResumeReading)) for c in issued)
    resumed = False
    for _ in range(3000):
        issued = run_events(layer, [events.DataReceived(server, ok)], answer, start=False)
        if any(isinstance(c, commands.ResumeReading) for c in issued):
            resumed = True
            break
    assert resumed
    assert len(layer_buffer(layer)) <= 65536


def layer_buffer(layer: HttpLayer) -> bytes:
    from proxycore.layers.http._http1 import Http1Server

    (server_layer,) = [c for c in layer.connections.values() if isinstance(c, Http1Server)]
    return bytes(server_layer.buf)


# The flow model -------------------------------------------------------------------------------

BREAKS = ["a\r\nb", "a\rb", "a\nb", "a\x00b"]


@pytest.mark.parametrize("bad", BREAKS)
def test_model_refuses_line_breaks_and_nul(bad):
    request = Request.make("GET", "http://example.com/")
    response = Response.make(200)
    setters = [
        lambda: request.headers.__setitem__("X-A", bad),
        lambda: request.headers.__setitem__(bad, "v"),
        lambda: request.headers.add("X-A", bad),
        lambda: request.headers.insert(0, bad, "v"),
        lambda: request.headers.set_all("X-A", ["ok", bad]),
        lambda: Headers([(b"X-A", bad.encode())]),
        lambda: Headers(x_a=bad),
        lambda: setattr(request, "method", "GET" + bad),
        lambda: setattr(request, "path", "/" + bad),
        lambda: setattr(request, "url", "http://example.com/" + bad),
        lambda: setattr(request, "authority", "example.com" + bad),
        lambda: setattr(request, "scheme", "http" + bad),
        lambda: setattr(request, "host", "example" + bad),
        lambda: setattr(request, "http_version", "HTTP/1.1" + bad),
        lambda: setattr(response, "reason", "OK" + bad),
        lambda: setattr(response, "reason", ("OK" + bad).encode()),
        lambda: response.headers.__setitem__("Set-Cookie", bad),
    ]
    for i, setter in enumerate(setters):
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            setter()
            pytest.fail(f"setter {i} accepted {bad!r}")
    wire = http1.assemble_request_head(request) + http1.assemble_response_head(response)
    assert bad.encode() not in wire


# Properties -----------------------------------------------------------------------------------

VALID_HEAD = [
    b"POST http://example.com/upload?x=1 HTTP/1.1",
    b"Host: example.com",
    b"Content-Length: 5",
    b"X-Forwarded-For: 10.0.0.1, 10.0.0.2",
    b"Cookie: a=1; b=2",
]


@given(st.integers(1, len(VALID_HEAD) - 1), st.integers(0, 100), st.sampled_from([b"\r", b"\n", b"\x00", b"\x0b"]),
       st.booleans())
def test_any_line_break_or_nul_inside_a_line_is_refused(line_no, at, bad, response):
    lines = list(VALID_HEAD)
    if response:
        lines[0] = b"HTTP/1.1 200 OK"
    line = lines[line_no]
    at = 1 + at % (len(line) - 1)  # strictly inside the line
    lines[line_no] = line[:at] + bad + line[at:]
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    parse = http1.parse_response_head if response else http1.parse_request_head
    with pytest.raises(http1.ProtocolError):
        parse(head)
    # And through the layer: nothing reaches a server.
    if not response:
        assert_rejected(head + b"hello")


def test_tunnel_resumes_reading_what_was_paused_before_it_opened():
    """Over 64 KiB sent right behind a CONNECT pause the client; once the tunnel is up it
    is read again (and what came early goes into the tunnel)."""
    from proxycore.connection import Server
    from proxycore.http import HTTPFlow
    from proxycore.layers.http._hooks import HttpConnectedHook, HttpConnectHook
    from proxycore.proxy.layer import NextLayer, NextLayerHook
    from proxycore.testing import Placeholder, reply

    tctx = make_context()
    nl = Placeholder(NextLayer)
    server = Placeholder(Server)
    flow = Placeholder(HTTPFlow)
    early = b"x" * 100_000
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"CONNECT example.com:80 HTTP/1.1\r\n\r\n")
        << HttpConnectHook(flow)
        >> events.DataReceived(tctx.client, early)
        << commands.PauseReading(tctx.client)
        >> reply(to=HttpConnectHook)
        << commands.OpenConnection(server)
        >> reply(None)
        << HttpConnectedHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 200 Connection established\r\n\r\n")
        << NextLayerHook(nl)
        << commands.ResumeReading(tctx.client)
    )
    assert nl().data_client() == early
