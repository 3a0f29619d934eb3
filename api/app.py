"""The Tornado application: every route of mitmweb 12's REST API (web API spec, section 3).

Handlers are thin: they find the flow, change it through the flow model, and
tell the view (``view.update``), whose signals reach WebSocket clients through
:mod:`proxycore.api.updates`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import mimetypes
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

import tornado.escape
import tornado.web

from proxycore import __version__, flowfilter
from proxycore.api import serialize
from proxycore.api.auth import AuthMixin
from proxycore.api.gate import Gate
from proxycore.api.pages import login_page, no_frontend_page
from proxycore.api.updates import ClientConnection
from proxycore.exceptions import OptionsError
from proxycore.flow import Flow
from proxycore.http import Headers, HTTPFlow
from proxycore.optmanager import check_value

logger = logging.getLogger("proxycore.web")

# ES modules are refused by browsers unless served as JavaScript.
mimetypes.add_type("text/javascript", ".js")

SERVER_HEADER = f"proxycore {__version__}"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; "
    "connect-src 'self' ws:; "
    "img-src 'self' data:; "
    "style-src   'self' 'unsafe-inline'"
)
TRANSPARENT_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010804000000b51c0c02"
    "0000000b4944415478da63fcff0700020001fca8510d680000000049454e44ae426082"
)


class APIError(tornado.web.HTTPError):
    """An error whose message is the response body (plain text, as mitmweb sends it)."""

    def __init__(self, status: int, message: str) -> None:
        # Tornado %-formats log_message when logging it; keep user text literal.
        super().__init__(status, message.replace("%", "%%"))
        self.message = message


class RequestHandler(AuthMixin, tornado.web.RequestHandler):
    """Base of every REST handler: auth, CSRF guard, security headers, JSON and errors."""

    application: Application

    def set_default_headers(self) -> None:
        self.set_header("Server", SERVER_HEADER)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("X-XSS-Protection", "1; mode=block")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)

    def prepare(self) -> None:
        # The XSRF cookie check already ran (Tornado does it before prepare).  Browsers
        # also say where a request comes from: refuse cross-site writes outright.
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            site = self.request.headers.get("Sec-Fetch-Site")
            if site is not None and site not in ("same-origin", "none"):
                raise APIError(403, "Cross-site request refused.")
        method = getattr(type(self), self.request.method.lower(), None)
        if method is None or method is tornado.web.RequestHandler._unimplemented_method:
            return  # Tornado answers 405 for methods a route does not have
        self.authenticate()

    def write(self, chunk: str | bytes | dict[str, Any] | list[Any]) -> None:
        if isinstance(chunk, list):
            chunk = tornado.escape.json_encode(chunk)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
        super().write(chunk)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, APIError):
            self.finish(error.message)
        else:
            super().write_error(status_code, **kwargs)

    @property
    def json(self) -> Any:
        if not self.request.headers.get("Content-Type", "").startswith("application/json"):
            raise APIError(400, "Invalid Content-Type, expected application/json.")
        try:
            return json.loads(self.request.body.decode())
        except Exception as e:
            raise APIError(400, f"Malformed JSON: {e}") from None

    @property
    def filecontents(self) -> bytes:
        """The first file of a multipart upload, or else the raw body."""
        if self.request.files:
            return next(iter(self.request.files.values()))[0].body
        return self.request.body

    @property
    def master(self) -> Any:
        return self.application.master

    @property
    def view(self) -> Any:
        return self.application.view

    @property
    def flow(self) -> Flow:
        flow = self.view.get_by_id(str(self.path_kwargs["flow_id"]))
        if flow is None:
            raise APIError(404, "Flow not found.")
        return flow


class IndexHandler(RequestHandler):
    def auth_fail(self, invalid_password: bool) -> None:
        self.finish(login_page(invalid_password, self.xsrf_form_html()))

    def get(self) -> None:
        static = self.application.static_dir
        index = os.path.join(static, "index.html") if static else None
        if index and os.path.isfile(index):
            with open(index, "rb") as f:
                self.set_header("Content-Type", "text/html; charset=UTF-8")
                self.write(f.read())
        else:
            self.write(no_frontend_page())

    post = get  # the login form posts the token here


class FilterHelp(RequestHandler):
    def get(self) -> None:
        self.write({"commands": [list(row) for row in flowfilter.help]})


def _count_argument(handler: RequestHandler, name: str) -> int | None:
    value = handler.get_query_argument(name, None)
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise APIError(400, f"Invalid {name} argument: {value!r} (a number, 0 or more).")
    return int(value)


class Flows(RequestHandler):
    """Every shown flow, as mitmweb sends them.  proxycore extension for clients paging
    through big stores: ``?offset=N&limit=M&filter=EXPR`` (docs/web.md)."""

    CHUNK = 500  # flows per write: a million flows stream out, they are never all in memory

    async def get(self) -> None:
        offset = _count_argument(self, "offset") or 0
        limit = _count_argument(self, "limit")
        expr = self.get_query_argument("filter", "")
        try:
            flt = flowfilter.parse(expr) if expr else None
        except flowfilter.FilterError as e:
            raise APIError(400, f"Invalid filter argument: {e}") from None
        cache = self.application.flow_json
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        if offset == 0 and limit is None and flt is None and self.view.db is None:
            self.write("[" + ", ".join(cache.text(f) for f in self.view) + "]")
            return
        # The list reads no bodies.  A database store is read on a thread, a chunk at a time:
        # a filter checked in Python may walk millions of rows before a match, and the proxy
        # must not stall meanwhile.
        stored = self.view.stored_page(offset, limit, flt, bodies=False)
        flows = self.view.page(offset, limit, flt, bodies=False) if stored is None else stored
        loop = asyncio.get_running_loop()
        first = True
        while True:
            if stored is None:
                chunk = list(itertools.islice(flows, self.CHUNK))
            else:
                chunk = await loop.run_in_executor(None, _take, flows, self.CHUNK)
            if not chunk:
                break
            view = self.view
            parts = [cache.text(flow if stored is None else view.loaded(flow)) for flow in chunk]
            self.write(("[" if first else ", ") + ", ".join(parts))
            first = False
            await self.flush()
        self.write("[]" if first else "]")


def _take(flows: Iterator[Flow], count: int) -> list[Flow]:
    return list(itertools.islice(flows, count))


class DumpFlows(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Disposition", "attachment; filename=flows")
        self.set_header("Content-Type", "application/octet-stream")
        match: Callable[[Flow], bool] = flowfilter.match_all
        expressions = self.request.arguments.get("filter")
        if expressions:
            try:
                match = flowfilter.parse(expressions[0].decode("utf-8", "replace"))
            except ValueError:
                raise APIError(400, "Invalid filter argument / regex") from None
        from proxycore.io import FlowWriter  # flow files: imported by the first download

        out = BytesIO()
        writer = FlowWriter(out)
        for flow in self.view.page(flt=None if match is flowfilter.match_all else match):
            writer.add(flow)
        self.write(out.getvalue())

    async def post(self) -> None:
        from proxycore.addons.readfile import load_flow
        from proxycore.io import FlowReader, FlowReadException

        # Read everything first, so that a broken file leaves the view as it was.
        data = self.filecontents
        try:  # a flow file or a HAR export: FlowReader tells them apart
            flows = list(FlowReader(BytesIO(data)).stream())
        except FlowReadException as e:
            raise APIError(400, f"Invalid flow file: {e}") from None
        self.view.clear()
        for flow in flows:
            await load_flow(flow)


class ClearAll(RequestHandler):
    def post(self) -> None:
        self.view.clear()
        self.application.events.clear()


class ResumeFlows(RequestHandler):
    def post(self) -> None:
        for flow in list(self.view):
            if flow.intercepted:
                flow.resume()
                self.view.update([flow])


class KillFlows(RequestHandler):
    def post(self) -> None:
        for flow in list(self.view):
            if flow.killable:
                flow.kill()
                self.view.update([flow])


class ResumeFlow(RequestHandler):
    def post(self, flow_id: str) -> None:
        flow = self.flow
        flow.resume()
        self.view.update([flow])


class KillFlow(RequestHandler):
    def post(self, flow_id: str) -> None:
        flow = self.flow
        if flow.killable:
            flow.kill()
            self.view.update([flow])


# What an edited field may hold, so that an edit cannot smuggle a second request into a
# replay: no CR, LF or NUL anywhere; no controls or spaces in request-line parts; header
# names are tokens (RFC 9110 5.6.2).
_CONTROLS = "".join(map(chr, range(32))) + "\x7f"
_REQUEST_LINE_BAD = re.compile(f"[{re.escape(_CONTROLS)} ]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_BREAKS = re.compile("[\r\n\x00]")
_CONTROL_OR_BACKSLASH = re.compile(f"[{re.escape(_CONTROLS)}\\\\]")


def _field(where: str, value: Any) -> str:
    """A request-line or status-line part: no control characters, no spaces (reason: spaces)."""
    text = str(value)
    bad = _LINE_BREAKS if where.endswith(".reason") else _REQUEST_LINE_BAD
    if where.endswith(".method") and not _TOKEN.fullmatch(text):
        raise APIError(400, f"Invalid update {where}: {text!r} is not an HTTP method (a token).")
    if bad.search(text):
        raise APIError(400, f"Invalid update {where}: control characters or spaces in {text!r}.")
    return text


def _headers(where: str, value: Any) -> Headers:
    """``[[name, value], ...]`` (order and repeats kept) as Headers."""
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise APIError(400, f"Invalid update {where}: expected a list of [name, value] pairs.")
    fields = [(str(name), str(val)) for name, val in value]
    for name, val in fields:
        if not _TOKEN.fullmatch(name):
            raise APIError(400, f"Invalid update {where}: {name!r} is not a header name.")
        if _LINE_BREAKS.search(val):
            raise APIError(400, f"Invalid update {where}: CR, LF or NUL in the value of {name}.")
    return Headers(fields)


def _integer(where: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(value)
    except (ValueError, TypeError, OverflowError):
        number = None
    if number is None or not low <= number <= high:
        raise APIError(400, f"Invalid update {where}: {value}")
    return number


def _text(where: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise APIError(400, f"Invalid update {where}: expected a string.")
    return value


# PUT /flows/<id>: what each part accepts (spec section 4): fields set via str(), and the
# one number field as (key in the JSON, attribute, lowest, highest).
_REQUEST_EDITS = (("method", "scheme", "host", "path", "http_version"), ("port", "port", 0, 65535))
_RESPONSE_EDITS = (("reason", "http_version"), ("code", "status_code", 100, 999))


def _edit_message(message: Any, part: str, changes: dict[str, Any], edits: tuple[Any, Any]) -> None:
    text_fields, (number_key, number_attr, low, high) = edits
    for key, value in changes.items():
        where = f"{part}.{key}"
        if key in text_fields:
            setattr(message, key, _field(where, value))
        elif key == number_key:
            setattr(message, number_attr, _integer(where, value, low, high))
        elif key in ("headers", "trailers"):
            setattr(message, key, _headers(where, value))
        elif key == "content":
            message.text = _text(where, value)
        else:
            raise APIError(400, f"Unknown update {where}: {value}")


class FlowHandler(RequestHandler):
    def delete(self, flow_id: str) -> None:
        flow = self.flow
        if flow.killable:
            flow.kill()
        self.view.remove([flow])

    def put(self, flow_id: str) -> None:
        flow = self.flow
        changes = self.json
        if not isinstance(changes, dict):
            raise APIError(400, "Expected a JSON object.")
        flow.backup()
        try:
            for key, value in changes.items():
                if key == "request" and hasattr(flow, "request"):
                    if not isinstance(value, dict):
                        raise APIError(400, f"Unknown update request: {value}")
                    _edit_message(flow.request, "request", value, _REQUEST_EDITS)
                elif key == "response" and hasattr(flow, "response"):
                    if flow.response is None:
                        raise APIError(400, "This flow has no response.")
                    if not isinstance(value, dict):
                        raise APIError(400, f"Unknown update response: {value}")
                    _edit_message(flow.response, "response", value, _RESPONSE_EDITS)
                elif key == "marked":
                    flow.marked = str(value) if value not in (None, False) else ""
                elif key == "comment":
                    flow.comment = str(value)
                else:
                    raise APIError(400, f"Unknown update {key}: {value}")
        except APIError:
            flow.revert()
            raise
        except ValueError as e:  # a value the flow model refuses (e.g. a port out of range)
            flow.revert()
            raise APIError(400, f"Invalid update: {e}") from None
        self.view.update([flow])


class DuplicateFlow(RequestHandler):
    def post(self, flow_id: str) -> None:
        copy = self.flow.copy()
        self.view.add([copy])
        self.write(copy.id)


class RevertFlow(RequestHandler):
    def post(self, flow_id: str) -> None:
        flow = self.flow
        if flow.modified():
            flow.revert()
            self.view.update([flow])


class ReplayFlow(RequestHandler):
    def post(self, flow_id: str) -> None:
        from proxycore.exceptions import CommandError

        flow = self.flow
        try:
            self.master.commands.call("replay.client", [flow])
        except CommandError as e:
            raise APIError(400, str(e)) from None


def _message(flow: Flow, part: str) -> Any:
    """The request or response of an HTTP flow (500 for anything else, as in mitmweb)."""
    if not isinstance(flow, HTTPFlow) or part == "messages":
        raise APIError(400, f"This flow has no {part} content.")
    message = getattr(flow, part)
    if message is None:
        raise APIError(400, f"This flow has no {part}.")
    return message


class FlowContent(RequestHandler):
    def post(self, flow_id: str, message: str) -> None:
        flow = self.flow
        target = _message(flow, message)
        flow.backup()
        target.content = self.filecontents
        self.view.update([flow])

    def get(self, flow_id: str, message: str) -> None:
        flow = self.flow
        target = _message(flow, message)
        filename = None
        disposition = target.headers.get("Content-Disposition")
        if disposition:
            found = re.search(r'filename=([-\w" .()]+)', disposition)
            if found:
                filename = found.group(1)
        if not filename:
            assert isinstance(flow, HTTPFlow)  # _message answered 400 for any other flow
            filename = flow.request.path.split("?")[0].split("/")[-1]
        filename = re.sub(r'[^-\w" .()]', "", filename)
        self.set_header("Content-Disposition", f"attachment; filename={filename}")
        self.set_header("Content-Type", "application/text")
        self.write(target.get_content(strict=False) or b"")


class FlowContentView(RequestHandler):
    def get(self, flow_id: str, message: str, content_view: str) -> None:
        from proxycore.api import contentview

        lines_arg = self.get_query_argument("lines", None)
        try:
            max_lines = int(lines_arg) if lines_arg else None
        except ValueError:
            raise APIError(400, f"Invalid lines argument: {lines_arg}") from None
        try:
            self.write(contentview.render(self.flow, message, content_view, max_lines))
        except contentview.NoContent as e:
            raise APIError(400, str(e)) from None


class Commands(RequestHandler):
    def get(self) -> None:
        self.write(serialize.commands_to_json(self.master.commands.commands))


class ExecuteCommand(RequestHandler):
    def post(self, cmd: str) -> None:
        try:
            body = self.json
        except APIError:
            body = {}
        arguments = body.get("arguments", []) if isinstance(body, dict) else []
        try:
            if not isinstance(arguments, list):
                raise ValueError("arguments must be a list of strings")
            result = self.master.commands.call_strings(cmd, [str(a) for a in arguments])
        except Exception as e:
            self.write({"error": str(e)})
        else:
            self.write({"value": serialize.to_jsonable(result)})


class Events(RequestHandler):
    def get(self) -> None:
        self.write([serialize.logentry_to_json(e) for e in self.application.events.data])


def _option_type_error(name: str, typespec: Any, value: Any) -> str:
    shown = f"<class '{typespec.__name__}'>" if isinstance(typespec, type) else str(typespec)
    return f"Expected {shown} for {name}, but got {type(value)}."


class Options(RequestHandler):
    def get(self) -> None:
        self.write(serialize.options_to_json(self.master.options))

    async def put(self) -> None:
        update = self.json
        if not isinstance(update, dict):
            raise APIError(400, "Expected a JSON object.")
        options = self.master.options
        unknown = [name for name in update if name not in options]
        if unknown:
            raise APIError(400, repr(f"Unknown options: {', '.join(unknown)}"))
        for name, value in update.items():
            try:
                check_value(name, options.typespec(name), value)
            except OptionsError:
                raise APIError(400, _option_type_error(name, options.typespec(name), value)) from None
        # (with --workers the workers' listeners change: the WorkerPool awaits their answers)
        updaters = listener_updaters(self.master)
        pending = [getattr(updater, "update_task", None) for updater in updaters]
        try:
            options.update(**update)
        except OptionsError as e:
            raise APIError(400, str(e)) from None
        # A listener change is applied in a task: wait for it, so that a port that cannot be
        # bound is this request's error (the old listener keeps serving, the options revert).
        for updater, before in zip(updaters, pending, strict=True):
            task = getattr(updater, "update_task", None)
            if task is not None and task is not before:
                error = await task
                if error:
                    raise APIError(400, error)


class SaveOptions(RequestHandler):
    def post(self) -> None:
        """Accepted and ignored, as in mitmweb (the UI does not use it)."""


def listener_updaters(master: Any) -> list[Any]:
    """The addons that apply a change of the listen options in a task (``update_task``):
    the proxyserver, and with --workers the WorkerPool, which awaits the workers' answers."""
    found = (master.addons.get(name) for name in ("proxyserver", "workerpool"))
    return [addon for addon in found if addon is not None]


