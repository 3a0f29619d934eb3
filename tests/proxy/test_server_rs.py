"""The mitmproxy-rs modes (wireguard, tun, local) apart from real tunnels: lazy import,
option checks, start-up errors, and the stream adapter against an in-memory stream.
The tunnels themselves are tested in tests/e2e/test_e2e_wireguard.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from proxycore.exceptions import OptionsError
from tests.proxy.test_mode_specs import make_master


@pytest.mark.e2e  # starts a Python process
def test_proxy_starts_without_loading_mitmproxy_rs():
    code = (
        "import sys\n"
        "from proxycore.addons.proxyserver import make_listener, parse_modes\n"
        "from proxycore.tools import dump, web\n"
        "modes = parse_modes(['regular', 'wireguard', 'tun:x', 'local:curl'])\n"
        "listeners = [make_listener(None, m) for m in modes]\n"
        "print('mitmproxy_rs' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_tcp_and_udp_modes_may_share_a_port_udp_ones_may_not():
    master = make_master()
    master.options.update(mode=["regular@8092", "wireguard@8092"])  # TCP and UDP: fine
    with pytest.raises(OptionsError, match=r"same address: \*:8092"):
        master.options.update(mode=["wireguard@8092", "reverse:udp://example.com:53@8092"])
    master.options.update(mode=["tun", "local", "regular"])  # no address of their own


def run_dump(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxycore", "--set", f"confdir={tmp_path}", *args],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.e2e
def test_bad_key_file_is_a_startup_error(tmp_path):
    pytest.importorskip("mitmproxy_rs")
    conf = tmp_path / "wg.json"
    conf.write_text(json.dumps({"server_key": "not a key", "client_key": "x"}))
    r = run_dump(tmp_path, "--mode", f"wireguard:{conf}@127.0.0.1:0")
    assert r.returncode == 1
    assert f"Invalid configuration file ({conf}):" in r.stdout + r.stderr


@pytest.mark.e2e
def test_local_mode_says_why_it_cannot_run_here(tmp_path):
    pytest.importorskip("mitmproxy_rs")
    from proxycore.proxy.server_rs import local_unavailable_reason

    reason = local_unavailable_reason()
    if reason is None:
        pytest.skip("local capture is available on this machine")
    r = run_dump(tmp_path, "--mode", "local")
    assert r.returncode == 1
    assert reason in r.stdout + r.stderr


# The stream adapter ---------------------------------------------------------------------


class MemoryStream:
    """What the adapter uses of ``mitmproxy_rs.Stream``: reads from a queue, records writes."""

    def __init__(self, udp: bool = False) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.written: list[bytes] = []
        self.eof = False
        self.closed = False
        self.drained = asyncio.Event()
        self.udp = udp

    async def read(self, n: int) -> bytes:
        return await self.incoming.get()

    def write(self, data: bytes) -> None:
        self.written.append(data)

    async def drain(self) -> None:
        await self.drained.wait()

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "transport_protocol":
            return "udp" if self.udp else "tcp"
        raise KeyError(name)  # as mitmproxy-rs 0.10 does for names it lacks


class Recorder:
    """Stands in for the driver's _ConnectionProtocol."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def data_received(self, data: bytes) -> None:
        self.events.append(data)

    def eof_received(self) -> bool:
        self.events.append("eof")
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")


def test_adapter_reads_pauses_writes_and_applies_backpressure():
    from proxycore.proxy import server_rs

    async def scenario() -> None:
        stream, rec = MemoryStream(), Recorder()
        transport = server_rs._StreamTransport(stream, rec, udp=False)  # type: ignore[arg-type]
        await stream.incoming.put(b"one")
        await asyncio.sleep(0.01)
        assert rec.events == [b"one"]
        transport.pause_reading()
        await stream.incoming.put(b"two")  # taken by the read already waiting...
        await stream.incoming.put(b"three")  # ...but this one waits until reading resumes
        await asyncio.sleep(0.01)
        assert b"three" not in rec.events
        transport.resume_reading()
        await asyncio.sleep(0.01)
        assert rec.events[-1] == b"three"
        # writes are counted until mitmproxy-rs has taken them
        transport.write(b"x" * (server_rs.WRITE_HIGH_WATER + 1))
        assert transport.get_write_buffer_size() == server_rs.WRITE_HIGH_WATER + 1
        assert rec.events[-1] == "pause"
        stream.drained.set()
        await asyncio.sleep(0.01)
        assert transport.get_write_buffer_size() == 0
        assert rec.events[-1] == "resume"
        transport.write_eof()
        assert stream.eof
        await stream.incoming.put(b"")  # the peer's FIN
        await asyncio.sleep(0.01)
        assert rec.events[-1] == "eof"  # and the writing side stays ours to close
        transport.close()
        await asyncio.sleep(0.01)
        assert stream.closed and rec.events[-1] == "lost"
        assert server_rs._extra(stream, "sockname") is None  # a KeyError is no crash

    asyncio.run(scenario())


def test_adapter_ends_a_udp_flow_on_an_empty_read():
    from proxycore.proxy import server_rs

    async def scenario() -> None:
        stream, rec = MemoryStream(udp=True), Recorder()
        transport = server_rs._StreamTransport(stream, rec, udp=True)  # type: ignore[arg-type]
        assert not transport.can_write_eof()
        await stream.incoming.put(b"datagram")
        await stream.incoming.put(b"")
        await asyncio.sleep(0.01)
        assert rec.events == [b"datagram", "lost"]
        assert transport.is_closing()

    asyncio.run(scenario())


def test_tunnelled_streams_over_max_connections_are_closed_at_once():
    from proxycore.proxy import server as driver
    from proxycore.proxy import server_rs
    from proxycore.proxy.mode_specs import ProxyMode

    master = SimpleNamespace(options=SimpleNamespace(max_connections=3))
    listener = server_rs.WireGuardListener(master, lambda context: None, ProxyMode.parse("wireguard"))

    async def scenario() -> None:
        stream = MemoryStream()
        saved = driver._client_slots.count
        driver._client_slots.count = 3
        try:
            await listener.handle_stream(stream)
        finally:
            driver._client_slots.count = saved
        assert stream.closed and not listener.handlers

    asyncio.run(scenario())


def test_tunnel_modes_are_refused_with_workers():
    master = make_master()
    master.options.update(workers="2")
    with pytest.raises(OptionsError, match="wireguard mode cannot be combined with workers"):
        master.options.update(mode=["regular", "wireguard"])
    master.options.update(workers="1", mode=["regular", "tun"])
    with pytest.raises(OptionsError, match="tun mode cannot be combined with workers"):
        master.options.update(workers="3")


@pytest.mark.e2e  # starts a Python process
def test_the_command_skips_interpreter_finalization_after_mitmproxy_rs_ran():
    """A mitmproxy-rs thread calling into Python during finalization crashed proxydump at
    exit now and then (SIGSEGV); after its servers ran, the command ends with os._exit."""
    code = (
        "import atexit, sys\n"
        "sys.argv = ['proxydump', '--version']\n"
        "atexit.register(lambda: print('finalized'))\n"
        "from proxycore.proxy import server_rs\n"
        "from proxycore.tools.dump import main\n"
        "server_rs.servers_started = {flag}\n"
        "sys.exit(main())\n"
    )
    for flag, finalized in (("True", False), ("False", True)):
        r = subprocess.run([sys.executable, "-c", code.format(flag=flag)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("proxycore: ")
        assert ("finalized" in r.stdout) is finalized
