"""A filter option's value compiled, without importing the filter language for an empty one.

Most starts set no filter: ``proxycore.flowfilter`` (its parser, ~35 operator classes and
their regexes) is then never imported.  Addons call this from ``configure`` instead of
``flowfilter.parse_option``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxycore.flowfilter import Filter


def parse_option(expression: str | None) -> Filter | None:
    """None when unset or empty (every flow); else ``flowfilter.parse_option(expression)``."""
    if not expression:
        return None
    from proxycore import flowfilter

    return flowfilter.parse_option(expression)
