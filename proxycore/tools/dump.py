"""proxydump: the command-line proxy, a drop-in for mitmdump.

Only argparse is imported at module level: ``--version`` and ``--help`` answer
without loading the engine, and everything else is imported once the
arguments are known to be valid.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

PROG = "proxydump"

# Boolean options with flags: (option, short flag, help).  Each gets --name and --no-name
# as in mitmdump; the short flag and the help go to the form that changes the default.
_BOOL_FLAGS = (
    ("showhost", None, "Use the Host header to construct URLs for display."),
    ("server", "n", "Do not start a proxy server (e.g. only run scripts)."),
    ("ssl_insecure", "k", "Do not verify upstream server SSL/TLS certificates."),
    ("anticache", None, "Strip out request headers that might cause the server to return 304-not-modified."),
    ("anticomp", None, "Try to convince servers to send us un-compressed data."),
)
# Rule options of the map/modify addons: (group title, short flag, flag, help); repeatable.
_PATTERN_FLAGS = (
    ("Map Remote", "M", "--map-remote",
     'Map remote resources to another remote URL: "[/flow-filter]/url-regex/replacement"; '
     "the separator can be any character. Repeatable."),
    ("Map Local", None, "--map-local",
     'Map remote resources to a local file or directory: '
     '"[/flow-filter]/url-regex/file-or-directory-path". Repeatable.'),
    ("Modify Body", "B", "--modify-body",
     'Replace in bodies: "[/flow-filter]/regex/[@]replacement" (@ reads the replacement from '
     "a file). Repeatable."),
    ("Modify Headers", "H", "--modify-headers",
     'Set headers: "[/flow-filter]/header-name/[@]header-value" (@ reads the value from a '
     "file; an empty value removes the header). Repeatable."),
)
# Server replay switches (declared by the ServerPlayback addon), in the "Server Replay" group.
_REPLAY_BOOL_FLAGS = (
    ("server_replay_kill_extra", "Kill extra requests during replay (deprecated: --server-replay-extra kill)."),
    ("server_replay_reuse", "Keep recorded responses after use, so they can be replayed several times."),
    ("server_replay_refresh", "Do not adjust date, expires, last-modified and cookie expiry of replayed responses."),
)
# Options that default to True; their --no- form is the one that does something.
_TRUE_BY_DEFAULT = {"server", "server_replay_refresh", "web_open_browser"}


class _Terminated(BaseException):
    """Raised by the early SIGTERM handler so that a stop during startup exits cleanly."""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage="%(prog)s [options] [filter]",
        description="An intercepting HTTP proxy that prints one line per flow (like mitmdump).",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--flow-detail",
        dest="flow_detail",
        type=int,
        metavar="LEVEL",
        help="Display detail for flows: 0 (quiet) to 4 (very verbose); see --options.",
    )
    parser.add_argument(
        "filter_args",
        nargs="...",
        help="Filter expression: limits which flows are shown, saved (-w) and read (-r).",
    )
    return parser


def port(text: str) -> int:
    """A ``-p``-style port, 0-65535 (0: any free port).  argparse reports a bad one as
    "invalid port value" with exit status 2, instead of the proxy binding something else."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: must be 0-65535")
    return value


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every proxycore tool shares (proxydump, proxyweb), as mitmproxy's tools do."""
    parser.epilog = (
        "The event loop is uvloop's where uvloop is installed (every platform but Windows), else "
        "asyncio's; set PROXYCORE_EVENT_LOOP=asyncio to run on asyncio's loop anyway (--version names it)."
    )
    parser.add_argument("--version", action="store_true", help="show version information and exit")
    parser.add_argument(
        "--options", action="store_true", help="show all options with their defaults and help, then exit"
    )
    parser.add_argument(
        "--commands", action="store_true", help="show all commands with their signatures and help, then exit"
    )
    parser.add_argument(
        "--set",
        dest="setoptions",
        action="append",
        default=[],
        metavar="option[=value]",
        help="Set an option. Without a value, booleans become true, optional strings and "
        "integers None, and sequences empty. Booleans take true, false or toggle. "
        "Repeat --set for each item of a sequence option.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="Quiet: no per-flow output, errors only.")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="Debug log output and flow_detail 2."
    )
    parser.add_argument(
        "-m",
        "--mode",
        action="append",
        metavar="MODE",
        help="The proxy server type(s) to spawn, as mode[:data][@[host:]port]: regular, "
        "upstream:URL, reverse:URL, socks5, transparent, e.g. socks5@1080. "
        "May be passed multiple times.",
    )
    parser.add_argument(
        "-s",
        "--scripts",
        action="append",
        metavar="SCRIPT",
        help="Execute a script. May be passed multiple times.",
    )
    for name, short, text in _BOOL_FLAGS:
        _bool_flag(parser, name, short, text)
    parser.add_argument(
        "--stickycookie", dest="stickycookie", metavar="FILTER",
        help="Set sticky cookie filter. Matched against requests.",
    )
    parser.add_argument(
        "--stickyauth", dest="stickyauth", metavar="FILTER",
        help="Set sticky auth filter. Matched against requests.",
    )

    group = parser.add_argument_group("Proxy Options")
    group.add_argument("--listen-host", dest="listen_host", metavar="HOST", help="Address to bind the proxy to.")
    group.add_argument("-p", "--listen-port", dest="listen_port", type=port, metavar="PORT", help="Proxy service port.")
    group.add_argument(
        "--workers", dest="workers", metavar="N",
        help="Worker processes serving the proxy port (a number or auto; default 1: this process).",
    )
    group.add_argument(
        "--ignore-hosts", dest="ignore_hosts", action="append", metavar="HOST",
        help="Pass matching hosts through untouched (regex on host:port); repeatable.",
    )
    group.add_argument(
        "--allow-hosts", dest="allow_hosts", action="append", metavar="HOST",
        help="Intercept only matching hosts (regex on host:port); repeatable.",
    )
    group.add_argument(
        "--tcp-hosts", dest="tcp_hosts", action="append", metavar="HOST",
        help="Treat matching hosts as raw TCP (regex on host:port); repeatable.",
    )
    group.add_argument(
        "--upstream-auth", dest="upstream_auth", metavar="USER:PASS",
        help="HTTP Basic credentials for the upstream proxy (upstream mode) or the target (reverse mode).",
    )
    group.add_argument(
        "--proxyauth", dest="proxyauth", metavar="SPEC",
        help='Require proxy authentication: "username:pass", "any" to accept any user/pass '
        'combination, or "@path" to use an Apache htpasswd file.',
    )
    files = parser.add_argument_group("Flow files")
    files.add_argument(
        "-w", "--save-stream-file", dest="save_stream_file", metavar="PATH",
        help="Stream flows to file as they arrive. Prefix path with + to append.",
    )
    files.add_argument(
        "-r", "--rfile", dest="rfile", metavar="PATH",
        help="Read flows from file (- for stdin) and run them through the addons.",
    )
    files.add_argument(
        "--keepserving", dest="keepserving", action="store_true", default=None,
        help="Keep serving after reading a flow file (-r) and after client/server replay (-C/-S).",
    )
    replay = parser.add_argument_group("Client Replay")
    replay.add_argument(
        "-C", "--client-replay", dest="client_replay", action="append", metavar="PATH",
        help="Replay client requests from a saved file; repeatable.",
    )
    replay = parser.add_argument_group("Server Replay")
    replay.add_argument(
        "-S", "--server-replay", dest="server_replay", action="append", metavar="PATH",
        help="Replay server responses from a saved file; repeatable.",
    )
    replay.add_argument(
        "--server-replay-extra", dest="server_replay_extra",
        choices=("forward", "kill", "204", "400", "404", "500"),
        help="What to do with requests no recorded response matches: forward them (default), "
        "kill them, or answer with an empty response of that status.",
    )
    for name, text in _REPLAY_BOOL_FLAGS:
        _bool_flag(replay, name, None, text)
    tls = parser.add_argument_group("SSL")
    tls.add_argument(
        "--certs", dest="certs", action="append", metavar="SPEC",
        help='SSL certificates of the form "[domain=]path" (PEM with key); repeatable.',
    )
    for title, short, flag, text in _PATTERN_FLAGS:
        names = [f"-{short}", flag] if short else [flag]
        parser.add_argument_group(title).add_argument(
            *names, dest=flag[2:].replace("-", "_"), action="append", metavar="PATTERN", help=text
        )


