"""Sizes, durations, timestamps and addresses formatted for people (and parsed back)."""

from __future__ import annotations

import datetime
from typing import Any

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
    """``host:port`` as mitmdump prints addresses: IPv6 in brackets, IPv4-mapped IPv6 as
    IPv4, an unspecified host as ``*``.  Called per flow, so plain IPv4 skips ipaddress."""
    if address is None:
        return "<no address>"
    host, port = address[0], address[1]
    if ":" not in host:
        return f"*:{port}" if host == "0.0.0.0" else f"{host}:{port}"
    import ipaddress

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"{host}:{port}"
    if ip.is_unspecified:
        return f"*:{port}"
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        return f"{mapped}:{port}"
    return f"[{ip}]:{port}"


def pretty_size(size: int) -> str:
    """Byte counts as mitmdump prints them: ``13b``, ``1.2k``, ``340k``, ``12.0m`` (<= 5 chars)."""
    if size < 1024:
        return f"{size}b"
    value = float(size)
    for unit in ("k", "m", "g", "t"):
        value /= 1024
        if value < 99.95:
            return f"{value:.1f}{unit}"
        if value < 1024 or unit == "t":
            return f"{value:.0f}{unit}"
    raise AssertionError("unreachable")

