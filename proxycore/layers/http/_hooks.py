"""HTTP hooks with mitmproxy's names; each takes the flow."""

from __future__ import annotations

from proxycore.http import HTTPFlow
from proxycore.proxy.commands import StartHook, hook_dataclass


@hook_dataclass
class HttpRequestHeadersHook(StartHook):
    """Request head read; the body may not have arrived (set ``flow.request.stream`` here)."""

    name = "requestheaders"
    flow: HTTPFlow


@hook_dataclass
class HttpRequestHook(StartHook):
    """Full request read; setting ``flow.response`` answers without asking the server."""

    name = "request"
    flow: HTTPFlow


@hook_dataclass
class HttpResponseHeadersHook(StartHook):
    name = "responseheaders"
    flow: HTTPFlow


@hook_dataclass
class HttpResponseHook(StartHook):
    name = "response"
    flow: HTTPFlow


@hook_dataclass
class HttpErrorHook(StartHook):
    """The exchange failed (``flow.error`` is set); never fired after ``response``."""

    name = "error"
    flow: HTTPFlow


@hook_dataclass
class HttpConnectHook(StartHook):
    """A CONNECT request arrived; an addon may refuse it by setting a non-2xx response."""

    name = "http_connect"
    flow: HTTPFlow


@hook_dataclass
class HttpConnectedHook(StartHook):
    name = "http_connected"
    flow: HTTPFlow


@hook_dataclass
class HttpConnectErrorHook(StartHook):
    name = "http_connect_error"
    flow: HTTPFlow


@hook_dataclass
class HttpConnectUpstreamHook(StartHook):
    name = "http_connect_upstream"
    flow: HTTPFlow
