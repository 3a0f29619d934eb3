"""HAR (HTTP Archive) files as flows: what browsers' "Save all as HAR" writes.

mitmweb's File > Open accepts HAR as well as flow files, so ``POST /flows/dump``
does too.  Each ``log.entries[]`` item becomes a finished HTTP flow.  HAR holds
bodies decoded, so the flows keep them decoded and drop ``Content-Encoding``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import http.client
import json
from typing import Any

from proxycore.connection import Client, Server
from proxycore.http import Headers, HTTPFlow, Request, Response
from proxycore.io.io import FlowReadException

_VERSIONS = {"http/2.0": "HTTP/2.0", "http/2": "HTTP/2.0", "h2": "HTTP/2.0", "http/3": "HTTP/3", "h3": "HTTP/3"}


def looks_like_har(data: bytes) -> bool:
    """Flow files start with a tnetstring length digit; HAR with a JSON object."""
    return data.lstrip()[:1] == b"{"


def _headers(entries: Any) -> Headers:
    pairs = []
    for header in entries or []:
        if isinstance(header, dict):  # {"name": ..., "value": ...}, what browsers write
            pairs.append((str(header["name"]), str(header["value"])))
        else:  # [name, value], what some other tools write
            name, value = header
            pairs.append((str(name), str(value)))
    headers = Headers(pairs)
    # HTTP/2 pseudo-headers some browsers list are not header fields.
    headers.fields = [(k, v) for k, v in headers.fields if not k.startswith(b":")]
    return headers


def _version(value: Any) -> str:
    return _VERSIONS.get(str(value or "").lower(), "HTTP/1.1")


def _body(content: dict[str, Any]) -> bytes:
    text = content.get("text") or ""
    if content.get("encoding") == "base64":
        return base64.b64decode("".join(text.split()), validate=True)
    return text.encode("utf-8", "surrogateescape")


def _entry_to_flow(entry: dict[str, Any]) -> HTTPFlow:
    started = datetime.datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00")).timestamp()
    ended = started + float(entry.get("time") or 0) / 1000
    req, resp = entry["request"], entry["response"]
    request = Request.make(req["method"], req["url"], headers=_headers(req.get("headers")))
    request.headers.pop("content-encoding", None)
    post = req.get("postData")
    if post:
        request.content = str(post.get("text") or "").encode("utf-8", "surrogateescape")
    request.http_version = _version(req.get("httpVersion"))
    request.timestamp_start, request.timestamp_end = started, ended

    status = int(resp["status"])
    response = Response.make(status, b"", _headers(resp.get("headers")))
    response.reason = resp.get("statusText") or http.client.responses.get(status, "")
    response.headers.pop("content-encoding", None)
    body = _body(resp.get("content") or {})
    response.raw_content = body
    if "content-length" in response.headers:
        response.headers["content-length"] = str(len(body))
    response.http_version = _version(resp.get("httpVersion"))
    response.timestamp_start, response.timestamp_end = started, ended

    port = request.port
    address = entry.get("serverIPAddress")
    client = Client(peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0), timestamp_start=started)
    client.timestamp_end = ended
    server = Server(address=(address.strip("[]"), port) if address else None)
    flow = HTTPFlow(client, server)
    flow.request, flow.response = request, response
    flow.timestamp_created = started
    return flow


def read_har(data: bytes) -> list[HTTPFlow]:
    """All entries of a HAR document as flows; FlowReadException if it is not one."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
        entries = document["log"]["entries"]
        if not isinstance(entries, list):
            raise TypeError("log.entries is not a list")
        return [_entry_to_flow(entry) for entry in entries]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
        detail = f"missing {e}" if isinstance(e, KeyError) else str(e)
        raise FlowReadException(f"Invalid HAR file: {detail}") from None

