"""Values derived from options are computed once per change (issue 15: the HTTP layers'
size limits were parsed from the options a dozen times per request)."""

from __future__ import annotations

import pytest

from proxycore.exceptions import OptionsError
from proxycore.layers.http._http1 import SizeLimits, size_limits
from proxycore.options import Options


def test_derived_is_computed_again_only_after_a_change() -> None:
    options = Options()
    calls: list[str | None] = []

    def limit(o: Options) -> str | None:
        calls.append(o.body_size_limit)
        return o.body_size_limit

    assert options.derived(limit) is None
    assert options.derived(limit) is None
    assert calls == [None]
    options.body_size_limit = "3k"
    assert options.derived(limit) == "3k"
    assert calls == [None, "3k"]


def test_a_refused_change_leaves_no_stale_value() -> None:
    options = Options()
    assert size_limits(options).body is None

    def refuse(updated: set[str]) -> None:
        raise OptionsError("no")

    options.changed.append(refuse)
    with pytest.raises(OptionsError):
        options.body_size_limit = "1k"
    options.changed.remove(refuse)
    assert options.body_size_limit is None
    assert size_limits(options).body is None


def test_size_limits_follow_the_options() -> None:
    options = Options()
    before = size_limits(options)
    assert size_limits(options) is before
    options.update(head_size_limit="2k", stream_large_bodies="10k", body_buffer_limit="5k", body_size_limit="1m")
    assert size_limits(options) == SizeLimits(head=2048, body=1024**2, stream=10240, hold=5120, pause=5120)


def test_any_options_object_will_do() -> None:
    class Plain:
        head_size_limit = "1k"
        body_size_limit = None
        stream_large_bodies = None
        body_buffer_limit = None

    assert size_limits(Plain()).head == 1024  # type: ignore[arg-type]
