"""WireGuard mode next to mitmdump's: a real WireGuard client (wireguard-go in a network
namespace, as in tests/e2e/test_e2e_wireguard.py) fetching from an origin through each proxy.

    sudo .venv/bin/python bench/wireguard_bench.py [--mitmdump PATH] [--rounds 3]

Per proxy: the time for 20 sequential small requests on one connection (curl keep-alive),
for 20 fresh connections, and for one 50 MB download.  Linux, root, wireguard-go and wg
needed; everything is local (a namespace, a veth pair, loopback-like addresses made here).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.test_e2e_wireguard import Network, _free_udp_port, _why_not  # noqa: E402
from tests.e2e_servers import start_http  # noqa: E402

BIG = 50_000_000


def run_proxy(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def client_conf(log: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(r"(\[Interface\].*?Endpoint = \S+)", log.read_text(errors="replace"), re.S)
        if found:
            return found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"no client configuration in {log}:\n{log.read_text(errors='replace')}")


def timed(net: Network, *args: str) -> float:
    start = time.perf_counter()
    r = net.exec("curl", "-sS", "--max-time", "120", "-o", "/dev/null", *args, timeout=300)
    if r.returncode != 0:
        raise SystemExit(r.stderr.decode())
    return time.perf_counter() - start


def measure(name: str, command: list[str], rounds: int, tag: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="wgbench"))
    net = Network(tag=tag)
    server = None
    proc = None
    try:
        net.build()
        server = start_http(host=net.origin, port=80)[0]
        port = _free_udp_port(net.host_ip)
        log = tmp / "proxy.log"
        proc = run_proxy([*command, f"--set=confdir={tmp / 'conf'}", "--mode", f"wireguard@{net.host_ip}:{port}"], log)
        net.start_client(client_conf(log, proc), tmp)
        base = f"http://{net.origin}"
        timed(net, f"{base}/get")  # handshake and warm-up
        small = " ".join([f"{base}/get?i={i}" for i in range(20)]).split()
        results: dict[str, list[float]] = {"20 requests, one connection": [], "20 connections": [],
                                           "50 MB download": []}
        for _ in range(rounds):
            results["20 requests, one connection"].append(timed(net, *small))
            start = time.perf_counter()
            for i in range(20):
                timed(net, f"{base}/get?c={i}")
            results["20 connections"].append(time.perf_counter() - start)
            results["50 MB download"].append(timed(net, f"{base}/big/{BIG}"))
        return {k: statistics.median(v) for k, v in results.items()}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        net.teardown()
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"  ({name} done)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mitmdump", help="a mitmdump to compare with (its own --mode wireguard)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reason = _why_not()
    if reason:
        raise SystemExit(reason)
    proxies = {"proxycore": [sys.executable, "-m", "proxycore", "--set=flow_detail=0", "--listen-host", "127.0.0.1", "-p", "0"]}
    if args.mitmdump:
        proxies["mitmdump"] = [args.mitmdump, "--set=flow_detail=0", "--listen-host", "127.0.0.1", "-p", "0"]
    rows = {}
    for i, (name, command) in enumerate(proxies.items()):
        rows[name] = measure(name, command, args.rounds, tag=(os.getpid() + 10 + i) % 10000)
    metrics = list(next(iter(rows.values())))
    print("| proxy | " + " | ".join(metrics) + " |")
    print("| --- |" + " --- |" * len(metrics))
    for name, values in rows.items():
        shown = []
        for metric in metrics:
            seconds = values[metric]
            extra = f" ({BIG / seconds / 1e6:.0f} MB/s)" if "MB" in metric else ""
            shown.append(f"{seconds:.3f} s{extra}")
        print(f"| {name} | " + " | ".join(shown) + " |")


if __name__ == "__main__":
    main()
