#!/usr/bin/env python3
"""Instructions per proxied request of proxydump with and without ``-w FILE``, under cachegrind.

bench/cgproxy.py counts a plain proxydump; this runs the same two-run subtraction (N and 3N
keep-alive GETs through percall's 100 B origin) for ``-w FILE`` and for no ``-w``, and prints
both and what writing a flow costs (the difference).

    bench/cgwrite.py                     # -n 1000: 1000 vs 3000 requests, with and without -w
    bench/cgwrite.py --root /work/main   # another checkout, for an A/B
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import percall  # noqa: E402


def run(requests: int, root: str, extra: list[str]) -> int:
    """cachegrind's instruction total for one proxydump process that proxied ``requests``."""
    python = os.path.join(root, ".venv", "bin", "python")
    origin = subprocess.Popen([python, "-c", percall.ORIGIN], stdout=subprocess.PIPE, text=True)
    try:
        origin_port = int(origin.stdout.readline())  # type: ignore[union-attr]
        port = percall.free_port()
        proxy = subprocess.Popen(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
             python, "-m", "proxycore", "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port),
             *extra],
            cwd=root, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONHASHSEED="0"),
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
        proxy.send_signal(signal.SIGINT)
        report = proxy.communicate(timeout=180)[1]
    finally:
        origin.kill()
    match = re.search(r"I\s+refs:\s+([\d,]+)", report)
    if match is None:
        raise RuntimeError("no cachegrind total:\n" + report[-2000:])
    return int(match.group(1).replace(",", ""))


def per_request(n: int, root: str, extra: list[str]) -> float:
    return (run(3 * n, root, extra) - run(n, root, extra)) / (2 * n)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-n", type=int, default=1000, help="requests of the short run (the long one makes 3n)"
    )
    parser.add_argument(
        "--root", default=ROOT, help="the checkout to run (with its .venv), e.g. main's"
    )
    parser.add_argument("--only-w", action="store_true", help="skip the run without -w")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        written = per_request(args.n, args.root, ["-w", os.path.join(tmp, "flows")])
    print(f"with -w    {written:10.1f} per request")
    if not args.only_w:
        plain = per_request(args.n, args.root, [])
        print(f"without -w {plain:10.1f} per request")
        print(f"-w costs   {written - plain:10.1f} per flow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
