#!/usr/bin/env python3
"""CPU time and Python calls per proxied request, for deciding speed changes on a busy machine.

Wall-clock req/s on a shared 2-core machine swings by tens of percent from run to run; the
proxy's own CPU time per request and its function calls per request do not.  This starts a
tiny origin (100 B responses, keep-alive), runs ``python -m proxycore`` (with the arguments
after ``--``) pinned to one core, loads it with wrk through the proxy for a while, and reads
the proxy's CPU time (its own ``process_time``, read in the proxy process around the window) and,
with ``--profile``, the calls per request (cProfile, switched on only for the window).

    bench/percall.py                                  # us/request, 16 connections, 5 s
    bench/percall.py --profile /tmp/p.prof --top 25   # + calls/request and the hottest functions
    bench/percall.py -- --workers 2                   # any proxycore arguments after --
    bench/percall.py --web -- --workers 2             # proxyweb (view, per-run store, web API)
    bench/percall.py --https                          # CONNECT + TLS both sides, keep-alive
    bench/percall.py --https --close                  # a new connection + 2 handshakes per request

Needs wrk (bench/setup.sh installs it).  ``--https`` loads with proxyload (bench/proxyload.go,
built into $BENCH_WORK/bin) against nginx's https origin on 127.0.0.1:18443 (start it with
``bench/origin.sh start``) and passes ``--set ssl_insecure=true`` to the proxy.  ``--close``
sends ``Connection: close`` (a new client and server connection per request).  Prints one
JSON line per run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ORIGIN = r"""
import asyncio, sys
BODY = b"x" * 100
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + BODY
CLOSING = RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
class Origin(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
    def data_received(self, data):
        self.buffer += data
        n = self.buffer.count(b"\r\n\r\n")
        if n and b"connection: close" in self.buffer.lower():  # BENCH_CLOSE=1: answer once, close
            self.transport.write(CLOSING)
            self.transport.close()
        elif n:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4:]
            self.transport.write(RESPONSE * n)
