"""The proxyauth addon called directly: validators, header parsing, 407/401 answers, tunnels."""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.addons.proxyauth import (
    ProxyAuth,
    make_basic_auth,
    make_validator,
    parse_basic_auth,
    proxy_mode_name,
)
from proxycore.connection import Client
from proxycore.exceptions import OptionsError
from tests.addon_utils import load, tflow

SHA1_HTPASSWD = "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"  # htpasswd -s: alice / secret
GOOD = make_basic_auth("alice", "secret")
PADDED = make_basic_auth("alice", "secret!")  # base64 that ends in "=="


@dataclass
class Socks5AuthData:
    """Stand-in for the SOCKS5 mode's hook data (same field names)."""

    client_conn: Any
    username: str
    password: str
    valid: bool = False


def run(result):
    """A hook answers at once, or returns an awaitable when the check is slow: run that."""
    if inspect.isawaitable(result):
        return asyncio.run(result)
    return result


@pytest.fixture
def auth():
    addon = ProxyAuth()
    load(addon, proxyauth="alice:secret")
    return addon


# option values -------------------------------------------------------------------------


def test_no_option_no_validator():
    assert make_validator(None) is None
    assert make_validator("") is None


def test_any():
    check = make_validator("any")
    assert check("x", "y") and check("", "")


def test_single_user():
    check = make_validator("alice:secret")
    assert check("alice", "secret")
    assert not check("alice", "secret2")
    assert not check("alice", "")
    assert not check("bob", "secret")
    assert not check("alice:secret", "")


def test_single_user_password_may_contain_colons():
    check = make_validator("alice:se:cr:et")
    assert check("alice", "se:cr:et")
    assert not check("alice", "se")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nocolon", "Invalid proxyauth specification 'nocolon'"),
        (":secret", "username is empty"),
        ("ldap:localhost:cn=admin:pw", "Invalid LDAP specification"),
        ("ldaps:localhost:port:cn=admin:pw:dc=example", "Invalid LDAP specification"),
        ("ldap:localhost:cn=admin:pw:dc=example?other=1", "Invalid LDAP specification"),
        ("ldapx:localhost:cn=admin:pw:dc=example", "Invalid LDAP specification"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(OptionsError, match=message):
        make_validator(spec)


def test_htpasswd_option(tmp_path):
    path = tmp_path / "users"
    path.write_text(SHA1_HTPASSWD)
    check = make_validator(f"@{path}")
    assert check("alice", "secret")
    assert not check("alice", "Secret")
    assert not check("bob", "secret")


def test_htpasswd_errors(tmp_path):
    with pytest.raises(OptionsError, match="Could not open htpasswd file: .*missing"):
        make_validator(f"@{tmp_path / 'missing'}")
    with pytest.raises(OptionsError, match="Could not open htpasswd file"):
        make_validator(f"@{tmp_path}")  # a directory
    bad = tmp_path / "bad"
    bad.write_text("alice:plaintext\n")
    with pytest.raises(OptionsError, match="Invalid htpasswd file .*line 1: unsupported hash"):
        make_validator(f"@{bad}")


def test_htpasswd_hashes_off_the_event_loop_and_remembers_good_credentials(tmp_path, monkeypatch):
    import threading

    path = tmp_path / "users"
    path.write_text(SHA1_HTPASSWD)
    validator = make_validator(f"@{path}")
    calls: list[tuple[str, int]] = []
    original = validator.htpasswd.check_password

    def recording(username, password):
        calls.append((password, threading.get_ident()))
        return original(username, password)

    monkeypatch.setattr(validator.htpasswd, "check_password", recording)
    assert run(validator.check("alice", "secret"))
    assert calls[0][1] != threading.get_ident()  # hashed in a worker thread
    assert run(validator.check("alice", "secret"))
    assert validator("alice", "secret")
    assert len(calls) == 1  # remembered
    assert not run(validator.check("alice", "wrong"))
    assert not run(validator.check("alice", "wrong"))
    assert [c[0] for c in calls] == ["secret", "wrong", "wrong"]  # failures are never remembered


def test_htpasswd_remembers_a_bounded_number(tmp_path, monkeypatch):
    path = tmp_path / "users"
    path.write_text(SHA1_HTPASSWD)
    validator = make_validator(f"@{path}")
    monkeypatch.setattr(validator.htpasswd, "check_password", lambda u, p: True)
    for i in range(validator.REMEMBERED + 50):
        assert run(validator.check("alice", str(i)))
    assert len(validator._verified) == validator.REMEMBERED


def test_bad_option_is_refused_and_the_old_one_kept(auth):
    from proxycore import ctx

    with pytest.raises(OptionsError):
        ctx.options.update(proxyauth="@/does/not/exist")
    assert ctx.options.proxyauth == "alice:secret"
    flow = tflow(headers=(("Proxy-Authorization", GOOD),))
    run(auth.requestheaders(flow))
    assert flow.response is None


# header parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (GOOD, ("alice", "secret")),
        ("basic " + GOOD[6:], ("alice", "secret")),
        ("BASIC  " + GOOD[6:] + "  ", ("alice", "secret")),
        ("Basic\t" + GOOD[6:], ("alice", "secret")),
        (make_basic_auth("", ""), ("", "")),
        (make_basic_auth("u", "p:q"), ("u", "p:q")),
        ("Basic " + base64.b64encode("jörg:pä".encode("latin-1")).decode(), ("jörg", "pä")),
        ("Basic " + base64.b64encode("jörg:pä".encode()).decode(), ("jörg", "pä")),
    ],
)
def test_parse_basic_auth(value, expected):
    assert parse_basic_auth(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Basic",
        "Basic ",
        "Digest " + GOOD[6:],
        "Bearer abc",
        GOOD + " extra",
        GOOD + ", " + GOOD,  # two credentials folded into one field
        "Basic " + PADDED[6:].rstrip("="),  # padding missing
        "Basic " + PADDED[6:] + "!!",  # not base64 (a lenient decoder would skip the junk)
        "Basic !" + PADDED[6:],
        "Basic " + GOOD[6:10] + "\n" + GOOD[10:],
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Basic ÄÖÜ=",
    ],
)
def test_parse_basic_auth_refuses(value):
    assert parse_basic_auth(value) is None


