"""AddonManager: the hook index and ``hooks_active``."""

from __future__ import annotations

from typing import Any

import pytest

from proxycore.addons import default_addons
from proxycore.addons.dumper import Dumper
from proxycore.master import Master
from proxycore.options import Options

PER_REQUEST_HOOKS = ("requestheaders", "request", "responseheaders", "response", "http_connect")


@pytest.fixture
def master() -> Master:
    m = Master(Options())
    m.addons.add(*default_addons(), Dumper())
    m.options.update(flow_detail=0)
    return m


def names(master: Master, hook: str) -> list[str]:
    return [type(addon).__name__ for addon, _ in master.addons.handlers(hook)]


def test_default_proxy_runs_no_addon_per_request(master: Master) -> None:
    """With default options every per-request hook is answered without an addon call (the
    onboarding app's request hook has a gate, checked by the driver before any task: see
    tests/addons/test_protocol_options.py)."""
    assert {hook: names(master, hook) for hook in PER_REQUEST_HOOKS} == {
        "requestheaders": [],
        "request": ["Onboarding"],
        "responseheaders": [],
        "response": [],
        "http_connect": [],
    }


@pytest.mark.parametrize(
    "option,value,hook,addon",
    [
        ("anticache", True, "request", "AntiCache"),
        ("anticomp", True, "request", "AntiComp"),
        ("intercept", "~q", "request", "Intercept"),
        ("map_remote", ["|example.com|example.org"], "request", "MapRemote"),
        ("map_local", ["|example.com|/tmp"], "request", "MapLocal"),
        ("modify_body", ["/foo/bar"], "response", "ModifyBody"),
        ("modify_headers", ["/x-a/1"], "responseheaders", "ModifyHeaders"),
        ("proxyauth", "user:pass", "http_connect", "ProxyAuth"),
        ("upstream_auth", "user:pass", "requestheaders", "UpstreamAuth"),
        ("stickyauth", "~q", "request", "StickyAuth"),
        ("stickycookie", "~q", "response", "StickyCookie"),
        ("hardump", "/dev/null", "response", "SaveHar"),
        ("block_list", ["/~d x/404"], "request", "BlockList"),
        ("mode", ["reverse:http://127.0.0.1:1"], "responseheaders", "UpdateAltSvc"),
    ],
)
def test_an_option_switches_its_addons_hooks_on_and_off(
    master: Master, option: str, value: Any, hook: str, addon: str
) -> None:
    assert addon not in names(master, hook)
    master.options.update(**{option: value})
    assert addon in names(master, hook)
    master.options.reset()
    assert addon not in names(master, hook)


def test_save_hooks_only_while_a_file_is_open(master: Master, tmp_path: Any) -> None:
    master.options.update(save_stream_file=str(tmp_path / "f.mitm"))
    assert "Save" in names(master, "response")
    master.options.update(save_stream_file=None)
    assert "Save" not in names(master, "response")


def test_inactive_addons_still_get_lifecycle_hooks() -> None:
    class Sleeper:
        hooks_active = False
        events: list[str] = []

        def running(self) -> None:
            self.events.append("running")

        def request(self, flow: Any) -> None:
            self.events.append("request")

    m = Master(Options())
    m.addons.add(Sleeper())
    assert names(m, "running") == ["Sleeper"]
    assert names(m, "request") == []


def test_server_replay_hooks_follow_the_loaded_flows(master: Master) -> None:
    from proxycore.connection import Client, Server
    from proxycore.http import HTTPFlow, Request, Response

    flow = HTTPFlow(Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 8080)), Server(address=None))
    flow.request = Request.make("GET", "http://example.com/")
    flow.response = Response.make(200, b"recorded")
    master.commands.call("replay.server", [flow])
    assert "ServerPlayback" in names(master, "request")
    master.commands.call("replay.server.stop")
    assert "ServerPlayback" not in names(master, "request")
