"""A layer's state change (``Layer._goto``) must not make CPython build the layer's dict (issue 15).

CPython (3.11+) keeps an instance's attributes in a compact array until someone asks for
``obj.__dict__``; from then on the object has a real dict and every attribute access of
it takes a slower path. ``_goto`` once wrote through ``self.__dict__``, so every layer that
changed state (each HttpStream four times a request) paid for it on all later accesses:
layerbench 475k -> 452k instructions/request without it. Whether the dict exists shows in
what the garbage collector sees the object refer to.
"""

from __future__ import annotations

import gc

import pytest

from proxycore.layers.http import HTTPMode, HttpStream
from proxycore.proxy.layer import Layer
from proxycore.testing import make_context


def _has_dict(obj: object, attribute: str) -> bool:
    """Whether ``obj`` has a real dict (one that holds ``attribute``): then the collector
    sees that dict, else each attribute value on its own."""
    return any(type(r) is dict and attribute in r for r in gc.get_referents(obj))


class _Plain:
    def __init__(self) -> None:
        self.a = 1


def _inline_attributes() -> bool:
    """Does this interpreter keep attributes outside a dict until __dict__ is asked for?"""
    obj = _Plain()
    before = _has_dict(obj, "a")
    obj.__dict__  # noqa: B018 (asking for it is the point)
    return not before and _has_dict(obj, "a")


@pytest.mark.skipif(not _inline_attributes(), reason="this interpreter always has instance dicts")
def test_goto_leaves_the_layer_without_a_dict() -> None:
    class Two(Layer):
        def _handle_event(self, event):  # type: ignore[no-untyped-def]
            yield from ()

        def second(self, event):  # type: ignore[no-untyped-def]
            yield from ()

    layer = Two(make_context())
    layer._goto(layer.second)
    assert layer._handle_event == layer.second
    assert not _has_dict(layer, "context")

    stream = HttpStream(make_context(), 1, HTTPMode.regular)  # (goes to state_start)
    assert stream._handle_event == stream.state_start
    assert not _has_dict(stream, "context")
