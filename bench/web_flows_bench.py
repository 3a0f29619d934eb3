"""Latency of ``GET /flows`` with many flows loaded (proxyweb, real HTTP on 127.0.0.1).

    .venv/bin/python bench/web_flows_bench.py [--flows 10000] [--requests 50]

Writes a flow file of N flows (copies of the test corpus, so HTTP/1, HTTP/2,
WebSocket, TCP and error flows), starts ``proxyweb -r`` on it, waits until the
view holds all of them, then times sequential ``GET /flows`` requests and
prints the response size and p50/p90/p99/max latency, overall and after the first
request (which fills the per-flow JSON cache).
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus-all.mitm"
PASSWORD = "bench-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_flows(path: Path, count: int) -> None:
    from proxycore.io import FlowReader, FlowWriter

    with CORPUS.open("rb") as f:
        corpus = list(FlowReader(f).stream())
    with path.open("wb") as f:
        writer = FlowWriter(f)
        for i in range(count):
            flow = corpus[i % len(corpus)].copy()  # a new id each time
            flow.timestamp_created += i
            writer.add(flow)


def get_flows(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", "/flows", headers={"Authorization": f"Bearer {PASSWORD}"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, response.status
        return body
    finally:
        conn.close()


def view_length(port: int) -> int:
    """Cheap to ask while loading (unlike /flows, which would hold up the loading)."""
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        headers = {"Authorization": f"Bearer {PASSWORD}", "Cookie": "_mitmproxy_xsrf=x", "X-XSRFToken": "x"}
        conn.request("POST", "/commands/view.properties.length", headers=headers)
        return json.loads(conn.getresponse().read())["value"]
    finally:
        conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        flow_file = Path(tmp) / "flows.mitm"
        write_flows(flow_file, args.flows)
        web_port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-c",
             "import sys; from proxycore.tools.web import main; sys.exit(main())",
             "--no-web-open-browser", "-q", "--listen-host", "127.0.0.1", "-p", str(free_port()),
             "--web-port", str(web_port), "--set", f"web_password={PASSWORD}",
             "--set", f"confdir={tmp}/conf", "-r", str(flow_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
        )
        try:
            started = time.monotonic()
            loaded = 0
            while loaded < args.flows:
                if time.monotonic() > started + 300 or proc.poll() is not None:
                    raise SystemExit(f"proxyweb did not load the flows ({loaded}/{args.flows})")
                try:
                    loaded = view_length(web_port)
                except OSError:
                    pass
                time.sleep(0.1)
            load_time = time.monotonic() - started
            times = []
            size = 0
            for _ in range(args.requests):
                start = time.perf_counter()
                size = len(get_flows(web_port))
                times.append((time.perf_counter() - start) * 1000)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    print(f"proxyweb start + -r of {args.flows} flows: {load_time:.1f} s")
    print(f"GET /flows with {args.flows} flows: {size / 1e6:.1f} MB per response, {args.requests} requests")
    print(
        f"  all:   p50 {statistics.median(times):.0f} ms   p90 {percentile(times, 90):.0f} ms   "
        f"p99 {percentile(times, 99):.0f} ms   max {max(times):.0f} ms"
    )
    # The first request serialises every flow; later ones reuse the JSON of unchanged flows.
    warm = times[1:]
    print(f"  first: {times[0]:.0f} ms;  after it: p50 {statistics.median(warm):.0f} ms   "
          f"p99 {percentile(warm, 99):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
