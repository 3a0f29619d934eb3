"""Instructions (and simulated cache misses) per proxied request of proxydump, under cachegrind.

Counts that hold on a busy machine, where CPU time does not: proxydump -q from this
checkout runs under ``valgrind --tool=cachegrind`` while one client sends N sequential
keep-alive GETs through it to percall's 100 B origin; two runs (N and 3N requests) are
subtracted, so the start and the shutdown cancel out.

    bench/cgproxy.py                 # instructions per request (-n 1000: 1000 vs 3000)
    bench/cgproxy.py --cache-sim     # + I1/D1/last-level misses per request (slower)
    bench/cgproxy.py --root /work/main   # another checkout, for an A/B
    bench/cgproxy.py --flows         # + the same with -w FILE: what writing a flow costs
    bench/cgproxy.py -- --workers 2 -w FILE   # proxycore arguments after --: with --workers only
                                     # the primary runs under cachegrind (its cost per flow)
    bench/cgproxy.py --web -- --workers 2     # proxyweb (view, per-run store, web API)
    bench/cgproxy.py --worker --flows  # --workers 2, every process under cachegrind: the
                                     # worker that serves the one client connection, per
                                     # request (the other idles; both count, so it cancels
                                     # out), and the primary; compare with the plain run

Compare with ``bench/layerbench.py`` under cachegrind for the layers alone
(docs/architecture.md, "Per-request cost (issue 15)").
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import percall  # noqa: E402

COUNTERS = ("I refs", "I1 misses", "D1 misses", "LL misses")


def run(
    requests: int, cache_sim: bool, root: str, extra: Sequence[str] = (), web: bool = False, worker: bool = False
) -> dict[str, int]:
    """cachegrind's totals for one proxydump process (given ``extra`` arguments, e.g. ``-w``)
    that proxied ``requests`` requests (proxyweb's with ``web``: a free web port, no browser).
    Child processes (``--workers``) run outside cachegrind, unless ``worker``: then they run
    under it too, and the totals are theirs (summed over the workers)."""
    if not worker:
        return _run(requests, cache_sim, root, extra, web, None)
    with tempfile.TemporaryDirectory() as logs:
        return _run(requests, cache_sim, root, extra, web, logs)


def _run(
    requests: int, cache_sim: bool, root: str, extra: Sequence[str], web: bool, logs: str | None
) -> dict[str, int]:
    python = os.path.join(root, ".venv", "bin", "python")
    traced = ["--trace-children=yes", f"--log-file={logs}/cg.%p"] if logs else []
    origin = subprocess.Popen([python, "-c", percall.ORIGIN], stdout=subprocess.PIPE, text=True)
    try:
        origin_port = int(origin.stdout.readline())  # type: ignore[union-attr]
        port = percall.free_port()
        tool = ["proxycore.tools.web", "--web-port", str(percall.free_port()), "--no-web-open-browser"]
        proxy = subprocess.Popen(
            ["valgrind", "--tool=cachegrind", f"--cache-sim={'yes' if cache_sim else 'no'}",
             "--cachegrind-out-file=/dev/null", *traced, python, "-m", *(tool if web else ["proxycore"]), "-q",
             "--listen-host", "127.0.0.1", "--listen-port", str(port), *extra],
            cwd=root, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        percall.wait_port(port, timeout=180)
        request = (
            f"GET http://127.0.0.1:{origin_port}/ HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port)) as client:
            for _ in range(requests):
                client.sendall(request.encode())
                answer = b""
                while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < 100:
                    answer += client.recv(65536)
        if logs:
            _stop_workers(logs)
        proxy.send_signal(signal.SIGINT)
        report = proxy.communicate(timeout=180)[1]
    finally:
        origin.kill()
    if logs:
        return _worker_totals(logs)
    return _totals(report)


def _worker_logs(logs: str) -> dict[int, str]:
    """The worker processes' cachegrind logs so far, by pid."""
    found = {}
    for path in glob.glob(os.path.join(logs, "cg.*")):
        with open(path) as f:
            text = f.read()
        if "-m proxycore.workers" in text:
            found[int(path.rsplit(".", 1)[1])] = text
    return found


def _stop_workers(logs: str) -> None:
    """End the workers (SIGTERM, as the primary does) and wait for their totals: the
    primary would kill a worker that took longer than its 5 s to stop, as under cachegrind."""
    pids = list(_worker_logs(logs))
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        done = _worker_logs(logs)
        if all("I refs" in done[pid] or "I   refs" in done[pid] for pid in pids):
            return
        time.sleep(0.5)
    raise TimeoutError("the workers did not stop")


def _worker_totals(logs: str) -> dict[str, int]:
    """The counters summed over the workers that ran to the end (not their replacements,
    which start after the stop and do not finish)."""
    summed: dict[str, int] = {}
    for text in _worker_logs(logs).values():
        for name, count in _totals(text).items():
            summed[name] = summed.get(name, 0) + count
    return summed


def _totals(report: str) -> dict[str, int]:
    totals = {}
    for name in COUNTERS:
        pattern = name.replace(" ", r"\s+")  # cachegrind aligns the names: "I   refs:"
        match = re.search(rf"{pattern}:\s+([\d,]+)", report)
        if match:
            totals[name] = int(match.group(1).replace(",", ""))
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-n", type=int, default=1000, help="requests of the short run (the long one makes 3n)"
    )
    parser.add_argument(
        "--cache-sim", action="store_true", help="also simulate the caches (I1, D1, LL misses)"
    )
    parser.add_argument(
        "--root", default=ROOT, help="the checkout to run (with its .venv), e.g. main's"
    )
    parser.add_argument(
        "--flows", action="store_true", help="also run with -w FILE and print what writing a flow costs"
    )
    parser.add_argument("--web", action="store_true", help="run proxyweb instead of proxydump")
    parser.add_argument(
        "--worker", action="store_true",
        help="count the workers' instructions (--workers 2 unless given after --), not the primary's",
    )  # fmt: skip
    parser.add_argument("proxy_args", nargs="*", help="extra proxycore arguments (after --)")
    args = parser.parse_args()
    if args.worker and "--workers" not in args.proxy_args:
        args.proxy_args = [*args.proxy_args, "--workers", "2"]
    plain = per_request(args.n, args.cache_sim, args.root, args.proxy_args, args.web, args.worker)
    for name, count in plain.items():
        print(f"{name:10} {count:10.1f} per request")
    if args.flows:
        with tempfile.TemporaryDirectory() as tmp:
            written = per_request(
                args.n, args.cache_sim, args.root, [*args.proxy_args, "-w", os.path.join(tmp, "flows")], args.web,
                args.worker,
            )
        print(f"with -w    {written['I refs']:10.1f} per request")
        print(f"-w costs   {written['I refs'] - plain['I refs']:10.1f} per flow")
    return 0


def per_request(
    n: int, cache_sim: bool, root: str, extra: Sequence[str], web: bool = False, worker: bool = False
) -> dict[str, float]:
    """Each counter per request: the N-request run subtracted from the 3N one."""
    short = run(n, cache_sim, root, extra, web, worker)
    long = run(3 * n, cache_sim, root, extra, web, worker)
    return {name: (long[name] - short[name]) / (2 * n) for name in COUNTERS if name in short and name in long}


if __name__ == "__main__":
    sys.exit(main())
