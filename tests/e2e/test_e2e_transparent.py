"""Transparent mode end to end, on Linux: a client in its own network namespace talks to
an "origin" address on the host; iptables REDIRECTs its ports 80/443 to proxydump, which
reads the original destination (SO_ORIGINAL_DST) and connects there itself.

    netns: curl 10.X.Y.2 --veth--> host 10.X.Y.1 (+ origin 10.X.Y.100:80/443)
                                   nat PREROUTING -i veth --dport 80,443 -> REDIRECT :proxy

The test builds and removes the namespace, the veth pair, the addresses and the rules.
It skips (with the reason) only where the machine refuses: not root, no iproute2/iptables,
no namespaces or no NAT in the kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e_servers import start_http
from tests.processes import Proxy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="transparent mode needs Linux"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r


@dataclass
class Network:
    """A client namespace wired to the host, with REDIRECT rules toward ``proxy_port``."""

    tag: int
    proxy_port: int
    ns: str = ""
    host_if: str = ""
    ns_if: str = ""
    undo: list[tuple[str, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ns = f"pcns{self.tag}"
        self.host_if, self.ns_if = f"pch{self.tag}", f"pcn{self.tag}"
        octet = self.tag % 250 + 1
        self.net4 = f"10.213.{octet}"
        self.net6 = f"fd00:213:{octet:x}"

    @property
    def origin4(self) -> str:
        return f"{self.net4}.100"

    @property
    def origin6(self) -> str:
        return f"{self.net6}::100"

    def run(self, *args: str, undo: tuple[str, ...] | None = None) -> None:
        sh(*args)
        if undo:
            self.undo.append(undo)

    def build(self) -> None:
        self.run("ip", "netns", "add", self.ns, undo=("ip", "netns", "del", self.ns))
        self.run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
                 undo=("ip", "link", "del", self.host_if))
        self.run("ip", "link", "set", self.ns_if, "netns", self.ns)
        self.run("ip", "addr", "add", f"{self.net4}.1/24", "dev", self.host_if)
        self.run("ip", "addr", "add", f"{self.origin4}/32", "dev", self.host_if)
        self.run("ip", "link", "set", self.host_if, "up")
        self.run("ip", "-n", self.ns, "addr", "add", f"{self.net4}.2/24", "dev", self.ns_if)
        self.run("ip", "-n", self.ns, "link", "set", "lo", "up")
        self.run("ip", "-n", self.ns, "link", "set", self.ns_if, "up")
        self.run("ip", "-n", self.ns, "route", "add", "default", "via", f"{self.net4}.1")
        self.redirect("iptables")

    def build_ipv6(self) -> None:
        self.run("ip", "-6", "addr", "add", f"{self.net6}::1/64", "dev", self.host_if, "nodad")
        self.run("ip", "-6", "addr", "add", f"{self.origin6}/128", "dev", self.host_if, "nodad")
        self.run("ip", "-n", self.ns, "-6", "addr", "add", f"{self.net6}::2/64", "dev", self.ns_if, "nodad")
        self.run("ip", "-n", self.ns, "-6", "route", "add", "default", "via", f"{self.net6}::1")
        self.redirect("ip6tables")

    def redirect(self, tool: str) -> None:
        rule = ("PREROUTING", "-i", self.host_if, "-p", "tcp", "-m", "multiport", "--dports", "80,443",
                "-j", "REDIRECT", "--to-ports", str(self.proxy_port))
        self.run(tool, "-t", "nat", "-A", *rule, undo=(tool, "-t", "nat", "-D", *rule))

    def teardown(self) -> None:
        for command in reversed(self.undo):
            sh(*command, check=False)
        self.undo.clear()

    def curl(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, "curl", "-sS", "--max-time", "20", *args],
            capture_output=True,
            timeout=40,
        )


def _why_not() -> str | None:
    """A reason to skip, if this machine cannot run the test."""
    if os.geteuid() != 0:
        return "network namespaces and iptables need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs iproute2 and iptables)"
    probe = f"pcprobe{os.getpid()}"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"the kernel refuses network namespaces: {r.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    r = sh("iptables", "-t", "nat", "-L", "PREROUTING", "-n", check=False)
    if r.returncode != 0:
        return f"no NAT table (iptables -t nat): {r.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[tuple[Network, Proxy, Path]]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("transparent")
    proxy = Proxy(["--mode", "transparent", "--listen-host", "", "--set",
                   f"ssl_verify_upstream_trusted_ca={tmp / 'upstream.crt'}"], tmp)
    net = Network(tag=os.getpid() % 10000, proxy_port=proxy.port)
    servers = []
    try:
        try:
            net.build()
        except RuntimeError as e:
            pytest.skip(f"cannot set up the namespace and REDIRECT rule: {e}")
        servers.append(start_http(host=net.origin4, port=80)[0])
        servers.append(start_http(tmp, host=net.origin4, port=443, names=("origin.test", net.origin4))[0])
        yield net, proxy, tmp
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        net.teardown()
        assert proxy.stop() == 0
        assert "Traceback" not in proxy.stderr(), proxy.stderr()


def test_http_is_redirected_to_the_proxy_and_reaches_the_original_destination(setup):
    net, proxy, _ = setup
    r = net.curl("-H", "Host: origin.test", f"http://{net.origin4}/get?t=1")
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["path"] == "/get?t=1"
    assert seen["headers"]["host"] == "origin.test"  # the client's Host header is kept
    proxy.wait_output(f"GET http://{net.origin4}/get?t=1")


def test_https_is_intercepted_with_our_certificate(setup):
    net, proxy, _ = setup
    for url, path, extra in [
        ("https://origin.test/tls?sni=1", "/tls?sni=1", ["--resolve", f"origin.test:443:{net.origin4}"]),
        (f"https://{net.origin4}/tls?sni=0", "/tls?sni=0", []),  # no SNI: the certificate names the IP
    ]:
        r = net.curl("--cacert", proxy.ca, *extra, url)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["path"] == path
    proxy.wait_output(f"GET https://{net.origin4}/tls?sni=1")
    proxy.wait_output(f"GET https://{net.origin4}/tls?sni=0")


def test_ipv6_original_destination(setup):
    net, proxy, tmp = setup
    if shutil.which("ip6tables") is None:
        pytest.skip("ip6tables is not installed")
    try:
        net.build_ipv6()
    except RuntimeError as e:
        pytest.skip(f"no IPv6 NAT here: {e}")
    server, _ = start_http(host=net.origin6, port=80)
    try:
        r = net.curl(f"http://[{net.origin6}]/v6")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["path"] == "/v6"
        proxy.wait_output(f"GET http://[{net.origin6}]/v6")
    finally:
        server.shutdown()
        server.server_close()


def test_direct_connection_without_redirect_is_refused(setup):
    """Connecting to the proxy port directly: the original destination is the proxy itself.
    It closes such connections instead of connecting to itself in a loop."""
    net, proxy, _ = setup
    r = net.curl(f"http://{net.net4}.1:{net.proxy_port}/loop")
    assert r.returncode in (52, 56), r  # closed without an answer (empty reply or reset)
    deadline = time.monotonic() + 5
    while "was not redirected" not in proxy.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"Transparent mode failure: the connection to {net.net4}.1:{net.proxy_port} was not redirected" in proxy.stderr()
