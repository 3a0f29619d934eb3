"""WebSocketData's state is plain data: ``--workers`` sends it with ``marshal``."""

from __future__ import annotations

import marshal

from wsproto.frame_protocol import CloseReason

from proxycore.websocket import WebSocketData


def test_close_code_from_wsproto_is_a_plain_int_in_the_state() -> None:
    data = WebSocketData()
    data.close_code = CloseReason.NORMAL_CLOSURE  # what the layer stores for a known code
    state = data.get_state()
    assert type(state["close_code"]) is int and state["close_code"] == 1000
    assert marshal.loads(marshal.dumps(state)) == state


def test_no_close_code_stays_none() -> None:
    assert WebSocketData().get_state()["close_code"] is None