def _bool_flag(parser: Any, name: str, short: str | None, text: str) -> None:
    flag = name.replace("_", "-")
    group = parser.add_mutually_exclusive_group()
    on, off = [f"--{flag}"], [f"--no-{flag}"]
    useful, other = (off, on) if name in _TRUE_BY_DEFAULT else (on, off)
    if short:
        useful.insert(0, f"-{short}")
    group.add_argument(*off, dest=name, action="store_false", help=text if useful is off else argparse.SUPPRESS)
    group.add_argument(*on, dest=name, action="store_true", help=text if useful is on else argparse.SUPPRESS)
    parser.set_defaults(**{name: None})


def flag_options(args: argparse.Namespace, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Options named by explicit flags (the common ones and ``extra``), with -q/-v
    overriding as mitmdump does."""
    has_detail = "flow_detail" in args  # only tools that print flows have the option
    if args.quiet or args.options:
        # --options prints the defaults; startup chatter would only get in the way.
        args.termlog_verbosity = "error"
        if has_detail:
            args.flow_detail = 0
    if args.verbose:
        args.termlog_verbosity = "debug"
        if has_detail:
            args.flow_detail = 2
    names = (
        "mode",
        "scripts",
        "flow_detail",
        "listen_host",
        "listen_port",
        "ignore_hosts",
        "allow_hosts",
        "tcp_hosts",
        "upstream_auth",
        "certs",
        "save_stream_file",
        "rfile",
        "keepserving",
        "termlog_verbosity",
        "client_replay",
        "server_replay",
        "server_replay_extra",
        "proxyauth",
        "workers",
        "stickycookie",
        "stickyauth",
        *(flag[2:].replace("-", "_") for _, _, flag, _ in _PATTERN_FLAGS),
        *(n for n, _, _ in _BOOL_FLAGS),
        *(n for n, _ in _REPLAY_BOOL_FLAGS),
        *extra,
    )
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def version_text() -> str:
    import platform

    from proxycore import __version__
    from proxycore.utils import eventloop

    return "\n".join(
        (
            f"proxycore: {__version__}",
            f"Python:    {platform.python_version()}",
            f"Platform:  {platform.platform()}",
            f"Event loop: {eventloop.describe()}",
        )
    )


def error(message: str, prog: str = PROG) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)


class Tool:
    """What makes one command-line tool: its parser, its addon chain, its own flags.

    A plain class: a frozen dataclass costs every start ~3 M instructions to make."""

    __slots__ = ("prog", "make_parser", "make_master", "flags")

    def __init__(
        self,
        prog: str,
        make_parser: Callable[[], argparse.ArgumentParser],
        make_master: Callable[[Any, Any, Any], Any],
        flags: tuple[str, ...] = (),  # options set by the tool's own flags
    ) -> None:
        self.prog = prog
        self.make_parser = make_parser
        self.make_master = make_master
        self.flags = flags


def main(argv: Sequence[str] | None = None, tool: Tool | None = None) -> int:
    code = _main(argv, tool)
    if argv is None:  # the command itself, not a caller in this process
        _end_now_if_rust_ran(code)
    return code


def _end_now_if_rust_ran(code: int) -> None:
    """After mitmproxy-rs served (wireguard, tun, local), end the process without the
    interpreter's finalization: a thread of its runtime that still calls into Python then
    crashes the process (SIGSEGV, now and then, after a clean shutdown)."""
    server_rs = sys.modules.get("proxycore.proxy.server_rs")
    if server_rs is None or not getattr(server_rs, "servers_started", False):
        return
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _main(argv: Sequence[str] | None, tool: Tool | None) -> int:
    tool = tool or DUMP
    parser = tool.make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage and "proxydump: error: ..."
        return e.code if isinstance(e.code, int) else 2
    if args.version:
        print(version_text())
        return 0

    import signal

    def terminate(*_: object) -> None:
        raise _Terminated()

    # Until the event loop takes over, make SIGTERM behave like Ctrl-C: a quiet exit.
    signal.signal(signal.SIGTERM, terminate)
    main_coroutine = None
    try:  # everything after the handler is inside: a SIGTERM may land on any line
        from proxycore.utils import eventloop, malloc

        malloc.tune()  # before the proxy allocates its first body buffer
        main_coroutine = _run(args, tool)
        return eventloop.run(main_coroutine)
    except (KeyboardInterrupt, _Terminated):
        if main_coroutine is None or inspect.getcoroutinestate(main_coroutine) == inspect.CORO_CREATED:
            # Stopped before the loop ran us (asyncio.run half set up): nothing to clean up,
            # and a half-made loop would print its own complaint when collected.
            if main_coroutine is not None:
                main_coroutine.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


async def _run(args: argparse.Namespace, tool: Tool) -> int:
    import asyncio
    import logging
    import signal

    from proxycore.addons.termlog import TermLog
    from proxycore.compat import install_mitmproxy_alias
    from proxycore.exceptions import OptionsError
    from proxycore.options import Options
    from proxycore.tools.errorcheck import StartupErrorCheck

    # Third-party chatter stays out of -v output, as in mitmdump.
    for name in ("asyncio", "hpack", "h2", "tornado"):
        logging.getLogger(name).setLevel(logging.WARNING)

    termlog = TermLog(manage_root_level=True)
    termlog.set_verbosity("info")
    install_mitmproxy_alias()  # scripts written for mitmproxy import mitmproxy
    errorcheck = StartupErrorCheck()
    try:
        opts = Options()
        master = tool.make_master(opts, termlog, errorcheck)
        try:
            # Options a script declares get their --set value when the script loads.
            opts.set(*args.setoptions, defer=True)  # first for confdir
            load_config_file(opts)
            opts.set(*args.setoptions, defer=True)  # the command line wins over the file
            updates = flag_options(args, tool.flags)
            filter_args = getattr(args, "filter_args", None)
            if filter_args:
                expression = " ".join(args.filter_args)
                for name in ("dumper_filter", "save_stream_filter", "readfile_filter"):
                    updates[name] = expression
            opts.update(**updates)
            # --set names that no script (loaded by the update above) declared are typos; a
            # config file may hold other tools' options (proxyweb's), which are ignored.
            unknown = set(opts.deferred_names()) & {spec.partition("=")[0] for spec in args.setoptions}
            if unknown:
                raise OptionsError(f"Unknown option: {', '.join(sorted(unknown))}")
            if args.options:
                text = opts.dump_options()
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
                return 0
            if getattr(args, "commands", False):  # proxydump only
                sys.stdout.write(master.commands.dump())
                return 0
        except OptionsError as e:
            error(str(e), tool.prog)
            return 1

        if filter_args:
            logging.getLogger("proxycore").info(
                f'Only processing flows that match "{" ".join(args.filter_args)}"'
            )
        await asyncio.sleep(0)  # let work queued by configure (script loading) run first
        if errorcheck.failed():  # e.g. a script that does not load: never start listening
            return errorcheck.exit_now()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, master.shutdown)
        try:
            await master.run(freeze_heap=True)
        except OSError as e:  # a listener that cannot bind, if the server raises instead of logging
            error(str(e), tool.prog)
            return 1
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return errorcheck.exit_code or int(getattr(master, "exit_code", 0) or 0)
    finally:
        errorcheck.uninstall()
        termlog.uninstall()


def load_config_file(opts: Any) -> None:
    """Options from ``config.yaml`` (or ``config.yml``) in the confdir, as mitmdump reads them;
    with ``--set confdir=~/.mitmproxy`` that is mitmproxy's own file."""
    import os

    from proxycore import optmanager

    confdir = os.path.expanduser(opts.confdir)
    optmanager.load_paths(opts, os.path.join(confdir, "config.yaml"), os.path.join(confdir, "config.yml"))


def make_master(opts: Any, termlog: Any, errorcheck: Any) -> Any:
    """mitmdump's addon chain: TermLog, the defaults (Core, ..., Proxyserver, ScriptLoader,
    NextLayer, ...), then Dumper, KeepServing, and the startup error check last of all."""
    from proxycore.addons.dumper import Dumper
    from proxycore.addons.keepserving import KeepServing
    from proxycore.addons.store import StoreAddon
    from proxycore.master import Master

    master = Master(opts)
    errorcheck.master = master
    master.addons.add(termlog)
    master.addons.add(StoreAddon())  # no store unless --set store=...
    master.addons.add(*_default_addons())
    master.addons.add(Dumper(), KeepServing(), errorcheck)
    return master


def _default_addons() -> list[Any]:
    from proxycore.addons import default_addons

    return default_addons()


DUMP = Tool(PROG, make_parser, make_master)
