"""Server playback: which recorded response answers which request, and what happens to the rest.

The addon is exercised through a Master (options, commands, hooks as in the proxy); the
end-to-end check (record through a real origin, replay without it) is in test_e2e_replay.py.
"""

from __future__ import annotations

import email.utils
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.addons.serverplayback import ServerPlayback, request_key
from proxycore.connection import Client, Server
from proxycore.exceptions import CommandError, OptionsError
from proxycore.http import HTTPFlow, Request, Response
from proxycore.io import FlowWriter
from proxycore.master import Master
from proxycore.options import Options


def tflow(
    url: str = "http://example.com/path?a=1",
    method: str = "GET",
    content: bytes = b"",
    headers: dict[str, str] | None = None,
    body: bytes = b"recorded",
) -> HTTPFlow:
    flow = HTTPFlow(Client(), Server(address=None))
    flow.request = Request.make(method, url, content, headers or {})
    flow.response = Response.make(200, body)
    return flow


def live(url: str = "http://example.com/path?a=1", method: str = "GET", content: bytes = b"",
         headers: dict[str, str] | None = None) -> HTTPFlow:
    flow = tflow(url, method, content, headers)
    flow.response = None
    flow.live = True
    return flow


def playback(*recorded: HTTPFlow, **options: Any) -> tuple[Master, ServerPlayback]:
    master = Master(Options())
    addon = ServerPlayback()
    master.addons.add(addon)
    master.options.update(**options)
    master.commands.call("replay.server", list(recorded))
    return master, addon


def answer(addon: ServerPlayback, flow: HTTPFlow) -> bytes | None:
    addon.request(flow)
    return flow.response.content if flow.response is not None else None


def test_a_match_gets_a_copy_of_the_recorded_response():
    recorded = tflow()
    _master, addon = playback(recorded)
    flow = live()
    assert answer(addon, flow) == b"recorded"
    assert flow.is_replay == "response"
    assert flow.response is not recorded.response


def test_recorded_responses_are_used_once_in_order():
    master, addon = playback(tflow(body=b"first"), tflow(body=b"second"))
    assert master.commands.call("replay.server.count") == 2
    assert [answer(addon, live()) for _ in range(3)] == [b"first", b"second", None]
    assert master.commands.call("replay.server.count") == 0


@pytest.mark.parametrize("option", ["server_replay_reuse", "server_replay_nopop"])
def test_reuse_keeps_responses(option):
    _master, addon = playback(tflow(body=b"again"), **{option: True})
    assert [answer(addon, live()) for _ in range(3)] == [b"again"] * 3


def test_nopop_is_an_error_as_in_mitmdump(caplog):
    """mitmdump 12 logs an error for server_replay_nopop (so it will not start with it) but a
    value set later still keeps the responses."""
    _master, addon = playback(tflow(body=b"again"), server_replay_nopop=True)
    assert [r.levelname for r in caplog.records if "server_replay_nopop" in r.getMessage()] == ["ERROR"]
    assert [answer(addon, live()) for _ in range(2)] == [b"again"] * 2


def test_flows_without_a_response_are_skipped():
    no_response = tflow()
    no_response.response = None
    _master, addon = playback(no_response, tflow(body=b"real"))
    assert answer(addon, live()) == b"real"


@pytest.mark.parametrize(
    "request_flow",
    [
        live("http://example.com/path?a=2"),  # another query value
        live("http://example.com/other?a=1"),  # another path
        live("https://example.com/path?a=1"),  # another scheme (and port)
        live("http://example.com/path?a=1", "POST"),  # another method
        live("http://example.org/path?a=1"),  # another host
        live("http://example.com:8080/path?a=1"),  # another port
        live("http://example.com/path?a=1", "GET", b"body"),  # another body
    ],
)
def test_everything_counts_by_default(request_flow):
    _master, addon = playback(tflow())
    assert answer(addon, request_flow) is None


def test_headers_do_not_count_unless_named():
    _master, addon = playback(tflow(headers={"X-Token": "1"}), tflow(headers={"X-Token": "1"}))
    assert answer(addon, live(headers={"X-Token": "2"})) == b"recorded"
    master, addon = playback(tflow(headers={"X-Token": "1"}), server_replay_use_headers=["x-token"])
    assert answer(addon, live(headers={"X-Token": "2"})) is None
    assert answer(addon, live(headers={"x-token": "1"})) == b"recorded"


