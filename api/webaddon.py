"""Addon that runs the web API next to the proxy: options, HTTP server, live updates."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Sequence
from typing import Any

from proxycore import ctx
from proxycore.exceptions import OptionsError
from proxycore.options import parse_size
from proxycore.optmanager import PORT, in_range
from proxycore.utils import signals

logger = logging.getLogger("proxycore.web")

WEB_COLUMNS = [
    "icon", "index", "method", "version", "path", "quickactions",
    "size", "status", "time", "timestamp", "tls", "comment",
]
_SERVER_OPTIONS = {"mode", "listen_host", "listen_port", "server"}

# Graphical browsers only: on a headless machine webbrowser.open() would start lynx.
_BROWSERS = (
    "windows-default", "macosx", "wslview %s", "gio", "x-www-browser", "gnome-open %s",
    "xdg-open", "google-chrome", "chrome", "chromium", "chromium-browser", "firefox",
    "opera", "safari",
)


def open_browser(url: str) -> bool:
    import webbrowser  # only when a browser is opened (web_open_browser)

    for name in _BROWSERS:
        try:
            browser = webbrowser.get(name)
        except webbrowser.Error:
            continue
        if browser.open(url):
            return True
    return False


def _size(value: str) -> None:
    try:
        size = parse_size(value)
    except OptionsError as e:
        raise ValueError(str(e)) from None
    if not size:
        raise ValueError("must be a size above 0, e.g. 500m")


async def _fetched_frontend(confdir: str) -> str | None:
    """mitmproxy's front end from confdir, downloaded first if needed; None (logged) if offline."""
    from proxycore.api import frontend

    try:
        path = await asyncio.to_thread(frontend.ensure, confdir, logger.info)
    except (frontend.FrontendUnavailable, OSError) as e:
        logger.warning(
            f"No web front end: {e}. The web API works without it; to get the UI, restart with "
            f"access to the package index (or PIP_INDEX_URL set to a mirror), or set web_static "
            f"to a directory holding mitmproxy/tools/web (see docs/web.md)."
        )
        return None
    return str(path)


