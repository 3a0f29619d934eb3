"""Properties of the HTTP/1 layers: arbitrary input never raises, chunking never matters."""

from hypothesis import given
from hypothesis import strategies as st

from proxycore.connection import ConnectionState, Server
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import HttpErrorHook, HttpResponseHook
from proxycore.proxy import commands, events
from proxycore.testing import make_context, run_events
from tests.hypothesis_budget import budget

REQUESTS = [
    b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"POST http://example.com/form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 7\r\n\r\na=1&b=2",
    b"POST http://example.com/up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"PUT http://example.com/ HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    b"GET http://example.com/ HTTP/1.0\r\nConnection: close\r\n\r\n",
    b"HEAD http://example.com/h HTTP/1.1\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
]

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nuntil eof",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]


def drive(client_chunks: list[bytes], server_chunks: list[bytes], close_client: bool = False):
    """Run a regular-mode HttpLayer: client bytes first, then the server's once it is connected."""
    tctx = make_context()
    layer = HttpLayer(tctx, HTTPMode.regular)
    servers: list[Server] = []

    def answer(command):
        if isinstance(command, commands.OpenConnection):
            servers.append(command.connection)
        return None

    issued = run_events(layer, [events.DataReceived(tctx.client, c) for c in client_chunks], answer)
    for server in servers:
        if server.state is not ConnectionState.OPEN:
            continue
        evs: list[events.Event] = [events.DataReceived(server, c) for c in server_chunks]
        evs.append(events.ConnectionClosed(server))
        issued += run_events(layer, evs, start=False)
        break
    if close_client:
        issued += run_events(layer, [events.ConnectionClosed(tctx.client)], start=False)
    return tctx, issued


def flows_of(issued):
    seen = []
    for c in issued:
        if isinstance(c, (HttpResponseHook, HttpErrorHook)) and c.flow not in seen:
            seen.append(c.flow)
    return seen


def summary(tctx, issued):
    flows = [
        (
            f.request.method,
            f.request.url,
            f.request.raw_content,
            f.response and (f.response.status_code, f.response.raw_content),
            f.error and f.error.msg,
        )
        for f in flows_of(issued)
    ]
    client_bytes = b"".join(
        c.data for c in issued if isinstance(c, commands.SendData) and c.connection is tctx.client
    )
    server_bytes = b"".join(
        c.data
        for c in issued
        if isinstance(c, commands.SendData) and c.connection is not tctx.client
    )
    return flows, client_bytes, server_bytes


@budget(200)
@given(
    st.sampled_from(REQUESTS),
    st.sampled_from(RESPONSES),
    st.lists(st.integers(0, 500), max_size=6),
    st.lists(st.integers(0, 500), max_size=6),
)
def test_chunking_does_not_change_flows(request, response, client_cuts, server_cuts):
    reference = summary(*drive([request], [response]))
    chunked = summary(*drive(split(request, client_cuts), split(response, server_cuts)))
    assert chunked == reference


@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=5), st.binary(max_size=200), st.booleans())
def test_arbitrary_client_bytes_never_raise(garbage, cuts, server_garbage, close):
    drive(split(garbage, cuts), [server_garbage], close)


@given(
    st.sampled_from(REQUESTS),
    st.binary(max_size=300),
    st.lists(st.integers(0, 300), max_size=5),
)
def test_arbitrary_server_bytes_never_raise(request, garbage, cuts):
    tctx, issued = drive([request], split(garbage, cuts))
    # Whatever the server sent, the client got an answer or the connection was closed.
    assert any(
        isinstance(c, (commands.SendData, commands.CloseConnection)) and c.connection is tctx.client
        for c in issued
    )


@given(st.lists(st.sampled_from(REQUESTS[:2]), min_size=1, max_size=4), st.lists(st.integers(0, 900), max_size=6))
def test_pipelined_requests_any_split(requests, cuts):
    blob = b"".join(requests)
    tctx, issued = drive(split(blob, cuts), [RESPONSES[0]] * len(requests))
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    _, client_bytes, _ = summary(tctx, issued)
    assert client_bytes.count(ok) == len(requests)
