"""The web API over real HTTP on 127.0.0.1: every REST route, auth, XSRF and errors."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxycore.flow import Error
from proxycore.io import FlowReader
from tests.flows import http_flow, tcp_flow, ws_flow
from tests.webapi import TOKEN, WebServer, put_json, request, running

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

DATA = Path(__file__).parents[1] / "data"
CORPUS = DATA / "corpus-all.mitm"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    with running(tmp_path) as s:
        yield s
    assert "Traceback" not in s.log.getvalue(), s.log.getvalue()


def add(server: WebServer, *flows: Any) -> None:
    server.add(*flows)


def get(server: WebServer, path: str, **kw: Any) -> Any:
    return request(server.port, "GET", path, **kw)


def post(server: WebServer, path: str, body: bytes | str | None = None, **kw: Any) -> Any:
    return request(server.port, "POST", path, body, **kw)


# security ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/flows", "/state", "/events", "/options", "/commands", "/filter-help", "/flows/dump"])
def test_unauthenticated_requests_get_an_empty_403(server: WebServer, path: str) -> None:
    add(server, http_flow(response=True))
    r = get(server, path, auth=False)
    assert r.status == 403 and r.body == b""
    r = get(server, path, headers={"Authorization": "Bearer wrong"})
    assert r.status == 403 and r.body == b""
    r = get(server, path, headers={"Authorization": f"Basic {TOKEN}"})  # other schemes ignored
    assert r.status == 403


def test_bearer_token_and_query_token_set_the_auth_cookie(server: WebServer) -> None:
    r = get(server, f"/flows?token={TOKEN}", auth=False)
    assert r.status == 200
    cookie = r.headers["Set-Cookie"]
    name = f"mitmproxy-auth-{server.master.options.web_port}"
    assert cookie.startswith(f"{name}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "expires=" in cookie and "Path=/" in cookie
    value = cookie.split(";")[0]
    r = get(server, "/flows", auth=False, headers={"Cookie": value})
    assert r.status == 200
    assert "Set-Cookie" not in r.headers  # authenticated by the cookie: nothing new to set
    r = get(server, "/flows", auth=False, headers={"Cookie": f"{name}=y"})  # unsigned
    assert r.status == 403
    assert get(server, "/flows").headers["Set-Cookie"].startswith(f"{name}=")


def test_index_login_form(server: WebServer) -> None:
    r = get(server, "/", auth=False)
    assert r.status == 403 and "403 Authentication Required" in r.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', r.text).group(1)
    r = get(server, "/?token=bad", auth=False)
    assert r.status == 403 and "403 Invalid Password" in r.text
    # The form posts token + _xsrf back to /, with the XSRF cookie the 403 page set.
    form = f"token={TOKEN}&_xsrf={xsrf}"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"_mitmproxy_xsrf={xsrf}"}
    r = post(server, "/", form, auth=False, xsrf=False, headers=headers)
    assert r.status == 200 and "mitmproxy-auth-" in r.headers["Set-Cookie"]
    assert "web_static" in r.text  # no front end configured: the page says how to get one


def test_xsrf_is_required_for_writes_even_with_bearer(server: WebServer) -> None:
    assert post(server, "/clear", xsrf=False).status == 403
    mismatch = {"Cookie": "_mitmproxy_xsrf=one", "X-XSRFToken": "two"}
    assert post(server, "/clear", xsrf=False, headers=mismatch).status == 403
    assert post(server, "/clear").status == 200
    assert post(server, "/clear", xsrf=False, headers={"Cookie": "_mitmproxy_xsrf=abc", "X-CSRFToken": "abc"}).status == 200


def test_cross_site_writes_are_refused(server: WebServer) -> None:
    assert post(server, "/clear", headers={"Sec-Fetch-Site": "cross-site"}).status == 403
    assert post(server, "/clear", headers={"Sec-Fetch-Site": "same-origin"}).status == 200


def test_security_headers_and_methods(server: WebServer) -> None:
    r = get(server, "/flows")
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-XSS-Protection"] == "1; mode=block"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'self'; connect-src 'self' ws:;")
    assert r.headers["Server"].startswith("proxycore ")
    assert not any(h.lower().startswith("access-control") for h in r.headers)
    flow = http_flow()
    add(server, flow)
    assert get(server, f"/flows/{flow.id}").status == 405
    assert request(server.port, "OPTIONS", "/flows").status == 405
    assert request(server.port, "PATCH", "/flows").status == 405


def test_web_server_listens_on_loopback_by_default(server: WebServer) -> None:
    assert server.master.options.web_host == "127.0.0.1"
    assert server.web.addresses[0][0] == "127.0.0.1"


# GET /flows against mitmweb's own output for the corpus ------------------------------------


def shape(value: Any) -> Any:
    """Keys and value types of a JSON document (numbers are one type: JSON has one)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value if value is None else "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