@given(st.text())
def test_parse_basic_auth_never_raises(value):
    result = parse_basic_auth(value)
    assert result is None or len(result) == 2


@given(st.text(st.characters(blacklist_categories=("Cs",))), st.text(st.characters(blacklist_categories=("Cs",))))
def test_basic_auth_round_trip(user, password):
    if ":" not in user:
        assert parse_basic_auth(make_basic_auth(user, password)) == (user, password)


# HTTP ----------------------------------------------------------------------------------


def test_missing_credentials_get_407(auth):
    flow = tflow()
    run(auth.requestheaders(flow))
    assert flow.response.status_code == 407
    assert flow.response.reason == "Proxy Authentication Required"
    assert flow.response.headers["Proxy-Authenticate"] == 'Basic realm="mitmproxy"'
    assert b"<h1>407 Proxy Authentication Required</h1>" in flow.response.content


def test_good_credentials_pass_and_are_stripped(auth):
    flow = tflow(headers=(("proxy-AUTHORIZATION", GOOD), ("X-Other", "1")))
    run(auth.requestheaders(flow))
    assert flow.response is None
    assert "proxy-authorization" not in flow.request.headers
    assert flow.request.headers["x-other"] == "1"
    assert flow.metadata["proxyauth"] == ("alice", "secret")


@pytest.mark.parametrize(
    "headers",
    [
        (("Proxy-Authorization", make_basic_auth("alice", "wrong")),),
        (("Proxy-Authorization", make_basic_auth("bob", "secret")),),
        (("Authorization", GOOD),),  # a web server's header is not proxy credentials
        (("Proxy-Authorization", GOOD), ("Proxy-Authorization", GOOD)),
        (("Proxy-Authorization", make_basic_auth("bob", "x")), ("Proxy-Authorization", GOOD)),
        (("Proxy-Authorization", GOOD), ("Proxy-Authorization", make_basic_auth("bob", "x"))),
    ],
)
def test_bad_credentials_get_407(auth, headers):
    flow = tflow(headers=headers)
    run(auth.requestheaders(flow))
    assert flow.response.status_code == 407
    assert flow.request.headers.get_all("proxy-authorization") == [v for k, v in headers if k.lower() == "proxy-authorization"]


def test_failures_are_logged_without_the_password(auth, caplog):
    with caplog.at_level(logging.DEBUG, logger="proxycore.proxyauth"):
        run(auth.requestheaders(tflow(headers=(("Proxy-Authorization", make_basic_auth("alice", "hunter2")),))))
        run(auth.requestheaders(tflow(headers=(("Proxy-Authorization", "Basic %%%"),))))
        run(auth.requestheaders(tflow()))
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages == [
        ("WARNING", "Authentication failed for user 'alice' from 127.0.0.1:50000."),
        ("WARNING", "Malformed Proxy-Authorization header from 127.0.0.1:50000."),
        ("DEBUG", "No Proxy-Authorization header from 127.0.0.1:50000."),
    ]
    assert "hunter2" not in caplog.text