def servers_json(master: Any) -> dict[str, Any]:
    """``{full_spec: server}`` for the proxy listeners (one per ``mode`` entry)."""
    proxyserver = master.addons.get("proxyserver")
    listeners = getattr(proxyserver, "listeners", [])
    pool = master.addons.get("workerpool")
    if not listeners and pool is not None:  # with --workers, the workers' listeners
        listeners = pool.listeners()
    result = {}
    for listener in listeners:
        mode = listener.mode
        addresses = [list(a) for a in listener.addresses]
        error = getattr(listener, "last_exception", None)
        result[mode.full_spec] = {
            "type": mode.type_name,
            "description": mode.description,
            "full_spec": mode.full_spec,
            "is_running": bool(addresses) or bool(getattr(listener, "is_running", False)),
            "last_exception": str(error) if error else None,
            "listen_addrs": addresses,
        }
        if hasattr(listener, "tun_name") or hasattr(listener, "client_conf"):
            # the WireGuard (wireguard_conf) and TUN (tun_name) extras of mitmweb's entries
            extras = listener.to_json()
            result[mode.full_spec].update({k: v for k, v in extras.items() if k not in ("listen_addrs",)})
    return result


def _local_mode_unavailable() -> str | None:
    """mitmweb's ``localModeUnavailable``: why the Capture tab cannot offer local capture."""
    from proxycore.proxy.server_rs import local_unavailable_reason

    return local_unavailable_reason()


