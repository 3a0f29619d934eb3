"""Options ``block_global`` and ``block_private``: refuse clients by the kind of address they
come from, so a proxy that is reachable from the internet is not an open proxy by accident.

A refused client's connection is closed before a byte is read (``client.error`` set in
``client_connected``). Loopback clients are always let in.
"""

from __future__ import annotations

import functools
import ipaddress
import logging

from proxycore import ctx
from proxycore.addonmanager import Loader
from proxycore.addons.proxyauth import proxy_mode_name
from proxycore.connection import Client

logger = logging.getLogger("proxycore.block")


class Block:
    def load(self, loader: Loader) -> None:
        loader.add_option("block_global", bool, True, "Block connections from public IP addresses.")
        loader.add_option(
            "block_private", bool, False,
            "Block connections from local (private) IP addresses. This option does not affect "
            "loopback addresses (connections from the local machine), which are always permitted.",
        )

    def client_connected(self, client: Client) -> None:
        if not client.peername:
            return
        host = str(client.peername[0]).split("%", 1)[0]  # drop an IPv6 zone index
        kind = _address_kind(host)
        if kind is None:
            return  # not an IP peer (e.g. a Unix socket)
        is_loopback, is_private, is_global = kind
        if is_loopback or proxy_mode_name(client.proxy_mode) == "local":
            return
        if ctx.options.block_private and is_private:
            logger.warning(f"Client connection from {host} killed by block_private option.")
            client.error = "Connection killed by block_private."
        if ctx.options.block_global and is_global:
            logger.warning(f"Client connection from {host} killed by block_global option.")
            client.error = "Connection killed by block_global."


@functools.lru_cache(maxsize=4096)
def _address_kind(host: str) -> tuple[bool, bool, bool] | None:
    """(loopback, private, global) of an IP address, None if ``host`` is none.

    Cached: it runs for every client connection, clients come back from the same few
    addresses, and ``is_private``/``is_global`` test the address against many networks."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback, address.is_private, address.is_global
