"""POST /flows/dump takes a browser HAR export, as mitmweb does."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.webapi import WebServer, request, running

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

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
    assert r.status == 400 and "Unable to read HAR file" in r.text
    assert len(request(server.port, "GET", "/flows").json()) == 2
