"""Mode specs (proxycore.proxy.mode_specs) and the Proxyserver addon that turns them into listeners."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.addons import default_addons
from proxycore.connection import Client
from proxycore.exceptions import OptionsError
from proxycore.master import Master
from proxycore.options import Options
from proxycore.proxy.mode_specs import (
    ProxyMode,
    RegularMode,
    ReverseMode,
    Socks5Mode,
    UpstreamMode,
    is_valid_host,
    parse_server_spec,
)
from tests.e2e_servers import free_port


@pytest.mark.parametrize(
    "spec, type_name, data, host, port, listen_port",
    [
        ("regular", "regular", "", None, None, 8080),
        ("regular@8081", "regular", "", None, 8081, 8081),
        ("Regular@127.0.0.1:8081", "regular", "", "127.0.0.1", 8081, 8081),
        ("transparent", "transparent", "", None, None, 8080),
        ("socks5", "socks5", "", None, None, 1080),
        ("socks5@[::1]:1081", "socks5", "", "[::1]", 1081, 1081),
        ("upstream:http://proxy:3128", "upstream", "http://proxy:3128", None, None, 8080),
        ("reverse:https://example.com@0.0.0.0:443", "reverse", "https://example.com", "0.0.0.0", 443, 443),
        ("reverse:dns://8.8.8.8", "reverse", "dns://8.8.8.8", None, None, 53),
        ("dns", "dns", "", None, None, 53),
        ("wireguard", "wireguard", "", None, None, 51820),
        ("local:curl", "local", "curl", None, None, None),
    ],
)
def test_parse(spec, type_name, data, host, port, listen_port):
    mode = ProxyMode.parse(spec)
    assert mode.type_name == type_name
    assert mode.full_spec == spec
    assert mode.data == data
    assert mode.custom_listen_host == host
    assert mode.custom_listen_port == port
    assert mode.listen_port() == listen_port


@pytest.mark.parametrize(
    "spec, message",
    [
        ("foo", "unknown mode"),
        ("regular:x", "mode takes no arguments"),
        ("socks5:x", "mode takes no arguments"),
        ("regular@99999", "invalid port: 99999"),
        ("regular@-1", "invalid port: -1"),
        ("socks5@abc", "invalid port: abc"),
        ("regular@127.0.0.1:x", "invalid port: x"),
        ("upstream:ftp://proxy", "Invalid server scheme: ftp"),
        ("upstream:tcp://proxy:1", "invalid upstream proxy scheme"),
        ("upstream:", "Invalid server specification: "),
        ("reverse:", "Invalid server specification: "),
        ("reverse:http://example.com/path", "Invalid server specification: http://example.com/path"),
        ("reverse:http://a b", "Invalid hostname: a b"),
        ("reverse:tcp://example.com", "Port specification missing."),
        ("reverse:http://example.com:99999", "Invalid port: 99999"),
    ],
)
def test_parse_errors_read_like_mitmproxy(spec, message):
    with pytest.raises(ValueError) as e:
        ProxyMode.parse(spec)
    assert str(e.value) == message


def test_upstream_and_reverse_data():
    upstream = ProxyMode.parse("upstream:https://proxy.example:3129@9000")
    assert isinstance(upstream, UpstreamMode)
    assert (upstream.scheme, upstream.address) == ("https", ("proxy.example", 3129))
    assert ProxyMode.parse("upstream:proxy.example").address == ("proxy.example", 80)
    reverse = ProxyMode.parse("reverse:example.com")
    assert isinstance(reverse, ReverseMode)
    assert (reverse.scheme, reverse.address) == ("https", ("example.com", 443))
    assert ProxyMode.parse("reverse:tls://[::1]:993/").address == ("::1", 993)
    assert ProxyMode.parse("reverse:http://example.com").address == ("example.com", 80)


def test_descriptions_as_mitmdump_prints_them():
    assert ProxyMode.parse("regular").description == "HTTP(S) proxy"
    assert ProxyMode.parse("upstream:http://p:1").description == "HTTP(S) proxy (upstream mode)"
    assert ProxyMode.parse("transparent").description == "Transparent Proxy"
    assert ProxyMode.parse("socks5").description == "SOCKS v5 proxy"
    assert ProxyMode.parse("reverse:https://example.com@8443").description == "reverse proxy to https://example.com"


def test_listen_defaults():
    mode = ProxyMode.parse("socks5")
    assert mode.listen_host() == "" and mode.listen_host("127.0.0.1") == "127.0.0.1"
    assert mode.listen_port(9999) == 9999
    custom = ProxyMode.parse("socks5@10.0.0.1:1090")
    assert custom.listen_host("127.0.0.1") == "10.0.0.1" and custom.listen_port(9999) == 1090


def test_parse_on_a_subclass_checks_the_kind():
    assert isinstance(RegularMode.parse("regular"), RegularMode)
    with pytest.raises(ValueError, match="'socks5' is not a spec for a regular mode"):
        RegularMode.parse("socks5")


def test_modes_are_values():
    assert ProxyMode.parse("socks5@1") == ProxyMode.parse("socks5@1")
    assert ProxyMode.parse("socks5@1") != ProxyMode.parse("socks5@2")
    assert ProxyMode.parse("regular") == "regular"  # flows store the spec string
    assert {ProxyMode.parse("regular"): 1}[ProxyMode.parse("regular")] == 1
    assert repr(ProxyMode.parse("socks5")) == "ProxyMode.parse('socks5')"
    with pytest.raises(AttributeError):
        ProxyMode.parse("socks5").data = "x"  # type: ignore[misc]


def test_client_keeps_the_mode_and_stores_the_spec():
    client = Client(proxy_mode="reverse:http://example.com:8000@9000")  # type: ignore[arg-type]
    assert isinstance(client.proxy_mode, ReverseMode)
    state = client.get_state()
    assert state["proxy_mode"] == "reverse:http://example.com:8000@9000"
    restored = Client.from_state(state)
    assert isinstance(restored.proxy_mode, ReverseMode)
    assert restored.proxy_mode.address == ("example.com", 8000)
    assert isinstance(Client().proxy_mode, RegularMode)


def test_server_spec_and_hosts():
    assert parse_server_spec("example.com:8080", "http") == ("http", ("example.com", 8080))
    assert parse_server_spec("https://[2001:db8::1]", "http") == ("https", ("2001:db8::1", 443))
    assert is_valid_host("under_score.example") and is_valid_host("bücher.example")
    assert is_valid_host("10.0.0.1") and is_valid_host("::1")
    assert not is_valid_host("") and not is_valid_host("a b") and not is_valid_host("x" * 64 + ".com")


@given(st.text(max_size=60))
def test_parse_never_raises_anything_but_value_error(spec):
    try:
        mode = ProxyMode.parse(spec)
    except ValueError:
        return
    assert mode.full_spec == spec
    assert ProxyMode.from_state(mode.get_state()) == mode


# The Proxyserver addon --------------------------------------------------------------------


def make_master(**options: object) -> Master:
    opts = Options()
    master = Master(opts)
    master.addons.add(*default_addons())
    opts.update(**options)
    return master


@pytest.mark.parametrize(
    "modes, message",
    [
        (["foo"], "Invalid proxy mode specification: foo (unknown mode)"),
        (["regular", "upstream:ftp://x"], "Invalid proxy mode specification: upstream:ftp://x (Invalid server scheme: ftp)"),
        (["dns@8091", "wireguard@8091"], "Cannot spawn multiple servers on the same address: *:8091"),  # both UDP
        (["reverse:dtls://example.com:443"],
         "Invalid proxy mode specification: reverse:dtls://example.com:443 "
         "(reverse proxy scheme dtls is not supported by proxycore)"),
        (["regular@8090", "socks5@8090"], "Cannot spawn multiple servers on the same address: *:8090"),
    ],
)
def test_bad_modes_are_option_errors(modes, message):
    master = make_master()
    with pytest.raises(OptionsError) as e:
        master.options.update(mode=modes)
    assert str(e.value) == message
    assert master.options.mode == ["regular"]  # rolled back


def test_same_port_for_all_modes_is_refused_too():
    master = make_master()
    with pytest.raises(OptionsError, match="Cannot spawn multiple servers on the same address: 127.0.0.1:8081"):
        master.options.update(mode=["regular", "socks5"], listen_host="127.0.0.1", listen_port=8081)


@pytest.mark.e2e
def test_listeners_start_log_and_follow_the_mode_option(caplog):
    caplog.set_level(logging.INFO)
    p1, p2, p3 = free_port(), free_port(), free_port()

    async def scenario() -> None:
        master = make_master(
            listen_host="127.0.0.1",
            mode=[f"regular@{p1}", f"socks5@{p2}", f"reverse:https://example.com@{p3}"],
        )
        server = master.addons.get("proxyserver")
        task = asyncio.create_task(master.run())
        await asyncio.sleep(0.2)
        assert sorted(port for _, port in server.listen_addrs()) == sorted([p1, p2, p3])
        states = {s.mode.full_spec: s.to_json() for s in server.listeners}
        assert states[f"socks5@{p2}"] == {
            "type": "socks5",
            "description": "SOCKS v5 proxy",
            "full_spec": f"socks5@{p2}",
            "is_running": True,
            "last_exception": None,
            "listen_addrs": [("127.0.0.1", p2)],
        }
        kept = next(s for s in server.listeners if s.mode.type_name == "regular")
        master.options.update(mode=[f"regular@{p1}", f"upstream:http://127.0.0.1:3128@{p2}"])
        await asyncio.sleep(0.2)
        assert kept in server.listeners  # unchanged spec: same listener, connections kept
        assert [s.mode.type_name for s in server.listeners] == ["regular", "upstream"]
        master.shutdown()
        await task
        assert server.listeners == []

    asyncio.run(asyncio.wait_for(scenario(), 20))
    messages = [r.getMessage() for r in caplog.records]
    assert f"HTTP(S) proxy listening at 127.0.0.1:{p1}." in messages
    assert f"SOCKS v5 proxy listening at 127.0.0.1:{p2}." in messages
    assert f"reverse proxy to https://example.com listening at 127.0.0.1:{p3}." in messages
    assert f"SOCKS v5 proxy at 127.0.0.1:{p2} stopped." in messages
    assert f"HTTP(S) proxy (upstream mode) listening at 127.0.0.1:{p2}." in messages


@pytest.mark.e2e
def test_port_in_use_is_logged_with_a_hint(caplog):
    import socket

    async def scenario() -> list[str]:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            master = make_master(listen_host="127.0.0.1", listen_port=port, mode=["socks5"])
            task = asyncio.create_task(master.run())
            await asyncio.sleep(0.2)
            server = master.addons.get("proxyserver")
            state = server.listeners[0].to_json()
            master.shutdown()
            await task
            return [port, state]

    port, state = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert state["is_running"] is False and "address already in use" in state["last_exception"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].startswith(f"SOCKS v5 proxy failed to listen on 127.0.0.1:{port} with ")
    assert errors[0].endswith(f"Try specifying a different port by using `--mode socks5@{port + 2}`.")


@pytest.mark.e2e
def test_requests_to_the_proxy_itself_are_refused():
    from proxycore.connection import Server
    from proxycore.proxy.server_hooks import ServerConnectionHookData

    async def scenario() -> list[str | None]:
        port = free_port()
        master = make_master(listen_host="127.0.0.1", mode=[f"regular@{port}"])
        task = asyncio.create_task(master.run())
        await asyncio.sleep(0.2)
        server = master.addons.get("proxyserver")
        results = []
        for address in [("127.0.0.1", port), ("localhost", port), ("127.0.0.1", port + 1)]:
            data = ServerConnectionHookData(Server(address=address), Client())
            server.server_connect(data)
            results.append(data.server.error)
        master.shutdown()
        await task
        return results

    own, own_by_name, other = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert own == own_by_name == (
        "Request destination unknown. Unable to figure out where this request should be forwarded to."
    )
    assert other is None


def test_socks5_mode_spec_type():
    assert isinstance(ProxyMode.parse("SOCKS5@1080"), Socks5Mode)


# proxydump --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mode", "foo"], "proxydump: error: Invalid proxy mode specification: foo (unknown mode)"),
        (["-m", "reverse:tcp://example.com"],
         "proxydump: error: Invalid proxy mode specification: reverse:tcp://example.com (Port specification missing.)"),
        (["--set", "mode=socks5@99999"],
         "proxydump: error: Invalid proxy mode specification: socks5@99999 (invalid port: 99999)"),
        (["--upstream-auth", "nocolon"], "proxydump: error: Invalid upstream auth specification: nocolon"),
        (["--set", "upstream_auth=nocolon"], "proxydump: error: Invalid upstream auth specification: nocolon"),
    ],
)
@pytest.mark.e2e
def test_proxydump_rejects_bad_modes_with_one_line(args, message):
    from tests.processes import proxydump

    r = proxydump(*args)
    assert r.returncode == 1
    assert r.stderr.strip() == message
    assert r.stdout == ""


@pytest.mark.e2e
def test_proxydump_starts_every_mode_given(tmp_path):
    """-m and --set mode= both work; each listener announces itself as mitmdump does."""
    from tests.processes import start_proxydump, wait_listening

    regular, socks, reverse = free_port(), free_port(), free_port()
    proc = start_proxydump(
        "--listen-host", "127.0.0.1", "--set", f"confdir={tmp_path}",
        "-m", f"regular@{regular}", "--mode", f"socks5@{socks}",
        "--mode", f"reverse:http://example.com@{reverse}", "--upstream-auth", "u:p",
    )
    try:
        for port in (regular, socks, reverse):
            wait_listening(proc, port)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    text = err.decode()
    assert f"HTTP(S) proxy listening at 127.0.0.1:{regular}." in text
    assert f"SOCKS v5 proxy listening at 127.0.0.1:{socks}." in text
    assert f"reverse proxy to http://example.com listening at 127.0.0.1:{reverse}." in text
