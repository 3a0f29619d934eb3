"""A buffered response body that comes whole in one chunk is kept as that chunk, without a
BodyBuffer (issue 15: the buffer and its expect/append/take calls cost ~3k instructions per
response); from a second chunk on, a BodyBuffer holds it, with room for the declared size.
However the body arrives, what reaches the client and the hooks is the same."""

from __future__ import annotations

from typing import Any

import pytest

from proxycore.layers.http._body import BodyBuffer
from proxycore.proxy import events
from tests.speed.test_layer_fast_paths import GET, Driver, _pieces

BODY = bytes(range(65, 65 + 50))
SIZED = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n%s\r\n22\r\n%s\r\n0\r\n\r\n" % (
    BODY[:16],
    BODY[16:],
)
CUTS = [[], [len(SIZED) - len(BODY) + 1], [len(SIZED) - 7], [5, 45, 60, 70, 80]]


def _converse(response: bytes, cuts: list[int], **options: Any) -> list[Any]:
    driver = Driver(instant_hooks=True)
    driver.context.options.update(**options)
    for _ in range(2):  # (the second on the same stream objects' class defaults)
        driver.feed(events.DataReceived(driver.context.client, GET))
        assert driver.server is not None
        for piece in _pieces(response, cuts):
            driver.feed(events.DataReceived(driver.server, piece))
    return driver.trace


@pytest.mark.parametrize("response", [SIZED, CHUNKED], ids=["sized", "chunked"])
@pytest.mark.parametrize("cuts", CUTS)
def test_a_body_in_one_chunk_or_in_parts_gives_the_same(response: bytes, cuts: list[int]) -> None:
    whole = _converse(response, [])
    assert _converse(response, cuts) == whole
    assert ("response", "GET", "http://example.com/a", b"", (200, BODY), None) in whole


@pytest.mark.parametrize("response", [SIZED, CHUNKED], ids=["sized", "chunked"])
@pytest.mark.parametrize("cuts", CUTS)
@pytest.mark.parametrize("options", [{"body_size_limit": "20"}, {"stream_large_bodies": "20"}])
def test_limits_decide_alike_however_the_body_comes(response: bytes, cuts: list[int], options: dict[str, str]) -> None:
    """Over body_size_limit: 502 either way; over the streaming threshold: the same body
    reaches the client (in as many pieces as came)."""
    whole = _converse(response, [], **options)
    parts = _converse(response, cuts, **options)
    if "body_size_limit" in options:
        # (What the server sends after the 502 is logged, and its connection closed, as it
        # came: compared are the hooks and what the client gets.)
        assert _hooks_and_client(parts) == _hooks_and_client(whole)
        assert any(e[0] == "send" and e[1] == "client" and e[2].startswith(b"HTTP/1.1 502") for e in whole)
    else:
        sent = b"".join(e[2] for e in parts if e[0] == "send" and e[1] == "client")
        assert _bodies(sent) == [BODY, BODY]
        assert [e for e in parts if e[0] != "send"] == [e for e in whole if e[0] != "send"]


def _hooks_and_client(trace: list[Any]) -> list[Any]:
    return [e for e in trace if e[0] not in ("log", "close") and not (e[0] == "send" and e[1] == "server")]


def _bodies(sent: bytes) -> list[bytes]:
    """The bodies of the responses in ``sent`` (by Content-Length, or chunked)."""
    bodies = []
    while sent:
        head, _, sent = sent.partition(b"\r\n\r\n")
        if b"Content-Length: " in head:
            size = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            bodies.append(sent[:size])
            sent = sent[size:]
            continue
        body = b""
        while True:
            line, _, sent = sent.partition(b"\r\n")
            size = int(line, 16)
            body, sent = body + sent[:size], sent[size + 2 :]
            if not size:
                break
        bodies.append(body)
    return bodies


def test_the_buffer_is_made_at_the_second_chunk_with_room_for_the_declared_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected: list[int | None] = []
    expect = BodyBuffer.expect

    def recording(self: BodyBuffer, size: int | None) -> None:
        expected.append(size)
        expect(self, size)

    monkeypatch.setattr(BodyBuffer, "expect", recording)
    _converse(SIZED, [])
    assert expected == []  # whole with its head: no buffer
    _converse(SIZED, [len(SIZED) - 7])
    assert expected == [len(BODY), len(BODY)]  # one per response, with the declared size
    expected.clear()
    _converse(CHUNKED, [5, 45, 60, 70, 80])
    assert expected and set(expected) == {None}  # no size declared
