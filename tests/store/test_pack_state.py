"""pack_state: a state given to keep is left as it was; one made for the call may be changed."""

from __future__ import annotations

import copy

from proxycore.store import base
from tests.flows import http_flow


def test_owned_packing_gives_the_same_record_and_a_kept_state_is_not_changed() -> None:
    state = http_flow(response=True).get_state()
    kept = copy.deepcopy(state)
    data, bodies = base.pack_state(state)
    assert state == kept
    owned_data, owned_bodies = base.pack_state(copy.deepcopy(state), owned=True)
    assert owned_bodies == bodies == {"request": b"content", "response": b"message"}
    assert base.unpack_state(owned_data, owned_bodies) == base.unpack_state(data, bodies) == kept