class State(RequestHandler):
    def get(self) -> None:
        from proxycore.api import contentview

        self.write(
            {
                "version": __version__,
                "contentViews": contentview.view_names(),
                "servers": servers_json(self.master),
                "platform": sys.platform,
                "localModeUnavailable": _local_mode_unavailable(),
            }
        )


class ProcessList(RequestHandler):
    """The Capture tab's program list for local mode (empty where the OS cannot be asked)."""

    def get(self) -> None:
        from proxycore.proxy.server_rs import active_executables

        self.write(active_executables())


class ProcessImage(RequestHandler):
    """A program's icon; a transparent pixel where there is none, as mitmweb sends."""

    def get(self) -> None:
        from proxycore.proxy.server_rs import executable_icon

        path = self.get_query_argument("path", None)
        if not path:
            raise APIError(400, "Missing 'path' parameter.")
        self.set_header("Content-Type", "image/png")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "max-age=604800")
        self.write(executable_icon(path) or TRANSPARENT_PNG)


class StaticFiles(tornado.web.StaticFileHandler):
    """The front end's files; no auth, like mitmweb (they hold no data).

    A path that cannot name a file below the folder (NUL and other control characters,
    backslashes, empty, ``.`` or ``..`` segments) is a 404 before the file system is
    asked: os.path rejects NUL with an exception, which Tornado turned into a 500.
    """

    def parse_url_path(self, url_path: str) -> str:
        segments = url_path.split("/")
        if (
            _CONTROL_OR_BACKSLASH.search(url_path)
            or any(segment in ("", ".", "..") for segment in segments)
        ):
            raise tornado.web.HTTPError(404)
        return super().parse_url_path(url_path)


