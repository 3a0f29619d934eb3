"""WireGuard mode end to end with a real WireGuard client (wireguard-go, configured by `wg`).

    netns pcwgN:  curl / dig-like query / UDP socket
        -> wgcN (wireguard-go's TUN; routes to the origin and 10.0.0.53 only)
        -> encrypted UDP over veth 10.215.X.2 -> host 10.215.X.1:port (proxyweb --mode wireguard)
        -> mitmproxy-rs hands proxycore each TCP stream / UDP flow with its destination
        -> proxycore connects to the origin 10.215.X.100 (an address on the host's veth)

The client is configured from the client configuration proxyweb prints, so the printed
keys and endpoint are what is tested.  The namespace, veth pair, addresses and the
wireguard-go process are made here and removed afterwards.  The test skips (saying why)
where the machine cannot run it: not Linux, not root, no mitmproxy-rs, no wireguard-go or
wg (.ci/run installs them), no namespaces or no /dev/net/tun.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from proxycore.io import FlowWriter
from tests.e2e.test_e2e import Proxy
from tests.e2e_servers import free_port, start_http
from tests.real_mitmproxy import assert_mitmproxy_reads_back
from tests.webapi import request

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux network namespaces"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]

PASSWORD = "wg-e2e"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces and TUN devices need root"
    try:
        import mitmproxy_rs  # noqa: F401
    except ImportError:
        return "mitmproxy-rs is not installed"
    for tool in ("ip", "wg", "wireguard-go"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs iproute2, wireguard-tools, wireguard-go)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    probe = f"pcwgprobe{os.getpid()}"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"the kernel refuses network namespaces: {r.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


@dataclass
class Network:
    """A client namespace joined to the host by a veth pair; the origin lives on the host."""

    tag: int
    ns: str = ""
    undo: list[tuple[str, ...]] = field(default_factory=list)
    wg_proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.ns = f"pcwg{self.tag}"
        self.host_if, self.ns_if, self.wg_if = f"pcwh{self.tag}", f"pcwn{self.tag}", f"wgc{self.tag}"
        net = f"10.215.{self.tag % 250 + 1}"
        self.host_ip, self.ns_ip, self.origin = f"{net}.1", f"{net}.2", f"{net}.100"

    def run(self, *args: str, undo: tuple[str, ...] | None = None) -> None:
        sh(*args)
        if undo:
            self.undo.append(undo)

    def build(self) -> None:
        self.run("ip", "netns", "add", self.ns, undo=("ip", "netns", "del", self.ns))
        self.run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
                 undo=("ip", "link", "del", self.host_if))
        self.run("ip", "link", "set", self.ns_if, "netns", self.ns)
        self.run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        self.run("ip", "addr", "add", f"{self.origin}/32", "dev", self.host_if)
        self.run("ip", "link", "set", self.host_if, "up")
        self.run("ip", "-n", self.ns, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        self.run("ip", "-n", self.ns, "link", "set", "lo", "up")
        self.run("ip", "-n", self.ns, "link", "set", self.ns_if, "up")

    def start_client(self, conf: str, tmp: Path) -> None:
        """wireguard-go in the namespace, set up from the printed client configuration."""
        values = dict(re.findall(r"^(\w+) = (.+)$", conf, re.M))
        key = tmp / "client.key"
        key.write_text(values["PrivateKey"] + "\n")
        key.chmod(0o600)
        self.wg_proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "wireguard-go", "-f", self.wg_if],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while sh("ip", "-n", self.ns, "link", "show", self.wg_if, check=False).returncode != 0:
            if self.wg_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("wireguard-go did not create its interface")
            time.sleep(0.05)
        self.run("ip", "netns", "exec", self.ns, "wg", "set", self.wg_if, "private-key", str(key),
                 "peer", values["PublicKey"], "endpoint", values["Endpoint"],
                 "allowed-ips", values["AllowedIPs"])
        self.run("ip", "-n", self.ns, "addr", "add", values["Address"], "dev", self.wg_if)
        self.run("ip", "-n", self.ns, "link", "set", self.wg_if, "up")
        # Only the origin and the tunnel's DNS server go through the tunnel: the encrypted
        # packets themselves must still leave by the veth.
        for target in (f"{self.origin}/32", f"{values['DNS']}/32"):
            self.run("ip", "-n", self.ns, "route", "add", target, "dev", self.wg_if)

    def teardown(self) -> None:
        if self.wg_proc is not None and self.wg_proc.poll() is None:
            self.wg_proc.terminate()
            try:
                self.wg_proc.wait(5)
            except subprocess.TimeoutExpired:
                self.wg_proc.kill()
                self.wg_proc.wait()
        for command in reversed(self.undo):
            sh(*command, check=False)
        self.undo.clear()

    def exec(self, *args: str, timeout: float = 40) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["ip", "netns", "exec", self.ns, *args], capture_output=True, timeout=timeout)

    def curl(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return self.exec("curl", "-sS", "--max-time", "20", *args)


class ProxyWeb(Proxy):
    """proxyweb with the web API on a free port (password auth) besides the given modes."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.web_port = free_port()
        super().__init__(["--no-web-open-browser", "--web-port", str(self.web_port),
                          "--set", "web_fetch_frontend=false", "--set", f"web_password={PASSWORD}", *args],
                         tmp, module="proxycore.tools.web")
        deadline = time.monotonic() + 20
        while "Web server listening at" not in self.stderr():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"proxyweb did not start:\n{self.stderr()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.stdout() + self.stderr()

    def api(self, path: str) -> object:
        r = request(self.web_port, "GET", path, headers={"Authorization": f"Bearer {PASSWORD}"}, auth=False)
        assert r.status == 200, r
        return r.json()