def test_ignore_host_port_content_and_params():
    cases = [
        ({"server_replay_ignore_host": True}, live("http://example.org/path?a=1")),
        ({"server_replay_ignore_port": True}, live("http://example.com:8080/path?a=1")),
        ({"server_replay_ignore_content": True}, live("http://example.com/path?a=1", "GET", b"other")),
        ({"server_replay_ignore_params": ["a", "cb"]}, live("http://example.com/path?a=9&cb=123")),
    ]
    for options, flow in cases:
        _master, addon = playback(tflow(), **options)
        assert answer(addon, flow) == b"recorded", options


def test_ignored_params_still_need_the_rest_to_match():
    _master, addon = playback(tflow("http://example.com/p?a=1&b=2"), server_replay_ignore_params=["a"])
    assert answer(addon, live("http://example.com/p?a=5&b=3")) is None
    assert answer(addon, live("http://example.com/p?a=5&b=2")) == b"recorded"


FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_ignore_payload_params_in_urlencoded_forms():
    recorded = tflow("http://example.com/login", "POST", b"user=me&csrf=abc", FORM)
    _master, addon = playback(recorded, server_replay_ignore_payload_params=["csrf"])
    assert answer(addon, live("http://example.com/login", "POST", b"user=you&csrf=xyz", FORM)) is None
    assert answer(addon, live("http://example.com/login", "POST", b"user=me&csrf=xyz", FORM)) == b"recorded"


def test_ignore_payload_params_in_multipart_forms():
    def multipart(token: str) -> bytes:
        return (
            b"--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ndata\r\n"
            b"--XX\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n" + token.encode() + b"\r\n--XX--\r\n"
        )

    headers = {"content-type": "multipart/form-data; boundary=XX"}
    recorded = tflow("http://example.com/up", "POST", multipart("one"), headers)
    _master, addon = playback(recorded, server_replay_ignore_payload_params=["token"])
    assert answer(addon, live("http://example.com/up", "POST", multipart("two"), headers)) == b"recorded"


def test_payload_params_need_a_form():
    recorded = tflow("http://example.com/raw", "POST", b"csrf=1")  # no form content type
    _master, addon = playback(recorded, server_replay_ignore_payload_params=["csrf"])
    assert answer(addon, live("http://example.com/raw", "POST", b"csrf=2")) is None


def test_changing_a_matching_option_refiles_the_recorded_flows():
    master, addon = playback(tflow())
    flow = live("http://example.org/path?a=1")
    assert answer(addon, flow) is None
    master.options.update(server_replay_ignore_host=True)
    assert answer(addon, flow) == b"recorded"


@pytest.mark.parametrize(
    "extra,expected",
    [("forward", None), ("404", 404), ("204", 204), ("500", 500), ("400", 400)],
)
def test_unmatched_requests_follow_server_replay_extra(extra, expected, caplog):
    _master, addon = playback(tflow(), server_replay_extra=extra)
    flow = live("http://example.com/unknown")
    addon.request(flow)
    if expected is None:
        assert flow.response is None and flow.is_replay is None
    else:
        assert flow.response.status_code == expected and flow.is_replay == "response"
        assert f"returned {extra} non-replay request http://example.com/unknown" in caplog.text


@pytest.mark.parametrize("options", [{"server_replay_extra": "kill"}, {"server_replay_kill_extra": True}])
def test_unmatched_requests_can_be_killed(options, caplog):
    _master, addon = playback(tflow(), **options)
    flow = live("http://example.com/unknown")
    addon.request(flow)
    assert flow.error is not None and flow.error.msg == "Connection killed."
    assert "killed non-replay request" in caplog.text


def test_nothing_happens_once_every_response_is_used():
    _master, addon = playback(tflow(), server_replay_extra="kill")
    assert answer(addon, live()) == b"recorded"
    flow = live("http://example.com/unknown")
    addon.request(flow)
    assert flow.error is None and flow.response is None  # as mitmproxy: playback is over


def test_bad_extra_value_is_refused():
    master = Master(Options())
    master.addons.add(ServerPlayback())
    with pytest.raises(OptionsError, match="forward, kill, 204, 400, 404, 500"):
        master.options.update(server_replay_extra="418")


def dated(seconds_ago: float) -> HTTPFlow:
    flow = tflow()
    then = time.time() - seconds_ago
    flow.response.timestamp_start = then
    flow.response.headers["date"] = email.utils.formatdate(then, usegmt=True)
    flow.response.headers["set-cookie"] = (
        f"id=1; Expires={email.utils.formatdate(then + 3600, usegmt=True)}; Path=/"
    )
    return flow


