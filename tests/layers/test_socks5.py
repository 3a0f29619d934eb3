"""SOCKS v5: the wire parser (with hypothesis properties) and the Socks5Proxy layer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import HttpRequestHeadersHook
from proxycore.layers.modes import Socks5AuthData, Socks5AuthHook, Socks5Proxy
from proxycore.layers.tcp import TCPLayer
from proxycore.net import socks5
from proxycore.proxy import commands, events
from proxycore.proxy.layer import NextLayer, NextLayerHook
from proxycore.proxy.mode_specs import ProxyMode
from proxycore.testing import Placeholder, Playbook, make_context, reply, run_events
from tests.layers.test_http_fuzz import split

GREETING = b"\x05\x01\x00"
GREETING_AUTH = b"\x05\x02\x00\x02"
CONNECT_V4 = b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"  # 127.0.0.1:80
CONNECT_DOMAIN = b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"  # example.com:443
CONNECT_V6 = b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01" + b"\x1f\x90"  # [::1]:8080
OK_REPLY = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"


# The parser --------------------------------------------------------------------------


def test_parse_greeting_waits_for_all_methods():
    assert socks5.parse_greeting(b"\x05") is None
    assert socks5.parse_greeting(b"\x05\x02\x00") is None
    assert socks5.parse_greeting(b"\x05\x02\x00\x02rest") == (socks5.Greeting(b"\x00\x02"), 4)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x04\x01\x00", "Invalid SOCKS version. Expected 0x05, got 0x4"),
        (b"GET / HTTP/1.1\r\n", "Probably not a SOCKS request but a regular HTTP request. "
         "Invalid SOCKS version. Expected 0x05, got 0x47"),
    ],
)
def test_parse_greeting_rejects_other_versions_without_a_reply(data, message):
    with pytest.raises(socks5.Socks5Error) as e:
        socks5.parse_greeting(data)
    assert str(e.value) == message
    assert e.value.reply_code is None


def test_parse_credentials():
    data = b"\x01\x04user\x06secret"
    for cut in range(len(data)):
        assert socks5.parse_credentials(data[:cut]) is None
    assert socks5.parse_credentials(data + b"!") == (socks5.Credentials("user", "secret"), len(data))
    assert socks5.parse_credentials(b"\x01\x00\x00") == (socks5.Credentials("", ""), 3)
    # Not UTF-8: kept readable instead of failing.
    assert socks5.parse_credentials(b"\x01\x01\xff\x01\xfe")[0].username == "\\xff"
    with pytest.raises(socks5.Socks5Error, match="Expected 0x01, got 0x5") as e:
        socks5.parse_credentials(b"\x05\x04user\x04pass")
    assert e.value.reply_code is None


@pytest.mark.parametrize(
    "data, host, port",
    [
        (CONNECT_V4, "127.0.0.1", 80),
        (CONNECT_DOMAIN, "example.com", 443),
        (CONNECT_V6, "::1", 8080),
    ],
)
def test_parse_request_address_types(data, host, port):
    for cut in range(len(data)):
        assert socks5.parse_request(data[:cut]) is None
    assert socks5.parse_request(data + b"tail") == (socks5.ConnectRequest(host, port), len(data))


@pytest.mark.parametrize(
    "data, code",
    [
        (b"\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50", socks5.REP_COMMAND_NOT_SUPPORTED),  # BIND
        (b"\x05\x03\x00\x01\x7f\x00\x00\x01\x00\x50", socks5.REP_COMMAND_NOT_SUPPORTED),  # UDP ASSOCIATE
        (b"\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x50", socks5.REP_COMMAND_NOT_SUPPORTED),  # version 4
        (b"\x05\x01\x00\x05\x00", socks5.REP_ADDRESS_TYPE_NOT_SUPPORTED),
        (b"\x05\x01\x00\x03\x00\x00\x50", socks5.REP_GENERAL_FAILURE),  # empty domain name
    ],
)
def test_parse_request_errors_carry_the_reply_code(data, code):
    with pytest.raises(socks5.Socks5Error) as e:
        socks5.parse_request(data)
    assert e.value.reply_code == code


def test_reply_codes_for_connection_errors():
    assert socks5.reply_code_for("Connection refused") == socks5.REP_CONNECTION_REFUSED
    assert socks5.reply_code_for("Network is unreachable") == socks5.REP_NETWORK_UNREACHABLE
    assert socks5.reply_code_for("Name or service not known") == socks5.REP_HOST_UNREACHABLE
    assert socks5.reply(socks5.REP_CONNECTION_REFUSED) == b"\x05\x05\x00\x01" + bytes(6)


def parse_session(buf: bytes, with_auth: bool) -> list[object]:
    """Greeting, [credentials,] request parsed from one buffer: the messages, then the outcome."""
    steps = [socks5.parse_greeting, socks5.parse_credentials, socks5.parse_request]
    if not with_auth:
        steps.remove(socks5.parse_credentials)
    out: list[object] = []
    for step in steps:
        try:
            parsed = step(buf)
        except socks5.Socks5Error as e:
            return [*out, ("error", str(e), e.reply_code)]
        if parsed is None:
            return [*out, "incomplete"]
        message, used = parsed
        assert 0 < used <= len(buf)
        out.append(message)
        buf = buf[used:]
    return [*out, buf]


def parse_incrementally(chunks: list[bytes], with_auth: bool) -> list[object]:
    """The same, fed chunk by chunk as the layer does: retry each step as bytes arrive."""
    buf = b""
    result: list[object] = ["incomplete"]
    for chunk in chunks:
        buf += chunk
        result = parse_session(buf, with_auth)
        if result[-1] != "incomplete":
            break
    if result[-1] != "incomplete":
        buf = b"".join(chunks)
        result = parse_session(buf, with_auth)
    return result


@given(st.binary(max_size=300), st.booleans())
def test_parser_never_raises_anything_else(data, with_auth):
    parse_session(data, with_auth)


session_bytes = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([GREETING + CONNECT_V4, GREETING + CONNECT_DOMAIN + b"GET", GREETING + CONNECT_V6]).flatmap(
        lambda base: st.binary(max_size=10).map(lambda extra: base + extra)
    ),
    st.builds(
        lambda user, password, rest: GREETING_AUTH + b"\x01" + bytes([len(user)]) + user
        + bytes([len(password)]) + password + CONNECT_DOMAIN + rest,
        st.binary(max_size=20), st.binary(max_size=20), st.binary(max_size=10),
    ),
)


@given(session_bytes, st.lists(st.integers(0, 200), max_size=10), st.booleans())
def test_parsing_does_not_depend_on_chunking(data, cuts, with_auth):
    assert parse_incrementally(split(data, cuts), with_auth) == parse_session(data, with_auth)


# The layer -----------------------------------------------------------------------------


def socks_context(**options: object):
    tctx = make_context()
    tctx.client.proxy_mode = ProxyMode.parse("socks5")
    tctx.options.update(**options)
    return tctx


def test_connect_ipv4_then_tcp():
    tctx = socks_context()
    nl = Placeholder(NextLayer)
    assert (
        Playbook(Socks5Proxy(tctx), logs=True)
        >> events.DataReceived(tctx.client, GREETING)
        << commands.SendData(tctx.client, b"\x05\x00")
        >> events.DataReceived(tctx.client, CONNECT_V4)
        << commands.OpenConnection(tctx.server)
        >> reply(None)
        << commands.SendData(tctx.client, OK_REPLY)
        >> events.DataReceived(tctx.client, b"hello")
        << NextLayerHook(nl)
        >> reply(side_effect=lambda data: setattr(data, "layer", TCPLayer(data.context, ignore=True)))
        << commands.SendData(tctx.server, b"hello")
    )
    assert tctx.server.address == ("127.0.0.1", 80)


@pytest.mark.parametrize("request_, address", [(CONNECT_DOMAIN, ("example.com", 443)), (CONNECT_V6, ("::1", 8080))])
def test_connect_domain_and_ipv6_in_one_chunk_with_early_data(request_, address):
    """Greeting, request and the first application bytes may come in one segment."""
    tctx = socks_context()
    flow = Placeholder()
    assert (
        Playbook(Socks5Proxy(tctx))
        >> events.DataReceived(tctx.client, GREETING + request_ + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        << commands.SendData(tctx.client, b"\x05\x00")
        << commands.OpenConnection(tctx.server)
        >> reply(None)
        << commands.SendData(tctx.client, OK_REPLY)
        << NextLayerHook(Placeholder(NextLayer))
        >> reply(side_effect=lambda data: setattr(data, "layer", HttpLayer(data.context, HTTPMode.transparent)))
        << HttpRequestHeadersHook(flow)
    )
    assert tctx.server.address == address
    assert (flow().request.host, flow().request.port) == address


def test_byte_by_byte():
    tctx = socks_context()
    playbook = Playbook(Socks5Proxy(tctx))
    for i in range(len(GREETING)):
        playbook >> events.DataReceived(tctx.client, GREETING[i : i + 1])
    playbook << commands.SendData(tctx.client, b"\x05\x00")
    for i in range(len(CONNECT_DOMAIN)):
        playbook >> events.DataReceived(tctx.client, CONNECT_DOMAIN[i : i + 1])
    assert playbook << commands.OpenConnection(tctx.server)


def test_client_data_while_connecting_reaches_the_child_after_the_reply():
    tctx = socks_context()
    assert (
        Playbook(Socks5Proxy(tctx))
        >> events.DataReceived(tctx.client, GREETING + CONNECT_V4)
        << commands.SendData(tctx.client, b"\x05\x00")
        << commands.OpenConnection(tctx.server)
        >> events.DataReceived(tctx.client, b"early")
        >> reply(None, to=commands.OpenConnection)
        << commands.SendData(tctx.client, OK_REPLY)
        << NextLayerHook(Placeholder(NextLayer))
        >> reply(side_effect=lambda data: setattr(data, "layer", TCPLayer(data.context, ignore=True)))
        << commands.SendData(tctx.server, b"early")
    )


def test_lazy_strategy_replies_before_connecting():
    tctx = socks_context(connection_strategy="lazy")
    assert (
        Playbook(Socks5Proxy(tctx))
        >> events.DataReceived(tctx.client, GREETING + CONNECT_DOMAIN)
        << commands.SendData(tctx.client, b"\x05\x00" + OK_REPLY)
    )
    assert not tctx.server.connected


@pytest.mark.parametrize(
    "error, code",
    [("Connection refused", 0x05), ("Name or service not known", 0x04), ("Network is unreachable", 0x03)],
)
def test_connect_failure_is_answered_with_a_reply_code(error, code):
    tctx = socks_context()
    assert (
        Playbook(Socks5Proxy(tctx), logs=True)
        >> events.DataReceived(tctx.client, GREETING + CONNECT_DOMAIN)
        << commands.SendData(tctx.client, b"\x05\x00")
        << commands.OpenConnection(tctx.server)
        >> reply(error)
        << commands.Log(f"Cannot connect to example.com:443: {error}", "info")
        << commands.SendData(tctx.client, bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
        << commands.CloseConnection(tctx.client)
        >> events.DataReceived(tctx.client, b"ignored")
    )


@pytest.mark.parametrize(
    "data, answer, log",
    [
        (b"\x04\x01\x00\x50", b"", "Invalid SOCKS version. Expected 0x05, got 0x4"),
        (b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", b"",
         "Probably not a SOCKS request but a regular HTTP request. Invalid SOCKS version. Expected 0x05, got 0x43"),
        (b"\x05\x01\x02", b"\x05\xff", "Client does not support SOCKS5 with no authentication."),
        (b"\x05\x00", b"\x05\xff", "Client does not support SOCKS5 with no authentication."),
        (GREETING + b"\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50", b"\x05\x00\x05\x07\x00\x01" + bytes(6),
         "Unsupported SOCKS5 request: b'\\x05\\x02\\x00\\x01\\x7f\\x00\\x00\\x01\\x00P'"),
        (GREETING + b"\x05\x01\x00\x09\x00", b"\x05\x00\x05\x08\x00\x01" + bytes(6), "Unknown address type: 9"),
    ],
)
def test_bad_handshakes_close_with_the_right_reply(data, answer, log):
    tctx = socks_context()
    playbook = Playbook(Socks5Proxy(tctx), logs=True) >> events.DataReceived(tctx.client, data)
    if answer:
        playbook << commands.SendData(tctx.client, answer)
    assert (
        playbook
        << commands.CloseConnection(tctx.client)
        << commands.Log(log, "info")
        >> events.DataReceived(tctx.client, b"more")
        >> events.ConnectionClosed(tctx.client)
    )


def test_client_leaves_mid_handshake():
    tctx = socks_context()
    assert (
        Playbook(Socks5Proxy(tctx), logs=True)
        >> events.DataReceived(tctx.client, b"\x05\x02\x00")
        >> events.ConnectionClosed(tctx.client)
        << commands.Log("Client closed connection before completing SOCKS5 handshake: b'\\x05\\x02\\x00'", "info")
        << commands.CloseConnection(tctx.client)
    )


def test_client_leaves_before_sending_anything():
    tctx = socks_context()
    assert (
        Playbook(Socks5Proxy(tctx), logs=True)
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseConnection(tctx.client)
    )


def _accept(user: str, password: str):
    def check(data: Socks5AuthData) -> None:
        data.valid = (data.username, data.password) == (user, password)

    return check


def test_username_password_accepted():
    tctx = socks_context(proxyauth="user:pass")
    data = Placeholder(Socks5AuthData)
    assert (
        Playbook(Socks5Proxy(tctx))
        >> events.DataReceived(tctx.client, GREETING_AUTH)
        << commands.SendData(tctx.client, b"\x05\x02")
        >> events.DataReceived(tctx.client, b"\x01\x04user\x04pass" + CONNECT_V4)
        << Socks5AuthHook(data)
        >> reply(side_effect=_accept("user", "pass"))
        << commands.SendData(tctx.client, b"\x01\x00")
        << commands.OpenConnection(tctx.server)
        >> reply(None)
        << commands.SendData(tctx.client, OK_REPLY)
    )
    assert data().client_conn is tctx.client
    assert (data().username, data().password, data().valid) == ("user", "pass", True)


@pytest.mark.parametrize("version", [0x00, 0x02, 0x05])
def test_username_password_with_a_wrong_version_byte_is_refused(version):
    tctx = socks_context(proxyauth="user:pass")
    assert (
        Playbook(Socks5Proxy(tctx), logs=True)
        >> events.DataReceived(tctx.client, GREETING_AUTH)
        << commands.SendData(tctx.client, b"\x05\x02")
        >> events.DataReceived(tctx.client, bytes([version]))  # refused before the rest arrives
        << commands.CloseConnection(tctx.client)
        << commands.Log(f"Invalid SOCKS5 username/password version. Expected 0x01, got 0x{version:x}", "info")
        >> events.DataReceived(tctx.client, b"\x04user\x04pass" + CONNECT_V4)
    )


def test_username_password_rejected():
    tctx = socks_context(proxyauth="user:pass")
    assert (
        Playbook(Socks5Proxy(tctx), logs=True)
        >> events.DataReceived(tctx.client, GREETING_AUTH + b"\x01\x04user\x05wrong" + CONNECT_V4)
        << commands.SendData(tctx.client, b"\x05\x02")
        << Socks5AuthHook(Placeholder(Socks5AuthData))
        >> reply(side_effect=_accept("user", "pass"))
        << commands.SendData(tctx.client, b"\x01\x01")
        << commands.CloseConnection(tctx.client)
        << commands.Log("authentication failed", "info")
    )


def test_credentials_required_but_not_offered():
    tctx = socks_context(proxyauth="user:pass")
    assert (
        Playbook(Socks5Proxy(tctx), logs=True)
        >> events.DataReceived(tctx.client, GREETING)
        << commands.SendData(tctx.client, b"\x05\xff")
        << commands.CloseConnection(tctx.client)
        << commands.Log("Client does not support SOCKS5 with user/password authentication.", "info")
    )


def test_hook_name_and_data_fields():
    assert Socks5AuthHook.name == "socks5_auth"
    data = Socks5AuthData(make_context().client, "u", "p")
    assert data.valid is False


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=8), st.booleans(), st.booleans())
def test_layer_never_raises(data, cuts, with_auth, close):
    tctx = socks_context(proxyauth="u:p" if with_auth else None)
    evs: list[events.Event] = [events.DataReceived(tctx.client, c) for c in split(data, cuts)]
    if close:
        evs.append(events.ConnectionClosed(tctx.client))
    run_events(Socks5Proxy(tctx), evs)


@given(session_bytes, st.lists(st.integers(0, 200), max_size=10))
def test_layer_output_does_not_depend_on_chunking(data, cuts):
    def client_bytes(chunks: list[bytes]) -> tuple[bytes, object]:
        tctx = socks_context()
        issued = run_events(Socks5Proxy(tctx), [events.DataReceived(tctx.client, c) for c in chunks])
        sent = b"".join(c.data for c in issued if isinstance(c, commands.SendData) and c.connection is tctx.client)
        return sent, tctx.server.address

    assert client_bytes(split(data, cuts)) == client_bytes([data])
