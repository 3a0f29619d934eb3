"""Sizes, durations, timestamps and addresses formatted for people (and parsed back)."""

from __future__ import annotations

import datetime
from typing import Any

from proxycore.addons.dumper import pretty_size  # noqa: F401 - re-exported for scripts
from proxycore.addons.termlog import format_address as _format_address
from proxycore.exceptions import OptionsError
from proxycore.options import parse_size as _parse_option_size


def parse_size(s: str | None) -> int | None:
    """"3k" -> 3072, "5m", "1g"; None stays None; ValueError for nonsense (as mitmproxy)."""
    try:
        return _parse_option_size(s)
    except OptionsError as e:
        raise ValueError(str(e)) from None


def pretty_duration(secs: float | None) -> str:
    """Three significant digits: "999ms", "1.23s", "12.3s", "123s"; "" for None."""
    if secs is None:
        return ""
    if secs < 1:
        return f"{secs * 1000:.0f}ms"
    if secs < 10:
        return f"{secs:.2f}s"
    if secs < 100:
        return f"{secs:.1f}s"
    return f"{secs:.0f}s"


def format_timestamp(s: float) -> str:
    """Local time, second precision: "2024-01-31 12:00:00"."""
    return datetime.datetime.fromtimestamp(s).strftime("%Y-%m-%d %H:%M:%S")


def format_timestamp_with_milli(s: float) -> str:
    """Local time with milliseconds: "2024-01-31 12:00:00.123"."""
    return datetime.datetime.fromtimestamp(s).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def format_address(address: Any) -> str:
    """"host:port" with IPv6 in brackets and "*" for an unspecified host."""
    return _format_address(address)