def test_refresh_moves_dates_and_cookie_expiry_forward():
    _master, addon = playback(dated(86400))
    flow = live()
    addon.request(flow)
    date = email.utils.parsedate_to_datetime(flow.response.headers["date"]).timestamp()
    assert abs(date - time.time()) < 60
    expires = flow.response.headers["set-cookie"].split("Expires=")[1].split(";")[0]
    assert abs(email.utils.parsedate_to_datetime(expires).timestamp() - (time.time() + 3600)) < 60
    assert flow.response.headers["set-cookie"].startswith("id=1; ")
    assert flow.response.headers["set-cookie"].endswith("; Path=/")


def test_refresh_can_be_turned_off():
    recorded = dated(86400)
    _master, addon = playback(recorded, server_replay_refresh=False)
    flow = live()
    addon.request(flow)
    assert flow.response.headers["date"] == recorded.response.headers["date"]


def test_refresh_keeps_each_cookie_header_as_recorded():
    """mitmdump 12.3.1 sends a refreshed ``Set-Cookie`` spelled and placed as recorded."""
    response = Response.make(200)
    response.headers.fields = (
        (b"Set-Cookie", b"a=1; Max-Age=60"), (b"X-Between", b"1"), (b"SET-COOKIE", b"b=2; Path=/")
    )
    response.refresh()
    assert [name for name, _ in response.headers.fields] == [b"Set-Cookie", b"X-Between", b"SET-COOKIE"]


def test_unreadable_cookie_expiry_is_dropped():
    response = Response.make(200)
    response.headers["set-cookie"] = "id=1; expires=not a date; HttpOnly"
    response.refresh()
    assert response.headers["set-cookie"] == "id=1; HttpOnly"


# files and commands ---------------------------------------------------------------------


def write(path: Path, *flows: HTTPFlow) -> Path:
    with path.open("wb") as f:
        writer = FlowWriter(f)
        for flow in flows:
            writer.add(flow)
    return path


def test_option_and_commands_load_files(tmp_path):
    master = Master(Options())
    addon = ServerPlayback()
    master.addons.add(addon)
    master.options.update(server_replay=[str(write(tmp_path / "a.mitm", tflow(), tflow()))])
    assert master.commands.call("replay.server.count") == 2
    master.commands.call("replay.server.file", write(tmp_path / "b.mitm", tflow(body=b"b")))
    assert master.commands.call("replay.server.count") == 1  # replaces what was loaded
    master.commands.call("replay.server.add", [tflow(body=b"added")])
    assert [answer(addon, live()) for _ in range(2)] == [b"b", b"added"]
    master.commands.call("replay.server.add", [tflow()])
    master.commands.call("replay.server.stop")
    assert master.commands.call("replay.server.count") == 0 and answer(addon, live()) is None


def test_bad_files_are_clear_errors(tmp_path):
    master = Master(Options())
    master.addons.add(ServerPlayback())
    with pytest.raises(OptionsError, match=r"Cannot read server replay file .*nope\.mitm: No such file"):
        master.options.update(server_replay=[str(tmp_path / "nope.mitm")])
    assert master.options.server_replay == []
    with pytest.raises(CommandError, match="Cannot read server replay file"):
        master.commands.call("replay.server.file", tmp_path / "nope.mitm")
    garbage = tmp_path / "garbage.mitm"
    garbage.write_bytes(b"12:not a flow,")
    with pytest.raises(OptionsError, match="garbage.mitm"):
        master.options.update(server_replay=[str(garbage)])


# properties ---------------------------------------------------------------------------------

CONTENT_TYPES = st.sampled_from(
    ["", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b", "text/plain"]
)
PATHS = st.text(alphabet="/abc?=&%;#+ éx1", max_size=30).map(lambda p: "/" + p)


@given(path=PATHS, body=st.binary(max_size=200), content_type=CONTENT_TYPES,
       ignored=st.lists(st.sampled_from(["a", "b", "x"]), max_size=2))
def test_any_request_gets_a_key_and_a_recorded_copy_matches_it(path, body, content_type, ignored):
    options = Options()
    master = Master(options)
    master.addons.add(ServerPlayback())
    options.update(server_replay_ignore_payload_params=ignored, server_replay_ignore_params=ignored)
    headers = {"content-type": content_type} if content_type else {}
    flow = tflow("http://example.com" + path, "POST", body, headers)
    recorded = HTTPFlow.from_state(flow.get_state())
    assert request_key(flow.request, options) == request_key(recorded.request, options)
    hash(request_key(flow.request, options))


@given(value=st.text(max_size=20))
def test_ignored_query_parameters_never_change_the_key(value):
    options = Options()
    master = Master(options)
    master.addons.add(ServerPlayback())
    options.update(server_replay_ignore_params=["cb"])
    base = tflow("http://example.com/p?q=1").request
    other = tflow("http://example.com/p?q=1").request
    other.query["cb"] = value
    assert request_key(base, options) == request_key(other, options)
