"""proxyweb: the proxy plus mitmweb's web API (a drop-in for mitmweb's back end).

Takes the flags proxydump shares with mitmdump (``proxycore.tools.dump``) plus
mitmweb's own: ``--web-host``, ``--web-port``, ``--web-open-browser`` and
``--intercept``.  Flows are kept in the view, and unlike proxydump it keeps
serving after ``-r``, ``-C`` or ``-S`` (it has no KeepServing addon), as mitmweb does.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from proxycore.tools import dump

PROG = "proxyweb"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage="%(prog)s [options]",
        description="An intercepting HTTP proxy with mitmweb's web API and UI back end.",
    )
    web = parser.add_argument_group("Web")
    dump._bool_flag(web, "web_open_browser", None, "Do not open the web UI in a browser at start.")
    web.add_argument("--web-port", dest="web_port", type=dump.port, metavar="PORT", help="Web UI port (8081).")
    web.add_argument("--web-host", dest="web_host", metavar="HOST", help="Web UI host (127.0.0.1).")
    dump.add_common_arguments(parser)
    filters = parser.add_argument_group("Filters", "See docs/cli.md for the filter syntax.")
    filters.add_argument("--intercept", dest="intercept", metavar="FILTER", help="Intercept filter expression.")
    return parser


def make_master(opts: Any, termlog: Any, errorcheck: Any) -> Any:
    """mitmweb's chain: TermLog, the defaults (with intercept), command history (the UI's
    command bar), the view, the event store, the web API, and the startup error check."""
    from proxycore.addons import default_addons
    from proxycore.addons.command_history import CommandHistory
    from proxycore.addons.eventstore import EventStore
    from proxycore.addons.store import StoreAddon
    from proxycore.addons.view import View
    from proxycore.api.auth import WebAuth
    from proxycore.api.webaddon import WebAddon
    from proxycore.master import Master

    class WebMaster(Master):
        """mitmweb's master: ``view`` holds the flows the UI shows (scripts read it)."""

        view: View

    master = WebMaster(opts)
    errorcheck.master = master
    master.view = View()
    master.addons.add(termlog)
    master.addons.add(StoreAddon(per_run_default=True))  # opens its store before -r loads flows
    master.addons.add(*default_addons())
    master.addons.add(CommandHistory(), master.view, EventStore(), WebAuth(), WebAddon())
    master.addons.add(errorcheck)
    return master


WEB = dump.Tool(PROG, make_parser, make_master, flags=("web_open_browser", "web_port", "web_host", "intercept"))


def main(argv: Sequence[str] | None = None) -> int:
    return dump.main(argv, WEB)


if __name__ == "__main__":
    import sys

    sys.exit(main())
