#!/usr/bin/env python3
"""The proxy's CPU seconds per GB of response body: a figure that holds on a busy machine,
where MB/s does not.

proxydump runs pinned to one core (through ``percall.py --serve``, which times the
measured window with the process's own CPU clock and can profile it); the nginx origin of
``bench/origin.sh`` serves the bodies, pinned with the client to the other core.

    bench/bodycpu.py                                  # 1m (wrk, 4 connections), 64m (curl x3)
    bench/bodycpu.py --scenarios https_1m             # proxyload through CONNECT + TLS
    bench/bodycpu.py --scenarios 64m --profile /tmp/b.prof --top 20
    bench/bodycpu.py -- --set stream_large_bodies=1m  # extra proxycore arguments
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import percall  # noqa: E402

WORK = os.environ.get("BENCH_WORK", "/tmp/proxybench")


def load(scenario: str, port: int, seconds: float, cpu: str) -> int:
    """Run one scenario's client through the proxy; returns the body bytes received."""
    if scenario == "1m":
        env = dict(os.environ, BENCH_TARGET="http://127.0.0.1:18080/1m")
        argv = ["taskset", "-c", cpu, "wrk", "-t1", "-c4", f"-d{seconds:g}s", "--timeout", "10s",
                "-s", os.path.join(HERE, "proxy.lua"), f"http://127.0.0.1:{port}/"]
        text = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
        summary = json.loads(next(x for x in text.splitlines() if x.startswith("WRKJSON "))[8:])
        return (summary["requests"] - summary["err_status"]) << 20
    if scenario == "64m":
        total = 0
        for _ in range(3):
            argv = ["taskset", "-c", cpu, "curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}",
                    "-x", f"http://127.0.0.1:{port}", "http://127.0.0.1:18080/64m"]
            total += int(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
        return total
    if scenario == "https_1m":
        argv = ["taskset", "-c", cpu, os.path.join(WORK, "bin", "proxyload"), "-c", "4", "-d", f"{seconds:g}s",
                "-t", "20s", "-x", f"127.0.0.1:{port}", "https://127.0.0.1:18443/1m"]
        text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return int(json.loads(text.strip().splitlines()[-1])["body_bytes"])
    raise ValueError(scenario)


def measure(scenario: str, args: argparse.Namespace) -> dict:
    port = percall.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        env = dict(os.environ, PERCALL_OUT=out)
        if args.profile:
            env["PERCALL_PROFILE"] = os.path.abspath(args.profile)
        argv = ["taskset", "-c", args.proxy_cpu, args.python, os.path.join(HERE, "percall.py"), "--serve", "--",
                "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port), "--set", "ssl_insecure=true",
                *args.proxy_args]
        proxy = subprocess.Popen(argv, env=env)
        try:
            percall.wait_port(port)
            load(scenario, port, 1.0, args.client_cpu)  # warm-up
            os.kill(proxy.pid, signal.SIGUSR1)
            start = time.perf_counter()
            size = load(scenario, port, args.seconds, args.client_cpu)
            wall = time.perf_counter() - start
            os.kill(proxy.pid, signal.SIGUSR2)
            cpu_s = percall.window_stats(out)["cpu_ns"] / 1e9
        finally:
            proxy.terminate()
            proxy.wait(10)
    return {"scenario": scenario, "MB/s": round(size / wall / 1e6, 1),
            "cpu_s_per_GB": round(cpu_s / (size / 1e9), 3), "GB": round(size / 1e9, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="1m,64m", help="comma-separated: 1m, 64m, https_1m")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the measured window into FILE")
    parser.add_argument("--top", type=int, default=0, help="with --profile: print the N hottest functions")
    parser.add_argument("--proxy-cpu", default="1")
    parser.add_argument("--client-cpu", default="0")
    parser.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    parser.add_argument("proxy_args", nargs="*", help="extra proxycore arguments (after --)")
    args = parser.parse_args()
    if subprocess.run([os.path.join(HERE, "origin.sh"), "status"], capture_output=True).returncode:
        subprocess.run([os.path.join(HERE, "origin.sh"), "start"], check=True)
    for scenario in args.scenarios.split(","):
        print(json.dumps(measure(scenario, args)), flush=True)
        if args.profile and args.top:
            pstats.Stats(args.profile).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