@pytest.fixture
def corpus(tmp_path: Path) -> Iterator[WebServer]:
    with running(tmp_path, rfile=str(CORPUS)) as s:
        s.wait_for_flows(16)
        yield s


def test_flows_match_mitmweb_for_the_corpus(corpus: WebServer) -> None:
    ours = get(corpus, "/flows").json()
    reference = json.loads((DATA / "corpus-all.webflows.json").read_text())
    assert len(ours) == len(reference) == 16
    for mine, theirs in zip(ours, reference, strict=True):
        assert list(mine) == list(theirs)  # same keys in the same order
        assert shape(mine) == shape(theirs)
        # Everything but volatile values is equal too: ids, timestamps and content come
        # from the same file.
        assert mine == theirs


def test_flows_json_suffix_and_content_type(corpus: WebServer) -> None:
    r = get(corpus, "/flows.json")
    assert r.status == 200 and r.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert len(r.json()) == 16


def test_read_only_routes_match_mitmweb_shapes(corpus: WebServer) -> None:
    extra = json.loads((DATA / "corpus-all.webextra.json").read_text())
    # /state: mitmweb 12 added localModeUnavailable to the 11.0.2 reference's keys.
    state = get(corpus, "/state").json()
    assert list(state) == [*extra["GET /state"], "localModeUnavailable"]
    assert state["contentViews"][0] == "auto" and state["platform"] == extra["GET /state"]["platform"]
    (server,) = state["servers"].values()
    assert set(server) == {"type", "description", "full_spec", "is_running", "last_exception", "listen_addrs"}
    assert server["is_running"] is True and server["listen_addrs"]
    # /options: every option is an entry of the same shape; shared ones have the same type.
    ours, theirs = get(corpus, "/options").json(), extra["GET /options"]
    assert list(ours) == sorted(ours)
    for name, entry in ours.items():
        assert list(entry) == ["type", "default", "value", "help", "choices"]
        if name in theirs:
            assert entry["type"] == theirs[name]["type"], name
            assert shape(entry["choices"]) == shape(theirs[name]["choices"]), name
    for name in ("view_filter", "view_order", "view_order_reversed", "web_port", "web_host",
                 "web_open_browser", "web_debug", "web_columns", "web_password", "web_theme"):
        assert name in ours, name
    assert ours["view_order"] == {**theirs["view_order"], "help": ours["view_order"]["help"]}
    # /filter-help, /commands, /events: same shapes.
    assert shape(get(corpus, "/filter-help").json())["commands"][0] == ["str", "str"]
    commands = get(corpus, "/commands").json()
    example = next(iter(extra["GET /commands"].values()))
    for name, entry in commands.items():
        assert list(entry) == list(example), name
    for name in ("view.clear", "view.flows.resolve", "view.flows.create", "flow.resume", "set"):
        assert commands[name]["parameters"] == extra["GET /commands"][name]["parameters"], name
        assert commands[name]["signature_help"] == extra["GET /commands"][name]["signature_help"]
        assert commands[name]["return_type"] == extra["GET /commands"][name]["return_type"]
    events = get(corpus, "/events").json()
    assert events and all(list(e) == ["id", "message", "level"] for e in events)
    assert shape(events[0]) == shape(extra["GET /events"][0])
    assert re.match(r"\[\d\d:\d\d:\d\d\.\d\d\d\] ", events[0]["message"])


# flow actions -------------------------------------------------------------------------


