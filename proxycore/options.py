"""The engine's own options, with mitmproxy's names, types and defaults."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from proxycore.exceptions import OptionsError
from proxycore.optmanager import PORT, OptManager, in_range

LOG_VERBOSITY = ["error", "warn", "info", "alert", "debug"]


@functools.lru_cache(maxsize=32)
def parse_size(value: str | None) -> int | None:
    """'10' → 10, '3k' → 3072, '5m', '1g'; None stays None.  Cached: the HTTP layers ask
    for body_size_limit, stream_large_bodies and body_buffer_limit on every body chunk."""
    if value is None or value == "":
        return None
    text = value.strip().lower()
    factor = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1:], 1)
    number = text[:-1] if factor != 1 else text
    if not number.isdigit():
        raise OptionsError(f"Invalid size specification: {value!r} (examples: 100, 3k, 5m, 1g)")
    return int(number) * factor


def _check_workers(value: str) -> None:
    if value != "auto" and not (value.isdigit() and int(value) >= 1):
        raise ValueError("a number of processes (1 or more) or auto")


class Options(OptManager):
    """All options the core engine reads; addons declare theirs in ``load``."""

    # The types of the options declared below, for mypy: reading one goes through
    # OptManager.__getattr__ (no class attributes are made); tests/repo/test_typing_policy.py
    # keeps this list equal to the declarations. Addon options read as Any.
    server: bool
    mode: Sequence[str]
    listen_host: str
    listen_port: int | None
    connection_strategy: str
    ignore_hosts: Sequence[str]
    allow_hosts: Sequence[str]
    tcp_hosts: Sequence[str]
    udp_hosts: Sequence[str]
    show_ignored_hosts: bool
    confdir: str
    ssl_insecure: bool
    upstream_cert: bool
    key_size: int
    certs: Sequence[str]
    http2_max_concurrent_streams: int
    http2_max_header_list_size: int
    http2_stream_window: int
    http2_connection_window: int
    http2_max_resets: int
    http2_reset_window: int
    http2: bool
    http2_ping_keepalive: int
    websocket: bool
    websocket_message_size_limit: str | None
    rawtcp: bool
    tcp_timeout: int
    request_head_timeout: int
    max_connections: int
    keepalive_timeout: int
    stream_large_bodies: str | None
    body_size_limit: str | None
    body_buffer_limit: str | None
    store_streamed_bodies: bool
    keep_host_header: bool
    validate_inbound_headers: bool
    showhost: bool
    anticache: bool
    anticomp: bool
    proxyauth: str | None
    upstream_auth: str | None
    scripts: Sequence[str]
    rfile: str | None
    save_stream_file: str | None
    intercept: str | None
    keepserving: bool
    proxy_debug: bool
    content_view_lines_cutoff: int
    server_replay: Sequence[str]
    client_replay: Sequence[str]
    readfile_filter: str | None
    save_stream_filter: str | None
    http_connect_send_host_header: bool
    head_size_limit: str | None
    workers: str
    normalize_outbound_headers: bool
    connect_addr: str | None
    client_certs: str | None
    add_upstream_certs_to_client_chain: bool
    http3: bool
    protobuf_definitions: str | None

    def __init__(self, **kwargs: object) -> None:
        super().__init__()
        add = self.add_option
        add("server", bool, True, "Start a proxy server. Enabled by default.")
        add("mode", Sequence[str], ["regular"],
            "The proxy server type(s) to spawn, as mode[:data][@[host:]port], e.g. regular@8081.")
        add("listen_host", str, "", "Address to bind proxy server(s) to (may be overridden per mode).")
        add("listen_port", int | None, None,
            "Port to bind proxy server(s) to (may be overridden per mode). "
            "By default, the port is mode-specific (8080 for regular).", check=PORT)
        add("connection_strategy", str, "eager",
            "Whether to connect to upstream servers as soon as possible (eager) "
            "or only when required (lazy).", choices=("eager", "lazy"))
        add("ignore_hosts", Sequence[str], [],
            "Ignore host and forward all traffic without processing it (regex on host:port).")
        add("allow_hosts", Sequence[str], [], "Opposite of ignore_hosts: only intercept matching hosts.")
        add("tcp_hosts", Sequence[str], [], "Generic TCP SSL proxy mode for matching hosts (regex).")
        add("udp_hosts", Sequence[str], [],
            "Relay UDP to matching hosts (regex) as plain UDP flows, without detecting the protocol.")
        add("show_ignored_hosts", bool, False,
            "Record flows of ignored hosts (ignore_hosts/allow_hosts) too: their bytes are relayed "
            "untouched but kept in memory as TCP/UDP flows.")
        add("confdir", str, "~/.proxycore", "Location of the default proxycore configuration files.")
        add("ssl_insecure", bool, False, "Do not verify upstream server SSL/TLS certificates.")
        add("upstream_cert", bool, True, "Connect to upstream server to look up certificate details.")
        add("key_size", int, 2048, "TLS key size for certificates and CA.")
        add("certs", Sequence[str], [], "SSL certificates of the form \"[domain=]path\".")
        add("http2_max_concurrent_streams", int, 100,
            "HTTP/2 streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); "
            "streams beyond it are refused with RST_STREAM(REFUSED_STREAM).",
            check=in_range(1, 2**31 - 1))
        add("http2_max_header_list_size", int, 65536,
            "Largest HTTP/2 header list accepted, in bytes (SETTINGS_MAX_HEADER_LIST_SIZE).",
            check=in_range(1024))
        add("http2_stream_window", int, 2**20,
            "HTTP/2 flow-control window per stream, in bytes: how much of a body a peer may send "
            "before the proxy has passed it on.",
            check=in_range(1024, 2**31 - 1))
        add("http2_connection_window", int, 2**24,
            "HTTP/2 flow-control window of a whole connection, in bytes (all its streams together).",
            check=in_range(65535, 2**31 - 1))
        add("http2_max_resets", int, 200,
            "Close an HTTP/2 client connection with GOAWAY(ENHANCE_YOUR_CALM) once the client has "
            "reset more than this many streams within http2_reset_window seconds (0 = no limit).",
            check=in_range(0))
        add("http2_reset_window", int, 30, "The sliding window of http2_max_resets, in seconds.",
            check=in_range(1))
        add("http2", bool, True, "Enable/disable HTTP/2 support.")
        add("http2_ping_keepalive", int, 58, "Send a PING frame on idle HTTP/2 connections (seconds, 0 = off).",
            check=in_range(0))
        add("http3", bool, True, "Enable/disable support for QUIC and HTTP/3. Enabled by default; when off, "
            "QUIC handshakes are swallowed (clients fall back to TCP) and reverse:https:// binds no UDP port.")
        add("websocket", bool, True, "Enable/disable WebSocket support.")
        add("websocket_message_size_limit", str | None, "32m",
            "Close a WebSocket (code 1009 to both sides) when a message exceeds this size "
            "(e.g. 3m; empty or 0 = no limit; proxycore only).")
        add("rawtcp", bool, True, "Enable/disable raw TCP connections.")
        add("tcp_timeout", int, 600, "Close idle TCP connections after this many seconds.", check=in_range(0))
        add("request_head_timeout", int, 30,
            "Seconds a client has to send a complete HTTP/1 request head (or HTTP/2 header "
            "block), from connecting or from its first byte (0 = no limit; proxycore only).",
            check=in_range(0))
        add("max_connections", int, 10000,
            "Most client connections open at once; beyond it new ones wait to be accepted. "
            "Also kept below half the file-descriptor limit (0 = only that; proxycore only).",
            check=in_range(0))
        add("keepalive_timeout", int, 120,
            "Close an HTTP/1 or HTTP/2 client connection idle between requests after this many "
            "seconds (0 = only tcp_timeout; proxycore only).",
            check=in_range(0))
        add("stream_large_bodies", str | None, None,
            "Stream data to the client if the body exceeds this size (e.g. 3m, 1k).")
        add("body_size_limit", str | None, None, "Byte size limit of HTTP request and response bodies.")
        add("body_buffer_limit", str | None, "32m",
            "Stream (rather than hold in memory) HTTP bodies larger than this, whatever "
            "stream_large_bodies says; empty or 0 turns the cap off (proxycore only).")
        add("store_streamed_bodies", bool, False, "Store HTTP request and response bodies when streamed.")
        add("keep_host_header", bool, False, "Reverse proxy: keep the original Host header.")
        add("validate_inbound_headers", bool, True, "Make sure that incoming HTTP requests are not malformed.")
        add("showhost", bool, False, "Use the Host header to construct URLs for display.")
        add("anticache", bool, False, "Strip out request headers that might cause the server to return 304.")
        add("anticomp", bool, False, "Try to convince servers to send us un-compressed data.")
        add("proxyauth", str | None, None, "Require proxy authentication (user:pass, any, @htpasswd).")
        add("upstream_auth", str | None, None, "Add HTTP Basic auth to upstream proxy requests (user:pass).")
        add("scripts", Sequence[str], [], "Execute a script.")
        add("rfile", str | None, None, "Read flows from file.")
        add("save_stream_file", str | None, None, "Stream flows to file as they arrive (prefix + to append).")
        add("intercept", str | None, None, "Intercept filter expression.")
        add("keepserving", bool, False, "Continue serving after client playback, server playback or file read.")
        add("proxy_debug", bool, False, "Enable debug logs in the proxy core.")
        add("content_view_lines_cutoff", int, 512, "Flow content view lines limit.", check=in_range(0))
        add("server_replay", Sequence[str], [], "Replay server responses from a saved file.")
        add("client_replay", Sequence[str], [], "Replay client requests from a saved file.")
        add("readfile_filter", str | None, None, "Read only matching flows.")
        add("save_stream_filter", str | None, None, "Filter which flows are written to file.")
        add("http_connect_send_host_header", bool, True,
            "Include host header with CONNECT requests. Enabled by default.")
        add("head_size_limit", str | None, "64k",
            "Largest HTTP/1 message head: a larger request head gets 431, a larger response "
            "head 502; also how much pipelined data is buffered (0 = no limit; proxycore only).")
        add("workers", str, "1",
            "Worker processes that accept proxy connections on the same port and run the "
            "layers and addons; the primary keeps the flow view, -w and output. A number "
            "or auto (one per core); 1 = everything in this process (proxycore only).",
            check=_check_workers)
        add("normalize_outbound_headers", bool, True,
            "Lowercase header names of HTTP/2 messages before sending them (HTTP/2 forbids uppercase), "
            "with a warning; off sends them as they are.")
        add("connect_addr", str | None, None,
            "Local IP address to connect to upstream servers from (default: the OS chooses).")
        # Core options in mitmproxy (Core checks them), used by the TLS addon.
        add("client_certs", str | None, None,
            "Client certificate (PEM with key) or a directory of <host>.pem files, "
            "presented to upstream servers.")
        add("add_upstream_certs_to_client_chain", bool, False,
            "Add the upstream server's certificates to the chain we present to clients "
            "(needs upstream_cert).")
        add("protobuf_definitions", str | None, None,
            "Path to a .proto file that's used to resolve Protobuf field names when pretty-printing.")
        self.changed.append(self._check_sizes)
        if kwargs:
            self.update(**kwargs)

    def _check_sizes(self, updated: set[str]) -> None:
        for name in ("stream_large_bodies", "body_size_limit", "body_buffer_limit", "websocket_message_size_limit",
                     "head_size_limit"):
            if name in updated:
                parse_size(getattr(self, name))
