"""Example budgets for property tests that honour the hypothesis profile (tests/conftest.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import settings


def at_least(examples: int, **kwargs: Any) -> settings:
    """Settings with ``examples`` examples, or the profile's count if that is larger: a cheap,
    important property runs more often than the CI default, and never less than asked for
    by a deeper profile (``HYPOTHESIS_PROFILE=thorough``)."""
    return settings(max_examples=max(examples, settings.default.max_examples), **kwargs)
