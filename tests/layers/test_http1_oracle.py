"""h11 as an independent oracle for proxycore's HTTP/1 reader (issue 18).

Hypothesis builds request and response messages, valid and adversarial (bare CR/LF, NUL,
folded lines, odd Content-Length and Transfer-Encoding values, broken chunk lines, junk),
cuts them at random points and feeds them to proxycore's HTTP/1 layers (Http1Server for
requests, Http1Client for responses) and to h11. Properties:

- proxycore never accepts a message h11 rejects, except the documented differences
  (docs/hardening.md, "HTTP/1 framing"), which ``documented_difference`` names;
- when both accept, they agree on the message boundary (body, and what is left over for
  the next message), method/target or status/reason, headers and trailers.

The number of examples follows the hypothesis profile (tests/conftest.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h11
from hypothesis import example, given
from hypothesis import strategies as st

from proxycore.layers.http._commands import ReceiveHttp
from proxycore.layers.http._events import (
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    RequestProtocolError,
    RequestTrailers,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
    ResponseTrailers,
)
from proxycore.layers.http._http1 import Http1Client, Http1Server
from proxycore.net import http1
from proxycore.proxy import commands, events
from proxycore.testing import make_context

HEAD_LIMIT = 65536
# For long runs (HYPOTHESIS_PROFILE=thorough): a file that gets "examples checked" every
# 1,000 examples, so a run stopped early still tells how far it got without a failure.
PROGRESS_FILE = os.environ.get("ORACLE_PROGRESS_FILE")
_checked = 0


@dataclass
class Outcome:
    """What a reader made of the input: "ok" (one complete message), "error" or "incomplete"."""

    kind: str
    start: tuple = ()  # (method, target) or (status, reason)
    headers: list[tuple[bytes, bytes]] | None = None
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] | None = None
    rest: bytes | None = None  # bytes after the message (requests only)
    error: str = ""


def comparable(fields) -> list[tuple[bytes, bytes]]:
    """Header fields as both sides can be compared: lower-case names, without the framing
    headers h11 rewrites (it collapses ``5, 5`` and lower-cases ``Chunked``)."""
    return [
        (bytes(n).lower(), bytes(v))
        for n, v in fields
        if bytes(n).lower() not in (b"content-length", b"transfer-encoding")
    ]


# proxycore -------------------------------------------------------------------------------------


def _run(layer, evs) -> list:
    out = []
    for event in evs:
        out.extend(layer.handle_event(event))
    return out


def proxycore_request(chunks: list[bytes]) -> Outcome:
    tctx = make_context()
    tctx.options.update(head_size_limit=str(HEAD_LIMIT))
    layer = Http1Server(tctx)
    issued = _run(layer, [events.Start(), *(events.DataReceived(tctx.client, c) for c in chunks)])
    return _collect(issued, layer, tctx.client, RequestHeaders, RequestData, RequestTrailers,
                    RequestEndOfMessage, RequestProtocolError)


def proxycore_response(method: bytes, chunks: list[bytes]) -> Outcome:
    tctx = make_context()
    tctx.options.update(head_size_limit=str(HEAD_LIMIT))
    layer = Http1Client(tctx)
    request = http1.parse_request_head(method + b" / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    evs = [
        events.Start(),
        RequestHeaders(1, request, end_stream=True),
        RequestEndOfMessage(1),
        *(events.DataReceived(tctx.server, c) for c in chunks),
        events.ConnectionClosed(tctx.server),
    ]
    return _collect(_run(layer, evs), None, tctx.client, ResponseHeaders, ResponseData, ResponseTrailers,
                    ResponseEndOfMessage, ResponseProtocolError)


def _collect(issued, layer, client, head_t, data_t, trailers_t, end_t, error_t) -> Outcome:
    outcome = Outcome("incomplete")
    for command in issued:
        if isinstance(command, commands.SendData) and command.connection is client:
            return Outcome("error", error=command.data[:80].decode("latin-1"))  # 400/431 page
        if not isinstance(command, ReceiveHttp):
            continue
        event = command.event
        if isinstance(event, head_t):
            message = event.request if head_t is RequestHeaders else event.response
            if head_t is RequestHeaders:
                d = message.data
                target = d.path if not d.authority else d.scheme + b"://" + d.authority + d.path
                outcome.start = (d.method, target)
            else:
                outcome.start = (message.status_code, message.data.reason)
            outcome.headers = comparable(message.headers.fields)
        elif isinstance(event, data_t):
            outcome.body += event.data
        elif isinstance(event, trailers_t):
            outcome.trailers = comparable(event.trailers.fields)
        elif isinstance(event, end_t):
            outcome.kind = "ok"
            if layer is not None:
                outcome.rest = bytes(layer.buf)
            return outcome
        elif isinstance(event, error_t):
            return Outcome("error", error=event.message)
    return outcome


# h11 -------------------------------------------------------------------------------------------


def h11_request(chunks: list[bytes]) -> Outcome:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
    return _h11_read(conn, chunks, eof=False)


def h11_response(method: bytes, chunks: list[bytes]) -> Outcome:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=HEAD_LIMIT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "example.com")]))
    conn.send(h11.EndOfMessage())
    return _h11_read(conn, chunks, eof=True)


def _h11_read(conn: h11.Connection, chunks: list[bytes], eof: bool) -> Outcome:
    outcome = Outcome("incomplete")
    try:
        feed = [*chunks, *([b""] if eof else [])]
        for i, chunk in enumerate(feed):
            conn.receive_data(chunk)
            while True:
                event = conn.next_event()
                if event in (h11.NEED_DATA, h11.PAUSED):
                    break
                if isinstance(event, h11.Request):
                    outcome.start = (bytes(event.method), bytes(event.target))
                    outcome.headers = comparable(event.headers.raw_items())
                elif isinstance(event, h11.InformationalResponse):
                    continue
                elif isinstance(event, h11.Response):
                    outcome.start = (event.status_code, bytes(event.reason))
                    outcome.headers = comparable(event.headers.raw_items())
                elif isinstance(event, h11.Data):
                    outcome.body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    outcome.kind = "ok"
                    if event.headers:
                        outcome.trailers = comparable(event.headers.raw_items())
                    if not eof:
                        for later in feed[i + 1 :]:
                            conn.receive_data(later)
                        outcome.rest = bytes(conn.trailing_data[0])
                    return outcome
                elif isinstance(event, h11.ConnectionClosed):
                    return outcome
    except h11.RemoteProtocolError as e:
        return Outcome("error", error=str(e))
    return outcome


# The differences we keep on purpose (docs/hardening.md) -----------------------------------------


def documented_difference(theirs: Outcome, data: bytes, response: bool) -> bool:
    """proxycore accepts and h11 refuses, for a reason that cannot change framing."""
    if response:
        # gzip, chunked / gzip: RFC 9112 6.1 and 6.3 define both; h11 knows only chunked.
        return "Transfer-Encoding" in theirs.error
    if "Host" in theirs.error:  # HTTP/1.1 without Host: a proxy routes absolute-form by the URL
        return True
    request_line = data.split(b"\n", 1)[0]
    return theirs.error.startswith("illegal request line") and any(b >= 0x80 for b in request_line)


def check(ours: Outcome, theirs: Outcome, data: bytes, response: bool = False) -> None:
    global _checked
    _checked += 1
    if PROGRESS_FILE and _checked % 1000 == 0:
        with open(PROGRESS_FILE, "w") as f:
            f.write(f"{_checked} examples checked\n")
    if ours.kind == "ok":
        if theirs.kind == "error":
            assert documented_difference(theirs, data, response), (
                f"proxycore accepted what h11 rejects ({theirs.error}): {data!r}"
            )
            return
        assert theirs.kind == "ok", f"proxycore completed a message h11 did not: {data!r}"
        assert ours.start == theirs.start, data
        assert ours.headers == theirs.headers, data
        assert ours.body == theirs.body, data
        assert (ours.trailers or []) == (theirs.trailers or []), data
        assert ours.rest == theirs.rest, data


# Strategies -----------------------------------------------------------------------------------

NASTY = [b"\r", b"\n", b"\r\n", b"\x00", b"\x01", b"\x0b", b"\x7f", b"\xff", b"\t", b" ", b",", b";", b":"]
LINE_ENDS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\n\r"])

names = st.one_of(
    st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"X-A", b"Connection", b"Trailer",
                     b"content-length", b"TRANSFER-ENCODING", b"Set-Cookie"]),
    st.from_regex(rb"\A[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}\Z"),
    st.binary(min_size=1, max_size=6),
)
values = st.one_of(
    st.sampled_from([b"example.com", b"0", b"5", b"10", b"5, 5", b"5,6", b"+5", b"05", b"\xc2\xb2", b"1_0",
                     b"chunked", b"Chunked", b" chunked ", b"xchunked", b"chunked, gzip", b"gzip, chunked",
                     b"gzip", b"chunked, chunked", b"identity", b"close", b"", b"a b", b"caf\xc3\xa9"]),
    st.builds(lambda a, n, b: a + n + b, st.sampled_from([b"a", b"5", b"chunked"]), st.sampled_from(NASTY),
              st.sampled_from([b"", b"b", b"Content-Length: 0", b"Transfer-Encoding: chunked"])),
    st.binary(max_size=12),
)
separators = st.sampled_from([b": ", b":", b":\t", b" : ", b":  ", b"\t:"])


@st.composite
def header_lines(draw) -> list[bytes]:
    lines = []
    for name, sep, value in draw(st.lists(st.tuples(names, separators, values), max_size=6)):
        lines.append(name + sep + value)
    if draw(st.integers(0, 9)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from([b" folded", b"\tfolded"])))
    return lines


def assemble(first: bytes, lines: list[bytes], ends: list[bytes], final: bytes) -> bytes:
    out = first + ends[0]
    for i, line in enumerate(lines):
        out += line + ends[(i + 1) % len(ends)]
    return out + final


@st.composite
def chunked_body(draw) -> bytes:
    out = b""
    for data in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=3)):
        size = draw(st.sampled_from([b"%x" % len(data), b"%X" % len(data), b"0%x" % len(data), b"0x%x" % len(data),
                                     b"%x_" % len(data), b"+%x" % len(data), b"%x " % len(data)]))
        ext = draw(st.sampled_from([b"", b"", b";a", b";a=b", b";a=\"b c\"", b" ;a", b";", b";a\x00", b";a\nb"]))
        end = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r"]))
        tail = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b"", b"XX"]))
        out += size + ext + end + data + tail
    out += draw(st.sampled_from([b"0\r\n", b"0;x=y\r\n", b"000\r\n", b"0\n"]))
    trailers = draw(st.lists(st.sampled_from([b"T: 1", b"T:1", b"T : 1", b" fold", b"T: a\rb", b"T: \x00"]),
                             max_size=2))
    for t in trailers:
        out += t + draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    return out + draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))


@st.composite
def requests(draw) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"G\x00T", b"GE T"]))
    target = draw(st.sampled_from([b"/", b"/a?b=c", b"http://example.com/x", b"*", b"/\xc3\xa4", b"/a\rb",
                                   b"http://example.com:8080/", b"/a b"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"http/1.1", b"HTTP/11"]))
    lines = draw(header_lines())
    framing = draw(st.sampled_from(["none", "length", "chunked", "both"]))
    body = draw(st.binary(max_size=30))
    if framing in ("length", "both"):
        lines.append(b"Content-Length: %d" % len(body))
    if framing in ("chunked", "both"):
        lines.append(b"Transfer-Encoding: chunked")
        body = draw(chunked_body())
    if draw(st.booleans()):
        lines.insert(0, b"Host: example.com")
    ends = draw(st.lists(LINE_ENDS, min_size=1, max_size=3)) if draw(st.integers(0, 3)) == 0 else [
        draw(st.sampled_from([b"\r\n", b"\n"]))
    ]
    final = draw(st.sampled_from([ends[0], ends[0], b"\r\n", b"\n"]))
    following = draw(st.sampled_from([b"", b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n", b"junk"]))
    return assemble(b"%s %s %s" % (method, target, version), lines, ends, final) + body + following


@st.composite
def responses(draw) -> bytes:
    status = draw(st.sampled_from([b"200", b"204", b"304", b"404", b"500", b"2O0", b"20", b"\xd9\xa1\xd9\xa1\xd9\xa1"]))
    reason = draw(st.sampled_from([b" OK", b"", b" ", b" Not Found", b" O\x00K", b" O\rK", b" \xe9t\xe9", b" a\tb"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x"]))
    lines = draw(header_lines())
    framing = draw(st.sampled_from(["none", "length", "chunked", "both", "eof"]))
    body = draw(st.binary(max_size=30))
    if framing in ("length", "both"):
        lines.append(b"Content-Length: %d" % len(body))
    if framing in ("chunked", "both"):
        lines.append(b"Transfer-Encoding: chunked")
        body = draw(chunked_body())
    ends = draw(st.lists(LINE_ENDS, min_size=1, max_size=3)) if draw(st.integers(0, 3)) == 0 else [
        draw(st.sampled_from([b"\r\n", b"\n"]))
    ]
    final = draw(st.sampled_from([ends[0], ends[0], b"\r\n", b"\n"]))
    interim = draw(st.sampled_from([b"", b"", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"]))
    return interim + assemble(version + b" " + status + reason, lines, ends, final) + body


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]


cuts = st.lists(st.integers(0, 10_000), max_size=8)


# Properties -----------------------------------------------------------------------------------

SMUGGLE = (
    b"POST /innocent HTTP/1.1\r\nHost: example.com\r\nX-A: a\nContent-Length: 0\r\n"
    b"Content-Length: 55\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: example.com\r\n\r\n"
)


@given(requests(), cuts)
@example(SMUGGLE, [])
@example(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n", [])
def test_requests_agree_with_h11(data, cut):
    chunks = split(data, cut)
    check(proxycore_request(chunks), h11_request(chunks), data)


@given(st.sampled_from([b"GET", b"HEAD"]), responses(), cuts)
@example(b"GET", b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: x=1\r\nContent-Length: 0\r\n\r\n", [])
@example(b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", [])
def test_responses_agree_with_h11(method, data, cut):
    chunks = split(data, cut)
    check(proxycore_response(method, chunks), h11_response(method, chunks), data, response=True)


@given(st.binary(max_size=200), cuts)
def test_junk_requests_agree_with_h11(data, cut):
    chunks = split(data, cut)
    check(proxycore_request(chunks), h11_request(chunks), data)


@given(requests(), cuts, cuts)
def test_request_splits_do_not_matter(data, cut_a, cut_b):
    """Two different cuts of the same bytes read the same (the head is scanned incrementally)."""
    a, b = proxycore_request(split(data, cut_a)), proxycore_request(split(data, cut_b))
    assert a.kind == b.kind and a.start == b.start and a.headers == b.headers, data
    assert a.body == b.body and a.rest == b.rest, data