def test_every_plain_request_needs_credentials(auth):
    client = Client(peername=("127.0.0.1", 1), proxy_mode="regular")
    first = tflow(client=client, headers=(("Proxy-Authorization", GOOD),))
    run(auth.requestheaders(first))
    assert first.response is None
    second = tflow(client=client)  # same keep-alive connection, no credentials
    run(auth.requestheaders(second))
    assert second.response.status_code == 407


def test_connect_authenticates_the_connection(auth):
    client = Client(peername=("127.0.0.1", 1), proxy_mode="regular")
    connect = tflow("http://example.com:443/", method="CONNECT", client=client,
                    headers=(("Proxy-Authorization", GOOD),))
    run(auth.http_connect(connect))
    assert connect.response is None
    assert "proxy-authorization" not in connect.request.headers
    inner = tflow("https://example.com/secret", client=client)
    run(auth.requestheaders(inner))
    assert inner.response is None
    assert inner.metadata["proxyauth"] == ("alice", "secret")
    other_client = tflow("https://other.example/", method="CONNECT")
    run(auth.http_connect(other_client))
    assert other_client.response.status_code == 407


def test_refused_connect_does_not_authenticate(auth):
    client = Client(peername=("127.0.0.1", 1), proxy_mode="regular")
    connect = tflow("http://example.com:443/", method="CONNECT", client=client,
                    headers=(("Proxy-Authorization", make_basic_auth("alice", "nope")),))
    run(auth.http_connect(connect))
    assert connect.response.status_code == 407
    inner = tflow("https://example.com/", client=client)
    run(auth.requestheaders(inner))
    assert inner.response.status_code == 407


def test_replayed_flows_are_not_challenged(auth):
    flow = tflow()
    flow.is_replay = "request"
    run(auth.requestheaders(flow))
    assert flow.response is None


def test_flows_read_from_a_file_are_left_alone(auth):
    flow = tflow()
    flow.live = False
    run(auth.requestheaders(flow))
    run(auth.http_connect(flow))
    assert flow.response is None


def test_reverse_mode_uses_401_and_authorization(auth):
    flow = tflow(mode="reverse:http://127.0.0.1:9", headers=(("Proxy-Authorization", GOOD),))
    run(auth.requestheaders(flow))
    assert flow.response.status_code == 401
    assert flow.response.headers["WWW-Authenticate"] == 'Basic realm="mitmproxy"'
    assert "Proxy-Authenticate" not in flow.response.headers
    assert b"401 Unauthorized" in flow.response.content

    ok = tflow(mode="reverse:http://127.0.0.1:9", headers=(("Authorization", GOOD),))
    run(auth.requestheaders(ok))
    assert ok.response is None
    assert "authorization" not in ok.request.headers


@pytest.mark.parametrize(
    "mode, proxy",
    [
        ("regular", True),
        ("regular@8081", True),
        ("upstream:http://10.0.0.1:3128", True),
        ("reverse:https://example.com@443", False),
        ("transparent", False),
        ("socks5", False),
    ],
)
def test_modes(auth, mode, proxy):
    flow = tflow(mode=mode)
    run(auth.requestheaders(flow))
    assert flow.response.status_code == (407 if proxy else 401)


def test_mode_objects_with_a_type_name():
    class Mode:
        type_name = "reverse"

    assert proxy_mode_name(Mode()) == "reverse"
    assert proxy_mode_name("upstream:http://h:1@8081") == "upstream"


def test_off_means_no_checks():
    addon = ProxyAuth()
    master = load(addon)
    flow = tflow()
    run(addon.requestheaders(flow))
    run(addon.http_connect(flow))
    assert flow.response is None
    master.options.update(proxyauth="any")
    run(addon.requestheaders(flow))
    assert flow.response.status_code == 407  # "any" still needs a well-formed header
    master.options.update(proxyauth=None)
    good = tflow()
    run(addon.requestheaders(good))
    assert good.response is None


# SOCKS5 --------------------------------------------------------------------------------