UDP_ECHO_PORT = 9999
# A UDP echo on the DNS port: only udp_hosts keeps its datagrams from being read as DNS.
UDP_HOSTS_PORT = 53


def _udp_echo(host: str, port: int = UDP_ECHO_PORT) -> socket.socket:
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))

    def serve() -> None:
        while True:
            try:
                data, peer = sock.recvfrom(65535)
            except OSError:
                return
            sock.sendto(b"echo:" + data, peer)

    threading.Thread(target=serve, daemon=True).start()
    return sock


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[tuple[Network, ProxyWeb, Path]]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("wireguard")
    net = Network(tag=os.getpid() % 10000)
    servers, sockets = [], []
    proxy = None
    try:
        try:
            net.build()
        except RuntimeError as e:
            pytest.skip(f"cannot set up the namespace: {e}")
        servers.append(start_http(host=net.origin, port=80)[0])
        servers.append(start_http(tmp, host=net.origin, port=443, names=("origin.test", net.origin))[0])
        sockets.append(_udp_echo(net.origin))
        sockets.append(_udp_echo(net.origin, UDP_HOSTS_PORT))
        wg_port = _free_udp_port(net.host_ip)
        conf_file = tmp / "wg" / "keys.json"  # the spec names the key file (created on start)
        proxy = ProxyWeb(tmp, "--mode", "regular", "--mode", f"wireguard:{conf_file}@{net.host_ip}:{wg_port}",
                         "--set", f"udp_hosts={_udp_hosts(net)}",
                         "--set", f"ssl_verify_upstream_trusted_ca={tmp / 'upstream.crt'}",
                         "--set", f"save_stream_file={tmp / 'flows.mitm'}")
        deadline = time.monotonic() + 10
        while not (found := re.search(r"(\[Interface\].*?Endpoint = \S+)", proxy.log(), re.S)):
            assert time.monotonic() < deadline, proxy.log()
            time.sleep(0.05)
        net.start_client(found.group(1), tmp)
        yield net, proxy, tmp
    finally:
        net.teardown()
        for server in servers:
            server.shutdown()
            server.server_close()
        for sock in sockets:
            sock.close()
        if proxy is not None:
            assert proxy.stop() == 0
            assert "Traceback" not in proxy.log(), proxy.log()


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _flows(proxy: ProxyWeb, until: str, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        flows = proxy.api("/flows")
        assert isinstance(flows, list)
        if until in json.dumps(flows) or time.monotonic() > deadline:
            return flows
        time.sleep(0.1)


def test_key_file_is_made_private_and_the_state_shows_the_client_config(setup):
    net, proxy, tmp = setup
    conf_file = tmp / "wg" / "keys.json"
    keys = json.loads(conf_file.read_text())
    assert set(keys) == {"server_key", "client_key"}
    assert conf_file.stat().st_mode & 0o777 == 0o600
    state = proxy.api("/state")
    assert isinstance(state, dict)
    entry = next(s for s in state["servers"].values() if s["type"] == "wireguard")
    assert entry["description"] == "WireGuard server"
    assert entry["is_running"] is True
    assert entry["last_exception"] is None
    assert entry["listen_addrs"][0][0] == net.host_ip
    assert f"PrivateKey = {keys['client_key']}" in entry["wireguard_conf"]
    assert f"Endpoint = {net.host_ip}:{entry['listen_addrs'][0][1]}" in entry["wireguard_conf"]


def test_http_through_the_tunnel_reaches_the_destination(setup):
    net, proxy, _ = setup
    r = net.curl("-H", "Host: origin.test", f"http://{net.origin}/get?via=wireguard")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "/get?via=wireguard"
    flows = _flows(proxy, "/get?via=wireguard")
    flow = next(f for f in flows if f["type"] == "http" and f["request"]["path"] == "/get?via=wireguard")
    assert flow["request"]["host"] == net.origin
    assert flow["client_conn"]["peername"][0] == "10.0.0.1"  # the client's address in the tunnel
    assert flow["response"]["status_code"] == 200


def test_https_through_the_tunnel_is_intercepted(setup):
    net, proxy, _ = setup
    r = net.curl("--cacert", proxy.ca, "--resolve", f"origin.test:443:{net.origin}",
                 "https://origin.test/tls?via=wireguard")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "/tls?via=wireguard"
    flows = _flows(proxy, "/tls?via=wireguard")
    flow = next(f for f in flows if f["type"] == "http" and f["request"]["path"] == "/tls?via=wireguard")
    assert flow["request"]["scheme"] == "https"
    assert flow["server_conn"]["sni"] == "origin.test"


def test_udp_through_the_tunnel_is_a_udp_flow(setup):
    net, proxy, _ = setup
    assert _udp_echo_through(net, [b"one", b"two"]) == ["echo:one", "echo:two"]
    flows = _flows(proxy, "echo:two")
    udp = [f for f in flows if f["type"] == "udp"]
    assert udp, flows
    assert udp[-1]["server_conn"]["peername"] == [net.origin, UDP_ECHO_PORT]


def _udp_hosts(net: Network) -> str:
    return re.escape(f"{net.origin}:{UDP_HOSTS_PORT}")


def test_udp_hosts_relay_datagrams_to_the_dns_port_as_a_udp_flow(setup):
    net, proxy, _ = setup
    assert _udp_echo_through(net, [b"not-dns"], UDP_HOSTS_PORT) == ["echo:not-dns"]
    flows = _flows(proxy, f'["{net.origin}", {UDP_HOSTS_PORT}]')
    udp = [f for f in flows if f["type"] == "udp" and f["server_conn"]["peername"] == [net.origin, UDP_HOSTS_PORT]]
    assert udp, flows
    assert udp[-1]["messages_meta"]["count"] == 2


def _udp_echo_through(net: Network, messages: list[bytes], port: int = UDP_ECHO_PORT) -> list[str]:
    """Datagrams from the client namespace to the UDP echo server; the answers."""
    script = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(10)\n"
        f"for m in {messages!r}:\n"
        f"    s.sendto(m,('{net.origin}',{port}));sys.stdout.write(s.recv(100).decode()+'\\n')\n"
    )
    r = net.exec(sys.executable, "-c", script)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().split()


