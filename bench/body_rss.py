#!/usr/bin/env python3
"""Peak memory of the proxy while one large response passes through it, buffered and streamed.

Self-contained (no nginx): an origin thread in this process serves SIZE bytes with a
Content-Length, a raw socket fetches them through a fresh proxy process, and the proxy's
peak resident set (VmHWM from /proc) is read once the body has arrived.  One proxy process
per mode, since VmHWM only ever grows.

    python bench/body_rss.py                      # 64 MiB, proxycore from this checkout
    python bench/body_rss.py --size 256m --mode buffered
    python bench/body_rss.py --command 'mitmdump -q -p $PORT'   # another proxy, same test

Modes: ``buffered`` (body_buffer_limit off, so the whole body is held as mitmproxy does),
``streamed`` (stream_large_bodies=1m) and ``default`` (no option: body_buffer_limit applies).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = {
    "buffered": ["--set", "body_buffer_limit=0"],
    "streamed": ["--set", "stream_large_bodies=1m"],
    "default": [],
}
PIECE = memoryview(os.urandom(1 << 20))


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower()
    if text[-1:] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def serve_origin(listener: socket.socket) -> None:
    """Answer every request on every connection with the size named in its path."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_origin_connection, args=(conn,), daemon=True).start()


def _origin_connection(conn: socket.socket) -> None:
    with conn:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            size = int(head.split(b" ", 2)[1].strip(b"/") or b"0")
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % size)
            left = size
            while left:
                n = min(left, len(PIECE))
                conn.sendall(PIECE[:n])
                left -= n


def fetch(proxy_port: int, origin_port: int, size: int) -> float:
    """One GET through the proxy; returns seconds until the last body byte arrived."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", proxy_port)) as s:
        s.sendall(b"GET http://127.0.0.1:%d/%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                  % (origin_port, size, origin_port))
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        head = b""
        while b"\r\n\r\n" not in head:
            data = s.recv(65536)
            if not data:
                raise RuntimeError("proxy closed before the response head")
            head += data
        _, rest = head.split(b"\r\n\r\n", 1)
        got = len(rest)
        while got < size:
            n = s.recv_into(view)
            if not n:
                raise RuntimeError(f"proxy closed after {got} of {size} body bytes")
            got += n
    return time.perf_counter() - start


def proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("proxy did not listen in time")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(mode: str, size: int, origin_port: int, command: str | None) -> dict:
    port = free_port()
    if command:
        argv = ["bash", "-c", "exec " + command.replace("$PORT", str(port))]
    else:
        argv = [sys.executable, "-m", "proxycore", "-q", "--listen-host", "127.0.0.1",
                "--listen-port", str(port), *MODES[mode]]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc)
        fetch(port, origin_port, 100)  # warm up: imports and first-flow allocations
        idle = proc_kb(proc.pid, "VmRSS")
        seconds = fetch(port, origin_port, size)
        peak = proc_kb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "mode": mode, "size_mb": round(size / 2**20, 1), "idle_rss_mb": round(idle / 1024, 1),
        "peak_rss_mb": round(peak / 1024, 1), "over_body_mb": round((peak * 1024 - size) / 2**20, 1),
        "mb_per_s": round(size / 2**20 / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="64m")
    parser.add_argument("--mode", action="append", choices=sorted(MODES))
    parser.add_argument("--command", help="another proxy: a shell command with $PORT")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    size = parse_size(args.size)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    threading.Thread(target=serve_origin, args=(listener,), daemon=True).start()
    origin_port = listener.getsockname()[1]
    label = shlex.split(args.command)[0] if args.command else "proxycore"
    modes = args.mode or (["default"] if args.command else ["buffered", "streamed"])
    if not args.json:
        print(f"{'proxy':<12} {'mode':<9} {'body MB':>8} {'idle RSS':>9} {'peak RSS':>9} {'peak-body':>10} {'MB/s':>7}")
    for mode in modes:
        r = measure(mode, size, origin_port, args.command)
        if args.json:
            print(json.dumps({"proxy": label, **r}))
        else:
            print(f"{label:<12} {mode:<9} {r['size_mb']:>8} {r['idle_rss_mb']:>9} {r['peak_rss_mb']:>9} "
                  f"{r['over_body_mb']:>10} {r['mb_per_s']:>7}")
    listener.close()


if __name__ == "__main__":
    main()
