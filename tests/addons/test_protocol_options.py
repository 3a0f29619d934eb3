"""Options and commands mitmweb 12.3.1 has that proxycore gained with the UDP/DNS work:
block_list, keep_alt_svc_header, strip_ech, normalize_outbound_headers, connect_addr,
the TLS version/curve/client-certificate options, cert_passphrase, view.focus.* and
view.settings.*; and the comparison of our option, command and view names with mitmweb's."""

from __future__ import annotations

import io
import json
import socket
import ssl
import threading
from pathlib import Path

import pytest
from OpenSSL import SSL

from proxycore.addons.blocklist import BlockList, parse_spec
from proxycore.addons.strip_dns_https_records import StripDnsHttpsRecords
from proxycore.addons.tlsconfig import TlsConfig, ecdh_curve
from proxycore.addons.update_alt_svc import UpdateAltSvc, update_alt_svc_header
from proxycore.addons.view import View
from proxycore.dns import ResourceRecord
from proxycore.exceptions import OptionsError
from proxycore.http import Headers, Response
from proxycore.net.dns import https_records
from proxycore.test import tflow as mtflow
from tests.addon_utils import load, tflow, tresponse

CATALOGUE = json.loads((Path(__file__).parents[1] / "data" / "mitmweb-12.3.1-catalogue.json").read_text())

# block_list ---------------------------------------------------------------------------


def test_block_list_answers_kills_and_marks() -> None:
    addon = BlockList()
    load(addon, block_list=["/~d blocked.example/403", ":~u /drop:444"])
    blocked = tflow("http://blocked.example/x")
    addon.request(blocked)
    assert blocked.response.status_code == 403 and blocked.metadata["blocklisted"] is True
    assert blocked.response.content == b""
    dropped = tflow("http://other.example/drop")
    addon.request(dropped)
    assert dropped.response is None and dropped.error.msg == "Connection killed." and not dropped.live
    fine = tflow("http://other.example/ok")
    addon.request(fine)
    assert fine.response is None and "blocklisted" not in fine.metadata


@pytest.mark.parametrize("spec, message", [
    ("/~d x", "Invalid number of parameters"),
    ("/~d x/abc", "Invalid HTTP status code: abc"),
    ("/~d x/42", "Invalid HTTP status code: 42"),
    ("/~d (/404", "Invalid filter"),
])
def test_block_list_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(OptionsError, match=message):
        load(BlockList(), block_list=[spec])
    assert parse_spec("|~m POST|404").status_code == 404


# keep_alt_svc_header ----------------------------------------------------------------------


def test_alt_svc_points_at_the_reverse_proxy_unless_kept() -> None:
    addon = UpdateAltSvc()
    master = load(addon)
    flow = tflow("https://example.com/", mode="reverse:https://example.com")
    flow.client_conn.sockname = ("127.0.0.1", 8443)
    flow.response = tresponse(headers=(("Alt-Svc", 'h2="example.com:443"; ma=60, h3=":443"'),))
    addon.responseheaders(flow)
    assert flow.response.headers["alt-svc"] == 'h2=":8443"; ma=60, h3=":8443"'
    master.options.update(keep_alt_svc_header=True)
    flow.response.headers["alt-svc"] = 'h2="example.com:443"'
    addon.responseheaders(flow)
    assert flow.response.headers["alt-svc"] == 'h2="example.com:443"'
    regular = tflow("https://example.com/")
    regular.response = tresponse(headers=(("Alt-Svc", 'h2="example.com:443"'),))
    master.options.update(keep_alt_svc_header=False)
    addon.responseheaders(regular)
    assert regular.response.headers["alt-svc"] == 'h2="example.com:443"'  # only reverse mode
    assert update_alt_svc_header('h3="a.b:1"', 2) == 'h3=":2"'


# strip_ech ------------------------------------------------------------------------------------


