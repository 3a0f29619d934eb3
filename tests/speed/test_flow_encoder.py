"""The -w fast path writes exactly what the general encoder writes.

``FlowEncoder`` (flow writers) reuses a connection's frame while its state is the same,
and the tnetstring encoder keeps frames of values and of dict keys seen before: the bytes
must still be those of the isinstance chain (``tnetstring._encode_other``) for any flow and
any value, whatever was encoded before.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxycore import testing
from proxycore.io import tnetstring
from proxycore.io.io import FlowEncoder
from proxycore.test.tflow import tflow
from tests.hypothesis_budget import budget

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.binary(max_size=200)
    | st.text(max_size=200)
)
keys = (
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.sampled_from([0.0, -0.0, 1.0])
    | st.text(max_size=3)
    | st.binary(max_size=3)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.dictionaries(keys, inner),
    max_leaves=30,
)


def general(value):
    return tnetstring._encode_other(value)


@given(st.lists(values, min_size=1, max_size=6))
def test_frame_tables_never_change_the_bytes(sequence):
    """Values encoded one after another (the tables filled by the earlier ones) and again."""
    for value in sequence + sequence:
        assert tnetstring.dumps(value) == general(value)


def test_equal_values_of_other_types_get_their_own_frames():
    for value in (
        [1, True, 1.0],
        [0.0, -0.0, 0, False],
        {1: 1},
        {True: 1},
        {1.0: 1},
        {"1": 1},
        {b"1": 1},
    ):
        assert tnetstring.dumps(value) == general(value)
        assert tnetstring.dumps(value) == general(value)
    assert tnetstring.dumps({True: 1}) == b"11:4:true!1:1#}"


connection_values = (
    st.none()
    | st.booleans()
    | st.integers(0, 70000)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)


@budget(60, deadline=None)
@given(
    st.data(),
    testing.requests(),
    st.none() | testing.responses(),
    st.lists(
        st.tuples(
            st.sampled_from(["peername", "sni", "tls", "timestamp_end", "alpn", "cipher_list"]),
            connection_values,
        ),
        max_size=4,
    ),
    st.dictionaries(st.text(max_size=5), scalars, max_size=3),
)
def test_flow_encoder_matches_the_general_encoder(data, request, response, changes, metadata):
    encoder = FlowEncoder()
    flow = tflow(req=request, resp=response if response is not None else False)
    flow.metadata = metadata
    assert encoder.encode(flow) == general(flow.get_state())
    assert encoder.encode(flow) == general(flow.get_state())  # the connections' frames reused
    for name, value in changes:  # a changed connection (port 1 -> True ...) gets a new frame
        conn = data.draw(st.sampled_from([flow.client_conn, flow.server_conn]))
        if name == "peername" and not isinstance(value, str):
            value = ("127.0.0.1", value)
        elif name == "cipher_list":
            value = [value]
        setattr(conn, name, value)
        assert encoder.encode(flow) == general(flow.get_state())


connection_edits = st.sampled_from([
    "port True", "port 1.0", "timestamp -0.0", "timestamp int", "alpn_offers append",
    "cipher_list append", "cipher_list item", "peername list", "peername nested list",
    "peername item", "proxy_mode", "certificate", "same tuple again",
])  # fmt: skip


def _edit(conn, edit):
    """Change ``conn`` so that its state changes (or, "same tuple again", only its objects)."""
    host, port = (conn.peername or ("127.0.0.1", 1))[:2]
    port = port if type(port) is int else 1
    if edit == "port True":
        conn.peername = (host, True)
    elif edit == "port 1.0":
        conn.peername = (host, float(port))
    elif edit == "timestamp -0.0":
        conn.timestamp_end = -0.0 if conn.timestamp_end == 0.0 and str(conn.timestamp_end) == "0.0" else 0.0
    elif edit == "timestamp int":
        conn.timestamp_start = int(conn.timestamp_start or 0)
    elif edit == "alpn_offers append":
        conn.alpn_offers.append(b"h2")  # in place: the list is the same object
    elif edit == "cipher_list append":
        conn.cipher_list.append("AES")
    elif edit == "cipher_list item" and conn.cipher_list:
        conn.cipher_list[0] += "x"
    elif edit == "peername list":
        conn.peername = [host, port]
    elif edit == "peername nested list":
        conn.peername = (host, [port])
    elif edit == "peername item" and type(conn.peername) is list:
        conn.peername[1] = 2 if conn.peername[1] == 1 else 1  # in place
    elif edit == "peername item" and type(conn.peername) is tuple and type(conn.peername[1]) is list:
        conn.peername[1].append(1)  # in place, inside the tuple
    elif edit == "proxy_mode" and hasattr(conn, "proxy_mode"):
        from proxycore.proxy.mode_specs import ProxyMode

        conn.proxy_mode = ProxyMode.parse("upstream:http://example.com:8080")
    elif edit == "certificate":
        conn.certificate_list = [b"-----BEGIN CERTIFICATE-----"]
    elif edit == "same tuple again" and isinstance(conn.peername, tuple):
        conn.peername = tuple(list(conn.peername))  # equal, another object


@budget(60, deadline=None)
@given(st.data(), st.lists(connection_edits, max_size=6))
def test_connections_changed_in_place_or_to_equal_values_of_other_types(data, edits):
    """The identity fast path (state_key) must see every change that alters the state:
    lists changed in place, 1 -> True -> 1.0, 0.0 -> -0.0, lists inside tuples."""
    encoder = FlowEncoder()
    flow = tflow(resp=True)
    assert encoder.encode(flow) == general(flow.get_state())
    for edit in edits:
        conn = data.draw(st.sampled_from([flow.client_conn, flow.server_conn]))
        _edit(conn, edit)
        assert encoder.encode(flow) == general(flow.get_state())
        assert encoder.encode(flow) == general(flow.get_state())


def test_lists_changed_in_place_get_a_new_frame():
    for edits in (
        ["alpn_offers append", "alpn_offers append"],
        ["cipher_list append", "cipher_list item"],
        ["peername list", "peername item"],
        ["peername nested list", "peername item"],
    ):
        encoder = FlowEncoder()
        flow = tflow(resp=True)
        for edit in edits:
            _edit(flow.client_conn, edit)
            assert encoder.encode(flow) == general(flow.get_state()), edits


def test_an_unchanged_connection_is_not_asked_for_its_state(monkeypatch):
    from proxycore.connection import Client

    encoder = FlowEncoder()
    first = tflow(resp=True)
    second = tflow(resp=True, client_conn=first.client_conn, server_conn=first.server_conn)
    assert encoder.encode(first) == general(first.get_state())
    asked = []
    original = Client.get_state
    monkeypatch.setattr(Client, "get_state", lambda self: asked.append(self) or original(self))
    assert encoder.encode(second) == general(second.get_state())
    assert len(asked) == 1  # the general encoder's call only, not the writer's
    first.client_conn.sni = "other.example"
    asked.clear()
    assert encoder.encode(first) == general(first.get_state())
    assert len(asked) == 2


def test_a_flow_class_with_its_own_get_state_is_written_with_it():
    from proxycore.http import HTTPFlow

    class Tagged(HTTPFlow):
        def get_state(self):
            state = super().get_state()
            state["tag"] = "mine"
            return state

    flow = tflow(resp=True)
    tagged = Tagged(flow.client_conn, flow.server_conn)
    tagged.request, tagged.response = flow.request, flow.response
    assert FlowEncoder().encode(tagged) == general(tagged.get_state())
    assert b"3:tag;" in FlowEncoder().encode(tagged)


def test_a_port_that_becomes_true_is_not_the_cached_frame():
    encoder = FlowEncoder()
    flow = tflow(resp=True)
    flow.client_conn.peername = ("127.0.0.1", 1)
    first = encoder.encode(flow)
    flow.client_conn.peername = ("127.0.0.1", True)
    second = encoder.encode(flow)
    assert first != second
    assert second == general(flow.get_state())


def test_a_state_marshal_cannot_write_is_encoded_as_it_is():
    class Port(int):
        pass

    encoder = FlowEncoder()
    flow = tflow(resp=True)
    flow.client_conn.peername = ("127.0.0.1", Port(8080))
    assert encoder.encode(flow) == general(flow.get_state())
    assert encoder.encode(flow) == tnetstring.dumps(flow.get_state())


def test_a_workers_record_is_the_flow_as_the_file_stores_it():
    import marshal

    from proxycore import workers

    first = tflow(resp=True)
    second = tflow(resp=True, client_conn=first.client_conn, server_conn=first.server_conn)
    second.metadata = {"object": object()}  # tnetstring cannot write it: left out
    for flow in (first, second, first):
        message = marshal.loads(workers.encode_record(flow)[4:])
        state = flow.get_state()
        if flow is second:
            state["metadata"] = {}
        assert message == ("record", general(state))
