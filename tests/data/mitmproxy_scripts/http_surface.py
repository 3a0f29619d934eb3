"""HTTP hooks, options, commands, async and @concurrent hooks, and the helper modules."""

import asyncio
import logging
import threading
import time

from mitmproxy import command, ctx, exceptions, flowfilter, http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.flowfilter import TFilter
from mitmproxy.log import ALERT
from mitmproxy.net import server_spec
from mitmproxy.net.http import status_codes, url
from mitmproxy.script import concurrent
from mitmproxy.utils import emoji, human, strutils

logger = logging.getLogger(__name__)


class Surface:
    def __init__(self) -> None:
        self.filter: TFilter | None = None

    def load(self, loader):
        loader.add_option("greeting", str, "hello", "Value of the x-greeting response header.")

    def configure(self, updated):
        if "greeting" in updated and ctx.options.greeting == "forbidden":
            raise exceptions.OptionsError("greeting may not be 'forbidden'")
        self.filter = flowfilter.parse("~u /filtered")

    def running(self):
        logger.log(ALERT, "surface: alert level works")
        ctx.log.info("surface: ctx.log works")

    @command.command("surface.greet")
    def greet(self, name: str) -> str:
        return f"hi {name}"

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.path == "/teapot":
            flow.response = http.Response.make(
                status_codes.IM_A_TEAPOT, b"short and stout", {"content-type": "text/plain"}
            )
            return
        if flow.request.multipart_form:
            flow.request.headers["x-form-field"] = strutils.always_str(flow.request.multipart_form[b"field"])
        flow.request.headers["x-client-address"] = flow.client_conn.address[0]

    def response(self, flow: http.HTTPFlow) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        h = flow.response.headers
        h["x-greeting"] = ctx.options.greeting
        h["x-command"] = ctx.master.commands.call("surface.greet", "bob")
        h["x-strutils"] = strutils.bytes_to_escaped_str(b"\x00ab")
        h["x-human"] = human.pretty_size(2048)
        h["x-emoji"] = emoji.emoji[":+1:"]
        h["x-server-spec"] = repr(server_spec.parse("https://example.com", "http"))
        h["x-url"] = url.hostport("https", "example.com", 8443)
        h["x-status-name"] = status_codes.RESPONSES[status_codes.NOT_FOUND]
        h["x-filter"] = str(bool(self.filter(flow)))
        h["x-servers"] = str(len(proxyserver.servers))
        h["x-proxyserver"] = str(isinstance(proxyserver, Proxyserver) and proxyserver in ctx.master.addons)
        h["x-exceptions"] = str(issubclass(exceptions.FlowReadException, exceptions.MitmproxyException))


class Slow:
    """@concurrent: runs in a worker thread; the flow waits, the proxy does not."""

    @concurrent
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        time.sleep(0.05)
        flow.request.headers["x-concurrent"] = str(threading.current_thread() is not threading.main_thread())


class AsyncHooks:
    async def response(self, flow: http.HTTPFlow) -> None:
        await asyncio.sleep(0.01)
        flow.response.headers["x-async"] = "awaited"


addons = [Surface(), Slow(), AsyncHooks()]