def test_strip_ech_and_h3_from_https_records() -> None:
    addon = StripDnsHttpsRecords()
    master = load(addon)
    record = https_records.HTTPSRecord(1, "svc.example", {1: b"\x02h3\x02h2", 5: b"\x00\x01\x02"})
    flow = mtflow.tdnsflow(resp=True)
    flow.response.answers.append(ResourceRecord.HTTPS("example.com", record))
    addon.dns_response(flow)
    answer = flow.response.answers[-1]
    assert answer.https_ech is None and answer.https_alpn == (b"h2",)
    master.options.update(strip_ech=False)
    flow.response.answers[-1] = ResourceRecord.HTTPS("example.com", record)
    addon.dns_response(flow)
    assert flow.response.answers[-1].https_ech == "AAEC"
    flow.response.answers.append(ResourceRecord("x", 65, 1, 5, b"\x00"))  # malformed: passed on
    addon.dns_response(flow)


# normalize_outbound_headers ---------------------------------------------------------------------


def test_http2_outbound_header_names() -> None:
    from proxycore.layers.http._http2 import _outbound_fields
    from proxycore.options import Options

    response = Response.make(200, b"", Headers([(b"X-Upper", b"1"), (b"connection", b"close"), (b"ok", b"2")]))
    response.headers = Headers([(b"X-Upper", b"1"), (b"connection", b"close"), (b"ok", b"2")])
    response.http_version = "HTTP/2.0"
    options = Options()
    fields, lowered = _outbound_fields(response, options)
    assert fields == [(b"x-upper", b"1"), (b"ok", b"2")] and lowered == [b"X-Upper"]
    options.update(normalize_outbound_headers=False)
    fields, lowered = _outbound_fields(response, options)
    assert fields == [(b"X-Upper", b"1"), (b"connection", b"close"), (b"ok", b"2")] and lowered == []
    response.http_version = "HTTP/1.1"  # from HTTP/1: always translated, nothing to warn about
    assert _outbound_fields(response, options) == ([(b"x-upper", b"1"), (b"ok", b"2")], [])


# connect_addr ------------------------------------------------------------------------------------


def test_connect_addr_must_be_an_ip() -> None:
    from proxycore.addons.proxyserver import Proxyserver

    with pytest.raises(OptionsError, match="connect_addr"):
        load(Proxyserver(), connect_addr="not-an-ip")
    load(Proxyserver(), connect_addr="127.0.0.2")