def _dns_through(net: Network, name: str) -> bytes:
    """An A query for ``name`` to the tunnel's DNS server 10.0.0.53; the raw answer."""
    script = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(10)\n"
        f"s.sendto({_dns_query(name)!r},('10.0.0.53',53))\n"
        "sys.stdout.buffer.write(s.recv(512))\n"
    )
    r = net.exec(sys.executable, "-c", script)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _dns_query(name: str) -> bytes:
    header = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + qname + struct.pack("!HH", 1, 1)  # A, IN


def test_dns_to_the_tunnel_resolver_is_answered_by_the_proxy(setup):
    """The client config names 10.0.0.53 as DNS server: the proxy answers A lookups itself."""
    net, proxy, _ = setup
    answer = _dns_through(net, "localhost")
    assert answer[:2] == b"\x42\x42" and answer[3] & 0x0F == 0  # our id, NOERROR
    assert struct.unpack("!H", answer[6:8])[0] >= 1  # at least one answer
    assert answer.endswith(socket.inet_aton("127.0.0.1"))
    flows = _flows(proxy, '"dns"')
    assert any(f["type"] == "dns" for f in flows)


def test_flows_are_written_to_the_flow_file_and_mitmproxy_reads_it(setup, mitmproxy_pythons):
    net, proxy, tmp = setup
    assert _udp_echo_through(net, [b"file"]) == ["echo:file"]
    assert _dns_through(net, "localhost")
    r = net.curl(f"http://{net.origin}/get?to=file")
    assert r.returncode == 0, r.stderr
    _flows(proxy, "/get?to=file")
    from proxycore.io import FlowReader

    deadline = time.monotonic() + 10
    while True:
        with open(tmp / "flows.mitm", "rb") as f:
            flows = list(FlowReader(f).stream())
        paths = [getattr(getattr(fl, "request", None), "path", None) for fl in flows]
        if "/get?to=file" in paths or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "/get?to=file" in paths
    flow = flows[paths.index("/get?to=file")]
    assert flow.client_conn.proxy_mode.type_name == "wireguard"
    # (UDP flows are written when they end, 20 s after their last datagram, or at exit: see
    # test_proxydump_prints_the_tunnelled_flows_and_writes_them_all_by_exit)
    assert {f.type for f in flows} >= {"http", "dns"}
    # mitmproxy 11 and 12 read what the file holds so far to the same states
    snapshot = tmp / "snapshot.mitm"
    with snapshot.open("wb") as f:
        writer = FlowWriter(f)
        for fl in flows:
            writer.add(fl)
    assert_mitmproxy_reads_back(mitmproxy_pythons, snapshot)