def test_unknown_flow_ids_are_404(server: WebServer) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    for method, path in [
        ("DELETE", f"/flows/{missing}"),
        ("POST", f"/flows/{missing}/resume"),
        ("POST", f"/flows/{missing}/kill"),
        ("POST", f"/flows/{missing}/duplicate"),
        ("POST", f"/flows/{missing}/replay"),
        ("POST", f"/flows/{missing}/revert"),
        ("GET", f"/flows/{missing}/request/content.data"),
        ("GET", f"/flows/{missing}/request/content/auto.json"),
    ]:
        r = request(server.port, method, path)
        assert (r.status, r.text) == (404, "Flow not found."), (method, path)
    r = put_json(server.port, f"/flows/{missing}", {"comment": "x"})
    assert (r.status, r.text) == (404, "Flow not found.")
    assert get(server, "/flows/not-hex!").status == 404  # no route at all


def test_put_edits_request_response_marks_and_comment(server: WebServer) -> None:
    flow = http_flow(response=True)
    add(server, flow)
    edit = {
        "request": {"method": "POST", "host": "other.example", "port": "8080", "path": "/new",
                    "headers": [["a", "1"], ["a", "2"], ["Content-Type", "text/plain"]],
                    "trailers": [["t", "1"]], "content": "héllo"},
        "response": {"code": 404, "reason": "Nope", "http_version": "HTTP/1.0",
                     "headers": [["x", "y"]], "content": "gone"},
        "marked": ":red_circle:",
        "comment": "edited",
    }
    r = put_json(server.port, f"/flows/{flow.id}", edit)
    assert r.status == 200 and r.body == b""
    req, resp = flow.request, flow.response
    assert (req.method, req.host, req.port, req.path) == ("POST", "other.example", 8080, "/new")
    assert req.headers.get_all("a") == ["1", "2"] and req.trailers["t"] == "1"
    assert req.text == "héllo" and req.headers["content-length"] == str(len("héllo".encode("latin-1")))
    assert (resp.status_code, resp.reason, resp.http_version, resp.content) == (404, "Nope", "HTTP/1.0", b"gone")
    assert flow.marked == ":red_circle:" and flow.comment == "edited"
    (shown,) = get(server, "/flows").json()
    assert shown["modified"] is True and shown["marked"] == "\U0001f534" and shown["comment"] == "edited"
    assert shown["request"]["headers"][:2] == [["a", "1"], ["a", "2"]]
    # revert restores the backup and drops it
    assert post(server, f"/flows/{flow.id}/revert").status == 200
    assert flow.request.method == "GET" and flow.comment == "" and not flow.modified()
    assert post(server, f"/flows/{flow.id}/revert").status == 200  # nothing to revert: fine


@pytest.mark.parametrize(
    "body, message",
    [
        ({"nope": 1}, "Unknown update nope: 1"),
        ({"request": {"bogus": "x"}}, "Unknown update request.bogus: x"),
        ({"response": {"bogus": "x"}}, "Unknown update response.bogus: x"),
        ({"comment": "kept?", "request": {"port": "notanumber"}}, "Invalid update request.port: notanumber"),
        ({"request": {"port": 70000}}, "Invalid update request.port: 70000"),
        ({"response": {"code": 1e400}}, "Invalid update response.code: inf"),
        ({"response": {"content": 5}}, "Invalid update response.content: expected a string."),
        ({"request": {"headers": [["a"]]}}, "Invalid update request.headers: expected a list of [name, value] pairs."),
        ({"request": {"trailers": "x"}}, "Invalid update request.trailers: expected a list of [name, value] pairs."),
        ({"request": []}, "Unknown update request: []"),
    ],
)
def test_put_errors_are_400_and_roll_back(server: WebServer, body: Any, message: str | None) -> None:
    flow = http_flow(response=True)
    add(server, flow)
    r = put_json(server.port, f"/flows/{flow.id}", body)
    assert r.status == 400
    if message:
        assert r.text == message
    assert flow.comment == "" and not flow.modified()


