"""Flow ids: random version-4 UUIDs in the text form mitmproxy's ``str(uuid.uuid4())`` has."""

from __future__ import annotations

import uuid

from proxycore.flow import new_id


def test_ids_are_version_4_uuids_in_canonical_form():
    for _ in range(200):
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_differ():
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
