"""HAR (HTTP Archive 1.2) files: reading them as flows and writing flows as HAR, as mitmproxy does.

Reading accepts what browsers and tools write (Chrome, Firefox, Safari, Charles, Fiddler with a
byte order mark, Slack's ``[name, value]`` headers): each entry becomes an HTTPFlow whose
bodies are stored decoded.  Writing produces mitmproxy's mapping (``save.har``): timings in
milliseconds, cookies, binary bodies in base64, WebSocket messages as ``_webSocketMessages``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from proxycore.connection import Client, Server
from proxycore.http import (
    Headers,
    HTTPFlow,
    Request,
    Response,
    infer_content_encoding,
    status_reason,
)
from proxycore.net import encoding
from proxycore.net.http.cookies import parse_set_cookie_headers
from proxycore.utils.textutils import is_mostly_binary

HAR_READ_ERROR = "Unable to read HAR file. Please provide a valid HAR file"


class HARError(ValueError):
    pass


# ------------------------------------------------------------------------------- reading
def looks_like_har(head: bytes) -> bool:
    """A HAR file is JSON: it starts with ``{`` (after a UTF-8 byte order mark, as Fiddler writes)."""
    return head.startswith(b"{") or head.startswith(b"\xef\xbb\xbf{")


def read_har(data: bytes) -> Iterator[HTTPFlow]:
    """The flows of a HAR file; any problem raises HARError (with mitmproxy's message)."""
    try:
        har = json.loads(data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
        entries = har["log"]["entries"]
        flows = [entry_to_flow(entry) for entry in entries]
    except Exception as e:
        raise HARError(HAR_READ_ERROR) from e
    yield from flows


def _headers(fields: Iterable[Any]) -> Headers:
    """``{"name": .., "value": ..}`` objects (browsers) or ``[name, value]`` pairs (Slack)."""
    pairs = []
    for field in fields:
        if isinstance(field, dict):
            name, value = field["name"], field["value"]
        else:
            name, value = field[0], field[1]
        pairs.append((name.encode(), value.encode()))
    return Headers(pairs)


def _http_version(har_version: str) -> str:
    if har_version in ("http/2.0", "HTTP/2"):
        return "HTTP/2"
    if har_version == "HTTP/3":
        return "HTTP/3"
    return "HTTP/1.1"


def _encode_text(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset)
    except (UnicodeEncodeError, LookupError):
        return text.encode("utf-8", "surrogateescape")


def entry_to_flow(entry: dict[str, Any]) -> HTTPFlow:
    start = datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00")).timestamp()
    end = start + entry["time"] / 1000.0
    har_request, har_response = entry["request"], entry["response"]
    url = har_request["url"]
    server_ip = entry.get("serverIPAddress")
    client = Client(peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0), timestamp_start=time.time())
    server = Server(address=(server_ip, 80 if url.startswith("http://") else 443) if server_ip else None)
    flow = HTTPFlow(client, server)

    request = Request("", 0, har_request["method"], "", "", "", "HTTP/1.1", _headers(har_request["headers"]),
                      b"", None, start, end)
    request.url = url
    post = har_request.get("postData")
    request.text = post["text"] if post is not None else ""
    flow.request = request

    content = har_response["content"]
    body: str | bytes = content.get("text", "")  # Firefox leaves out image bodies
    body_encoding = content.get("encoding")
    response_headers = _headers(har_response["headers"])
    if body_encoding == "base64":
        body = base64.b64decode(body)
    elif isinstance(body, str):
        body = _encode_text(body, body_encoding or infer_content_encoding(response_headers.get("content-type", "")))
    # Bodies in HAR files are decoded; store them as they would have been sent, then decode
    # both messages, so that a Content-Encoding header and the body agree.
    raw = encoding.encode(body, response_headers.get("content-encoding") or "identity")
    status = har_response["status"]
    flow.response = Response(b"HTTP/1.1", status, status_reason(status), response_headers, raw, None, start, end)

    client.timestamp_start, client.timestamp_end = start, end
    request.http_version = _http_version(har_request["httpVersion"])
    flow.response.http_version = _http_version(har_response["httpVersion"])
    request.decode()
    flow.response.decode()
    return flow


# ------------------------------------------------------------------------------- writing
def creator() -> dict[str, str]:
    from proxycore import __version__

    return {"name": "proxycore", "version": __version__, "comment": ""}


def make_har(flows: Iterable[Any]) -> tuple[dict[str, Any], int]:
    """The HAR document for the HTTP flows among ``flows``, and how many others were skipped."""
    entries = []
    skipped = 0
    servers_seen: set[str] = set()  # ids of connections whose setup time is already counted
    for flow in flows:
        if isinstance(flow, HTTPFlow):
            entries.append(flow_entry(flow, servers_seen))
        else:
            skipped += 1
    har = {"log": {"version": "1.2", "creator": creator(), "pages": [], "entries": entries}}
    return har, skipped


def _ms(later: float | None, earlier: float | None) -> float:
    if later is None or earlier is None:
        raise TypeError("a timestamp is missing")  # as the subtraction would
    return 1000 * (later - earlier)


def _timings(flow: HTTPFlow, servers_seen: set[str]) -> dict[str, float]:
    server = flow.server_conn
    connect = ssl = -1.0
    if server.id not in servers_seen and server.timestamp_tcp_setup:
        connect = _ms(server.timestamp_tcp_setup, server.timestamp_start)
        if server.timestamp_tls_setup:
            ssl = _ms(server.timestamp_tls_setup, server.timestamp_tcp_setup)
        servers_seen.add(server.id)
    request, response = flow.request, flow.response
    send = _ms(request.timestamp_end, request.timestamp_start) if request.timestamp_end else 0
    wait = _ms(response.timestamp_start, request.timestamp_end) if response and request.timestamp_end else 0
    receive = _ms(response.timestamp_end, response.timestamp_start) if response and response.timestamp_end else 0
    return {"connect": connect, "ssl": ssl, "send": send, "receive": receive, "wait": wait}


def _name_values(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs]


def _headers_size(headers: Headers) -> int:
    """mitmproxy reports the length of its Headers object's repr, not of the header block."""
    return len("Headers[" + ", ".join(repr(tuple(field)) for field in headers.fields) + "]")


def _response_cookies(response: Response) -> list[dict[str, Any]]:
    cookies = []
    for name, value, attrs in parse_set_cookie_headers(response.headers.get_all("set-cookie")):
        cookie: dict[str, Any] = {
            "name": name,
            "value": value,
            "path": attrs.get("path", "/"),
            "domain": attrs.get("domain", ""),
            "httpOnly": "httpOnly" in attrs,
            "secure": "secure" in attrs,
        }
        if "sameSite" in attrs:
            cookie["sameSite"] = attrs.get("sameSite")
        cookies.append(cookie)  # "expires" is left out, as mitmproxy does
    return cookies


def _response_entry(flow: HTTPFlow) -> dict[str, Any]:
    response = flow.response
    if response is None:
        return {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "headers": [],
            "cookies": [],
            "content": {},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_transferSize": 0,
            "_error": flow.error.msg if flow.error else None,
        }
    raw = response.raw_content
    try:
        content = response.content
    except ValueError:
        content = raw
    size = len(raw) if raw else 0
    entry: dict[str, Any] = {
        "status": response.status_code,
        "statusText": response.reason,
        "httpVersion": response.http_version,
        "cookies": _response_cookies(response),
        "headers": _name_values(response.headers.items(multi=True)),
        "content": {
            "size": size,
            "compression": (len(content) if content else 0) - size,
            "mimeType": response.headers.get("Content-Type", ""),
        },
        "redirectURL": response.headers.get("Location", ""),
        "headersSize": _headers_size(response.headers),
        "bodySize": size,
    }
    if content and is_mostly_binary(content):
        entry["content"]["text"] = base64.b64encode(content).decode()
        entry["content"]["encoding"] = "base64"
    else:
        entry["content"]["text"] = response.get_text(strict=False) or ""
    return entry


def flow_entry(flow: HTTPFlow, servers_seen: set[str]) -> dict[str, Any]:
    """One HAR entry; ``servers_seen`` tracks connections already counted in earlier entries."""
    request = flow.request
    timings = _timings(flow, servers_seen)
    url = f"https://{request.pretty_url}/" if request.method == "CONNECT" else request.pretty_url
    entry: dict[str, Any] = {
        "startedDateTime": datetime.fromtimestamp(request.timestamp_start, UTC).isoformat(),
        "time": sum(v for v in timings.values() if v >= 0),
        "request": {
            "method": request.method,
            "url": url,
            "httpVersion": request.http_version,
            "cookies": _name_values(request.cookies.items(multi=True)),
            "headers": _name_values(request.headers.items(multi=True)),
            "queryString": _name_values(request.query.items(multi=True)),
            "headersSize": _headers_size(request.headers),
            "bodySize": len(request.raw_content) if request.raw_content else 0,
        },
        "response": _response_entry(flow),
        "cache": {},
        "timings": timings,
    }
    if request.method in ("POST", "PUT", "PATCH"):
        entry["request"]["postData"] = {
            "mimeType": request.headers.get("Content-Type", ""),
            "text": request.get_text(strict=False),
            "params": _name_values(request.urlencoded_form.items(multi=True)),
        }
    if flow.server_conn.peername:
        entry["serverIPAddress"] = str(flow.server_conn.peername[0])
    if flow.websocket is not None:
        entry["_resourceType"] = "websocket"
        entry["_webSocketMessages"] = [
            {
                "type": "send" if message.from_client else "receive",
                "time": message.timestamp,
                "opcode": int(message.type),
                "data": message.text if message.is_text else base64.b64encode(message.content).decode(),
            }
            for message in flow.websocket.messages
        ]
    return entry


def dumps(flows: Iterable[Any]) -> tuple[str, int]:
    """HAR text (indented by four spaces, as mitmproxy writes it) and the count of skipped flows."""
    har, skipped = make_har(flows)
    return json.dumps(har, indent=4), skipped
