"""Listeners fed by mitmproxy-rs: the WireGuard server, the TUN interface and the local
redirector.

mitmproxy-rs runs a user-space TCP/IP stack and hands us each TCP connection and each
UDP "connection" (a 4-tuple) as a ``mitmproxy_rs.Stream`` that knows where the packets
were going (``remote_endpoint``).  ``_StreamTransport`` makes such a stream look like the
stream transports the driver already serves, so a tunnelled connection runs through the
same ConnectionHandler and layer stack as a transparent-mode one: the destination is
known up front and the top layer is ``TransparentProxy``.

``mitmproxy_rs`` is imported only when one of these listeners starts, so the proxy
starts (and every other mode works) without it loaded or even installed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from proxycore.connection import Client, ConnectionState, TransportProtocol
from proxycore.proxy import server as _server
from proxycore.proxy.mode_specs import LocalMode, ProxyMode, TunMode, WireGuardMode
from proxycore.proxy.server_udp import UdpConnectionHandler

logger = logging.getLogger("proxycore.proxy")

# Set once a mitmproxy-rs server ran in this process: proxydump then ends without the
# interpreter's finalization (see proxycore.tools.dump._end_now_if_rust_ran).
servers_started = False

READ_SIZE = _server.READ_SIZE
# What we let mitmproxy-rs buffer for one stream before the driver hears "pause writing".
WRITE_HIGH_WATER = _server.WRITE_HIGH_WATER


def load_rs() -> Any:
    """``mitmproxy_rs``, or a RuntimeError saying how to get it."""
    try:
        import mitmproxy_rs
    except ImportError as e:
        raise RuntimeError(
            f"this mode needs the mitmproxy-rs package ({e}); install it with "
            "`pip install mitmproxy-rs` (see docs/modes.md)"
        ) from None
    global servers_started
    servers_started = True
    return mitmproxy_rs


class _StreamTransport(asyncio.Transport):
    """A ``mitmproxy_rs.Stream`` as a transport for the driver's ``_ConnectionProtocol``.

    The stream is pull-based (``await read()``), the driver push-based: a reader task
    moves data from one to the other and stops while the driver pauses reading.  Writes
    go to the stream at once; ``drain()`` tells when mitmproxy-rs has taken them, and
    until then their size counts as our write buffer (backpressure, as a socket's would).
    """

    def __init__(self, stream: Any, protocol: _server._ConnectionProtocol, udp: bool) -> None:
        super().__init__()
        self._stream = stream
        self._protocol = protocol
        self._udp = udp
        self._closing = False
        self._lost = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._buffered = 0
        self._paused_writing = False
        self._drain_task: asyncio.Task[None] | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        error: Exception | None = None
        stream = self._stream
        try:
            while True:
                await self._reading.wait()
                if self._closing:
                    break
                data = await stream.read(READ_SIZE)
                if self._closing:
                    break  # closed while reading: what came late is dropped
                if not data:
                    if not self._udp:
                        self._protocol.eof_received()
                        return  # the writing side stays open until the layers close it
                    break  # a UDP stream ends with an empty read (mitmproxy-rs timed it out)
                self._protocol.data_received(data)
        except asyncio.CancelledError:
            return
        except Exception as e:  # the tunnel reset the connection
            error = e
        self._connection_lost(error)

    def _connection_lost(self, error: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._protocol.connection_lost(error)
        # Let go of the Rust object now: left to the garbage collector (the handler and its
        # protocol reference each other), it may be freed during interpreter shutdown, after
        # mitmproxy-rs's runtime is gone, which crashed the process at exit now and then.
        self._stream = _GONE

    # writing ------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        try:
            self._stream.write(bytes(data))
        except Exception as e:
            logger.debug(f"write to tunnelled stream failed: {e!r}")
            self.close()
            return
        self._buffered += len(data)
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())
        if self._buffered > WRITE_HIGH_WATER and not self._paused_writing:
            self._paused_writing = True
            self._protocol.pause_writing()

    async def _drain(self) -> None:
        try:
            while self._buffered and not self._closing:
                before = self._buffered
                await self._stream.drain()
                self._buffered -= before
                if self._paused_writing and self._buffered <= WRITE_HIGH_WATER:
                    self._paused_writing = False
                    self._protocol.resume_writing()
        except Exception:
            self._buffered = 0
        finally:
            self._drain_task = None

    def get_write_buffer_size(self) -> int:
        return self._buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # WRITE_HIGH_WATER is the driver's own mark

    def can_write_eof(self) -> bool:
        return not self._udp

    def write_eof(self) -> None:
        if not self._closing and not self._udp:
            try:
                self._stream.write_eof()
            except Exception:
                pass

    # reading ----------------------------------------------------------------------

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set()

    # closing -----------------------------------------------------------------------

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        try:
            self._stream.close()
        except Exception:
            pass
        # The reader is not cancelled but left to see the stream end: a read that mitmproxy-rs
        # completes after the interpreter began to shut down crashed the process (its thread
        # takes the GIL then).  RustListener.stop() waits for the readers.
        self._reading.set()
        asyncio.get_running_loop().call_soon(self._connection_lost, None)

    @property
    def reader(self) -> asyncio.Task[None]:
        return self._reader

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        try:
            return self._stream.get_extra_info(name, default)
        except Exception:
            return default


class _GoneStream:
    """Stands in for a stream we closed: everything is a no-op, reads see the end."""

    async def read(self, n: int) -> bytes:
        return b""

    async def drain(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


_GONE = _GoneStream()


class RustListener:
    """One mode served by mitmproxy-rs; the interface of ``ProxyListener`` (``start``,
    ``stop``, ``addresses``, ``handlers``, ``to_json``) so the Proxyserver addon and the
    web API treat it like any listener."""

    # Whether stop() waits for mitmproxy-rs to report the server closed.
    wait_closed = True

    def __init__(self, master: Any, make_layer: _server.LayerFactory, mode: ProxyMode) -> None:
        self.master = master
        self.make_layer = make_layer
        self.mode = mode
        self.handlers: dict[asyncio.Task[None], _server.ConnectionHandler] = {}
        self.last_exception: Exception | None = None
        self._server: Any = None
        self._readers: set[asyncio.Task[None]] = set()  # of the tunnelled streams

    @property
    def is_running(self) -> bool:
        return self._server is not None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return []

    def to_json(self) -> dict[str, Any]:
        return _server.ProxyListener.to_json(self)  # type: ignore[arg-type]  # the same fields, read the same way (duck typing)

    async def start(self, host: str, port: int) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        for handler in list(self.handlers.values()):
            handler.close_all()
        if self.handlers:
            await asyncio.wait(list(self.handlers), timeout=5)
        for task in list(self.handlers):
            task.cancel()
        server.close()
        # Every read mitmproxy-rs still owes us must finish while the interpreter runs.
        if self._readers:
            await asyncio.wait(list(self._readers), timeout=2)
        for reader in list(self._readers):
            reader.cancel()
        if not self.wait_closed:
            return
        try:
            await asyncio.wait_for(server.wait_closed(), 5)
        except Exception as e:  # already gone, or stuck: we are done with it either way
            logger.debug(f"{self.mode.description}: {e!r} while closing")

    async def handle_stream(self, stream: Any) -> None:
        """One tunnelled TCP connection or UDP flow: run it through the layers.

        They count against ``max_connections`` with the other listeners' clients; over it a
        new one is closed at once (the tunnel has accepted it already: it cannot wait)."""
        slots = _server._client_slots
        if slots.full(_server.connection_limit(getattr(self.master.options, "max_connections", 0))):
            logger.warning(f"{slots.count} client connections open (see max_connections): tunnelled one refused")
            stream.close()
            return
        slots.count += 1
        try:
            await self._serve(stream)
        finally:
            slots.release()

    async def _serve(self, stream: Any) -> None:
        udp = _extra(stream, "transport_protocol") == "udp"
        peername = _extra(stream, "peername")
        sockname = _extra(stream, "sockname")
        # Inside the tunnel, sockname is where the packets were going; remote_endpoint
        # (mitmproxy-rs 0.11+) may say it better, e.g. a host name the redirector saw.
        # (original_src/original_dst are the outer WireGuard UDP addresses.)
        destination = _extra(stream, "remote_endpoint") or sockname
        logger.debug(f"tunnelled {'UDP' if udp else 'TCP'} stream {peername} -> {destination}")
        client = Client(
            peername=tuple(peername[:2]) if peername else None,
            sockname=tuple(destination[:2]) if destination else None,
            state=ConnectionState.OPEN,
            proxy_mode=self.mode,
            transport_protocol=TransportProtocol.UDP if udp else TransportProtocol.TCP,
        )
        handler_cls = UdpConnectionHandler if udp else _server.ConnectionHandler
        handler = handler_cls(self.master, client, self.make_layer)
        if destination:
            handler.context.server.address = tuple(destination[:2])
        handler.context.server.transport_protocol = client.transport_protocol  # UDP stays UDP
        protocol = _server._ConnectionProtocol(None, None)
        protocol.adopt = handler.adopt_client
        transport = _StreamTransport(stream, protocol, udp)
        self._readers.add(transport.reader)
        transport.reader.add_done_callback(self._readers.discard)
        protocol.connection_made(transport)
        task = asyncio.current_task()
        assert task is not None
        self.handlers[task] = handler
        try:
            await handler.run()
        except Exception:
            logger.exception("internal error", extra={"client": client.peername})
        finally:
            self.handlers.pop(task, None)


class WireGuardListener(RustListener):
    """``wireguard[:conf_path]``: a WireGuard server; the keys live in a JSON file
    (``confdir/wireguard.conf`` unless the spec names one), made on first start."""

    server_key: str = ""
    client_key: str = ""
    # Awaiting the WireGuard server's wait_closed() made the process crash (SIGSEGV) at exit
    # now and then with mitmproxy-rs 0.10 (2 of 8 runs here); mitmproxy does not await it either.
    wait_closed = False

    async def start(self, host: str, port: int) -> None:
        rs = load_rs()
        self._load_keys(rs)
        if port == 0:
            port = _free_udp_port(host)
        if host:
            servers = [await self._start_one(rs, host, port)]
        else:  # all interfaces: IPv4, and IPv6 on the same port if this machine has it
            servers = [await self._start_one(rs, "0.0.0.0", port)]
            try:
                servers.append(await self._start_one(rs, "::", servers[0].getsockname()[1]))
            except Exception as e:
                logger.debug(f"WireGuard server: no IPv6 ({e}); IPv4 only")
        self._server = _Servers(servers)
        logger.info("-" * 60 + "\n" + (self.client_conf() or "") + "\n" + "-" * 60)

    async def _start_one(self, rs: Any, host: str, port: int) -> Any:
        return await rs.wireguard.start_wireguard_server(
            host, port, self.server_key, [rs.wireguard.pubkey(self.client_key)],
            self.handle_stream, self.handle_stream,
        )

    def conf_path(self) -> Path:
        if self.mode.data:
            return Path(self.mode.data).expanduser()
        from proxycore import ctx

        return Path(ctx.options.confdir).expanduser() / "wireguard.conf"

    def _load_keys(self, rs: Any) -> None:
        path = self.conf_path()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            keys = {"server_key": rs.wireguard.genkey(), "client_key": rs.wireguard.genkey()}
            # Private keys: readable by the owner only, created so (never briefly world-readable).
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(keys, indent=4))
        try:
            conf = json.loads(path.read_text())
            self.server_key, self.client_key = conf["server_key"], conf["client_key"]
            rs.wireguard.pubkey(self.server_key)  # a bad key fails here, not in the tunnel
            rs.wireguard.pubkey(self.client_key)
        except Exception as e:
            raise ValueError(f"Invalid configuration file ({path}): {e}") from None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        if self._server is None:
            return []
        return [tuple(s.getsockname()[:2]) for s in self._server.servers]

    def client_conf(self) -> str | None:
        """The configuration a WireGuard client imports (mitmweb shows it with a QR code)."""
        if self._server is None:
            return None
        import mitmproxy_rs

        from proxycore import ctx

        host = self.mode.listen_host(ctx.options.listen_host) or _local_ip()
        port = self.addresses[0][1]
        if ":" in host:
            host = f"[{host}]"
        server_public = mitmproxy_rs.wireguard.pubkey(self.server_key)
        return (
            "[Interface]\n"
            f"PrivateKey = {self.client_key}\n"
            "Address = 10.0.0.1/32\n"
            "DNS = 10.0.0.53\n"
            "\n"
            "[Peer]\n"
            f"PublicKey = {server_public}\n"
            "AllowedIPs = 0.0.0.0/0\n"
            f"Endpoint = {host}:{port}"
        )

    def to_json(self) -> dict[str, Any]:
        return {"wireguard_conf": self.client_conf(), **super().to_json()}


class TunListener(RustListener):
    """``tun[:name]``: a TUN interface (Linux, needs CAP_NET_ADMIN); what the OS routes
    into it is proxied."""

    async def start(self, host: str, port: int) -> None:
        rs = load_rs()
        reason = _unavailable(rs.tun.TunInterface)
        if reason:
            raise RuntimeError(reason)
        self._server = await rs.tun.create_tun_interface(
            self.handle_stream, self.handle_stream, tun_name=self.mode.data or None
        )
        logger.info(f"TUN interface created: {self._server.tun_name()}")

    @property
    def tun_name(self) -> str | None:
        return self._server.tun_name() if self._server is not None else None

    def to_json(self) -> dict[str, Any]:
        return {"tun_name": self.tun_name, **super().to_json()}


class LocalListener(RustListener):
    """``local[:spec]``: mitmproxy-rs's OS redirector for this machine's own processes
    (Windows, macOS, and Linux with mitmproxy-rs 0.11 or later); our own process is
    always excluded so that our connections to servers are not captured again."""

    async def start(self, host: str, port: int) -> None:
        rs = load_rs()
        reason = local_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        spec = f"{self.mode.data},!{os.getpid()}" if self.mode.data else f"!{os.getpid()}"
        self._server = await rs.local.start_local_redirector(self.handle_stream, self.handle_stream)
        self._server.set_intercept(spec)


def local_unavailable_reason() -> str | None:
    """Why local capture cannot run here (None if it can): mitmproxy-rs's own answer
    where it gives one, else the platforms its redirector exists for."""
    try:
        import mitmproxy_rs
    except ImportError:
        return "Local capture mode needs the mitmproxy-rs package (see docs/modes.md)."
    reason = _unavailable(mitmproxy_rs.local.LocalRedirector)
    if reason is None and not hasattr(mitmproxy_rs.local.LocalRedirector, "unavailable_reason"):
        if sys.platform not in ("win32", "darwin"):
            # mitmproxy-rs before 0.11 has no Linux redirector (mitmproxy-linux came with 0.11).
            return "OS proxy mode is only available on Windows and macOS"  # mitmproxy-rs 0.10's words
    if reason is None and sys.platform.startswith("linux"):
        reason = _linux_redirector_problem()
    return reason


def _linux_redirector_problem() -> str | None:
    """What stops mitmproxy-rs's Linux redirector that it does not check before starting: it
    is started through sudo, and it attaches its eBPF program to the cgroup v2 root it
    expects at /sys/fs/cgroup (without these it logs an error and captures nothing)."""
    if shutil.which("sudo") is None:
        return "Local capture on Linux starts mitmproxy-rs's redirector through sudo, which is not installed."
    if _mount_type("/sys/fs/cgroup") != "cgroup2":
        return (
            "Local capture on Linux needs the cgroup v2 hierarchy mounted at /sys/fs/cgroup (mitmproxy-rs's "
            "redirector attaches its eBPF program there), and this system has cgroup v1 there "
            "(see docs/modes.md, \"local\")."
        )
    return None


def _mount_type(path: str) -> str | None:
    """The file system type mounted at ``path`` (the last mount there wins), from /proc/self/mounts."""
    found = None
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[1] == path:
                    found = fields[2]
    except OSError:
        return None
    return found


def active_executables() -> list[dict[str, Any]]:
    """The programs the local mode's Capture tab offers, as mitmweb's ``/processes`` lists
    them; empty where mitmproxy-rs cannot list processes (0.10, which Python 3.11 gets,
    lists them on Windows and macOS only) or is not installed."""
    try:
        from mitmproxy_rs import process_info

        processes = process_info.active_executables()
    except (ImportError, NotImplementedError):
        return []
    return [
        {
            "is_visible": p.is_visible,
            "executable": str(p.executable),
            "is_system": p.is_system,
            "display_name": p.display_name,
        }
        for p in processes
    ]


def executable_icon(path: str) -> bytes | None:
    """The program's icon as PNG, or None where mitmproxy-rs has none (Linux, a bad path)."""
    try:
        from mitmproxy_rs import process_info

        icon: bytes = process_info.executable_icon(path)
    except Exception:  # mitmproxy-rs raises NotImplementedError, OSError or its own errors
        return None
    return icon


def _extra(stream: Any, name: str) -> Any:
    """``stream.get_extra_info(name)`` or None: some mitmproxy-rs versions raise KeyError
    for a name they do not know even when given a default."""
    try:
        return stream.get_extra_info(name, None)
    except Exception:
        return None


def _unavailable(cls: Any) -> str | None:
    check = getattr(cls, "unavailable_reason", None)
    return check() if check is not None else None


class _Servers:
    """The WireGuard servers of one listener (IPv4 and IPv6) closed as one."""

    def __init__(self, servers: list[Any]) -> None:
        self.servers = servers

    def close(self) -> None:
        for s in self.servers:
            s.close()

    async def wait_closed(self) -> None:
        for s in self.servers:
            await s.wait_closed()


def _free_udp_port(host: str) -> int:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0))
        port: int = s.getsockname()[1]
        return port


def _local_ip() -> str:
    """The address other machines most likely reach us at (no packet is sent)."""
    import socket

    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))  # a UDP connect only picks a route
                address: str = s.getsockname()[0]
                return address
        except OSError:
            continue
    return "127.0.0.1"


LISTENERS: dict[type[ProxyMode], type[RustListener]] = {
    WireGuardMode: WireGuardListener,
    TunMode: TunListener,
    LocalMode: LocalListener,
}
