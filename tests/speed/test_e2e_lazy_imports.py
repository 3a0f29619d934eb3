"""Protocol and feature modules are imported when first needed, not at start (issue 15: idle
memory and start time): a proxydump that has answered plain HTTP/1 requests has not loaded
HTTP/2, HTTP/3/QUIC, WebSocket, DNS, RE2, the cookie jar, the content views, nor TLS
(pyOpenSSL, cryptography: ~11 MB), and the same process then intercepts TLS and speaks HTTP/2
once a client asks for it. A broken CA file is still refused at start."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from tests.e2e_servers import start_h2, start_http
from tests.processes import Proxy, seed_ca

pytestmark = pytest.mark.e2e

# Each costs memory (0.5-2.5 MB) or start time that a proxy without that protocol never uses.
LAZY = (
    "h2",
    "hpack",
    "hyperframe",
    "wsproto",
    "h11",
    "aioquic",
    "proxycore.layers.http._http2",
    "proxycore.layers.http._http3",
    "proxycore.layers.quic",
    "proxycore.layers.websocket",
    "proxycore.layers.playback",
    "proxycore.dns",
    "re2",
    "http.cookiejar",
    "proxycore.contentviews",
    "proxycore.io",  # flow files: read or written only with -r/-w/replay options or commands
    "brotli",  # Content-Encoding br and zstd: decoded or encoded on demand only
    "zstandard",
    # Standard library modules of features a plain proxy does not use (0.1-1.2 MB each):
    "importlib.abc",  # proxycore.compat's finder (its base classes pull importlib.resources)
    "uuid",  # client replay
    "email.utils",  # stickycookie
    "tempfile",  # the browser addon, worker start
    "_strptime",  # the CA check reads its dates by hand
    # TLS: the CA is checked at start without these and parsed at the first interception.
    "cryptography",
    "OpenSSL",
    "proxycore.certs",
    "proxycore.layers.tls",
    # Start time (tests/speed/test_start_imports.py): features no default start uses.
    "proxycore.flowfilter",
    "proxycore.store",
    "proxycore.layers.udp",
    "hashlib",
    "csv",
    "shlex",
    "mimetypes",
    "proxycore.proxy.server_udp",  # UDP listeners: UDP modes only
)

# Answers each response with the lazily imported modules loaded so far.
PROBE = f'''
import sys

LAZY = {LAZY!r}


def response(flow):
    flow.response.headers["x-loaded"] = ",".join(m for m in LAZY if m in sys.modules) or "-"
'''


def test_http1_proxy_loads_no_other_protocol_then_h2_on_demand(tmp_path) -> None:
    server, port = start_http()
    (tmp_path / "h2").mkdir()
    _loop, h2_port = start_h2(tmp_path / "h2")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    proxy = Proxy(["-q", "-k", "-s", str(probe)], tmp_path)
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy.url}))
        for _ in range(2):
            with opener.open(f"http://127.0.0.1:{port}/x", timeout=10) as response:
                assert response.status == 200
                assert response.headers["x-loaded"] == "-"
        # The first HTTP/2 client: h2 is imported then, and the exchange works.
        r = subprocess.run(
            ["curl", "-sS", "--max-time", "30", "--cacert", proxy.ca, "-x", proxy.url, "--http2",
             "--suppress-connect-headers", "-D", "-", f"https://localhost:{h2_port}/hello"],
            capture_output=True, timeout=60,
        )
        assert r.returncode == 0, r.stderr
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/2 200")
        loaded = [line for line in head.split(b"\r\n") if line.startswith(b"x-loaded:")]
        assert loaded
        names = loaded[0].partition(b":")[2].strip().decode().split(",")
        assert {"proxycore.layers.http._http2", "h2", "OpenSSL", "cryptography", "proxycore.certs"} <= set(names)
        assert json.loads(body)["protocol"] == "h2"
    finally:
        assert proxy.stop() == 0
        server.shutdown()
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


def test_a_broken_ca_file_stops_the_proxy_at_start(tmp_path) -> None:
    confdir = tmp_path / "conf"
    seed_ca(confdir)
    pem = (confdir / "proxycore-ca.pem").read_bytes()
    (confdir / "proxycore-ca.pem").write_bytes(pem[: len(pem) // 2])  # e.g. a disk that filled up
    r = subprocess.run(
        [sys.executable, "-m", "proxycore", "-q", "-p", "0", "--set", f"confdir={confdir}"],
        capture_output=True, timeout=30, text=True,
    )
    assert r.returncode != 0
    assert f"Cannot load or create the CA in {confdir}: proxycore-ca.pem: " in r.stderr
    assert "Traceback" not in r.stderr
