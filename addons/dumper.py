"""Per-flow output of proxydump, in mitmdump's format.

``flow_detail`` picks how much is shown:

0. nothing (the flow hooks are not even implemented then, see below)
1. ``client: METHOD url`` and `` << STATUS REASON SIZE`` (or `` << error``)
2. 1 + request and response headers (and trailers)
3. 2 + bodies through the content views (:mod:`proxycore.contentviews`), cut after
   ``content_view_lines_cutoff`` lines
4. 3 uncut

Each flow is written with a single ``write`` and one ``flush``, so output stays
line-atomic and costs one system call per flow.  Colours only on a terminal.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from proxycore.http import status_reason as standard_reason
from proxycore.utils import filteroption
from proxycore.utils.human import format_address, pretty_size
from proxycore.utils.textutils import cut_after_lines, escape_bytes, escape_control

CONTENT_VIEW_LINES_CUTOFF = 512

FLOW_DETAIL_HELP = """
The display detail level for flows in proxydump: 0 (quiet) to 4 (very verbose).
  0: no output
  1: shortened request URL with response status code
  2: full request URL with response status code and HTTP headers
  3: 2 + truncated response content, content of WebSocket and TCP messages
  4: 3 + nothing is truncated
"""

# Hooks the dumper prints on; with flow_detail 0 its ``hooks_active`` is false and the
# addon manager calls none of them.
FLOW_HOOKS = (
    "response",
    "error",
    "http_connect_error",
    "websocket_message",
    "websocket_end",
    "tcp_message",
    "tcp_error",
    "udp_message",
    "udp_error",
    "dns_response",
    "dns_error",
)

_FG = {
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
    "bright_blue": "94",
}

# The choices of dumper_default_contentview: "auto" and the built-in views, sorted, as
# contentviews.registry.available_views() lists them before any script adds one. Written out
# so that a proxy which never shows a body does not import the content views
# (tests/addons/test_dumper_lazy.py keeps the two equal).
BUILTIN_VIEWS = (
    "auto", "dns", "graphql", "grpc", "hex dump", "hex stream", "http/3 frames", "image",
    "javascript", "json", "mqtt", "msgpack", "multipart form", "protobuf", "query", "raw",
    "socket.io", "url-encoded", "viewcss", "wbxml", "xml/html", "zip archive",
)


def indent(n: int, text: str) -> str:
    pad = " " * n
    return "\n".join(pad + line for line in str(text).strip().splitlines())


class Dumper:
    """Prints flows to stdout as mitmdump does; add it after the other addons."""

    def __init__(self, outfile: IO[str] | None = None) -> None:
        self.out: IO[str] | None = outfile if outfile is not None else sys.stdout
        try:
            self.colour = self.out.isatty()
        except (AttributeError, ValueError):
            self.colour = False
        self.flow_detail = 1
        self.filter: Any = None
        self.showhost = False
        self.cutoff = CONTENT_VIEW_LINES_CUTOFF
        self.default_view = "auto"
        self._url_limit: int | None = None

    # ------------------------------------------------------------ options
    def load(self, loader: Any) -> None:
        loader.add_option("flow_detail", int, 1, FLOW_DETAIL_HELP)
        loader.add_option("dumper_filter", str | None, None, "Limit which flows are dumped.")
        loader.add_option(
            "dumper_default_contentview",
            str,
            "auto",
            "The default content view mode.",
            choices=BUILTIN_VIEWS,
        )

    def configure(self, updated: set[str]) -> None:
        from proxycore import ctx

        opts = ctx.options
        if "dumper_filter" in updated:
            self.filter = filteroption.parse_option(opts.dumper_filter)
        if "flow_detail" in updated:
            self.set_flow_detail(opts.flow_detail)
        if "showhost" in updated:
            self.showhost = bool(opts.showhost)
        if "content_view_lines_cutoff" in updated:
            self.cutoff = opts.content_view_lines_cutoff
        if "dumper_default_contentview" in updated:
            self.default_view = opts.dumper_default_contentview

    def set_flow_detail(self, detail: int) -> None:
        """Outside ``configure`` (which rebuilds the hook index anyway), follow with
        ``addons.refresh_hooks()`` for a switch to or from 0 to take effect."""
        self.flow_detail = detail

    @property
    def hooks_active(self) -> bool:
        """Like mitmdump, only flow_detail 0 is silent; then the addon manager leaves the
        dumper out of every flow hook, so quiet mode costs nothing per flow."""
        return self.flow_detail != 0

    # ------------------------------------------------------------ styling
    def style(
        self, text: str, fg: str | None = None, bold: bool = False, dim: bool = False, blink: bool = False
    ) -> str:
        if not self.colour:
            return text
        codes = []
        if fg:
            codes.append(_FG[fg])
        if bold:
            codes.append("1")
        if dim:
            codes.append("2")
        if blink:
            codes.append("5")
        if not codes:
            return text
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"

    def _write(self, lines: list[str]) -> None:
        if self.out is None:
            return
        try:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        """Whoever read our output (``proxydump ... | head``) is gone: stop quietly, as a
        Unix tool does on SIGPIPE, instead of failing on every further flow."""
        import os

        from proxycore import ctx

        was_stdout, self.out = self.out is sys.stdout, None
        if was_stdout:
            # Python flushes stdout at exit; point it somewhere that cannot break again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        ctx.master.shutdown()

    def url_limit(self) -> int:
        """URL length kept at flow_detail 1: the terminal width minus 25, at least 50."""
        if self._url_limit is not None:
            return self._url_limit
        columns = 0
        try:
            columns = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            pass
        is_tty = False
        if columns <= 0 and sys.__stdout__ is not None:  # None: no stdout at all
            try:
                fd = sys.__stdout__.fileno()
                is_tty = os.isatty(fd)
                columns = os.get_terminal_size(fd).columns
            except (AttributeError, ValueError, OSError):
                columns = 0
        if columns <= 0:
            columns = 80
        limit = max(columns - 25, 50)
        if not is_tty:
            self._url_limit = limit  # cannot change: only a terminal is resized
        return limit

    # ------------------------------------------------------------ HTTP
    def _client(self, flow: Any) -> str:
        if getattr(flow, "is_replay", None) == "request":
            return self.style("[replay]", fg="yellow", bold=True)
        peer = flow.client_conn.peername
        if peer:
            return escape_control(format_address(peer))
        return ""

    def _headers(self, lines: list[str], headers: Any) -> None:
        blue = self.colour
        for k, v in headers.fields:
            ks = escape_bytes(k if isinstance(k, bytes) else k.encode())
            if blue:
                ks = self.style(ks, fg="blue")
            vs = escape_bytes(v if isinstance(v, bytes) else v.encode())
            lines.append(f"    {ks}: {vs}")

    def _trailers(self, lines: list[str], trailers: Any) -> None:
        if trailers:
            lines.append(self.style("    --- HTTP Trailers", fg="magenta"))
            self._headers(lines, trailers)

    def _body(self, lines: list[str], message: Any, flow: Any) -> None:
        """A body (or WebSocket/TCP message) through the content views, as mitmdump shows it.

        At level 3 the text is cut after ``content_view_lines_cutoff`` lines and marked
        "(cut off)".  (mitmdump 12.3.1 prints the marker but then the uncut text; proxydump
        cuts, as the option's help promises.)"""
        from proxycore import contentviews  # 50 modules: loaded by the first body shown

        pretty = contentviews.prettify_message(message, flow, self.default_view)
        text = pretty.text
        shown = cut_after_lines(text, self.cutoff) if self.flow_detail == 3 else text
        if shown:
            lines.append("")
            if self.colour and pretty.syntax_highlight == "error":
                lines.append(self.style(indent(4, shown), fg="red"))
            else:
                lines.append(indent(4, shown))
        if len(shown) < len(text):
            lines.append(self.style("    (cut off)", dim=True))
        if self.flow_detail >= 2:
            lines.append("")

    def _request_line(self, flow: Any) -> str:
        request = flow.request
        method = request.method
        if "h2-pushed-stream" in getattr(flow, "metadata", ()):
            method += " PUSH_PROMISE"
        method = escape_control(method)
        if self.colour:
            colour = "green" if method.upper() == "GET" else "red" if method.upper() == "DELETE" else "magenta"
            method = self.style(method, fg=colour, bold=True)
        url = request.pretty_url if self.showhost else request.url
        if self.flow_detail == 1:
            limit = self.url_limit()
            if len(url) > limit:
                url = url[:limit] + "…"
        url = self.style(escape_control(url), bold=True)
        version = request.http_version
        response = flow.response
        shown_version = ""
        if version not in ("HTTP/1.0", "HTTP/1.1") or version != (
            response.http_version if response is not None else "HTTP/1.1"
        ):
            shown_version = " " + version  # h1 <-> h1 hides it
        return f"{self._client(flow)}: {method} {url}{shown_version}"

    def _response_line(self, flow: Any) -> str:
        response = flow.response
        replay_str = "[replay]" if getattr(flow, "is_replay", None) == "response" else ""
        replay = self.style(replay_str, fg="yellow", bold=True) if replay_str else ""
        code = response.status_code
        version = response.http_version
        if version in ("HTTP/2.0", "HTTP/3", "HTTP/2", "HTTP/3.0"):
            reason = standard_reason(code)
        else:
            reason = response.reason
        raw = response.raw_content
        size = "(content missing)" if raw is None else pretty_size(len(raw))
        shown_version = ""
        if version not in ("HTTP/1.0", "HTTP/1.1") or flow.request.http_version != version:
            shown_version = version + " "
        arrows = " <<"
        if self.flow_detail == 1:
            # Line the status code up under the request method.
            pad = len(format_address(flow.client_conn.peername)) - (2 + len(shown_version) + len(replay_str))
            if pad > 0:
                arrows = " " * pad + arrows
        if self.colour:
            colour = "green" if 200 <= code < 300 else "magenta" if 300 <= code < 400 else "red" if 400 <= code < 600 else None
            arrows = self.style(arrows, bold=True)
            code_s = self.style(str(code), fg=colour, bold=True, blink=code == 418)
            reason = self.style(escape_control(reason), fg=colour, bold=True)
            size = self.style(size, bold=True)
        else:
            code_s = str(code)
            reason = escape_control(reason)
        return f"{replay}{arrows} {shown_version}{code_s} {reason} {size}"

    def flow_lines(self, flow: Any) -> list[str]:
        """Everything printed for one HTTP flow (exposed for tests)."""
        detail = self.flow_detail
        lines: list[str] = []
        request = flow.request
        if request is not None:
            lines.append(self._request_line(flow))
            if detail >= 2:
                self._headers(lines, request.headers)
            if detail >= 3:
                self._body(lines, request, flow)
            if detail >= 2:
                self._trailers(lines, getattr(request, "trailers", None))
        response = flow.response
        if response is not None:
            lines.append(self._response_line(flow))
            if detail >= 2:
                self._headers(lines, response.headers)
            if detail >= 3:
                self._body(lines, response, flow)
            if detail >= 2:
                self._trailers(lines, getattr(response, "trailers", None))
        if flow.error is not None:
            lines.append(self.style(f" << {escape_control(flow.error.msg)}", fg="red", bold=True))
        return lines

    def echo_flow(self, flow: Any) -> None:
        self._write(self.flow_lines(flow))

    def response(self, flow: Any) -> None:
        if self.filter is None or self.filter(flow):
            self._write(self.flow_lines(flow))

    error = response
    http_connect_error = response

    # ------------------------------------------------------------ WebSocket and TCP
    def websocket_message(self, flow: Any) -> None:
        if self.filter is not None and not self.filter(flow):
            return
        message = flow.websocket.messages[-1]
        arrow = "->" if message.from_client else "<-"
        kind = _message_type(message)
        server = format_address(flow.server_conn.address)
        lines = [
            f"{format_address(flow.client_conn.peername)} {arrow} WebSocket {kind} message "
            f"{arrow} {server}{flow.request.path}"
        ]
        if self.flow_detail >= 3:
            self._body(lines, message, flow)
        self._write(lines)

    def websocket_end(self, flow: Any) -> None:
        if self.filter is not None and not self.filter(flow):
            return
        ws = flow.websocket
        if ws.close_code in (1000, 1001, 1005):
            side = "client" if ws.closed_by_client else "server"
            line = f"WebSocket connection closed by {side}: {ws.close_code} {ws.close_reason}"
        else:
            server = format_address(flow.server_conn.address)
            line = self.style(
                f"Error in WebSocket connection to {server}: WebSocket Error: {_close_name(ws)}", fg="red"
            )
        self._write([line])

    def tcp_message(self, flow: Any) -> None:
        if self.filter is not None and not self.filter(flow):
            return
        message = flow.messages[-1]
        arrow = "->" if message.from_client else "<-"
        kind = flow.type
        if flow.client_conn.tls_version == "QUICv1":  # a stream of reverse:quic://, as mitmdump shows it
            kind = (f"quic stream {flow.metadata.get('quic_stream_id_client', '')} {arrow} mitmproxy {arrow} "
                    f"quic stream {flow.metadata.get('quic_stream_id_server', '')}")
        lines = [
            f"{format_address(flow.client_conn.peername)} {arrow} {kind} {arrow} "
            f"{format_address(flow.server_conn.address)}"
        ]
        if self.flow_detail >= 3:
            self._body(lines, message, flow)
        self._write(lines)

    def tcp_error(self, flow: Any) -> None:
        if self.filter is not None and not self.filter(flow):
            return
        server = format_address(flow.server_conn.address)
        line = f"Error in {flow.type.upper()} connection to {server}: {flow.error}"
        self._write([self.style(line, fg="red")])

    udp_message = tcp_message
    udp_error = tcp_error

    # ------------------------------------------------------------ DNS
    def _dns_query_line(self, flow: Any) -> str:
        """``client: DNS QUERY (A) name``, the type green for A, magenta for AAAA, else red."""
        from proxycore.net.dns import op_codes, types

        request = flow.request
        question = request.questions[0] if request.questions else None
        kind = types.to_str(question.type) if question else "-"
        colour = {"A": "green", "AAAA": "magenta"}.get(kind, "red")
        what = self.style(f"DNS {op_codes.to_str(request.op_code)} ({kind})", fg=colour)
        name = self.style(escape_control(question.name) if question else "", bold=True)
        return f"{self._client(flow)}: {what} {name}"

    def dns_response(self, flow: Any) -> None:
        if flow.response is None or (self.filter is not None and not self.filter(flow)):
            return
        from proxycore.net.dns import response_codes

        if flow.response.answers:
            answer = ", ".join(self.style(str(a), fg="bright_blue") for a in flow.response.answers)
        else:
            answer = self.style(response_codes.to_str(flow.response.response_code), fg="red")
        self._write([self._dns_query_line(flow), f"{self.style(' <<', bold=True)} {answer}"])

    def dns_error(self, flow: Any) -> None:
        if flow.error is None or (self.filter is not None and not self.filter(flow)):
            return
        message = self.style(f" << {escape_control(flow.error.msg)}", fg="red", bold=True)
        self._write([self._dns_query_line(flow), message])


def _message_type(message: Any) -> str:
    kind = message.type
    name = getattr(kind, "name", None)
    if name:
        return name.lower()
    return {1: "text", 2: "binary"}.get(int(kind), str(kind))


def _close_name(ws: Any) -> str:
    """wsproto's name for a close code, ``UNKNOWN_ERROR=<code>`` otherwise, plus the reason."""
    try:
        from wsproto.frame_protocol import CloseReason

        text = CloseReason(ws.close_code).name
    except (ImportError, ValueError):
        text = f"UNKNOWN_ERROR={ws.close_code}"
    if ws.close_reason:
        text += f" (reason: {ws.close_reason})"
    return text