class GZipContentAndFlowFiles(tornado.web.GZipContentEncoding):
    CONTENT_TYPES = {"application/octet-stream", *tornado.web.GZipContentEncoding.CONTENT_TYPES}


FID = r"(?P<flow_id>[0-9a-f\-]+)"
HANDLERS: list[tuple[str, type[tornado.web.RequestHandler]]] = [
    (r"/", IndexHandler),
    (r"/filter-help(?:\.json)?", FilterHelp),
    (r"/updates", ClientConnection),
    (r"/commands(?:\.json)?", Commands),
    (r"/commands/(?P<cmd>[a-z.]+)", ExecuteCommand),
    (r"/events(?:\.json)?", Events),
    (r"/flows(?:\.json)?", Flows),
    (r"/flows/dump", DumpFlows),
    (r"/flows/resume", ResumeFlows),
    (r"/flows/kill", KillFlows),
    (rf"/flows/{FID}", FlowHandler),
    (rf"/flows/{FID}/resume", ResumeFlow),
    (rf"/flows/{FID}/kill", KillFlow),
    (rf"/flows/{FID}/duplicate", DuplicateFlow),
    (rf"/flows/{FID}/replay", ReplayFlow),
    (rf"/flows/{FID}/revert", RevertFlow),
    (rf"/flows/{FID}/(?P<message>request|response|messages)/content.data", FlowContent),
    (
        rf"/flows/{FID}/(?P<message>request|response|messages)/content/(?P<content_view>[0-9a-zA-Z\-\_%]+)(?:\.json)?",
        FlowContentView,
    ),
    (r"/clear", ClearAll),
    (r"/options(?:\.json)?", Options),
    (r"/options/save", SaveOptions),
    (r"/state(?:\.json)?", State),
    (r"/processes", ProcessList),
    (r"/executable-icon", ProcessImage),
]


