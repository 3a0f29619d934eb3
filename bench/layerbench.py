#!/usr/bin/env python3
"""The sans-io layers alone: time and Python calls per keep-alive HTTP/1 request, no sockets.

A minimal synchronous driver feeds ``HttpProxy`` (regular mode, HttpLayer chosen by the
next_layer step as the default addon does) one absolute-form GET after another on one client
connection, answers every hook at once, opens the server connection at once and answers
each request with a 100 B response.  Nothing else runs, so the figures repeat to a few
percent even on a busy machine: use them to compare layer changes, and bench/percall.py
for the whole process (driver, event loop, addons).

    bench/layerbench.py                  # CPU us/request (best of 5 rounds of 20,000)
    bench/layerbench.py --profile 25     # + calls/request and the 25 hottest functions
    bench/layerbench.py --fresh-heads    # every head new, as real traffic (see Driver)
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from proxycore.connection import Client, ConnectionState  # noqa: E402
from proxycore.layers.http import HttpLayer, HTTPMode  # noqa: E402
from proxycore.layers.modes import HttpProxy  # noqa: E402
from proxycore.options import Options  # noqa: E402
from proxycore.proxy import commands, events  # noqa: E402
from proxycore.proxy.context import Context  # noqa: E402
from proxycore.proxy.layer import NextLayerHook  # noqa: E402

REQUEST = b"GET http://127.0.0.1:18080/small HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
# With --fresh-heads: a counter in the path and in a response field, as a browser asks
# for other paths and an origin's Date changes (the fields of a request and the status
# line of a response repeat, as they do in real traffic).
FRESH_REQUEST = b"GET http://127.0.0.1:18080/small/%d HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n"
FRESH_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Seq: %010d\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
)


class Driver:
    """Carries out the layers' commands the way the real driver does, minus the sockets."""

    def __init__(self, instant_hooks: bool = True, fresh_heads: bool = False) -> None:
        # Identical heads hit the head memos of proxycore/net/http1.py every time; fresh
        # ones (a counter in each) miss them, as most of a real client's and server's do.
        self.fresh_heads = fresh_heads
        self.sent = 0
        self.options = Options()
        self.client = Client(peername=("127.0.0.1", 50000), sockname=("127.0.0.1", 8080),
                             state=ConnectionState.OPEN)
        self.context = Context(self.client, self.options)
        if instant_hooks and hasattr(self.context, "instant_hook"):
            # As the driver does when no addon listens (proxydump -q): only next_layer pauses.
            self.context.instant_hook = lambda hook: not isinstance(hook, NextLayerHook)
        self.layer = HttpProxy(self.context)
        self.queue: collections.deque[events.Event] = collections.deque()
        self.to_client = 0
        self.server = None
        self.feed(events.Start())

    def feed(self, event: events.Event) -> None:
        queue = self.queue
        queue.append(event)
        while queue:
            for command in self.layer.handle_event(queue.popleft()):
                self.execute(command)

    def execute(self, command: commands.Command) -> None:
        if isinstance(command, commands.SendData):
            if command.connection is self.client:
                self.to_client += len(command.data)
            elif command.data.endswith(b"\r\n\r\n"):  # a request head without body: answer it
                response = FRESH_RESPONSE % self.sent if self.fresh_heads else RESPONSE
                self.queue.append(events.DataReceived(command.connection, response))
        elif isinstance(command, NextLayerHook):
            command.data.layer = HttpLayer(command.data.context, HTTPMode.regular)
            self.queue.append(events.HookCompleted(command))
        elif isinstance(command, commands.StartHook):
            self.queue.append(events.HookCompleted(command))
        elif isinstance(command, commands.OpenConnection):
            command.connection.state = ConnectionState.OPEN
            command.connection.timestamp_start = time.time()
            self.queue.append(events.OpenConnectionCompleted(command, None))
        elif isinstance(command, (commands.Log, commands.RequestWakeup)):
            pass
        else:
            raise AssertionError(f"unexpected {command!r}")

    def requests(self, n: int) -> None:
        if self.fresh_heads:
            for _ in range(n):
                self.sent += 1
                self.feed(events.DataReceived(self.client, FRESH_REQUEST % self.sent))
            return
        for _ in range(n):
            self.feed(events.DataReceived(self.client, REQUEST))

    def response_size(self) -> int:
        return len(FRESH_RESPONSE % self.sent if self.fresh_heads else RESPONSE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--paused-hooks", action="store_true",
                        help="pause for every hook as if an addon listened (the driver's reply answers it)")
    parser.add_argument("--fresh-heads", action="store_true",
                        help="a new request path and response field each time: the head memos miss")
    parser.add_argument("--profile", type=int, metavar="TOP", help="count calls; show the TOP hottest")
    args = parser.parse_args()
    driver = Driver(instant_hooks=not args.paused_hooks, fresh_heads=args.fresh_heads)
    driver.requests(200)  # warm up: the first request opens the server connection
    before = driver.to_client
    driver.requests(1)
    assert driver.to_client - before == driver.response_size(), "the response did not come through"
    best = min(_timed(driver, args.n) for _ in range(args.rounds))
    line = f"layers: {best / args.n / 1000:.2f} CPU us/request (best of {args.rounds} x {args.n})"
    if args.profile is not None:
        profiler = cProfile.Profile()
        profiler.enable()
        driver.requests(args.n)
        profiler.disable()
        stats = pstats.Stats(profiler)
        calls = sum(s[1] for s in stats.stats.values())  # type: ignore[attr-defined]
        line += f", {calls / args.n:.1f} calls/request"
        print(line)
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
        for (file, lineno, name), (_, ncalls, tottime, _cum, _) in rows[: args.profile]:
            short = file.replace(ROOT + "/", "")
            print(f"  {ncalls / args.n:7.2f}/req {tottime / args.n * 1e6:6.2f} us  {short}:{lineno}({name})")
    else:
        print(line)
    return 0


def _timed(driver: Driver, n: int) -> int:
    start = time.process_time_ns()  # CPU time: on a shared machine wall time also counts others
    driver.requests(n)
    return time.process_time_ns() - start


if __name__ == "__main__":
    sys.exit(main())
