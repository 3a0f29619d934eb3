"""Typed option constraints (ports and non-negative numbers) and listener changes that fail.

Every path that sets an option (update, ``set``/``--set``, option files, the web API)
goes through OptManager.update_known, so one check refuses a bad value everywhere,
before any addon's configure runs.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxycore.exceptions import OptionsError
from proxycore.options import Options
from proxycore.optmanager import PORT, in_range, load_text
from tests.webapi import WebServer, put_json, request, running


@pytest.mark.parametrize("value", [70000, -1, 65536])
def test_bad_port_is_refused_on_every_path(value: int) -> None:
    opts = Options()
    seen: list[set[str]] = []
    opts.changed.append(seen.append)
    with pytest.raises(OptionsError, match="listen_port: must be from 0 to 65535"):
        opts.update(listen_port=value)
    with pytest.raises(OptionsError, match="must be from 0 to 65535"):
        opts.set(f"listen_port={value}")
    with pytest.raises(OptionsError, match="must be from 0 to 65535"):
        load_text(opts, f"listen_port: {value}\n")
    assert opts.listen_port is None and seen == []  # no listener was told anything


def test_valid_values_pass_and_none_is_not_checked() -> None:
    opts = Options()
    opts.set("listen_port=0")
    opts.update(listen_port=65535, tcp_timeout=0)
    opts.update(listen_port=None)
    assert opts.listen_port is None and opts.tcp_timeout == 0
    with pytest.raises(OptionsError, match="tcp_timeout: must be 0 or more"):
        opts.update(tcp_timeout=-5)


def test_check_helpers() -> None:
    PORT(0)
    in_range(1)(10**9)
    with pytest.raises(ValueError):
        in_range(1, 5)(6)


def test_check_runs_for_options_declared_later() -> None:
    opts = Options()
    opts.update_defer(later_port=99999)
    with pytest.raises(OptionsError, match="later_port"):
        opts.add_option("later_port", int, 1, "A port.", check=PORT)


# the listener: a bad change keeps the old one serving --------------------------------------


@contextlib.contextmanager
def busy_port() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def _connects(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def server(tmp_path: Path):
    with running(tmp_path) as s:
        yield s


@pytest.mark.e2e
def test_web_api_refuses_port_out_of_range_and_keeps_listener(server: WebServer) -> None:
    port = server.proxy_port
    r = put_json(server.port, "/options", {"listen_port": 70000})
    assert r.status == 400 and "must be from 0 to 65535" in r.text
    assert server.proxy_port == port and _connects(port)
    assert server.master.options.listen_port == 0


@pytest.mark.e2e
def test_port_in_use_is_a_400_and_the_old_listener_keeps_serving(server: WebServer) -> None:
    port = server.proxy_port
    with busy_port() as taken:
        r = put_json(server.port, "/options", {"listen_port": taken})
        assert r.status == 400, r
        assert f"failed to listen on 127.0.0.1:{taken}" in r.text
    assert server.master.options.listen_port == 0  # put back to what is served
    assert server.proxy_port == port and _connects(port)
    assert request(server.port, "GET", "/state").json()["servers"]["regular"]["is_running"] is True


@pytest.mark.e2e
def test_listener_moves_to_a_free_port(server: WebServer) -> None:
    old = server.proxy_port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    r = put_json(server.port, "/options", {"listen_port": free})
    assert r.status == 200, r
    assert server.proxy_port == free and _connects(free)
    assert not _connects(old)


@pytest.mark.e2e
def test_set_command_with_port_in_use_reverts_and_logs(server: WebServer) -> None:
    port = server.proxy_port
    with busy_port() as taken:
        proxyserver = server.master.addons.get("proxyserver")

        async def set_and_wait() -> str | None:
            server.master.options.set(f"listen_port={taken}")
            return await proxyserver.update_task

        assert "failed to listen" in server.call(set_and_wait)
    assert server.master.options.listen_port == 0
    assert _connects(port)
    assert "failed to listen" in server.log.getvalue()


@pytest.mark.e2e
def test_bad_host_regex_is_a_400_not_an_addon_crash(server: WebServer) -> None:
    r = put_json(server.port, "/options", {"ignore_hosts": ["["]})
    assert r.status == 400 and "Invalid regular expression in ignore_hosts: '['" in r.text
    assert server.master.options.ignore_hosts == []
    assert "Traceback" not in server.log.getvalue()


@pytest.mark.e2e
def test_mode_change_on_the_same_address_swaps_listeners(server: WebServer) -> None:
    port = server.proxy_port
    r = put_json(server.port, "/options", {"mode": [f"socks5@127.0.0.1:{port}", "regular@127.0.0.1:0"]})
    assert r.status == 200, r
    proxyserver = server.master.addons.get("proxyserver")
    listeners = server.call(lambda: [(li.mode.type_name, li.addresses) for li in proxyserver.listeners])
    assert listeners[0] == ("socks5", [("127.0.0.1", port)])
    assert listeners[1][0] == "regular" and listeners[1][1][0][1] != port
    assert _connects(port)
