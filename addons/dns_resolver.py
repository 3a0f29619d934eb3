"""Answers queries in ``dns`` mode: address lookups from the hosts file or the system
resolver, everything else forwarded to a name server.

- ``dns_name_servers`` set: A/AAAA names found in the hosts file (``dns_use_hosts_file``)
  are answered here; every other query goes to the first name server.
- not set: A/AAAA go through the system resolver (getaddrinfo, which reads the hosts file
  itself); other queries go to the first ``nameserver`` of /etc/resolv.conf.
A name server may be written ``ip``, ``ip:port`` or ``[ipv6]:port`` (the port is a
proxycore extension; mitmproxy always uses 53).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from proxycore.exceptions import OptionsError
from proxycore.flow import Error
from proxycore.proxy.mode_specs import DnsMode, WireGuardMode

if TYPE_CHECKING:  # DNS flows exist only once a DNS layer imported these
    from proxycore.dns import DNSFlow, DNSMessage

logger = logging.getLogger("proxycore.dns_resolver")

HOSTS_FILE = "/etc/hosts"
RESOLV_CONF = "/etc/resolv.conf"


def parse_name_server(text: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:5353``, ``::1``, ``[::1]:5353`` -> (ip, port); ValueError otherwise."""
    text = text.strip()
    port = 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host = text
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {port}")
    return host, port


def system_name_servers(path: str = RESOLV_CONF) -> list[tuple[str, int]]:
    servers = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    try:
                        servers.append(parse_name_server(parts[1].partition("%")[0]))
                    except ValueError:
                        continue
    except OSError:
        pass
    return servers


def read_hosts(path: str = HOSTS_FILE) -> dict[str, list[str]]:
    """Lower-case name -> addresses, in file order."""
    table: dict[str, list[str]] = {}
    try:
        with open(path) as f:
            for line in f:
                fields = line.partition("#")[0].split()
                if len(fields) < 2:
                    continue
                try:
                    ipaddress.ip_address(fields[0].partition("%")[0])
                except ValueError:
                    continue
                for name in fields[1:]:
                    table.setdefault(name.lower().rstrip("."), []).append(fields[0].partition("%")[0])
    except OSError:
        pass
    return table


class DnsResolver:
    def __init__(self) -> None:
        self._servers: list[tuple[str, int]] | None = None
        self._hosts: dict[str, list[str]] | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "dns_use_hosts_file", bool, True,
            "Answer address lookups in dns mode from the hosts file when it has the name.",
        )
        loader.add_option(
            "dns_name_servers", Sequence[str], [],
            "Name servers dns mode asks (ip, ip:port or [ipv6]:port). Default: the system's.",
        )

    def configure(self, updated: set[str]) -> None:
        from proxycore import ctx

        if "dns_name_servers" in updated:
            for server in ctx.options.dns_name_servers:
                try:
                    parse_name_server(server)
                except ValueError:
                    raise OptionsError(f"Invalid name server: {server!r}") from None
        if updated & {"dns_name_servers", "dns_use_hosts_file"}:
            self._servers = None
            self._hosts = None

    def name_servers(self) -> list[tuple[str, int]]:
        from proxycore import ctx

        if self._servers is None:
            configured = [parse_name_server(s) for s in ctx.options.dns_name_servers]
            self._servers = configured or system_name_servers()
        return self._servers

    def hosts(self) -> dict[str, list[str]]:
        if self._hosts is None:
            self._hosts = read_hosts()
        return self._hosts

    async def dns_request(self, flow: DNSFlow) -> None:
        from proxycore import ctx
        from proxycore.net.dns import classes, op_codes, types

        mode = flow.client_conn.proxy_mode
        # WireGuard clients are told to use 10.0.0.53 (the client config): answered here.
        wireguard_dns = isinstance(mode, WireGuardMode) and flow.server_conn.address == ("10.0.0.53", 53)
        if not isinstance(mode, DnsMode) and not wireguard_dns:
            return
        if not flow.live or flow.response is not None or flow.error is not None:
            return
        request = flow.request
        question = request.question
        address_lookup = (
            request.query
            and request.op_code == op_codes.QUERY
            and question is not None
            and question.class_ == classes.IN
            and question.type in (types.A, types.AAAA)
        )
        servers = self.name_servers()
        if address_lookup and ctx.options.dns_name_servers:
            assert question is not None
            known = self.hosts().get(question.name.lower()) if ctx.options.dns_use_hosts_file else None
            if known:
                flow.response = _answer(request, _of_family(known, question.type))
                return
        elif address_lookup and ctx.options.dns_use_hosts_file:
            flow.response = await _system_lookup(request)
            return
        if servers:
            flow.server_conn.address = servers[0]
        else:
            flow.error = Error("Cannot resolve, dns_name_servers unknown.")


def _of_family(addresses: list[str], record_type: int) -> list[str]:
    from proxycore.net.dns import types

    version = 4 if record_type == types.A else 6
    return [a for a in addresses if ipaddress.ip_address(a).version == version]


def _answer(request: DNSMessage, addresses: list[str]) -> DNSMessage:
    from proxycore.dns import ResourceRecord

    question = request.question
    assert question is not None
    return request.succeed([
        ResourceRecord(question.name, question.type, question.class_, ResourceRecord.DEFAULT_TTL,
                       ipaddress.ip_address(a).packed)
        for a in dict.fromkeys(addresses)
    ])


async def _system_lookup(request: DNSMessage) -> DNSMessage:
    from proxycore.net.dns import response_codes, types

    question = request.question
    assert question is not None
    family = socket.AF_INET if question.type == types.A else socket.AF_INET6
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            question.name, None, family=family, type=socket.SOCK_STREAM
        )
    except socket.gaierror as e:
        if e.errno == socket.EAI_NONAME:
            return request.fail(response_codes.NXDOMAIN)
        if e.errno == getattr(socket, "EAI_NODATA", None):
            return _answer(request, [])
        return request.fail(response_codes.SERVFAIL)
    except UnicodeError:
        return request.fail(response_codes.NXDOMAIN)
    return _answer(request, [str(info[4][0]).partition("%")[0] for info in infos])
