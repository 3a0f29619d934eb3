"""Instructions of one proxy start under cachegrind: exec, the first proxied answer, then stop.

CPU milliseconds of a start vary by tens of percent on a busy machine; the instruction count
of the same start varies by well under 1 %.  One proxydump (or proxyweb) process from this
checkout, or from ``--root``, runs under ``valgrind --tool=cachegrind``; one GET goes through it
as soon as it listens, then SIGINT stops it.  The count includes the interpreter's own start
and the shutdown, which no change to proxycore moves.

    bench/cgstart.py                        # proxydump -q
    bench/cgstart.py --web                  # proxyweb -q (no browser)
    bench/cgstart.py --root /work/main      # another checkout, for an A/B
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import percall  # noqa: E402


def instructions(root: str, web: bool) -> int:
    """``I refs`` of one proxy process of the checkout ``root`` that answered one GET."""
    python = os.path.join(root, ".venv", "bin", "python")
    origin = subprocess.Popen([python, "-c", percall.ORIGIN], stdout=subprocess.PIPE, text=True)
    try:
        origin_port = int(origin.stdout.readline())  # type: ignore[union-attr]
        port = percall.free_port()
        if web:
            tool = ["-c", "from proxycore.tools.web import main; main()", "--web-port",
                    str(percall.free_port()), "--set", "web_open_browser=false"]  # fmt: skip
        else:
            tool = ["-m", "proxycore"]
        proxy = subprocess.Popen(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
             python, *tool, "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port)],
            cwd=root, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        percall.wait_port(port, timeout=180)
        request = f"GET http://127.0.0.1:{origin_port}/ HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(request.encode())
            answer = b""
            while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < 100:
                answer += client.recv(65536)
        proxy.send_signal(signal.SIGINT)
        report = proxy.communicate(timeout=180)[1]
    finally:
        origin.kill()
    match = re.search(r"I\s+refs:\s+([\d,]+)", report)
    if not match:
        raise SystemExit(f"no cachegrind total in:\n{report}")
    return int(match.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.dirname(HERE), help="the checkout to run (with its .venv)")
    parser.add_argument("--web", action="store_true", help="proxyweb instead of proxydump")
    args = parser.parse_args()
    print(f"{instructions(args.root, args.web) / 1e6:.1f} M instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
