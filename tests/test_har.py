"""HAR files (browser exports) read as flows, and uploaded through POST /flows/dump."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxycore.io import FlowReadException
from proxycore.io.har import looks_like_har, read_har
from tests.webapi import WebServer, request, running

PNG = bytes.fromhex("89504e470d0a1a0a")


def har(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"log": {"version": "1.2", "creator": {"name": "test"}, "entries": list(entries)}}).encode()


GET_ENTRY = {
    "startedDateTime": "2024-05-01T10:00:00.000Z",
    "time": 250,
    "serverIPAddress": "[2001:db8::1]",
    "request": {
        "method": "GET", "url": "https://example.com/img.png?x=1", "httpVersion": "http/2.0",
        "headers": [{"name": ":authority", "value": "example.com"}, {"name": "accept", "value": "image/*"}],
    },
    "response": {
        "status": 200, "statusText": "", "httpVersion": "http/2.0",
        "headers": [{"name": "content-type", "value": "image/png"}, {"name": "content-encoding", "value": "br"}],
        "content": {"size": 8, "mimeType": "image/png", "text": base64.b64encode(PNG).decode(), "encoding": "base64"},
    },
}
POST_ENTRY = {
    "startedDateTime": "2024-05-01T10:00:01.500+00:00",
    "time": 10,
    "request": {
        "method": "POST", "url": "http://example.com:8080/form", "httpVersion": "HTTP/1.1",
        "headers": [["content-type", "application/x-www-form-urlencoded"]],
        "postData": {"mimeType": "application/x-www-form-urlencoded", "text": "a=1&b=ü"},
    },
    "response": {
        "status": 404, "httpVersion": "HTTP/1.1",
        "headers": [{"name": "Content-Length", "value": "999"}],
        "content": {"text": "not här"},
    },
}


def test_read_har() -> None:
    get, post = read_har(har(GET_ENTRY, POST_ENTRY))
    assert get.request.url == "https://example.com/img.png?x=1" and get.request.http_version == "HTTP/2.0"
    assert get.request.headers.fields[-1] == (b"accept", b"image/*")
    assert ":authority" not in get.request.headers
    assert get.response.status_code == 200 and get.response.reason == "OK"
    assert get.response.raw_content == PNG and "content-encoding" not in get.response.headers
    assert get.server_conn.address == ("2001:db8::1", 443)
    assert get.timestamp_created == get.request.timestamp_start == 1714557600.0
    assert get.response.timestamp_end == pytest.approx(1714557600.25)
    assert post.request.method == "POST" and post.request.port == 8080
    assert post.request.content == "a=1&b=ü".encode()
    assert post.response.status_code == 404 and post.response.reason == "Not Found"
    assert post.response.content == "not här".encode() and post.response.headers["content-length"] == "8"
    assert post.server_conn.address is None


@pytest.mark.parametrize(
    "data",
    [b"{", b"{}", b'{"log": {}}', b'{"log": {"entries": 5}}', har({"request": {}}),
     har({**GET_ENTRY, "startedDateTime": "yesterday"}),
     har({**GET_ENTRY, "response": {**GET_ENTRY["response"], "content": {"text": "!!", "encoding": "base64"}}})],
)
def test_broken_har(data: bytes) -> None:
    with pytest.raises(FlowReadException, match="Invalid HAR file"):
        read_har(data)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["log", "entries", "request", "response", "url", "method", "status", "headers",
                         "startedDateTime", "content", "text", "encoding", "postData", "x"]), inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300)
@given(json_like)
def test_arbitrary_json_is_read_or_refused(document: Any) -> None:
    try:
        flows = read_har(json.dumps(document).encode())
    except FlowReadException:
        return
    assert isinstance(flows, list)


def test_detection() -> None:
    assert looks_like_har(b'  {"log": 1}') and not looks_like_har(b"123:")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    with running(tmp_path) as s:
        yield s


def test_upload_har_through_the_api(server: WebServer) -> None:
    boundary = "hArBoUnDaRy"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.har\"\r\n"
        "Content-Type: application/json\r\n\r\n"
    ).encode() + har(GET_ENTRY, POST_ENTRY) + f"\r\n--{boundary}--\r\n".encode()
    r = request(server.port, "POST", "/flows/dump", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status == 200
    flows = request(server.port, "GET", "/flows").json()
    assert [f["request"]["method"] for f in flows] == ["GET", "POST"]
    assert flows[0]["response"]["contentLength"] == len(PNG)
    data = request(server.port, "GET", f"/flows/{flows[0]['id']}/response/content.data")
    assert data.body == PNG
    r = request(server.port, "POST", "/flows/dump", b'{"log": {"entries": [{}]}}')
    assert r.status == 400 and "Invalid HAR file" in r.text
    assert len(request(server.port, "GET", "/flows").json()) == 2