async def main():
    server = await asyncio.get_running_loop().create_server(Origin, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def serve(argv: list[str]) -> int:
    """Run proxydump in this process; SIGUSR1 opens the measured window, SIGUSR2 closes it."""
    import cProfile

    from proxycore.tools import dump, web

    out = os.environ["PERCALL_OUT"]
    profile_path = os.environ.get("PERCALL_PROFILE")
    profiler = cProfile.Profile() if profile_path else None
    start: dict[str, int] = {}
    # The cyclic collector in the window: collections and their CPU time per generation.
    gc_runs = [0, 0, 0]
    gc_ns = [0, 0, 0]
    gc_started = [0]
    gc_longest = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if "cpu" not in start:
            return
        if phase == "start":
            gc_started[0] = time.thread_time_ns()
        else:
            took = time.thread_time_ns() - gc_started[0]
            gc_runs[info["generation"]] += 1
            gc_ns[info["generation"]] += took
            gc_longest[0] = max(gc_longest[0], took)

    if os.environ.get("PERCALL_GC_THRESHOLD"):  # e.g. "7000,10,10": try other thresholds
        gc.set_threshold(*(int(n) for n in os.environ["PERCALL_GC_THRESHOLD"].split(",")))
    gc.callbacks.append(on_gc)

    def begin(*_: object) -> None:
        start["cpu"] = time.process_time_ns()
        if profiler is not None:
            profiler.enable()

    def end(*_: object) -> None:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
        with open(out, "w") as f:
            json.dump({"cpu_ns": time.process_time_ns() - start["cpu"], "gc_runs": gc_runs, "gc_ns": gc_ns,
                       "gc_threshold": gc.get_threshold(), "gc_longest_ns": gc_longest[0], "rss_kb": _status_kb("VmRSS"),
                       "hwm_kb": _status_kb("VmHWM")}, f)

    signal.signal(signal.SIGUSR1, begin)
    signal.signal(signal.SIGUSR2, end)
    if os.environ.get("PERCALL_WEB"):
        return web.main(argv)
    return dump.main(argv)


def tree_cpu(root: int, system_only: bool = False) -> dict[int, int]:
    """CPU clock ticks (user + system, or system alone) of ``root`` and every process below
    it, by pid."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[12]) + (0 if system_only else int(fields[11]))
    tree = {root}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return {pid: ticks[pid] for pid in tree if pid in ticks}


def io_syscalls(pids: object) -> dict[int, tuple[int, int]]:
    """(read, write) system calls so far of each process (/proc/PID/io's syscr and syscw)."""
    counts = {}
    for pid in pids:  # type: ignore[attr-defined]
        try:
            with open(f"/proc/{pid}/io") as f:
                fields = dict(line.split(": ") for line in f.read().splitlines())
        except OSError:
            continue
        counts[pid] = (int(fields["syscr"]), int(fields["syscw"]))
    return counts


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HTTPS_ORIGIN = "https://127.0.0.1:18443/small"  # nginx from bench/origin.sh (100 B)


def proxyload(port: int, conns: int, seconds: float, cpu: str, close: bool) -> dict:
    """CONNECT + TLS load (bench/proxyload.go), in wrk's summary keys that main() reads."""
    sys.path.insert(0, HERE)
    from bench import proxyload_path  # builds the binary if missing

    argv = ["taskset", "-c", cpu, proxyload_path(), "-c", str(conns), "-d", f"{seconds:g}s", "-t", "20s",
            "-x", f"127.0.0.1:{port}", *(["-close"] if close else []), HTTPS_ORIGIN]
    text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    r = json.loads(text.strip().splitlines()[-1])
    return {"requests": r["requests"] - r["non2xx"], "duration_us": r["duration_s"] * 1e6,
            "err_proxyload": r["errors"] + r["non2xx"], "connects": r["connects"],
            "first_error": r["first_error"][:200]}


def wrk(port: int, origin: int, conns: int, seconds: float, cpu: str, close: bool = False) -> dict:
    env = dict(os.environ, BENCH_TARGET=f"http://127.0.0.1:{origin}/small")
    if close:
        env["BENCH_CLOSE"] = "1"
    argv = ["taskset", "-c", cpu, "wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "10s",
            "-s", os.path.join(HERE, "proxy.lua"), f"http://127.0.0.1:{port}/"]
    text = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    for line in text.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
    raise RuntimeError("wrk printed no summary:\n" + text)


def profile_summary(path: str, requests: int, top: int) -> dict:
    import pstats

    stats = pstats.Stats(path)
    calls = sum(s[1] for s in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    hottest = []
    for (file, line, name), (_, ncalls, tottime, _cum, _) in rows[:top]:
        short = file.replace(ROOT + "/", "")
        hottest.append(f"{ncalls / requests:7.2f}/req {tottime / requests * 1e6:7.2f} us  {short}:{line}({name})")
    return {"calls_per_request": round(calls / requests, 1), "hottest_by_own_time": hottest}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def window_stats(out: str) -> dict:
    """The proxy's CPU time in the measured window (and its collector runs, RSS), from the
    file it writes after SIGUSR2."""
    for _ in range(200):
        if os.path.exists(out) and os.path.getsize(out):
            break
        time.sleep(0.05)
    with open(out) as f:
        return json.load(f)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--profile", metavar="FILE", help="also count calls (cProfile) into FILE")
    parser.add_argument("--top", type=int, default=0, help="with --profile: print the N hottest functions")
    parser.add_argument("--proxy-cpu", default="1", help="taskset cpu list for the proxy")
    parser.add_argument("--client-cpu", default="0", help="taskset cpu list for wrk and the origin")
    parser.add_argument("--https", action="store_true", help="CONNECT + TLS with proxyload to nginx :18443")
    parser.add_argument("--close", action="store_true", help="Connection: close: a new connection per request")
    parser.add_argument("--web", action="store_true", help="run proxyweb (a free web port, no browser)")
    parser.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("proxy_args", nargs="*", help="extra proxycore arguments (after --)")
    args = parser.parse_args()
    if args.serve:
        return serve(args.proxy_args)

    origin = subprocess.Popen(["taskset", "-c", args.client_cpu, args.python, "-c", ORIGIN],
                              stdout=subprocess.PIPE, text=True)
    proxy = None
    try:
        origin_port = int(origin.stdout.readline())  # type: ignore[union-attr]
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.json")
            env = dict(os.environ, PERCALL_OUT=out)
            if args.profile:
                env["PERCALL_PROFILE"] = os.path.abspath(args.profile)
            extra = ["--set", "ssl_insecure=true"] if args.https else []
            if args.web:
                env["PERCALL_WEB"] = "1"
                extra += ["--web-port", str(free_port()), "--no-web-open-browser"]
            argv = ["taskset", "-c", args.proxy_cpu, args.python, os.path.abspath(__file__), "--serve", "--",
                    "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port), *extra, *args.proxy_args]
            proxy = subprocess.Popen(argv, env=env)
            wait_port(port)

            def load(seconds: float) -> dict:
                if args.https:
                    return proxyload(port, args.conns, seconds, args.client_cpu, args.close)
                return wrk(port, origin_port, args.conns, seconds, args.client_cpu, args.close)

            if args.warmup:
                load(args.warmup)
            os.kill(proxy.pid, signal.SIGUSR1)
            ticks_before = tree_cpu(proxy.pid)
            system_before = tree_cpu(proxy.pid, system_only=True)
            calls_before = io_syscalls(ticks_before)
            result = load(args.seconds)
            ticks_after = tree_cpu(proxy.pid)
            system_after = tree_cpu(proxy.pid, system_only=True)
            calls_after = io_syscalls(ticks_after)
            os.kill(proxy.pid, signal.SIGUSR2)
            stats = window_stats(out)
            cpu_ns = stats["cpu_ns"]
        requests = result["requests"]
        errors = sum(v for k, v in result.items() if k.startswith("err_"))
        if errors and "first_error" in result:
            print("first error:", result["first_error"], file=sys.stderr)
        report = {
            "args": args.proxy_args,
            "scenario": ("https" if args.https else "http") + ("_close" if args.close else "_ka"),
            "conns": args.conns,
            "requests": requests,
            "errors": errors,
            "req_per_s": round(requests / (result["duration_us"] / 1e6)),
            "cpu_us_per_request": round(cpu_ns / requests / 1000, 2),
            # Every process of the proxy (primary and workers), from /proc in clock ticks.
            "tree_cpu_us_per_request": round((
                sum(ticks_after.values()) - sum(ticks_before.get(p, 0) for p in ticks_after)
            ) * 1e6 / os.sysconf("SC_CLK_TCK") / requests, 1),
            "cpu_pct_by_process": [
                round((ticks_after[p] - ticks_before.get(p, 0)) * 100 / os.sysconf("SC_CLK_TCK")
                      / (result["duration_us"] / 1e6))
                for p in sorted(ticks_after)
            ],
            # Of that, the kernel's share (system time) per request, by process.
            "sys_us_per_request_by_process": [
                round((system_after[p] - system_before.get(p, 0)) * 1e6 / os.sysconf("SC_CLK_TCK") / requests, 1)
                for p in sorted(system_after)
            ],
            # Read and write system calls per request, by process (/proc/PID/io).
            "rw_calls_per_request_by_process": [
                [round((calls_after[p][i] - calls_before.get(p, (0, 0))[i]) / requests, 2) for i in (0, 1)]
                for p in sorted(calls_after)
            ],
            # Cyclic collections per generation per 10k requests, and their CPU us per request.
            "gc_per_10k": [round(n * 10000 / requests, 1) for n in stats["gc_runs"]],
            "gc_us_per_request": [round(ns / requests / 1000, 2) for ns in stats["gc_ns"]],
            "gc_longest_us": round(stats["gc_longest_ns"] / 1000),
            "gc_threshold": stats["gc_threshold"],
            "lat_p99_us": result.get("lat_p99_us"),
            "rss_mb": round(stats["rss_kb"] / 1024, 1),
            "hwm_mb": round(stats["hwm_kb"] / 1024, 1),
            "profiled": bool(args.profile),
            "load": os.getloadavg()[0],
        }
        if args.profile:
            report.update(profile_summary(args.profile, requests, args.top))
        hottest = report.pop("hottest_by_own_time", [])
        print(json.dumps(report))
        for line in hottest:
            print("  " + line)
        return 0
    finally:
        for p in (proxy, origin):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
