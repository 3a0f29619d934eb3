#!/usr/bin/env python3
"""Start time and idle memory of the proxy: how long until it first answers, and what it
holds when it does.

Self-contained (no nginx): an origin thread in this process (body_rss.py's) answers every
request with 100 bytes.  Each round starts a fresh proxy, sends one proxied GET every 5 ms until one
answers 200, and records the wall time to that answer (``ready_ms``, as `bench.py startup`
measures it), the proxy's own CPU time by then (``cpu_ms``: the figure that holds on a busy
machine), and after one more request its VmRSS/VmHWM and the split of its resident pages
(anonymous: the Python heap and C allocations; file: code of the interpreter, shared
libraries and extension modules).

    python bench/startmem.py                       # proxydump from this checkout, 10 rounds
    python bench/startmem.py --web                 # proxyweb
    python bench/startmem.py --mappings 15         # also the 15 largest mappings (last round)
    python bench/startmem.py --command 'mitmdump -q -p $PORT'
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from body_rss import serve_origin  # answers each GET with as many bytes as its path says

from bench import proxied_ok

ROOT = Path(__file__).resolve().parent.parent


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[name] = int(value.split()[0])
    return out


def mappings_kb(pid: int) -> collections.Counter[str]:
    """Resident kB per mapped file (anonymous mappings under "[anon]")."""
    per: collections.Counter[str] = collections.Counter()
    name = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
            parts = line.split(maxsplit=5)
            name = parts[5] if len(parts) > 5 else "[anon]"
        elif line.startswith("Rss:"):
            per[name] += int(line.split()[1])
    return per


def one_round(command: str, port: int, origin: int, timeout: float = 30.0) -> tuple[dict, subprocess.Popen]:
    """Start the proxy, wait for its first proxied 200 and read its figures; the caller stops it."""
    env = dict(os.environ, PORT=str(port))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["bash", "-c", "exec " + command], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        while not proxied_ok(port, f"127.0.0.1:{origin}", "/100"):
            if proc.poll() is not None:
                raise SystemExit(f"proxy exited with {proc.returncode}: {command}")
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"proxy did not answer within {timeout}s: {command}")
            time.sleep(0.005)
        row = {"ready_ms": (time.perf_counter() - t0) * 1000, "cpu_ms": cpu_ms(proc.pid)}
        proxied_ok(port, f"127.0.0.1:{origin}", "/100")
        time.sleep(0.2)
        row.update(status_kb(proc.pid))
        return row, proc
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--command", help="proxy command; $PORT is its port (default: proxydump -q from this checkout)")
    ap.add_argument("--web", action="store_true", help="proxyweb from this checkout (no browser) instead of proxydump")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--port", type=int, default=18960)
    ap.add_argument("--mappings", type=int, default=0, metavar="N", help="print the N largest mappings of the last round")
    args = ap.parse_args()
    py = shlex.quote(sys.executable)
    if args.command:
        command = args.command
    elif args.web:
        command = (f"{py} -c 'from proxycore.tools.web import main; main()' -q -p $PORT "
                   "--web-port $(($PORT + 1)) --set web_open_browser=false")
    else:
        command = f"{py} -m proxycore -q -p $PORT"

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    origin = listener.getsockname()[1]
    threading.Thread(target=serve_origin, args=(listener,), daemon=True).start()

    rows = []
    for i in range(args.rounds):
        row, proc = one_round(command, args.port, origin)
        if args.mappings and i == args.rounds - 1:
            for name, kb in mappings_kb(proc.pid).most_common(args.mappings):
                print(f"  {kb / 1024:7.1f} MB  {name}")
        stop(proc)
        rows.append(row)
        print(f"round {i + 1}: ready {row['ready_ms']:.0f} ms, cpu {row['cpu_ms']:.0f} ms, "
              f"VmRSS {row['VmRSS'] / 1024:.1f} MB (anon {row['RssAnon'] / 1024:.1f}, "
              f"file {row['RssFile'] / 1024:.1f}), VmHWM {row['VmHWM'] / 1024:.1f} MB", flush=True)
        time.sleep(0.3)

    def med(key: str, scale: float = 1.0) -> str:
        return f"{statistics.median(r[key] for r in rows) / scale:.1f}"

    print(f"median of {len(rows)}: ready_ms {med('ready_ms')} (min {min(r['ready_ms'] for r in rows):.0f}) "
          f"cpu_ms {med('cpu_ms')} (min {min(r['cpu_ms'] for r in rows):.0f}) "
          f"VmRSS {med('VmRSS', 1024)} MB (anon {med('RssAnon', 1024)}, file {med('RssFile', 1024)}) "
          f"VmHWM {med('VmHWM', 1024)} MB")


if __name__ == "__main__":
    main()
