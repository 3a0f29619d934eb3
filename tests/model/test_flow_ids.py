"""Flow and connection ids: random UUIDs (version 4) as text, made without uuid.UUID objects."""

import uuid

import pytest

from proxycore.connection import Client, Server
from proxycore.flow import Flow, new_id


def test_new_ids_are_random_uuid4_text():
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower-case hex, hyphens where uuid puts them
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_flows_and_their_copies_get_new_ids():
    flow = Flow(Client(), Server())
    assert uuid.UUID(flow.id).version == 4
    assert flow.copy().id != flow.id


def test_connection_ids_are_uuid4_text_from_the_same_helper(monkeypatch):
    ids = [Client().id, Server().id, Client().id]
    assert len(set(ids)) == 3
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    from proxycore.utils import ids as id_helper

    monkeypatch.setattr(id_helper, "_random_bytes", lambda size: b"\xff" * size)  # the pooled bytes
    monkeypatch.setattr(id_helper._POOL, "ids", [])
    assert Server().id == "ffffffff-ffff-4fff-bfff-ffffffffffff"
    monkeypatch.setattr(id_helper, "_random_bytes", lambda size: bytes(size))
    monkeypatch.setattr(id_helper._POOL, "ids", [])
    assert Server().id == "00000000-0000-4000-8000-000000000000"


def test_ids_of_one_batch_are_all_different_and_a_batch_is_used_up_before_the_next():
    from proxycore.utils import ids as id_helper

    id_helper._POOL.drop()
    batch = [new_id() for _ in range(id_helper._BATCH)]
    assert len(set(batch)) == id_helper._BATCH and id_helper._POOL.ids == []
    assert new_id() not in batch and len(id_helper._POOL.ids) == id_helper._BATCH - 1


@pytest.mark.e2e  # (it forks)
def test_a_forked_child_makes_other_ids_than_its_parent():
    import os

    new_id()  # the parent has random bytes left over, which the child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert uuid.UUID(child_id).version == 4
    assert child_id != new_id()


def test_a_flow_id_is_made_when_first_read_and_then_kept():
    """(issue 15) new_id is not called for a flow nobody asks the id of; once read, it stays."""
    from proxycore.utils import ids as id_helper

    flow = Flow(Client(), Server())
    left = len(id_helper._POOL.ids)
    assert flow._id is None
    first = flow.id
    assert uuid.UUID(first).version == 4 and flow.id == first and flow._id == first
    assert len(id_helper._POOL.ids) in (left - 1, id_helper._BATCH - 1)  # one id taken (or a refill)
    flow.id = "set-by-state"
    assert flow.id == "set-by-state"
    assert Flow(Client(), Server()).id != first


def test_copies_and_pickles_of_a_flow_keep_its_id_even_if_it_was_not_read_yet():
    import copy
    import pickle

    for duplicate in (copy.copy, copy.deepcopy, lambda f: pickle.loads(pickle.dumps(f))):
        flow = Flow(Client(), Server())
        twin = duplicate(flow)
        assert twin.id == flow.id


def test_threads_reading_a_new_flow_id_at_once_get_the_same_one():
    import threading

    flow = Flow(Client(), Server())
    seen: list[str] = []
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        seen.append(flow.id)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1 and seen[0] == flow.id


def test_class_level_flow_defaults_are_per_flow_once_set():
    """Flow's constant fields are class attributes until set: setting one on a flow must
    leave every other flow (and the class) as it was."""
    from proxycore.flow import Error

    one, two = Flow(Client(), Server()), Flow(Client(), Server())
    one.error = Error("x")
    one.intercepted = True
    one.marked = ":star:"
    one.comment = "c"
    one.metadata["k"] = 1
    assert two.error is None and not two.intercepted and two.marked == "" and two.comment == ""
    assert two.metadata == {} and two.is_replay is None
    assert Flow.marked == "" and Flow.comment == "" and Flow.is_replay is None
    state = one.get_state()
    assert state["intercepted"] and state["comment"] == "c" and state["error"]["msg"] == "x"


def test_http_flow_fields_start_empty_and_are_per_flow():
    from proxycore.http import HTTPFlow, Response

    one, two = HTTPFlow(Client(), Server(), live=True), HTTPFlow(Client(), Server())
    assert one.live and not two.live
    assert one.request is None and one.response is None and one.websocket is None
    assert one.websocket_playback is None
    one.response = Response.make(204)
    assert two.response is None
