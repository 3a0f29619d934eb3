"""Export addon: a flow as a curl or HTTPie command line, or as raw HTTP/1 text.

``export FORMAT FLOW`` returns the text (the web UI's "Copy as curl" uses it),
``export.file`` writes it, ``export.clip`` copies it. The output matches
mitmproxy 12: headers in their recorded order, Content-Length left to the client,
a Host header equal to the request's host left out, bodies decoded, control
characters written as ``$(printf ...)`` so that the shell restores them.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from proxycore import ctx, types
from proxycore.addonmanager import Loader
from proxycore.command import command
from proxycore.exceptions import CommandError
from proxycore.flow import Flow
from proxycore.http import HTTPFlow, Message, Request, Response
from proxycore.net.http1 import _header_block
from proxycore.utils import clipboard

logger = logging.getLogger("proxycore.export")
M = TypeVar("M", Request, Response)


def _decoded_copy(message: M) -> M:
    """A copy of a request or response with its Content-Encoding removed (if it can be)."""
    duplicate = type(message).from_state(message.get_state())
    duplicate.decode(strict=False)
    return duplicate


def _request(flow: Flow) -> Request:
    request = getattr(flow, "request", None)
    if not isinstance(request, Request):  # none, or a DNS message
        raise CommandError("Can't export flow with no request.")
    return _decoded_copy(request)


def _response(flow: Flow) -> Response:
    response = getattr(flow, "response", None)
    if not isinstance(response, Response):  # none, or a DNS message
        raise CommandError("Can't export flow with no response.")
    return _decoded_copy(response)


def _drop_redundant_headers(request: Request) -> None:
    """curl and HTTPie compute Content-Length and Host themselves."""
    request.headers.pop("content-length", None)
    if request.headers.get("host", "") == request.host:
        request.headers.pop("host")
    if request.headers.get(":authority", "") == request.host:
        request.headers.pop(":authority")


def _quote(word: str) -> str:
    """``shlex.quote``; shlex is imported by the first export, not at start."""
    import shlex

    return shlex.quote(word)


def _shell_body(request: Request) -> str:
    """The request body as one shell word; control characters go through printf."""
    try:
        text = request.get_text(strict=True) or ""
    except ValueError:
        raise CommandError("Request content must be valid unicode") from None
    if (request.content or b"").startswith(codecs.BOM_UTF8) and not text.startswith("\ufeff"):
        # Decoding as utf-8-sig drops a leading byte order mark; the command must send it.
        text = "\ufeff" + text
    escaped = "".join(f"\\x{ord(c):02x}" if ord(c) < 32 else c for c in text)
    if escaped != text:
        return f'"$(printf {_quote(escaped)})"'
    return _quote(escaped)


def curl_command(flow: Flow) -> str:
    request = _request(flow)
    _drop_redundant_headers(request)
    args = ["curl"]
    peername = flow.server_conn.peername
    server_ip = peername[0] if peername else None
    if ctx.options.export_preserve_original_ip and server_ip and request.pretty_host != server_ip:
        args += ["--resolve", f"{request.pretty_host}:{request.port}:[{server_ip}]"]
    for name, value in request.headers.items(multi=True):
        if name.lower() == "accept-encoding":
            args.append("--compressed")
        else:
            args += ["-H", f"{name}: {value}"]
    if request.method != "GET":
        if not request.content:
            # curl sends no Content-Length for an empty body; some servers want one.
            args += ["-H", "content-length: 0"]
        args += ["-X", request.method]
    args.append(request.pretty_url)
    line = " ".join(_quote(a) for a in args)
    if request.content:
        line += f" -d {_shell_body(request)}"
    return line


def httpie_command(flow: Flow) -> str:
    request = _request(flow)
    _drop_redundant_headers(request)
    args = ["http", request.method, request.pretty_url]
    args += [f"{name}: {value}" for name, value in request.headers.items(multi=True)]
    line = " ".join(_quote(a) for a in args)
    if request.content:
        line += " <<< " + _shell_body(request)
    return line


def _body(message: Message) -> bytes:
    """The body as HTTP/1 would carry it: chunked (with trailers) if the headers say so."""
    content = message.raw_content or b""
    trailers = message.trailers
    if "chunked" in message.headers.get("transfer-encoding", "").lower():
        chunk = b"%x\r\n%s\r\n" % (len(content), content) if content else b""
        return chunk + b"0\r\n" + (_header_block(trailers) if trailers else b"") + b"\r\n"
    if trailers:
        raise CommandError("Sending HTTP/1.1 trailer headers requires transfer-encoding: chunked")
    return content


def raw_request(flow: Flow) -> bytes:
    """The request as HTTP/1 text, in the form it was recorded (absolute URL, HTTP/2.0...)."""
    request = _request(flow)
    if request.raw_content is None:
        raise CommandError("Request content missing.")
    data = request.data
    if data.method.upper() == b"CONNECT":
        target = data.authority
    elif data.authority:
        target = data.scheme + b"://" + data.authority + data.path
    else:
        target = data.path
    head = b"%s %s %s\r\n%s\r\n" % (data.method, target, data.http_version, _header_block(request.headers))
    return head + _body(request)


def raw_response(flow: Flow) -> bytes:
    response = _response(flow)
    if response.raw_content is None:
        raise CommandError("Response content missing.")
    data = response.data
    head = b"%s %d %s\r\n%s\r\n" % (data.http_version, response.status_code, data.reason, _header_block(response.headers))
    return head + _body(response)


def raw(flow: Flow, separator: bytes = b"\r\n\r\n") -> bytes:
    """Request and response (and WebSocket messages); just one of them if the other is missing."""
    if isinstance(flow, HTTPFlow):
        has_request = flow.request is not None and flow.request.raw_content is not None
        has_response = flow.response is not None and flow.response.raw_content is not None
        if has_request and has_response:
            parts = [raw_request(flow), raw_response(flow)]
            if flow.websocket is not None:
                parts.append(
                    b"\n".join(
                        (b"[OUTGOING] " if m.from_client else b"[INCOMING] ") + m.content
                        for m in flow.websocket.messages
                    )
                )
            return separator.join(parts)
        if has_request:
            return raw_request(flow)
        if has_response:
            return raw_response(flow)
    raise CommandError("Can't export flow with no request or response.")


FORMATS: dict[str, Callable[[Flow], str | bytes]] = {
    "curl": curl_command,
    "httpie": httpie_command,
    "raw": raw,
    "raw_request": raw_request,
    "raw_response": raw_response,
}


def _as_text(value: str | bytes) -> str:
    """Text without lone surrogates: undecodable bytes become backslash escapes."""
    data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return data.decode("utf-8", "backslashreplace")


def _export(format: str, flow: Flow) -> str | bytes:
    if format not in FORMATS:
        raise CommandError(f"No such export format: {format}")
    return FORMATS[format](flow)


class Export:
    def load(self, loader: Loader) -> None:
        loader.add_option(
            "export_preserve_original_ip",
            bool,
            False,
            "When exporting a request as a curl command, connect to the IP address the "
            "original request went to (curl --resolve), for servers whose behaviour "
            "depends on which of their addresses answers.",
        )

    @command("export.formats")
    def formats(self) -> Sequence[str]:
        """The export formats: curl, httpie, raw, raw_request, raw_response."""
        return sorted(FORMATS)

    @command("export.file")
    def file(self, format: str, flow: Flow, path: types.Path) -> None:
        """Write a flow in an export format to a file."""
        value = _export(format, flow)
        data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
        try:
            with open(path, "wb") as fp:
                fp.write(data)
        except OSError as e:
            logger.error(str(e))

    @command("export.clip")
    def clip(self, format: str, f: Flow) -> None:
        """Copy a flow in an export format to the system clipboard."""
        text = self.export_str(format, f)
        try:
            clipboard.copy(text)
        except clipboard.ClipboardError as e:
            logger.error(str(e))  # logged, not raised, as mitmproxy's clip commands do
            return

    @command("export")
    def export_str(self, format: str, f: Flow) -> str:
        """A flow in an export format, as text."""
        return _as_text(_export(format, f))
