"""Example budgets for property tests that honour the hypothesis profile (tests/conftest.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import settings

# Examples per property in the everyday profiles (fast, ci); the deeper ones try more.
EVERYDAY = 50


def budget(examples: int, **kwargs: Any) -> settings:
    """Settings with ``examples`` examples in everyday runs (more than the default for a
    cheap, important property; fewer for one whose examples are expensive), and the
    profile's count in a deeper profile (``deep``, ``thorough``) if that is larger.  A bare
    ``@budget(n)`` would pin n under every profile: ``HYPOTHESIS_PROFILE=deep``
    would not search that property any deeper."""
    profile = settings.default.max_examples
    return settings(max_examples=examples if profile <= EVERYDAY else max(examples, profile), **kwargs)