class WebAddon:
    """Serves the API on ``web_host:web_port`` from ``running`` until ``done``.

    Needs the ``view``, ``eventstore`` and ``webauth`` addons in the same master.
    """

    name = "web"

    def __init__(self) -> None:
        self.app: Any = None
        self.server: Any = None
        self.addresses: list[tuple[str, int]] = []
        self._broadcaster: Any = None
        self._servers_task: asyncio.Task[None] | None = None

    def load(self, loader: Any) -> None:
        loader.add_option("web_open_browser", bool, True, "Start a browser.")
        loader.add_option("web_debug", bool, False, "Enable web server debugging.")
        loader.add_option("web_port", int, 8081, "Web UI port.", check=PORT)
        loader.add_option("web_host", str, "127.0.0.1", "Web UI host.")
        loader.add_option(
            "web_allowed_hosts",
            Sequence[str],
            [],
            "Extra names the web interface may be reached by (the Host header), for a reverse "
            "proxy in front of it; localhost, 127.0.0.1, [::1] and web_host are always allowed. "
            "'*' allows any name (no DNS rebinding protection, as mitmweb).",
        )
        loader.add_option(
            "web_max_body_size",
            str,
            "1g",
            "Largest request body the web API accepts (flow file uploads), e.g. 200m. Bodies "
            "over 64k are refused unless the request carries credentials in its head.",
            check=_size,
        )
        loader.add_option(
            "web_updates_max_queue",
            int,
            20000,
            "Updates (/updates WebSocket messages) that may wait for one web client; a client "
            "that falls further behind is disconnected, and the web interface reconnects.",
            check=in_range(1),
        )
        loader.add_option(
            "web_updates_max_queue_bytes",
            str,
            "64m",
            "Bytes of updates that may wait for one web client (see web_updates_max_queue).",
            check=_size,
        )
        loader.add_option(
            "web_filter_time_budget",
            int,
            2,
            "Seconds a web client's search or highlight filter may take over the whole view; "
            "a slower filter is refused like an invalid one.",
            check=in_range(0),
        )
        loader.add_option(
            "web_columns",
            Sequence[str],
            ["tls", "icon", "path", "method", "status", "size", "time"],
            f"Columns to show in the flow list. Can be one of the following: {', '.join(WEB_COLUMNS)}",
        )
        loader.add_option(
            "web_theme",
            str,
            "system",
            "Preferred color theme for the web user interface.",
            choices=["system", "dark", "light"],
        )
        loader.add_option(
            "web_static",
            str | None,
            None,
            "Directory with the web front end to serve: its index.html and static/ folder "
            "(for example mitmproxy/tools/web from a mitmproxy install). "
            "Unset: mitmproxy's front end, fetched into confdir on first use (web_fetch_frontend).",
        )
        loader.add_option(
            "web_fetch_frontend",
            bool,
            True,
            "When web_static is unset, download mitmproxy's web front end (a pinned, "
            "sha256-checked release) from the package index into confdir/web/ on first use.",
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "web_static" in updated and opts.web_static:
            index = os.path.join(os.path.expanduser(opts.web_static), "index.html")
            if not os.path.isfile(index):
                raise OptionsError(f"web_static: no index.html in {opts.web_static}")
        if "web_columns" in updated:
            unknown = [c for c in opts.web_columns if c not in WEB_COLUMNS]
            if unknown:
                raise OptionsError(f"Unknown web_columns: {', '.join(unknown)}")
        if self.app is not None and updated & _SERVER_OPTIONS:
            self._watch_servers()

    # serving ----------------------------------------------------------------------

    @property
    def web_url(self) -> str:
        opts = ctx.options
        host = opts.web_host or "127.0.0.1"
        port = self.addresses[0][1] if self.addresses else opts.web_port
        if ":" in host:
            host = f"[{host}]"
        token = ctx.master.addons.get("webauth").token
        return f"http://{host}:{port}/" + (f"?token={token}" if token else "")

    async def running(self) -> None:
        import tornado.httpserver
        import tornado.netutil

        from proxycore.api.app import Application
        from proxycore.api.updates import Broadcaster

        master = ctx.master
        opts = ctx.options
        addons = master.addons
        static = os.path.expanduser(opts.web_static) if opts.web_static else None
        try:
            sockets = tornado.netutil.bind_sockets(opts.web_port, opts.web_host or None)
        except OSError as e:
            message = f"Web server failed to listen on {opts.web_host or '*'}:{opts.web_port} with {e}"
            if e.errno == errno.EADDRINUSE:
                message += f"\nTry a different port: --set web_port={opts.web_port + 2}"
            logger.error(message)
            master.exit_code = 1
            master.shutdown()
            return
        if static is None and opts.web_fetch_frontend:
            try:
                static = await _fetched_frontend(opts.confdir)
            except asyncio.CancelledError:  # stopped during the first download
                for sock in sockets:
                    sock.close()
                raise
        self.app = Application(
            master, addons.get("view"), addons.get("eventstore"), addons.get("webauth"),
            static_dir=static, debug=opts.web_debug,
        )
        self.server = tornado.httpserver.HTTPServer(self.app, max_buffer_size=2**32)
        self.server.add_sockets(sockets)
        self.addresses = [s.getsockname()[:2] for s in sockets]
        self.app.listen_addresses = self.addresses
        self._broadcaster = Broadcaster(self.app.connections)
        self._connect(True)
        logger.info(f"Web server listening at {self.web_url}")
        if opts.web_open_browser and not open_browser(self.web_url):
            logger.info(f"No web browser found. Please open a browser and point it to {self.web_url}")

    def _connect(self, on: bool) -> None:
        """Wire (or unwire) the view, event store and options to the WebSocket clients."""
        b = self._broadcaster
        view, events = self.app.view, self.app.events
        pairs = [
            (view.sig_view_add, b.view_add),
            (view.sig_view_update, b.view_update),
            (view.sig_view_remove, b.view_remove),
            (view.sig_view_refresh, b.view_refresh),
            (events.sig_add, b.events_add),
            (events.sig_refresh, b.events_refresh),
        ]
        signals.wire(pairs, on)
        self.app.flow_json.connect(view, on)
        changed = ctx.master.options.changed
        if on:
            changed.append(self._options_changed)
        elif self._options_changed in changed:
            changed.remove(self._options_changed)

    def _options_changed(self, updated: set[str]) -> None:
        self._broadcaster.options_changed(ctx.master.options, updated)

    def _watch_servers(self) -> None:
        """Announce the servers now (likely restarting) and again once the change settled."""
        if self._servers_task is not None:
            self._servers_task.cancel()
        self._servers_task = asyncio.get_running_loop().create_task(self._report_servers())

    async def _report_servers(self) -> None:
        from proxycore.api.app import listener_updaters, servers_json

        self._broadcaster.servers_changed(servers_json(ctx.master))
        # (with --workers the WorkerPool's task ends once every worker reported its listeners)
        for updater in listener_updaters(ctx.master):
            seen = None
            # A failed change puts the options back, which schedules one more update.
            while updater.update_task not in (None, seen):
                seen = updater.update_task
                await asyncio.shield(seen)
        self._broadcaster.servers_changed(servers_json(ctx.master))

    async def done(self) -> None:
        if self.app is None:
            return
        self._connect(False)
        if self._servers_task is not None:
            self._servers_task.cancel()
        for conn in list(self.app.connections):
            conn.close()
        for task in list(self.app.background):
            task.cancel()
        await asyncio.gather(*self.app.background, return_exceptions=True)
        self.server.stop()
        await self.server.close_all_connections()
        self.app = None
