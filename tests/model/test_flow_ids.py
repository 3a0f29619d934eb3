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