class Application(tornado.web.Application):
    """The web API for one master: its view, event store, auth and WebSocket clients."""

    def __init__(self, master: Any, view: Any, events: Any, auth: Any, static_dir: str | None = None, debug: bool = False) -> None:
        self.master = master
        self.view = view
        self.events = events
        self.auth = auth
        self.static_dir = static_dir
        self.connections: set[ClientConnection] = set()
        self.listen_addresses: list[tuple[str, int]] = []  # set by the web addon once bound
        self.background: set[asyncio.Task[None]] = set()  # refusals still closing (api.gate)
        self.flow_json = serialize.FlowJsonCache()
        handlers: list[Any] = list(HANDLERS)
        if static_dir:
            static = os.path.join(static_dir, "static")
            handlers += [
                (r"/static/(.*)", StaticFiles, {"path": static}),
                (r"/(favicon\.ico|robots\.txt)", StaticFiles, {"path": static}),
            ]
        super().__init__(
            handlers=handlers,
            xsrf_cookies=True,
            xsrf_cookie_name="_mitmproxy_xsrf",
            xsrf_cookie_kwargs={"samesite": "Strict"},
            cookie_secret=secrets.token_bytes(32),
            debug=debug,
            autoreload=False,
            transforms=[GZipContentAndFlowFiles],
        )

    def start_request(self, server_conn: object, request_conn: Any) -> Any:
        # Host and body-size checks run on the head, before Tornado reads the body.
        return Gate(self, super().start_request(server_conn, request_conn), request_conn)

    def auth_cookie_name(self) -> str:
        return f"mitmproxy-auth-{self.master.options.web_port}"