# TUN mode ----------------------------------------------------------------------------------
# proxyweb creates the TUN device in the host namespace; the test moves it into the client
# namespace (mitmproxy-rs keeps its file descriptor), where the route to the origin goes
# through it.  proxycore's own connection to the origin stays in the host namespace, so
# nothing loops back into the device.


@pytest.fixture(scope="module")
def tun_setup(tmp_path_factory) -> Iterator[tuple[Network, ProxyWeb, str]]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("tun")
    net = Network(tag=(os.getpid() + 1) % 10000)
    servers = []
    proxy = None
    tun = f"pctun{net.tag}"
    try:
        try:
            net.build()
        except RuntimeError as e:
            pytest.skip(f"cannot set up the namespace: {e}")
        servers.append(start_http(host=net.origin, port=80)[0])
        proxy = ProxyWeb(tmp, "--mode", "regular", "--mode", f"tun:{tun}")
        deadline = time.monotonic() + 10
        while f"TUN interface created: {tun}" not in proxy.log():
            assert time.monotonic() < deadline, proxy.log()
            time.sleep(0.05)
        net.run("ip", "link", "set", tun, "netns", net.ns)
        net.run("ip", "-n", net.ns, "addr", "add", "10.0.0.1/32", "dev", tun)
        net.run("ip", "-n", net.ns, "link", "set", tun, "up")
        net.run("ip", "-n", net.ns, "route", "add", f"{net.origin}/32", "dev", tun)
        yield net, proxy, tun
    finally:
        if proxy is not None:
            assert proxy.stop() == 0
            assert "Traceback" not in proxy.log(), proxy.log()
        net.teardown()
        for server in servers:
            server.shutdown()
            server.server_close()


def test_tun_mode_proxies_what_is_routed_into_the_device(tun_setup):
    net, proxy, tun = tun_setup
    state = proxy.api("/state")
    assert isinstance(state, dict)
    entry = state["servers"][f"tun:{tun}"]
    assert (entry["type"], entry["tun_name"], entry["is_running"]) == ("tun", tun, True)
    assert entry["listen_addrs"] == []
    r = net.curl(f"http://{net.origin}/get?via=tun")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "/get?via=tun"
    flows = _flows(proxy, "/get?via=tun")
    flow = next(f for f in flows if f["type"] == "http" and f["request"]["path"] == "/get?via=tun")
    assert flow["client_conn"]["peername"][0] == "10.0.0.1"
    assert flow["response"]["status_code"] == 200


