"""The table-driven tnetstring encoder writes exactly what the isinstance chain writes."""

from __future__ import annotations

import enum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.io import tnetstring

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.binary() | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.dictionaries(st.text() | st.binary(), inner),
    max_leaves=40,
)


@given(values)
def test_fast_encoder_matches_the_chain(value):
    assert tnetstring._encode(value) == tnetstring._encode_other(value)
    assert tnetstring.loads(tnetstring.dumps(value)) == tnetstring.loads(tnetstring._encode_other(value))


class Level(enum.IntEnum):
    HIGH = 3


def test_subclasses_still_take_the_chain():
    assert tnetstring.dumps(Level.HIGH) == b"1:3#"
    assert tnetstring.dumps(True) == b"4:true!"


def test_bad_values_are_value_errors():
    with pytest.raises(ValueError):
        tnetstring.dumps({"a": object()})
    with pytest.raises(ValueError):
        tnetstring.dumps("\ud800")
