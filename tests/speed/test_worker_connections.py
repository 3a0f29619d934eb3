"""``--workers``: a flow message carries a connection's state once, then its id while the
connection is the same (workers.KeptConnections); the primary uses the object it made of
the state. Both ends must keep the same, and the primary's flows equal the worker's."""

from __future__ import annotations

import marshal

from hypothesis import given
from hypothesis import strategies as st

from proxycore import workers
from proxycore.test.tflow import tflow
from proxycore.workers.pool import _Worker
from tests.hypothesis_budget import budget


class Channel:
    """A worker's encoder and a primary's reader of one channel, in one process."""

    def __init__(self) -> None:
        self.sent = workers.KeptConnections()
        self.primary = _Worker(0, 0, writer=None)  # type: ignore[arg-type]  # never written to

    def send(self, flow):
        saved, workers._sent_connections = workers._sent_connections, self.sent
        try:
            data = workers.encode_flow("response", flow)
        finally:
            workers._sent_connections = saved
        message = marshal.loads(data[4:])
        client, server = self.primary.connections_of(message[3])
        copy = type(flow).from_state_with(message[3], client, server)
        return message[3], copy


def test_an_unchanged_connection_is_sent_once_and_a_changed_one_again():
    channel = Channel()
    first = tflow(resp=True)
    second = tflow(resp=True, client_conn=first.client_conn, server_conn=first.server_conn)
    state, copy = channel.send(first)
    assert type(state["client_conn"]) is dict and copy.get_state() == first.get_state()
    state, copy = channel.send(second)
    assert state["client_conn"] == first.client_conn.id  # the id alone
    assert state["server_conn"] == first.server_conn.id
    assert copy.get_state() == second.get_state()
    first.server_conn.timestamp_end = 1234.5
    state, copy = channel.send(second)
    assert type(state["server_conn"]) is dict and state["client_conn"] == first.client_conn.id
    assert copy.get_state() == second.get_state()


def test_both_ends_empty_their_tables_together():
    channel = Channel()
    flows = [tflow(resp=True) for _ in range(workers.KeptConnections.MAX_KEPT + 3)]
    for flow in flows + flows[:5]:
        _, copy = channel.send(flow)
        assert copy.get_state() == flow.get_state()
    assert channel.sent.kept.keys() == channel.primary.connections.kept.keys()


def test_a_message_that_cannot_be_sent_keeps_nothing():
    channel = Channel()
    flow = tflow(resp=True)
    flow.client_conn.sni = object()  # marshal cannot write it: the hook fails, nothing sent
    try:
        channel.send(flow)
    except ValueError:
        pass
    assert flow.client_conn.id not in channel.sent.kept
    flow.client_conn.sni = "example.com"
    state, copy = channel.send(flow)
    assert type(state["client_conn"]) is dict and copy.get_state() == flow.get_state()


edits = st.lists(
    st.sampled_from(
        [
            "port 1",
            "port True",
            "end 0.0",
            "end -0.0",
            "sni",
            "alpn in place",
            "nothing",
            "peername list",
            "tls",
        ]
    ),
    max_size=8,
)


@budget(40, deadline=None)
@given(edits)
def test_the_primary_sees_each_connection_as_the_worker_has_it(steps):
    channel = Channel()
    flow = tflow(resp=True)
    for step in steps:
        conn = flow.client_conn
        if step in ("port 1", "port True"):
            conn.peername = ("127.0.0.1", 1 if step == "port 1" else True)
        elif step in ("end 0.0", "end -0.0"):
            conn.timestamp_end = 0.0 if step == "end 0.0" else -0.0
        elif step == "sni":
            conn.sni = (conn.sni or "") + "x"
        elif step == "alpn in place":
            conn.alpn_offers.append(b"h2")
        elif step == "peername list":
            conn.peername = ["127.0.0.1", 1]
        elif step == "tls":
            conn.tls = not conn.tls
        _, copy = channel.send(flow)
        rebuilt = type(flow).from_state(flow.get_state())  # what the primary made before
        assert marshal.dumps(copy.get_state(), 2) == marshal.dumps(rebuilt.get_state(), 2)


def test_the_primary_writes_the_workers_record_and_it_is_what_it_would_have_written(tmp_path):
    """-w among other observers: the record that comes with the last hook's flow is written
    as it is, and is byte for byte what the primary's flow would give; an observer that
    awaits (others may change the flow meanwhile) makes Save encode the flow itself."""
    import asyncio

    from addons.save import Save
    from proxycore.io.io import FlowEncoder
    from proxycore.test import taddons
    from proxycore.workers.pool import WorkerPool

    class View:  # an observer (by class name) that awaits for every second flow
        def __init__(self):
            self.seen = []

        def response(self, flow):
            self.seen.append(flow)
            return asyncio.sleep(0) if len(self.seen) % 2 == 0 else None

    save, view = Save(), View()
    path = tmp_path / "out.mitm"
    channel = Channel()
    written = []
    with taddons.context(view, save) as tctx:  # (the view runs first)
        tctx.configure(save, save_stream_file=str(path))
        pool = WorkerPool()
        assert "response" in pool._wanted_hooks()[2]
        add = save.writer.add
        save.writer.add = lambda flow, encoded=None: written.append(encoded) or add(flow, encoded)
        first = tflow(resp=True)
        flows = [first] + [
            tflow(resp=True, client_conn=first.client_conn, server_conn=first.server_conn)
            for _ in range(3)
        ]
        expected = []
        for flow in flows:
            saved, workers._sent_connections = workers._sent_connections, channel.sent
            try:
                message = marshal.loads(workers.encode_flow("response", flow, with_record=True)[4:])
            finally:
                workers._sent_connections = saved
            client, server = channel.primary.connections_of(message[3])
            pending = pool._deliver(
                channel.primary, "response", False, message[3], client, server, message[4]
            )
            if pending is not None:  # the view awaits: the rest of the observers run after it
                asyncio.run(pending)
            expected.append(FlowEncoder().encode(view.seen[-1]))
            assert message[4] == expected[-1]
        save.done()
    assert [w is not None for w in written] == [True, False, True, False]
    assert path.read_bytes() == b"".join(expected)
