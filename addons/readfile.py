"""Replays a flow file through the addons (``-r FILE``, ``-`` for stdin), as mitmdump does."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from proxycore import command, ctx
from proxycore.exceptions import OptionsError
from proxycore.flow import Flow
from proxycore.utils import filteroption

if TYPE_CHECKING:
    from proxycore import flowfilter

logger = logging.getLogger("proxycore.readfile")


def hook_sequence(flow: Flow) -> list[Any]:
    """The hooks a live flow of this kind would have gone through, in order."""
    from proxycore.dns import DNSFlow
    from proxycore.http import HTTPFlow
    from proxycore.layers.http._hooks import (
        HttpErrorHook,
        HttpRequestHeadersHook,
        HttpRequestHook,
        HttpResponseHeadersHook,
        HttpResponseHook,
    )
    from proxycore.layers.tcp import TcpEndHook, TcpErrorHook, TcpMessageHook, TcpStartHook
    from proxycore.tcp import TCPFlow
    from proxycore.udp import UDPFlow

    if isinstance(flow, HTTPFlow):
        hooks: list[Any] = [HttpRequestHeadersHook(flow), HttpRequestHook(flow)]
        if flow.response is not None:
            hooks += [HttpResponseHeadersHook(flow), HttpResponseHook(flow)]
        if flow.websocket is not None:
            from proxycore.layers.websocket import (
                WebsocketEndHook,
                WebsocketMessageHook,
                WebsocketStartHook,
            )

            messages, flow.websocket.messages = flow.websocket.messages, []
            hooks.append(WebsocketStartHook(flow))
            for message in messages:
                hooks.append(_Append(flow.websocket.messages, message, WebsocketMessageHook(flow)))
            hooks.append(WebsocketEndHook(flow))
        if flow.error is not None:
            hooks.append(HttpErrorHook(flow))
        return hooks
    if isinstance(flow, TCPFlow):
        tcp_messages, flow.messages = flow.messages, []
        hooks = [TcpStartHook(flow)]
        hooks += [_Append(flow.messages, m, TcpMessageHook(flow)) for m in tcp_messages]
        hooks.append(TcpErrorHook(flow) if flow.error is not None else TcpEndHook(flow))
        return hooks
    if isinstance(flow, DNSFlow):
        from proxycore.layers.dns import DnsErrorHook, DnsRequestHook, DnsResponseHook

        hooks = [DnsRequestHook(flow)]
        if flow.response is not None:
            hooks.append(DnsResponseHook(flow))
        if flow.error is not None:
            hooks.append(DnsErrorHook(flow))
        return hooks
    if isinstance(flow, UDPFlow):
        from proxycore.layers.udp import UdpEndHook, UdpErrorHook, UdpMessageHook, UdpStartHook

        udp_messages, flow.messages = flow.messages, []
        hooks = [UdpStartHook(flow)]
        hooks += [_Append(flow.messages, m, UdpMessageHook(flow)) for m in udp_messages]
        hooks.append(UdpErrorHook(flow) if flow.error is not None else UdpEndHook(flow))
        return hooks
    return []


class _Append:
    """A message hook that first puts its message back, so ``messages[-1]`` is the current one."""

    def __init__(self, target: list[Any], message: Any, hook: Any) -> None:
        self.target, self.message, self.hook = target, message, hook

    def prepare(self) -> Any:
        self.target.append(self.message)
        return self.hook


class ReadFile:
    def __init__(self) -> None:
        self.filter: flowfilter.Filter | None = None
        self._reading = False

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "readfile_filter" in updated:
            self.filter = filteroption.parse_option(opts.readfile_filter)
        if "rfile" in updated and opts.rfile and opts.rfile != "-":
            path = os.path.expanduser(opts.rfile)
            if os.path.isdir(path):
                raise OptionsError(f"Cannot read flow file {opts.rfile}: it is a directory, not a flow file")
            if not os.path.isfile(path):
                raise OptionsError(f"Cannot read flow file {opts.rfile}: no such file")

    async def running(self) -> None:
        path = ctx.options.rfile
        if not path:
            return
        from proxycore.io import FlowReadException  # only with a file to read (issue 15: ~0.7 MB)

        master = ctx.master
        self._reading = True
        try:
            count = await self.load_path(path)
        except (OSError, FlowReadException) as e:
            logger.error(f"Error reading flow file {path}: {e}")
            master.exit_code = 1
            master.shutdown()
            return
        finally:
            self._reading = False
        # Whether to exit now is KeepServing's call (proxydump): replays may still run.
        logger.debug(f"Read {count} flows from {path}.")

    @command.command("readfile.reading")
    def reading(self) -> bool:
        """True while a flow file is being read."""
        return self._reading

    async def load_path(self, path: str) -> int:
        count = 0
        if path == "-":
            stream = sys.stdin.buffer
            return await self._load_stream(stream)
        with open(os.path.expanduser(path), "rb") as f:
            count = await self._load_stream(f)
        return count

    async def _load_stream(self, stream: Any) -> int:
        from proxycore.io import FlowReader

        count = 0
        for flow in FlowReader(stream).stream():
            if self.filter is not None and not self.filter(flow):
                continue
            count += 1
            await load_flow(flow)
        return count


async def load_flow(flow: Flow) -> None:
    """Run a flow read from a file through every addon, as if it had just passed the proxy."""
    flow.live = False
    for hook in hook_sequence(flow):
        if isinstance(hook, _Append):
            hook = hook.prepare()
        await ctx.master.addons.handle_lifecycle(hook)
