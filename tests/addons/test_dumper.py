"""proxydump's per-flow output: the exact lines mitmdump prints for the same flows."""

from __future__ import annotations

import io

import pytest

from proxycore.addons.dumper import (
    FLOW_HOOKS,
    Dumper,
    cut_after_lines,
    escape_bytes,
    pretty_size,
)
from proxycore.addons.termlog import format_address

http = pytest.importorskip("proxycore.http")
flow_mod = pytest.importorskip("proxycore.flow")

CLIENT = ("127.0.0.1", 51044)  # "127.0.0.1:51044" is 15 characters: response lines pad 13


def make_flow(
    method: str = "GET",
    url: str = "http://example.com/path",
    status: int | None = 200,
    body: bytes | None = b"hello, world!",
    version: str = "HTTP/1.1",
    response_version: str | None = None,
    request_headers: tuple[tuple[bytes, bytes], ...] = ((b"Host", b"example.com"),),
    response_headers: tuple[tuple[bytes, bytes], ...] = ((b"Content-Type", b"text/plain"),),
    client: tuple[str, int] = CLIENT,
) -> http.HTTPFlow:
    from proxycore.connection import Client, Server

    request = http.Request.make(method, url)
    request.headers = http.Headers(request_headers)
    request.http_version = version
    f = http.HTTPFlow(Client(peername=client, sockname=("127.0.0.1", 8080)), Server(address=("example.com", 80)))
    f.request = request
    if status is not None:
        response = http.Response.make(status)
        response.headers = http.Headers(response_headers)
        response.http_version = response_version or version
        response.raw_content = body
        f.response = response
    return f


def dump(f, detail: int = 1, showhost: bool = False, cutoff: int = 512) -> str:
    out = io.StringIO()
    d = Dumper(out)
    d.set_flow_detail(detail)
    d.showhost = showhost
    d.cutoff = cutoff
    d.response(f)
    return out.getvalue()


@pytest.fixture(autouse=True)
def columns(monkeypatch):
    # Width as when stdout is not a terminal: 80 columns, URLs cut after 55 characters.
    monkeypatch.setenv("COLUMNS", "80")


def test_level1_request_and_response():
    assert dump(make_flow()) == (
        "127.0.0.1:51044: GET http://example.com/path\n"
        "              << 200 OK 13b\n"
    )


def test_status_reason_and_size_forms():
    f = make_flow(status=404, body=b"x" * 1234)
    f.response.reason = "Not Found"
    assert dump(f).splitlines()[1] == "              << 404 Not Found 1.2k"


def test_content_missing():
    f = make_flow(body=None)
    assert dump(f).splitlines()[1].endswith(" << 200 OK (content missing)")


def test_http2_shows_versions_and_standard_reason():
    f = make_flow(version="HTTP/2.0", body=b"")
    f.response.reason = ""
    assert dump(f) == (
        "127.0.0.1:51044: GET http://example.com/path HTTP/2.0\n"
        "     << HTTP/2.0 200 OK 0b\n"
    )


def test_version_shown_when_request_and_response_differ():
    f = make_flow(version="HTTP/1.0", response_version="HTTP/1.1")
    lines = dump(f).splitlines()
    assert lines[0].endswith("/path HTTP/1.0")
    assert lines[1] == "     << HTTP/1.1 200 OK 13b"


def test_error_line():
    f = make_flow(status=None)
    f.error = flow_mod.Error("[Errno 111] Connect call failed ('127.0.0.1', 9)")
    assert dump(f) == (
        "127.0.0.1:51044: GET http://example.com/path\n"
        " << [Errno 111] Connect call failed ('127.0.0.1', 9)\n"
    )


def test_replay_markers():
    f = make_flow()
    f.is_replay = "request"
    assert dump(f).splitlines()[0] == "[replay]: GET http://example.com/path"
    f.is_replay = "response"
    assert dump(f).splitlines()[1] == "[replay]      << 200 OK 13b"


def test_showhost_uses_pretty_url():
    f = make_flow(url="http://10.0.0.1/x", request_headers=((b"Host", b"example.org"),))
    assert dump(f).splitlines()[0] == "127.0.0.1:51044: GET http://10.0.0.1/x"
    assert dump(f, showhost=True).splitlines()[0] == "127.0.0.1:51044: GET http://example.org/x"


def test_long_url_cut_at_level1_only():
    url = "http://example.com/" + "a" * 100
    line = dump(make_flow(url=url)).splitlines()[0]
    assert line == "127.0.0.1:51044: GET " + url[:55] + "…"
    assert dump(make_flow(url=url), detail=2).splitlines()[0].endswith(url)


def test_ipv6_client_and_padding():
    f = make_flow(client=("::1", 4000))
    assert dump(f) == "[::1]:4000: GET http://example.com/path\n         << 200 OK 13b\n"


