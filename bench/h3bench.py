#!/usr/bin/env python3
"""HTTP/3 through reverse:http3://, next to mitmdump and to the origin itself.

An aioquic HTTP/3 origin (tests/h3_peers.py) in this process; for each system, a fresh
proxy in reverse:http3 mode in front of it; one aioquic client connection sends REQUESTS
GETs, CONCURRENCY at a time. Prints requests per second per run and the medians. The
client and the origin share this process, so the direct figure is a ceiling, not a
baseline of the same shape.

    .venv/bin/python bench/h3bench.py [--rounds 2] [--requests 1000] [--concurrency 20]
        [--mitmdump PATH]   # default: .cache/mitmproxy-11.0.2/bin/mitmdump if present
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aioquic.asyncio import connect  # noqa: E402
from aioquic.h3.connection import H3_ALPN  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402

from tests.e2e_servers import free_port  # noqa: E402
from tests.h3_peers import H3Origin, _ClientProtocol  # noqa: E402


async def load(port: int, cafile: str, requests: int, concurrency: int) -> float:
    """Requests per second over one QUIC connection (the handshake is not timed)."""
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
    config.load_verify_locations(cafile)
    async with connect("127.0.0.1", port, configuration=config, create_protocol=_ClientProtocol) as client:
        assert isinstance(client, _ClientProtocol)
        start = time.perf_counter()
        for first in range(0, requests, concurrency):
            batch = range(first, min(first + concurrency, requests))
            answers = await asyncio.gather(*(client.request("GET", "localhost", f"/r{i}", b"", []) for i in batch))
            assert all(a.status == 200 for a in answers)
        return requests / (time.perf_counter() - start)


def wait_listening(proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while "listening at" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"proxy did not start: {log.read_text(errors='replace')}")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--mitmdump", default=str(ROOT / ".cache" / "mitmproxy-11.0.2" / "bin" / "mitmdump"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="h3bench-"))
    origin = H3Origin(work)
    systems = {"direct": None, "proxycore": [sys.executable, "-m", "proxycore"]}
    if Path(args.mitmdump).exists():
        systems["mitmdump"] = [args.mitmdump]
    results: dict[str, list[float]] = {name: [] for name in systems}
    try:
        for round_ in range(args.rounds):
            for name, command in systems.items():
                if command is None:
                    rate = asyncio.run(load(origin.port, str(origin.cert), args.requests, args.concurrency))
                else:
                    port, confdir, log = free_port(), work / f"conf-{name}", work / f"{name}-{round_}.log"
                    proc = subprocess.Popen(
                        [*command, "-q", "--listen-host", "127.0.0.1", "--set", f"confdir={confdir}",
                         "--mode", f"reverse:http3://127.0.0.1:{origin.port}@{port}",
                         "--set", f"ssl_verify_upstream_trusted_ca={origin.cert}"],
                        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
                    )
                    try:
                        time.sleep(1.5)  # proxycore and mitmdump both log nothing with -q: give them time
                        ca = next(confdir.glob("*-ca-cert.pem"))
                        rate = asyncio.run(load(port, str(ca), args.requests, args.concurrency))
                    finally:
                        proc.terminate()
                        proc.wait()
                results[name].append(rate)
                print(f"round {round_ + 1} {name}: {rate:.0f} req/s", flush=True)
    finally:
        origin.close()
    for name, rates in results.items():
        print(f"median {name}: {statistics.median(rates):.0f} req/s")


if __name__ == "__main__":
    main()
