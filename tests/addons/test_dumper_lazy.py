"""proxydump does not import the content views until it shows a body, so the choices of
``dumper_default_contentview`` are written out in the dumper: they must stay the built-in
views that the registry lists."""

from __future__ import annotations

from proxycore import contentviews
from proxycore.addons.dumper import BUILTIN_VIEWS


def test_builtin_views_are_the_registry_s() -> None:
    builtin = sorted(
        name
        for name, view in contentviews.registry.items()
        if type(view).__module__.startswith("proxycore.contentviews.")  # not a test's or a script's
    )
    assert list(BUILTIN_VIEWS) == ["auto", *builtin]