@pytest.mark.e2e
def test_connect_addr_is_the_source_of_upstream_connections(tmp_path) -> None:
    from tests.processes import Proxy

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    seen: list[str] = []

    def serve() -> None:
        conn, peer = listener.accept()
        seen.append(peer[0])
        with conn:
            conn.recv(65535)
            conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    proxy = Proxy(["--set", "connect_addr=127.0.0.2"], tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert s.recv(65535).startswith(b"HTTP/1.1 204")
    finally:
        assert proxy.stop() == 0
        listener.close()
    thread.join(5)
    assert seen == ["127.0.0.2"]


# TLS options ---------------------------------------------------------------------------------------


def tls_addon(tmp_path: Path, **options: object) -> tuple[TlsConfig, object]:
    addon = TlsConfig()
    master = load(addon, confdir=str(tmp_path), **options)
    return addon, master


def test_tls_version_max_and_curve_reach_the_contexts(tmp_path: Path) -> None:
    addon, _ = tls_addon(tmp_path, tls_version_client_max="TLS1_2", tls_ecdh_curve_client="prime256v1")
    entry = addon.certstore.get_cert("example.com", ["example.com"], None)
    context = addon._client_context(entry, ())
    server = SSL.Connection(context)
    server.set_accept_state()
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname, client_ctx.verify_mode = False, ssl.CERT_NONE
    version = _handshake(server, client_ctx)
    assert version == "TLSv1.2"


def _handshake(server: SSL.Connection, client_ctx: ssl.SSLContext) -> str:
    """Run a memory-BIO handshake between a pyOpenSSL server and a stdlib client."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(incoming, outgoing, server_hostname="example.com")
    client_done = False
    for _ in range(20):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        data = outgoing.read()
        if data:
            server.bio_write(data)
        try:
            server.do_handshake()
            if client_done:
                break
        except SSL.WantReadError:
            pass
        try:
            incoming.write(server.bio_read(65536))
        except SSL.WantReadError:
            pass
    return client.version()


def test_request_client_cert_accepts_any_certificate(tmp_path: Path) -> None:
    addon, _ = tls_addon(tmp_path, request_client_cert=True)
    entry = addon.certstore.get_cert("example.com", ["example.com"], None)
    server = SSL.Connection(addon._client_context(entry, ()))
    server.set_accept_state()
    # the client presents a certificate made by another CA (our own store in another dir)
    other, _ = tls_addon(tmp_path / "other")
    client_entry = other.certstore.get_cert("client.example", ["client.example"], None)
    pem = tmp_path / "client.pem"
    from cryptography.hazmat.primitives import serialization

    pem.write_bytes(client_entry.cert.to_pem() + client_entry.privatekey.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname, client_ctx.verify_mode = False, ssl.CERT_NONE
    client_ctx.load_cert_chain(pem)
    assert _handshake(server, client_ctx)
    leaf = server.get_peer_certificate()
    assert leaf is not None and "client.example" in leaf.to_cryptography().subject.rfc4514_string()


def test_bad_curve_and_passphrase(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown elliptic curve"):
        ecdh_curve("nope")
    with pytest.raises(OptionsError, match="tls_ecdh_curve_server"):
        tls_addon(tmp_path, tls_ecdh_curve_server="nope")
    # an encrypted key in --certs needs cert_passphrase
    from cryptography.hazmat.primitives import serialization

    store_addon, _ = tls_addon(tmp_path / "src")
    entry = store_addon.certstore.get_cert("secret.example", ["secret.example"], None)
    encrypted = entry.privatekey.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    path = tmp_path / "secret.pem"
    path.write_bytes(entry.cert.to_pem() + encrypted)
    with pytest.raises(OptionsError, match="Invalid certificate file"):
        tls_addon(tmp_path / "a", certs=[f"secret.example={path}"])
    addon, _ = tls_addon(tmp_path / "b", certs=[f"secret.example={path}"], cert_passphrase="pw")
    assert "secret.example" in addon.certstore.custom


# view.focus.* / view.settings.* ----------------------------------------------------------------------


def test_view_focus_and_settings() -> None:
    view = View()
    master = load(view)
    flows = [tflow(f"http://example.com/{i}") for i in range(3)]
    view.add(flows)
    assert view.focus.flow is flows[0]
    view.focus_next()
    assert view.focus.flow is flows[1] and view.resolve("@focus") == [flows[1]]
    view.go(-1)
    assert view.focus.flow is flows[2]
    view.focus_next()
    assert view.focus.flow is flows[2]
    view.go(99)
    view.focus_prev()
    assert view.focus.flow is flows[1]
    view.remove([flows[1]])
    assert view.focus.flow is flows[2]
    master.options.update(console_focus_follow=True)
    newest = tflow("http://example.com/new")
    view.add([newest])
    assert view.focus.flow is newest

    assert view.getvalue(flows[0], "k", "dflt") == "dflt"
    view.setvalue([flows[0]], "k", "v")
    assert view.getvalue(flows[0], "k", "x") == "v"
    view.setvalue_toggle([flows[0]], "t")
    assert view.getvalue(flows[0], "t", "") == "true"
    view.setvalue_toggle([flows[0]], "t")
    assert view.getvalue(flows[0], "t", "") == "false"
    view.remove([flows[0]])
    assert flows[0] not in view.settings


# names against mitmweb 12.3.1 -----------------------------------------------------------------------

# Options proxycore does not have, each for a reason:
MISSING_OPTIONS = {
    "emudhra": "signing with a leaked third-party CA key is not something proxycore ships",
    "emudhra_old": "as emudhra",
    "web_static_viewer": "the static viewer export is not implemented",
}
# Options proxycore adds (limits and hardening; web API extras).
EXTRA_OPTIONS = {
    "body_buffer_limit", "http2_connection_window", "http2_max_concurrent_streams", "http2_max_header_list_size",
    "http2_max_resets", "http2_reset_window", "http2_stream_window", "keepalive_timeout", "keepserving",
    "max_connections", "request_head_timeout", "websocket_message_size_limit", "client_replay_timing",
    "server_replay_timing",
    "web_allowed_hosts", "web_fetch_frontend", "web_filter_time_budget", "web_max_body_size", "web_static",
    "web_updates_max_queue", "web_updates_max_queue_bytes", "head_size_limit", "workers",
    "store", "store_instance", "store_keep", "store_max_age", "store_max_bytes", "store_max_flows",
    "store_memory",
}
EXTRA_OPTIONS |= {"store_scope"}  # the flow store's fleet scope (issue 16)
# proxycore's own commands (the flow store's), not in mitmweb's list.
EXTRA_COMMANDS = {"store.export", "store.import", "store.stats", "store.vacuum"}


def proxyweb_master() -> object:
    from proxycore.addons.termlog import TermLog
    from proxycore.options import Options
    from proxycore.tools import web
    from proxycore.tools.errorcheck import StartupErrorCheck

    return web.make_master(Options(), TermLog(io.StringIO()), StartupErrorCheck())


def test_option_and_command_names_equal_mitmweb() -> None:
    master = proxyweb_master()
    ours = set(master.options.keys())
    theirs = set(CATALOGUE["options"])
    assert sorted(theirs - ours) == sorted(MISSING_OPTIONS)
    extra = ours - theirs
    assert extra <= EXTRA_OPTIONS, sorted(extra - EXTRA_OPTIONS)
    assert sorted(set(CATALOGUE["commands"]) - set(master.commands.commands)) == []
    assert set(master.commands.commands) - set(CATALOGUE["commands"]) == EXTRA_COMMANDS


def test_shared_options_have_mitmweb_types_defaults_and_choices() -> None:
    from proxycore.api.serialize import options_to_json

    ours = options_to_json(proxyweb_master().options)
    different = {}
    for name, theirs in CATALOGUE["options"].items():
        if name not in ours:
            continue
        mine = {k: ours[name][k] for k in ("type", "default", "choices")}
        if mine != theirs:
            different[name] = (mine, theirs)
    # confdir's default names our own directory; the web port/host defaults are the same
    assert set(different) <= {"confdir", "dumper_default_contentview"}, different


def test_content_view_names_equal_mitmweb_but_for_documented_ones() -> None:

    from tests.contentviews.test_protocol_views import builtin_view_names

    assert builtin_view_names() <= set(CATALOGUE["contentViews"])




def test_new_addons_cost_nothing_per_request_unless_configured() -> None:
    from proxycore.addons import default_addons
    from proxycore.master import Master
    from proxycore.options import Options

    master = Master(Options())
    master.addons.add(*default_addons())

    def handling(hook: str) -> list[str]:
        return [type(a).__name__ for a, _ in master.addons.handlers(hook)]

    for hook in ("requestheaders", "responseheaders", "response", "tcp_message", "udp_message"):
        assert handling(hook) == [], hook
    # The onboarding app's request hook is gated by host: no hook task for other requests.
    assert handling("request") == ["Onboarding"]
    from proxycore.connection import Client
    from proxycore.layers.http._hooks import HttpRequestHook
    from proxycore.proxy.server import ConnectionHandler

    handler = ConnectionHandler(master, Client(peername=("127.0.0.1", 1)), lambda context: None)  # type: ignore[arg-type,return-value]
    assert handler._hook_is_trivial(HttpRequestHook(tflow("http://example.com/")))
    assert not handler._hook_is_trivial(HttpRequestHook(tflow("http://mitm.it/")))
    master.options.update(block_list=["/~d x/404"], mode=["reverse:http://127.0.0.1:1"])
    assert handling("request") == ["BlockList", "Onboarding"] and handling("responseheaders") == ["UpdateAltSvc"]
    assert not handler._hook_is_trivial(HttpRequestHook(tflow("http://example.com/")))
    master.options.update(keep_alt_svc_header=True, block_list=[], onboarding=False)
    assert handling("request") == [] and handling("responseheaders") == []


@pytest.mark.parametrize(
    "url, host_header, wanted",
    [
        ("http://mitm.it/", None, True),  # no Host header: the URL's host
        ("http://example.com/", "mitm.it", True),  # the Host header decides (pretty_host)
        ("http://example.com/", "mitm.it:8080", True),
        ("http://mitm.it/", "example.com", False),
        ("http://example.com/", "mitm.it.example.com", False),  # contains the host, is not it
        ("http://example.com/", "mitm.it:1:2", False),  # two colons: pretty_host is all of it
        ("http://example.com/", "[mitm.it]:80", True),
        ("http://example.com/", "", False),  # an empty Host header: the URL's host
    ],
)
def test_onboarding_gate_is_pretty_host_equality(url: str, host_header: str | None, wanted: bool) -> None:
    """The request hook's gate (asked for every request) says what ``pretty_host ==
    onboarding_host`` says, whatever shortcut it takes."""
    from addons.onboarding import Onboarding

    onboarding = Onboarding()
    load(onboarding)
    flow = tflow(url)
    flow.request.headers.pop("host", None)
    if host_header is not None:
        flow.request.headers["Host"] = host_header
    assert onboarding._wants(flow) is (flow.request.pretty_host == "mitm.it") is wanted


@pytest.mark.parametrize("onboarding_host", ["mitm.it", "m", "[::1]", "h\u00e9te.example", "\udcff", ""])
@pytest.mark.parametrize(
    "host_fields",
    [
        [],
        [""],
        ["mitm.it"],
        ["mitm.it:8080"],
        ["mx.example"],  # the same first byte: decided by the full test
        ["example.com"],  # another first byte: ruled out by the quick test
        ["[mitm.it]:80"],
        ["[::1]"],
        ["[::1]:8080"],
        ["m"],
        ["h\u00e9te.example:1"],
        ["\udcff"],  # a byte that is no UTF-8 (surrogateescape)
        ["example.com", "mitm.it"],  # two Host fields: the joined text decides
        ["mitm.it", "example.com"],
    ],
)
@pytest.mark.parametrize("http_version", ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0"])
def test_onboarding_gate_quick_test_agrees_with_pretty_host(
    onboarding_host: str, host_fields: list[str], http_version: str
) -> None:
    """The gate's quick test by the Host field's first byte (HTTP/1, one field) rules out
    only requests whose ``pretty_host`` is not the onboarding host, whatever that host is."""
    from addons.onboarding import Onboarding

    onboarding = Onboarding()
    load(onboarding)
    onboarding.host = onboarding_host
    flow = tflow("http://example.org/")
    flow.request.http_version = http_version
    flow.request.headers = Headers(
        [(b"Host", value.encode("utf-8", "surrogateescape")) for value in host_fields]
    )
    assert onboarding._wants(flow) is (flow.request.pretty_host == onboarding_host)


@pytest.mark.e2e
def test_onboarding_app_serves_the_ca_certificate(tmp_path) -> None:
    import subprocess

    from tests.processes import Proxy

    proxy = Proxy([], tmp_path)
    try:
        def curl(url: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(["curl", "-sS", "-i", "-x", proxy.url, url], capture_output=True, timeout=30)

        page = curl("http://mitm.it/").stdout
        assert page.startswith(b"HTTP/1.1 200") and b'href="/cert/pem"' in page
        pem = curl("http://mitm.it/cert/pem").stdout
        head, _, body = pem.partition(b"\r\n\r\n")
        assert b"attachment; filename=proxycore-ca-cert.pem" in head
        assert body == (Path(proxy.confdir) / "proxycore-ca-cert.pem").read_bytes()
        assert curl("http://mitm.it/nope").stdout.startswith(b"HTTP/1.1 404")
    finally:
        assert proxy.stop() == 0
