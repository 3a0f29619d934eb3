"""Transparent mode support: where a redirected connection was originally going.

On Linux, connections redirected with netfilter (``iptables -t nat ... -j
REDIRECT`` or DNAT) keep their original destination in conntrack; the
``SO_ORIGINAL_DST`` socket option reads it back.  Other platforms are not
supported (``original_addr`` is None there, as in mitmproxy).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

SO_ORIGINAL_DST = 80  # <linux/netfilter_ipv4.h>
IP6T_SO_ORIGINAL_DST = 80  # <linux/netfilter_ipv6/ip6_tables.h>, at level SOL_IPV6
SOL_IPV6 = 41


def _linux_original_addr(sock: Any) -> tuple[str, int]:
    """The pre-NAT destination of an accepted socket; OSError if there is none."""
    local_host = sock.getsockname()[0]
    # An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d; its NAT entry
    # is in the IPv4 table all the same, so the address form decides, not the family.
    if "." in local_host:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)  # struct sockaddr_in
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big")
    raw = sock.getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST, 28)  # struct sockaddr_in6
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), int.from_bytes(raw[2:4], "big")


original_addr: Callable[[Any], tuple[str, int]] | None = (
    _linux_original_addr if sys.platform.startswith("linux") else None
)