def test_put_rejects_bad_json_and_content_type(server: WebServer) -> None:
    flow = http_flow()
    add(server, flow)
    r = request(server.port, "PUT", f"/flows/{flow.id}", "{not json", {"Content-Type": "application/json"})
    assert r.status == 400 and r.text.startswith("Malformed JSON: ")
    r = request(server.port, "PUT", f"/flows/{flow.id}", '{"comment": "x"}', {"Content-Type": "text/plain"})
    assert (r.status, r.text) == (400, "Invalid Content-Type, expected application/json.")
    assert put_json(server.port, f"/flows/{flow.id}", ["not", "an", "object"]).status == 400
    r = put_json(server.port, f"/flows/{tcp_flow().id}", {"request": {}})
    assert r.status == 404
    tcp = tcp_flow()
    add(server, tcp)
    r = put_json(server.port, f"/flows/{tcp.id}", {"request": {"method": "GET"}})
    assert r.status == 400 and r.text.startswith("Unknown update request: ")
    assert get(server, "/flows").status == 200  # still serving


def test_put_response_of_flow_without_response(server: WebServer) -> None:
    flow = http_flow()
    add(server, flow)
    r = put_json(server.port, f"/flows/{flow.id}", {"response": {"code": 200}})
    assert r.status == 400 and flow.response is None


def test_delete_duplicate_resume_kill(server: WebServer) -> None:
    live, done = http_flow(), http_flow(response=True)
    live.live = True
    live.intercepted = True
    add(server, live, done)
    r = post(server, f"/flows/{done.id}/duplicate")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    copy = server.view.get_by_id(r.text)
    assert copy is not None and copy.id != done.id and copy.live is False
    assert [f["id"] for f in get(server, "/flows").json()] == [live.id, done.id, copy.id]

    assert post(server, f"/flows/{live.id}/resume").status == 200
    assert live.intercepted is False
    live.intercepted = True
    assert post(server, "/flows/resume").status == 200
    assert live.intercepted is False
    assert post(server, f"/flows/{done.id}/kill").status == 200  # not killable: no-op
    assert done.error is None
    assert post(server, f"/flows/{live.id}/kill").status == 200
    assert live.error.msg == Error.KILLED_MESSAGE and live.live is False
    second = http_flow()
    second.live = True
    add(server, second)
    assert post(server, "/flows/kill").status == 200
    assert second.error.msg == Error.KILLED_MESSAGE

    assert request(server.port, "DELETE", f"/flows/{done.id}").status == 200
    assert done.id not in [f["id"] for f in get(server, "/flows").json()]


def test_replay_refuses_what_cannot_be_replayed(server: WebServer) -> None:
    tcp = tcp_flow()
    tcp.server_conn.address = None  # TCP flows replay (beyond mitmweb), but not without a server
    add(server, tcp)
    r = post(server, f"/flows/{tcp.id}/replay")
    assert r.status == 200  # mitmweb answers 200 and only logs why
    events = get(server, "/events").json()
    assert any("Can't replay a flow without a server address." in e["message"] for e in events), events


def test_tcp_replay_adds_the_replayed_flow(server: WebServer) -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def echo() -> None:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65535):
                conn.sendall(data.upper())

    threading.Thread(target=echo, daemon=True).start()
    tcp = tcp_flow()
    tcp.server_conn.address = listener.getsockname()
    add(server, tcp)
    before = len(get(server, "/flows").json())
    assert post(server, f"/flows/{tcp.id}/replay").status == 200
    server.wait_for_flows(before + 1)
    flows = get(server, "/flows").json()
    (replayed,) = [f for f in flows if f["id"] != tcp.id and f["is_replay"] == "request"]
    assert replayed["type"] == "tcp"
    listener.close()