def test_junk_to_the_wireguard_port_leaves_the_tunnel_working(setup):
    net, proxy, _ = setup
    import random

    entry = next(s for s in proxy.api("/state")["servers"].values() if s["type"] == "wireguard")  # type: ignore[union-attr]
    port = entry["listen_addrs"][0][1]
    rng = random.Random(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(200):
            # random bytes, and fake handshake/transport messages (types 1..4, as WireGuard frames them)
            head = bytes([rng.randint(1, 4), 0, 0, 0]) if i % 2 else b""
            s.sendto(head + rng.randbytes(rng.choice([0, 1, 31, 148, 92, 1400])), (net.host_ip, port))
    r = net.curl(f"http://{net.origin}/get?after=junk")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "/get?after=junk"
    assert proxy.proc.poll() is None


def test_proxydump_prints_the_tunnelled_flows_and_writes_them_all_by_exit(tmp_path, mitmproxy_pythons):
    """proxydump (not proxyweb): the client config in its log, the HTTP, UDP (one of them
    through udp_hosts) and DNS flows in its output, and all of them in the -w file once it
    exits: the UDP flows are still open then (they end 20 s after their last datagram), and
    are written at exit as mitmdump writes them."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    net = Network(tag=(os.getpid() + 2) % 10000)
    servers, sockets = [], []
    proxy = None
    saved = tmp_path / "wg.mitm"
    try:
        try:
            net.build()
        except RuntimeError as e:
            pytest.skip(f"cannot set up the namespace: {e}")
        servers.append(start_http(host=net.origin, port=80)[0])
        sockets.append(_udp_echo(net.origin))
        sockets.append(_udp_echo(net.origin, UDP_HOSTS_PORT))
        proxy = Proxy(["--mode", "regular", "--mode", f"wireguard@{net.host_ip}:{_free_udp_port(net.host_ip)}",
                       "--set", f"udp_hosts={_udp_hosts(net)}", "-w", str(saved)], tmp_path)
        deadline = time.monotonic() + 10
        while not (found := re.search(r"(\[Interface\].*?Endpoint = \S+)", proxy.stdout() + proxy.stderr(), re.S)):
            assert time.monotonic() < deadline, proxy.stderr()
            time.sleep(0.05)
        assert json.loads((tmp_path / "conf" / "wireguard.conf").read_text())["client_key"] in found.group(1)
        net.start_client(found.group(1), tmp_path)
        r = net.curl(f"http://{net.origin}/dump?via=wg")
        assert r.returncode == 0, r.stderr
        assert _udp_echo_through(net, [b"dump"]) == ["echo:dump"]
        assert _udp_echo_through(net, [b"via-udp-hosts"], UDP_HOSTS_PORT) == ["echo:via-udp-hosts"]
        assert _dns_through(net, "localhost").endswith(socket.inet_aton("127.0.0.1"))
        proxy.wait_output("10.0.0.1:")  # the client's tunnel address leads each line
        proxy.wait_output(f"GET http://{net.origin}/dump?via=wg")
        proxy.wait_output(f"-> udp -> {net.origin}:{UDP_ECHO_PORT}")
        proxy.wait_output(f"-> udp -> {net.origin}:{UDP_HOSTS_PORT}")
        proxy.wait_output("DNS QUERY (A) localhost")
    finally:
        net.teardown()
        for server in servers:
            server.shutdown()
            server.server_close()
        for sock in sockets:
            sock.close()
        if proxy is not None:
            assert proxy.stop() == 0
            assert "Traceback" not in proxy.stderr(), proxy.stderr()
    flows = assert_mitmproxy_reads_back(mitmproxy_pythons, saved)  # mitmproxy 11 and 12 read the same
    udp = {f.server_conn.address[1]: f for f in flows if f.type == "udp"}
    assert set(udp) == {UDP_ECHO_PORT, UDP_HOSTS_PORT}
    assert [m.content for m in udp[UDP_HOSTS_PORT].messages] == [b"via-udp-hosts", b"echo:via-udp-hosts"]
    assert any(f.type == "http" and f.request.path == "/dump?via=wg" for f in flows)
    assert any(f.type == "dns" and f.request.questions[0].name == "localhost" for f in flows)


def test_many_parallel_connections_through_the_tunnel(setup):
    net, proxy, _ = setup
    urls = [f"http://{net.origin}/get?parallel={i}" for i in range(100)]
    r = net.exec("curl", "-sS", "--max-time", "60", "--parallel", "--parallel-max", "50",
                 *[arg for url in urls for arg in ("-o", "/dev/null", "-w", "%{http_code}\\n", url)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["200"] * 100
    big = net.curl(f"http://{net.origin}/big/5000000", "-o", "/dev/null", "-w", "%{size_download}")
    assert big.stdout == b"5000000"
    assert proxy.proc.poll() is None