def test_socks5_auth(auth, caplog):
    client = Client(peername=("127.0.0.1", 7), proxy_mode="socks5")
    data = Socks5AuthData(client, "alice", "secret")
    run(auth.socks5_auth(data))
    assert data.valid
    inner = tflow(client=client)
    run(auth.requestheaders(inner))
    assert inner.response is None and inner.metadata["proxyauth"] == ("alice", "secret")

    with caplog.at_level(logging.WARNING):
        bad = Socks5AuthData(Client(peername=("127.0.0.1", 8)), "alice", "wrong")
        run(auth.socks5_auth(bad))
    assert not bad.valid
    assert "SOCKS5 authentication failed for user 'alice' from 127.0.0.1:8." in caplog.text


def test_socks5_without_proxyauth_leaves_data_alone():
    addon = ProxyAuth()
    load(addon)
    data = Socks5AuthData(Client(), "a", "b")
    run(addon.socks5_auth(data))
    assert not data.valid


# cheap checks answer at once; slow ones are awaited off the loop ------------------------


def test_cheap_checks_answer_at_once_as_mitmproxys_synchronous_calls_expect(auth):
    flow = tflow()
    assert auth.requestheaders(flow) is None  # no awaitable: decided already
    assert flow.response.status_code == 407
    ok = tflow(headers=(("Proxy-Authorization", GOOD),))
    assert auth.authenticate_http(ok) is True and ok.response is None


def test_an_htpasswd_hash_is_awaited_once_then_answered_at_once(tmp_path):
    path = tmp_path / "users"
    path.write_text(SHA1_HTPASSWD)
    addon = ProxyAuth()
    load(addon, proxyauth=f"@{path}")
    first = tflow(headers=(("Proxy-Authorization", GOOD),))
    pending = addon.requestheaders(first)
    assert inspect.isawaitable(pending)  # a hash to compute: in a worker thread
    assert run(pending) is True and first.response is None
    again = tflow(headers=(("Proxy-Authorization", GOOD),))
    assert addon.requestheaders(again) is None and again.response is None  # remembered


# LDAP, against a stand-in for the ldap3 package ---------------------------------------------


class FakeLdap3:
    """The two ldap3 classes the validator uses; binds succeed for DNs in ``passwords``."""

    def __init__(self) -> None:
        self.passwords = {"cn=admin,dc=example": "adminpw", "cn=alice,ou=people,dc=example": "secret"}
        self.searches: list[tuple[str, str]] = []
        fake = self

        class Server:
            def __init__(self, host, port=None, use_ssl=False):
                self.host, self.port, self.use_ssl = host, port, use_ssl

        class Connection:
            def __init__(self, server, user, password, auto_bind=False):
                if fake.passwords.get(user) != password:
                    raise RuntimeError("invalidCredentials")
                self.response: list[dict] = []

            def search(self, base, search_filter):
                fake.searches.append((base, search_filter))
                self.response = [{"dn": "cn=alice,ou=people,dc=example"}] if search_filter == "(cn=alice)" else []

        self.Server, self.Connection = Server, Connection


@pytest.fixture
def fake_ldap3(monkeypatch):
    import sys

    fake = FakeLdap3()
    monkeypatch.setitem(sys.modules, "ldap3", fake)
    return fake


def test_ldap_binds_as_the_user_found(fake_ldap3):
    check = make_validator("ldaps:ldap.example:636:cn=admin,dc=example:adminpw:ou=people,dc=example")
    assert check.server.use_ssl and check.server.port == 636
    assert check("alice", "secret")
    assert not check("alice", "wrong")
    assert not check("bob", "secret")
    assert not check("alice", "")  # never an anonymous bind
    assert fake_ldap3.searches[0] == ("ou=people,dc=example", "(cn=alice)")


def test_ldap_escapes_the_username_and_takes_another_attribute(fake_ldap3):
    check = make_validator("ldap:ldap.example:cn=admin,dc=example:adminpw:dc=example?search_filter_key=uid")
    assert check.make_search_filter("*)(x=\\") == "(uid=\\2a\\29\\28x=\\5c)"


def test_ldap_bad_admin_credentials_are_an_option_error(fake_ldap3):
    with pytest.raises(OptionsError, match="Cannot bind"):
        make_validator("ldap:ldap.example:cn=admin,dc=example:nope:dc=example")


def test_ldap_checks_run_off_the_loop(fake_ldap3):
    addon = ProxyAuth()
    load(addon, proxyauth="ldap:ldap.example:cn=admin,dc=example:adminpw:ou=people,dc=example")
    flow = tflow(headers=(("Proxy-Authorization", GOOD),))
    pending = addon.requestheaders(flow)
    assert inspect.isawaitable(pending) and run(pending) is True
