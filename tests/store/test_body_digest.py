"""body_digest: the SHA-256 of a body, remembered per message only for bodies worth it."""

from __future__ import annotations

import hashlib

from proxycore.store import base
from tests.flows import http_flow


def test_small_bodies_are_hashed_each_time_and_not_remembered() -> None:
    message = http_flow().request
    body = b"x" * (base.DIGEST_MEMO_MIN - 1)
    assert base.body_digest(message, body) == hashlib.sha256(body).hexdigest()
    assert message not in base._digests


def test_large_bodies_are_remembered_until_the_body_changes() -> None:
    message = http_flow().request
    body = b"y" * base.DIGEST_MEMO_MIN
    assert base.body_digest(message, body) == hashlib.sha256(body).hexdigest()
    assert base._digests[message][0] is body
    other = b"z" * base.DIGEST_MEMO_MIN
    assert base.body_digest(message, other) == hashlib.sha256(other).hexdigest()
    assert base._digests[message][0] is other
