"""from_state without __init__ (connections, requests, responses), Headers.from_state's
all-at-once check and Flow.set_state_with: the same objects as the long way, the same
errors, and subclasses with their own __init__ or set_state still get theirs."""

from __future__ import annotations

import pytest

from proxycore.connection import Client, Server
from proxycore.http import Headers, HTTPFlow, Request, Response
from proxycore.test.tflow import tflow


def _slots(message):
    return {name: getattr(message.data, name) for name in message.data._fields()}


def test_connections_requests_and_responses_are_made_as_before():
    flow = tflow(resp=True)
    for conn in (flow.client_conn, flow.server_conn):
        state = conn.get_state()
        old = type(conn)()
        old.set_state(state)
        new = type(conn).from_state(state)
        assert vars(new) == vars(old)
    for message, cls in ((flow.request, Request), (flow.response, Response)):
        new = cls.from_state(message.get_state())
        assert _slots(new) == _slots(message) and vars(new).keys() == vars(message).keys()
        assert new.get_state() == message.get_state()


def test_subclasses_with_their_own_init_get_it():
    made = []

    class MyClient(Client):
        def __init__(self, **kw):
            made.append(self)
            super().__init__(**kw)

    class MyRequest(Request):
        def __init__(self, *args):
            made.append(self)
            super().__init__(*args)

    flow = tflow()
    assert MyClient.from_state(flow.client_conn.get_state()).id == flow.client_conn.id
    assert MyRequest.from_state(flow.request.get_state()).get_state() == flow.request.get_state()
    assert len(made) == 2


@pytest.mark.parametrize(
    "state",
    [
        [(b"a", b"b\r\nx: y")],
        [(b"a\x00", b"b")],
        [(b"a", b"b"), (b"c", b"d\n")],
    ],
)
def test_headers_from_state_refuses_line_breaks_either_way(state):
    for given in (state, tuple(state), [list(pair) for pair in state]):
        with pytest.raises(ValueError):
            Headers.from_state(given)


def test_headers_from_state_takes_str_and_lists_as_before():
    assert Headers.from_state([["a", "b"], (b"c", "d")]).fields == ((b"a", b"b"), (b"c", b"d"))
    pairs = ((b"a", b"b"), (b"c", b"d"))
    assert Headers.from_state(pairs).fields == pairs
    assert Headers.from_state(()).fields == ()
    with pytest.raises(TypeError):
        Headers.from_state([(bytearray(b"a"), b"b")])
    with pytest.raises(ValueError):
        Headers.from_state([(b"a", b"b", b"c")])


def test_set_state_with_keeps_the_given_connections_and_from_state_honours_a_set_state():
    flow = tflow(resp=True)
    state = flow.get_state()
    client, server = (
        Client.from_state(state["client_conn"]),
        Server.from_state(state["server_conn"]),
    )
    copy = HTTPFlow.from_state_with(state, client, server)
    assert copy.client_conn is client and copy.server_conn is server
    assert copy.get_state() == state == HTTPFlow.from_state(state).get_state()

    class Tagged(HTTPFlow):
        def set_state(self, state):
            super().set_state(state)
            self.tag = state.get("tag")

    assert Tagged.from_state({**state, "tag": "mine"}).tag == "mine"
