"""mitmproxy's console addon, reduced to its options: scripts, config files and tests that
set ``console_*`` options load in proxycore, which has no console UI."""

from __future__ import annotations

from typing import Any

from proxycore.optmanager import OptManager

# name -> (type, default, help); mitmproxy's console options (console_focus_follow is the
# view addon's in proxycore).
CONSOLE_OPTIONS: dict[str, tuple[type, Any, str]] = {
    "console_default_contentview": (str, "auto", "The default content view mode (no console in proxycore)."),
    "console_eventlog_verbosity": (str, "info", "EventLog verbosity (no console in proxycore)."),
    "console_layout": (str, "single", "Console layout (no console in proxycore)."),
    "console_layout_headers": (bool, True, "Show layout component headers (no console in proxycore)."),
    "console_palette": (str, "solarized_dark", "Color palette (no console in proxycore)."),
    "console_palette_transparent": (bool, True, "Transparent palette background (no console in proxycore)."),
    "console_mouse": (bool, True, "Console mouse interaction (no console in proxycore)."),
    "console_flowlist_layout": (str, "default", "The flow list layout (no console in proxycore)."),
    "console_strip_trailing_newlines": (bool, False, "Strip trailing newlines of edited bodies (no console)."),
}


class ConsoleAddon:
    """Declares the console options; takes the master as mitmproxy's addon does."""

    def __init__(self, master: Any = None) -> None:
        self.master = master

    def load(self, loader: Any) -> None:
        options: OptManager | None = getattr(self.master, "options", None)
        for name, (typ, default, text) in CONSOLE_OPTIONS.items():
            if options is None or name not in options:
                loader.add_option(name, typ, default, text)
