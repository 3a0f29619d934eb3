"""Flow ids: random UUIDs (version 4) as text, made without uuid.UUID objects."""

import uuid

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
