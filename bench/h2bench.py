#!/usr/bin/env python3
"""HTTP/2 through the proxy, next to mitmdump: bench.py's clients speak HTTP/1.1 only.

For each round and scenario, every system is started fresh (pinned to core 1), loaded with
bench/h2load.go (pinned to core 0, with the nginx origin from bench/origin.sh), and
stopped. Prints one line per run and the medians.

    python3 bench/h2bench.py [--rounds 2] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/proxybench"))
PORT = 18950
SYSTEMS = {
    "mitm-q": f"{WORK}/venv-mitm/bin/mitmdump -q -p {PORT} --set ssl_insecure=true",
    "proxycore": f"{ROOT}/.venv/bin/python -m proxycore -q --listen-host 127.0.0.1 -p {PORT} --set ssl_insecure=true",
}
SCENARIOS = {
    "h2_ka_s64": ("/small", 1, 64),  # 100 B GETs, 64 concurrent streams on one connection
    "h2_1m_s4": ("/1m", 1, 4),  # 1 MiB GETs, 4 concurrent streams on one connection
}


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def run(system: str, scenario: str, duration: int, h2load: Path) -> dict:
    path, conns, streams = SCENARIOS[scenario]
    proxy = subprocess.Popen(
        ["taskset", "-c", "1", "bash", "-c", f"exec {SYSTEMS[system]}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_port(PORT)
        target = f"https://127.0.0.1:18443{path}"
        warm = [str(h2load), "-x", f"127.0.0.1:{PORT}", "-c", str(conns), "-s", str(streams), "-d", "2s", target]
        subprocess.run(["taskset", "-c", "0", *warm], capture_output=True, timeout=60)
        cmd = [str(h2load), "-x", f"127.0.0.1:{PORT}", "-c", str(conns), "-s", str(streams), "-d", f"{duration}s", target]
        out = subprocess.run(["taskset", "-c", "0", *cmd], capture_output=True, timeout=duration + 60, text=True)
        return json.loads(out.stdout)
    finally:
        os.killpg(proxy.pid, signal.SIGINT)
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proxy.pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    h2load = WORK / "bin" / "h2load"
    subprocess.run(["go", "build", "-o", str(h2load), str(ROOT / "bench" / "h2load.go")], check=True)
    results: dict[tuple[str, str], list[dict]] = {}
    for round_ in range(1, args.rounds + 1):
        for scenario in SCENARIOS:
            for system in SYSTEMS:
                r = run(system, scenario, args.duration, h2load)
                results.setdefault((system, scenario), []).append(r)
                print(f"{system:10} {scenario:10} r{round_} {r['rps']:9.0f} req/s {r['mbps']:8.1f} MB/s "
                      f"p50 {r['lat_p50_ms']:7.2f} ms  errors {r['errors']}", flush=True)
    print("\n# medians")
    for scenario in SCENARIOS:
        base = statistics.median(r["rps"] for r in results[("mitm-q", scenario)])
        for system in SYSTEMS:
            runs = results[(system, scenario)]
            rps = statistics.median(r["rps"] for r in runs)
            mbps = statistics.median(r["mbps"] for r in runs)
            print(f"{system:10} {scenario:10} {rps:9.0f} req/s {mbps:8.1f} MB/s  x{rps / base:.1f} mitmdump")
    return 0


if __name__ == "__main__":
    sys.exit(main())
