"""The tnetstring writer encodes scalars inside its container loop: same bytes as a plain
recursive encoder written from the format's table (an oracle independent of the module)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.io import tnetstring
from tests.hypothesis_budget import budget


def reference(value) -> bytes:
    def frame(payload: bytes, tag: bytes) -> bytes:
        return str(len(payload)).encode() + b":" + payload + tag

    if value is None:
        return frame(b"", b"~")
    if isinstance(value, bool):
        return frame(b"true" if value else b"false", b"!")
    if isinstance(value, int):
        return frame(str(int(value)).encode(), b"#")
    if isinstance(value, float):
        return frame(repr(float(value)).encode(), b"^")
    if isinstance(value, bytes):
        return frame(value, b",")
    if isinstance(value, str):
        return frame(value.encode("utf-8"), b";")
    if isinstance(value, (list, tuple)):
        return frame(b"".join(reference(v) for v in value), b"]")
    if isinstance(value, dict):
        items = reversed(list(value.items()))
        return frame(b"".join(reference(k) + reference(v) for k, v in items), b"}")
    raise TypeError(value)


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.binary() | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.dictionaries(st.text() | st.binary(), inner),
    max_leaves=40,
)


@budget(300)
@given(values)
def test_same_bytes_as_a_plain_recursive_encoder(value) -> None:
    assert tnetstring.dumps(value) == reference(value)


def test_a_flow_state_and_bad_text_inside_containers() -> None:
    from proxycore.test import tflow

    state = tflow.tflow(resp=True).get_state()
    assert tnetstring.dumps(state) == reference(state)
    for bad in ({"a": "\ud800"}, ["\udc00"], {"\ud800": 1}):
        with pytest.raises(ValueError, match="UTF-8"):
            tnetstring.dumps(bad)