def test_control_characters_are_escaped():
    f = make_flow()
    f.response.reason = "O\x1b[31mK"
    assert "\x1b" not in dump(f)


def test_level2_headers_and_trailers():
    f = make_flow()
    f.response.trailers = http.Headers([(b"x-checksum", b"abc")])
    assert dump(f, detail=2) == (
        "127.0.0.1:51044: GET http://example.com/path\n"
        "    Host: example.com\n"
        " << 200 OK 13b\n"
        "    Content-Type: text/plain\n"
        "    --- HTTP Trailers\n"
        "    x-checksum: abc\n"
    )


def test_level3_bodies_cut_after_cutoff():
    f = make_flow(body=b"one\ntwo\nthree\nfour\n")
    out = dump(f, detail=3, cutoff=2)
    assert out.endswith(
        " << 200 OK 19b\n"
        "    Content-Type: text/plain\n"
        "\n"
        "    one\n"
        "    two\n"
        "    (cut off)\n"
        "\n"
    )
    assert "(cut off)" not in dump(f, detail=4, cutoff=2)
    assert "    four\n" in dump(f, detail=4, cutoff=2)


def test_level3_binary_body_is_hexdumped():
    f = make_flow(body=bytes(range(16)), response_headers=())
    assert "    0000:   00 01 02 03  04 05 06 07  08 09 0a 0b  0c 0d 0e 0f   ................\n" in dump(f, detail=3)


def test_flow_detail_0_switches_the_flow_hooks_off():
    d = Dumper(io.StringIO())
    assert all(callable(getattr(d, name)) for name in FLOW_HOOKS)
    assert d.hooks_active
    d.set_flow_detail(0)
    assert not d.hooks_active
    d.set_flow_detail(1)
    assert d.hooks_active


def test_one_write_per_flow():
    class Counting(io.StringIO):
        writes = 0

        def write(self, s: str) -> int:
            Counting.writes += 1
            return super().write(s)

    out = Counting()
    d = Dumper(out)
    d.set_flow_detail(3)
    d.response(make_flow())
    assert Counting.writes == 1


def test_no_colours_when_not_a_terminal():
    assert "\x1b[" not in dump(make_flow(status=500))


@pytest.mark.parametrize(
    "size, text",
    [(0, "0b"), (13, "13b"), (1023, "1023b"), (1024, "1.0k"), (1234, "1.2k"), (102400, "100k"),
     (5 * 1024 * 1024, "5.0m"), (3 * 1024**3, "3.0g"), (2000 * 1024**4, "2000t")],
)
def test_pretty_size(size, text):
    assert pretty_size(size) == text


def test_helpers():
    assert cut_after_lines("a\nb\nc", 2) == "a\nb\n"
    assert cut_after_lines("a\nb", 5) == "a\nb"
    assert escape_bytes(b"plain") == "plain"
    assert escape_bytes(b"a\\b\xff\n'") == "a\\\\b\\xff\\n'"
    assert format_address(("0.0.0.0", 8080)) == "*:8080"
    assert format_address(("::ffff:10.0.0.1", 1)) == "10.0.0.1:1"
    assert format_address(None) == "<no address>"


def test_level3_shows_decoded_body():
    import gzip

    f = make_flow(body=gzip.compress(b"plain text body"),
                  response_headers=((b"Content-Encoding", b"gzip"),))
    assert "    plain text body\n" in dump(f, detail=3)


def test_tcp_message_and_error_lines():
    from proxycore.connection import Client, Server
    from proxycore.tcp import TCPFlow, TCPMessage

    f = TCPFlow(Client(peername=CLIENT, sockname=("127.0.0.1", 8080)), Server(address=("10.0.0.2", 22)))
    out = io.StringIO()
    d = Dumper(out)
    f.messages.append(TCPMessage(True, b"ping"))
    d.tcp_message(f)
    f.messages.append(TCPMessage(False, b"pong"))
    d.set_flow_detail(3)
    d.tcp_message(f)
    f.error = flow_mod.Error("connection reset")
    d.tcp_error(f)
    assert out.getvalue() == (
        "127.0.0.1:51044 -> tcp -> 10.0.0.2:22\n"
        "127.0.0.1:51044 <- tcp <- 10.0.0.2:22\n"
        "\n"
        "    pong\n"
        "\n"
        "Error in TCP connection to 10.0.0.2:22: connection reset\n"
    )


def test_quiet_dumper_is_not_dispatched_to():
    """With flow_detail 0 the addon manager's hook index no longer lists the dumper."""
    from proxycore.master import Master

    master = Master()
    master.addons.add(Dumper(io.StringIO()))
    assert master.addons.has_handlers("response")
    master.options.update(flow_detail=0)
    assert not master.addons.has_handlers("response")
    master.options.update(flow_detail=1)
    assert master.addons.has_handlers("response")
