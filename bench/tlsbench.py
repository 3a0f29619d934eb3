#!/usr/bin/env python3
"""The TLS layers alone: time, Python calls and instructions per HTTPS keep-alive request.

The stack of an intercepted CONNECT (a ServerTLSLayer for the target above the client's
ClientTLSLayer) with a relaying child instead of the HTTP layer, driven by
``proxycore.testing.Pump`` with the real TlsConfig addon; Python ``ssl`` peers over memory
BIOs play the client and the server. Per request the client's 100 B request goes to the
server and its 190 B response (head and body sent separately, as the HTTP layer does) back.
The peers and the pump cost the same for any version of the layers, so differences are the
layers': compare before/after, not against percall figures.

    bench/tlsbench.py                       # CPU us/request (best of 7 rounds of 10,000)
    bench/tlsbench.py --profile 25          # + calls/request and the 25 hottest functions
    # instructions per request, stable to ~1 % on a busy machine:
    for n in 1000 3000; do valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        .venv/bin/python bench/tlsbench.py -n $n --rounds 1 2>&1 | grep 'I *refs'; done  # (b - a) / 2000

The CA lives in ``$BENCH_WORK/tlsbench-conf`` (made once): a new CA's RSA key would make
the instruction count of every run differ by millions.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import ssl
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from proxycore.addons.tlsconfig import TlsConfig  # noqa: E402
from proxycore.certs import CertStore  # noqa: E402
from proxycore.connection import Server  # noqa: E402
from proxycore.layers.tls import ClientTLSLayer, ServerTLSLayer  # noqa: E402
from proxycore.master import Master  # noqa: E402
from proxycore.proxy import commands, events  # noqa: E402
from proxycore.proxy.layer import CommandGenerator, Layer  # noqa: E402
from proxycore.testing import Pump, make_context  # noqa: E402

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:18443\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n"
HEAD = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
RESPONSE = HEAD + b"x" * 100


class Relay(Layer):
    """Opens the server with the first request; requests go to it, responses back (head and
    body as two sends)."""

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.DataReceived):
            if event.connection is self.context.client:
                if not self.context.server.connected:
                    err = yield commands.OpenConnection(self.context.server)
                    assert not err, err
                yield commands.SendData(self.context.server, event.data)
            else:
                yield commands.SendData(self.context.client, event.data[: len(HEAD)])
                yield commands.SendData(self.context.client, event.data[len(HEAD) :])


class Peer:
    """A Python ssl endpoint over memory BIOs."""

    def __init__(self, context: ssl.SSLContext, server_side: bool, hostname: str | None = None) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side, hostname)

    def step(self, data: bytes) -> bytes:
        if data:
            self.incoming.write(data)
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()


def setup(confdir: Path) -> tuple[Pump, Peer, Peer]:
    if not (confdir / "proxycore-ca.pem").exists():
        CertStore.create_store(confdir, "proxycore")
    master = Master()
    master.options.update(confdir=str(confdir), connection_strategy="lazy", ssl_insecure=True)
    master.addons.add(TlsConfig())
    context = make_context(master.options)
    context.server = Server(address=("upstream.test", 443))
    outer = ServerTLSLayer(context)
    outer.child_layer = client_tls = ClientTLSLayer(context)
    client_tls.child_layer = Relay(context)

    class HookPump(Pump):
        def on_hook(self, command: commands.StartHook) -> events.Event | None:
            for _addon, handler in master.addons.handlers(command.name):
                handler(*command.args())
            return super().on_hook(command)

    pump = HookPump(outer)
    client_ctx = ssl.create_default_context(cafile=str(confdir / "proxycore-ca-cert.pem"))
    client = Peer(client_ctx, False, "example.com")
    data = client.step(b"")
    while data:
        pump.feed(events.DataReceived(context.client, data))
        reply = bytes(pump.sent["client"])
        pump.sent["client"].clear()
        data = client.step(reply)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(confdir / "proxycore-ca.pem"))  # any certificate: not verified
    server = Peer(server_ctx, True)
    client.obj.write(REQUEST)
    pump.feed(events.DataReceived(context.client, client.outgoing.read()))
    for _ in range(10):
        data = bytes(pump.sent["server"])
        pump.sent["server"].clear()
        reply = server.step(data)
        if reply:
            pump.feed(events.DataReceived(context.server, reply))
        if not data and not reply:
            break
    assert server.obj.read(65536) == REQUEST
    return pump, client, server


def run(pump: Pump, client: Peer, server: Peer, n: int) -> None:
    to_client, to_server = pump.sent["client"], pump.sent["server"]
    client_conn, server_conn = pump.context.client, pump.context.server
    for _ in range(n):
        client.obj.write(REQUEST)
        pump.feed(events.DataReceived(client_conn, client.outgoing.read()))
        server.incoming.write(bytes(to_server))
        to_server.clear()
        server.obj.read(65536)
        server.obj.write(RESPONSE)
        pump.feed(events.DataReceived(server_conn, server.outgoing.read()))
        client.incoming.write(bytes(to_client))
        to_client.clear()
        got = client.obj.read(65536)
    assert got == RESPONSE, got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", type=int, metavar="TOP", help="one profiled round; print the TOP functions")
    args = parser.parse_args()
    work = Path(os.environ.get("BENCH_WORK", os.path.join(tempfile.gettempdir(), "proxybench")))
    pump, client, server = setup(work / "tlsbench-conf")
    if args.profile is not None:
        profiler = cProfile.Profile()
        profiler.enable()
        run(pump, client, server, args.n)
        profiler.disable()
        stats = pstats.Stats(profiler)
        calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
        print(f"calls per request: {calls / args.n:.1f}")
        stats.sort_stats("tottime").print_stats(args.profile)
        return 0
    best = min(_timed(pump, client, server, args.n) for _ in range(args.rounds))
    print(f"{best / args.n * 1e6:.2f} CPU us per request (best of {args.rounds} rounds of {args.n})")
    return 0


def _timed(pump: Pump, client: Peer, server: Peer, n: int) -> float:
    start = time.process_time()
    run(pump, client, server, n)
    return time.process_time() - start


if __name__ == "__main__":
    sys.exit(main())