def test_content_data_download_and_upload(server: WebServer) -> None:
    import gzip

    flow = http_flow(url="http://example.com/dir/file.txt?x=1", response=True)
    flow.response.headers["content-encoding"] = "gzip"
    flow.response.raw_content = gzip.compress(b"unzipped body")
    add(server, flow)
    r = get(server, f"/flows/{flow.id}/response/content.data")
    assert r.status == 200 and r.body == b"unzipped body"
    assert r.headers["Content-Type"] == "application/text"
    assert r.headers["Content-Disposition"] == "attachment; filename=file.txt"
    flow.response.headers["Content-Disposition"] = 'attachment; filename="report (1).pdf"; x=<y>'
    r = get(server, f"/flows/{flow.id}/response/content.data")
    assert r.headers["Content-Disposition"] == 'attachment; filename="report (1).pdf"'
    # Upload: multipart, first file field; stored decoded -> re-encoded with gzip.
    boundary = "XyZ"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\n"
        f"Content-Type: plain/text\r\n\r\nnew body\r\n--{boundary}--\r\n"
    )
    r = post(server, f"/flows/{flow.id}/response/content.data", body,
             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status == 200
    assert flow.response.content == b"new body" and flow.response.raw_content[:2] == b"\x1f\x8b"
    assert flow.response.headers["content-length"] == str(len(flow.response.raw_content))
    assert flow.modified()
    r = post(server, f"/flows/{flow.id}/request/content.data", b"raw upload")
    assert r.status == 200 and flow.request.content == b"raw upload"
    # parts a flow does not have
    tcp = tcp_flow()
    no_response = http_flow()
    add(server, tcp, no_response)
    assert get(server, f"/flows/{tcp.id}/request/content.data").status == 400
    assert get(server, f"/flows/{no_response.id}/response/content.data").status == 400
    assert get(server, f"/flows/{flow.id}/messages/content.data").status == 400


# dump / upload / clear --------------------------------------------------------------


def read_flows(data: bytes) -> list[Any]:
    import io

    return list(FlowReader(io.BytesIO(data)).stream())


def test_dump_download_with_filter(server: WebServer) -> None:
    a, b = http_flow(method="GET"), http_flow(method="POST")
    add(server, a, b)
    r = get(server, "/flows/dump")
    assert r.status == 200 and r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"] == "attachment; filename=flows"
    assert [f.id for f in read_flows(r.body)] == [a.id, b.id]
    r = get(server, "/flows/dump?filter=~m%20POST")
    assert [f.id for f in read_flows(r.body)] == [b.id]
    r = get(server, "/flows/dump?filter=~m+(")
    assert (r.status, r.text) == (400, "Invalid filter argument / regex")
    r = get(server, "/flows/dump", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("Content-Encoding") == "gzip"


def test_dump_upload_replaces_the_view(server: WebServer) -> None:
    add(server, http_flow())
    data = CORPUS.read_bytes()
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"flows\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    r = post(server, "/flows/dump", body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status == 200
    flows = get(server, "/flows").json()
    assert len(flows) == 16 and flows[0]["id"] == read_flows(data)[0].id
    # raw body works too; a broken file is refused and the view stays as it was
    r = post(server, "/flows/dump", data[: len(data) // 2])
    assert r.status == 400 and r.text.startswith("Invalid flow file")
    assert len(get(server, "/flows").json()) == 16
    assert post(server, "/flows/dump", data).status == 200
    assert len(get(server, "/flows").json()) == 16


def test_clear_empties_flows_and_events(server: WebServer) -> None:
    add(server, http_flow())
    assert get(server, "/events").json()
    assert post(server, "/clear").status == 200
    assert get(server, "/flows").json() == []
    events = get(server, "/events").json()
    assert all("POST /clear" not in e["message"] for e in events)


# commands, options, misc ---------------------------------------------------------------


def test_commands_execute(server: WebServer) -> None:
    a, b = http_flow(method="GET"), http_flow(method="POST")
    add(server, a, b)

    def run(cmd: str, body: Any = None, **kw: Any) -> Any:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        headers.update(kw.pop("headers", {}))
        return post(server, f"/commands/{cmd}", data, headers=headers, **kw)

    r = run("view.flows.resolve", {"arguments": ["~m POST"]})
    assert r.status == 200 and [f["id"] for f in r.json()["value"]] == [b.id]
    assert run("view.properties.length").json() == {"value": 2}
    r = run("flow.mark", {"arguments": [f"@{a.id}", ":green_circle:"]})
    assert r.json() == {"value": None} and a.marked == ":green_circle:"
    assert run("view.flows.create", {"arguments": ["get", "https://example.com/"]}).json() == {"value": None}
    assert len(get(server, "/flows").json()) == 3
    assert run("nope.nope").json() == {"error": "Unknown command: nope.nope"}
    assert "error" in run("view.flows.resolve", {"arguments": ["~m ("]}).json()
    # malformed JSON or another content type: run without arguments
    r = post(server, "/commands/view.properties.length", "{oops", headers={"Content-Type": "application/json"})
    assert r.json() == {"value": 3}
    assert run("View.clear").status == 404


def test_options_get_and_put(server: WebServer) -> None:
    options = get(server, "/options").json()
    assert options["view_order"]["choices"] == ["time", "method", "url", "size"]
    assert options["web_columns"]["type"] == "sequence of str"
    assert options["web_password"]["value"] == TOKEN  # visible to authenticated clients, as in mitmweb
    assert put_json(server.port, "/options", {"anticache": True, "view_order": "size"}).status == 200
    assert server.master.options.anticache is True and server.master.options.view_order == "size"
    r = put_json(server.port, "/options", {"nope": 1})
    assert (r.status, r.text) == (400, "'Unknown options: nope'")
    r = put_json(server.port, "/options", {"anticache": "yes"})
    assert (r.status, r.text) == (400, "Expected <class 'bool'> for anticache, but got <class 'str'>.")
    r = put_json(server.port, "/options", {"anticomp": True, "view_filter": "~q ("})
    assert r.status == 400 and r.text.startswith("Invalid filter expression: '~q ('")
    assert server.master.options.anticomp is False  # the whole update was rolled back
    r = put_json(server.port, "/options", {"view_order": "nope"})
    assert r.status == 400
    r = request(server.port, "PUT", "/options", "{", {"Content-Type": "application/json"})
    assert r.status == 400
    assert post(server, "/options/save").status == 200


def test_filter_help_processes_and_icons(server: WebServer) -> None:
    rows = get(server, "/filter-help").json()["commands"]
    assert ["~q", rows[[r[0] for r in rows].index("~q")][1]] in rows
    assert [r[0] for r in rows[-4:]] == ["!", "&", "|", "(...)"]
    processes = get(server, "/processes").json()
    if _can_list_processes():
        assert os.path.realpath(sys.executable) in [p["executable"] for p in processes]
    else:
        assert processes == []
    r = get(server, "/executable-icon")
    assert (r.status, r.text) == (400, "Missing 'path' parameter.")
    r = get(server, "/executable-icon?path=/bin/sh")
    assert r.headers["Content-Type"] == "image/png" and r.body.startswith(b"\x89PNG")


def _can_list_processes() -> bool:
    """mitmproxy-rs 0.10 (what Python 3.11 gets) lists processes on Windows and macOS only."""
    from mitmproxy_rs import process_info

    try:
        process_info.active_executables()
    except NotImplementedError:
        return False
    return True


def test_errors_never_stop_the_server(server: WebServer) -> None:
    """A burst of bad requests: each gets its 4xx, the server keeps answering."""
    for _ in range(3):
        assert put_json(server.port, "/options", {"nope": 1}).status == 400
        assert request(server.port, "PUT", "/flows/abc", "x", {"Content-Type": "application/json"}).status == 404
        assert post(server, "/flows/dump", b"garbage").status == 400
        assert get(server, "/flows/abc/request/content/auto.json?lines=x").status in (400, 404)
    assert get(server, "/flows").status == 200
    events = get(server, "/events").json()
    assert any(re.search(r"400 PUT /options \(127\.0\.0\.1\)", e["message"]) and e["level"] == "warn" for e in events)


def test_static_front_end(tmp_path: Path) -> None:
    front = tmp_path / "front"
    (front / "static").mkdir(parents=True)
    (front / "index.html").write_text('<script type="module" src="./static/app.js"></script>')
    (front / "static" / "app.js").write_text("console.log(1)")
    s = WebServer(tmp_path, web_static=str(front))
    try:
        r = get(s, "/")
        assert r.status == 200 and r.text.startswith("<script")
        js = get(s, "/static/app.js", auth=False)  # static files need no auth
        assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
        assert get(s, "/static/missing.js", auth=False).status == 404
        # mitmproxy 12.x's index.html still links src/css/vendor.less; mitmweb answers 404
        # too, so the browser check (tests/ui/ui_check.mjs) ignores that one console error
        assert get(s, "/src/css/vendor.less").status == 404
    finally:
        s.stop()


def test_bad_web_static_is_an_option_error(server: WebServer, tmp_path: Path) -> None:
    from proxycore.exceptions import OptionsError

    with pytest.raises(OptionsError, match="no index.html"):
        server.call(lambda: server.master.options.update(web_static=str(tmp_path)))


def test_flow_json_for_websocket_and_tcp_flows(server: WebServer) -> None:
    ws, tcp = ws_flow(), tcp_flow()
    add(server, ws, tcp)
    shown = get(server, "/flows").json()
    assert shown[0]["websocket"]["messages_meta"]["count"] == 2
    assert shown[1]["type"] == "tcp" and shown[1]["messages_meta"]["contentLength"] == len(b"ping requestpong reply")


def test_command_history_as_the_command_bar_uses_it(server: WebServer) -> None:
    def run(cmd: str, *args: str) -> Any:
        body = json.dumps({"arguments": list(args)})
        return post(server, f"/commands/{cmd}", body, headers={"Content-Type": "application/json"}).json()

    assert run("commands.history.get") == {"value": []}
    run("commands.history.add", "view.clear")
    run("commands.history.add", "   ")  # blank: ignored
    run("commands.history.add", "view.flows.create get https://example.com/")
    assert run("commands.history.get") == {"value": ["view.clear", "view.flows.create get https://example.com/"]}
    history_file = Path(server.master.options.confdir) / "command_history"
    assert history_file.read_text().splitlines() == ["view.clear", "view.flows.create get https://example.com/"]
    run("commands.history.filter", "view.c")
    assert run("commands.history.prev") == {"value": "view.clear"}
    assert run("commands.history.next") == {"value": "view.c"}
    run("commands.history.clear")
    assert run("commands.history.get") == {"value": []} and not history_file.exists()


def test_flow_list_is_fresh_after_every_kind_of_change(server: WebServer) -> None:
    """GET /flows reuses each flow's JSON until the view reports a change: check the paths."""
    get_flow, post_flow = http_flow(method="GET"), http_flow(method="POST")
    add(server, get_flow, post_flow)

    def listed() -> dict[str, Any]:
        return {f["id"]: f for f in get(server, "/flows").json()}

    assert listed()[get_flow.id]["comment"] == ""
    put_json(server.port, f"/flows/{get_flow.id}", {"comment": "one"})
    assert listed()[get_flow.id]["comment"] == "one"

    # hidden by the view filter, changed while hidden, shown again
    put_json(server.port, "/options", {"view_filter": "~m POST"})
    assert list(listed()) == [post_flow.id]

    def change_hidden() -> None:
        get_flow.comment = "changed while hidden"
        server.view.update([get_flow])

    server.call(change_hidden)
    put_json(server.port, "/options", {"view_filter": None})
    assert listed()[get_flow.id]["comment"] == "changed while hidden"

    # a hook-driven change (the update hook after it)
    from proxycore.layers.http._hooks import HttpResponseHook

    def respond() -> Any:
        from proxycore.http import Response

        post_flow.response = Response.make(201, b"made")
        return server.master.addons.handle_lifecycle(HttpResponseHook(post_flow))

    server.call(respond)
    assert listed()[post_flow.id]["response"]["status_code"] == 201
    post(server, f"/flows/{post_flow.id}/revert")
    post(server, "/clear")
    assert listed() == {}


class _FakeProcess:
    """What mitmproxy-rs's ``process_info.Process`` offers."""

    def __init__(self, executable: str, display_name: str, is_visible: bool, is_system: bool) -> None:
        self.executable = Path(executable)
        self.display_name, self.is_visible, self.is_system = display_name, is_visible, is_system


def test_process_list_has_mitmwebs_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    from mitmproxy_rs import process_info

    from proxycore.proxy.server_rs import active_executables, executable_icon

    monkeypatch.setattr(process_info, "active_executables", lambda: [_FakeProcess("/usr/bin/curl", "curl", True, False)])
    assert active_executables() == [
        {"is_visible": True, "executable": "/usr/bin/curl", "is_system": False, "display_name": "curl"}
    ]

    def no_listing() -> list[object]:
        raise NotImplementedError("active_executables is only available on Windows")

    monkeypatch.setattr(process_info, "active_executables", no_listing)
    assert active_executables() == []
    monkeypatch.setattr(process_info, "executable_icon", lambda path: b"\x89PNG icon of " + path.encode())
    assert executable_icon("/x") == b"\x89PNG icon of /x"
    monkeypatch.setattr(process_info, "executable_icon", lambda path: no_listing())
    assert executable_icon("/x") is None
