"""Log records to the terminal, the way mitmdump shows its event log.

Each record becomes one line, ``[HH:MM:SS.mmm] message``, or
``[HH:MM:SS.mmm][client address] message`` when the record carries a
``client`` (the driver logs per-connection events that way), or
``[HH:MM:SS.mmm] [replay] message`` for a replay's connection (as mitmdump).  Errors and
warnings are printed as they are, coloured only when the stream is a terminal.
The threshold follows the ``termlog_verbosity`` option.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

from proxycore.utils.human import format_address

# Same order and names as mitmproxy's LogLevels.
LOG_LEVELS = ["error", "warn", "info", "alert", "debug"]

# Like info, but meant to catch the user's eye in interactive tools.
ALERT = logging.INFO + 1
logging.addLevelName(ALERT, "ALERT")

_LEVEL_NUMBERS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "alert": ALERT,
    "debug": logging.DEBUG,
}

_FORMATTER = logging.Formatter()  # only for its traceback formatting (Handlers have none)
_COLOURS = {logging.ERROR: "31", logging.CRITICAL: "31", logging.WARNING: "33", ALERT: "35"}


def level_number(name: str) -> int:
    """Map a ``termlog_verbosity`` value to a logging level."""
    try:
        return _LEVEL_NUMBERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r} (one of {', '.join(LOG_LEVELS)})") from None


class TermLogHandler(logging.Handler):
    """Writes formatted records to a text stream (stderr by default)."""

    def __init__(self, out: IO[str] | None = None, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.out: IO[str] = out if out is not None else sys.stderr
        try:
            self.colour = self.out.isatty()
        except (AttributeError, ValueError):
            self.colour = False
        self.full_tracebacks = False
        self._broken = False

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)

    def format(self, record: logging.LogRecord) -> str:
        ct = record.created
        stamp = time.strftime("%H:%M:%S", time.localtime(ct)) + f".{int(ct % 1 * 1000):03d}"
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = self._with_exception(message, record)
        colour = _COLOURS.get(record.levelno) if self.colour else None
        if colour:
            message = f"\x1b[{colour}m{message}\x1b[0m"
            stamp = f"\x1b[2;36m[{stamp}]\x1b[0m"
        else:
            stamp = f"[{stamp}]"
        client = getattr(record, "client", None)
        if isinstance(client, str):
            # A replay's label: mitmdump puts it in the message ("[time] [replay] server connect").
            return f"{stamp} [{client}] {message}"
        if client:
            where = format_address(client)
            where = f"\x1b[2;33m[{where}]\x1b[0m" if self.colour else f"[{where}]"
            return f"{stamp}{where} {message}"
        return f"{stamp} {message}"

    def _with_exception(self, message: str, record: logging.LogRecord) -> str:
        """One line per exception unless debugging: users of the CLI should never see a
        traceback for a broken script or a busy port, but developers can ask for it with -v."""
        exc_info = record.exc_info
        assert exc_info is not None and exc_info[1] is not None  # format() checked both
        if self.full_tracebacks:
            return f"{message}\n{_FORMATTER.formatException(exc_info)}"
        exc = exc_info[1]
        text = f"{message}: {type(exc).__name__}: {exc}"
        if not isinstance(exc, SyntaxError):  # SyntaxError's text already names file and line
            tb = exc.__traceback__
            if tb is not None:
                while tb.tb_next is not None:
                    tb = tb.tb_next
                text += f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})"
        return text

    def emit(self, record: logging.LogRecord) -> None:
        if self._broken:
            return
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except (OSError, ValueError):
            # The terminal went away (closed pipe or stream): stop writing rather than
            # raising from every log call for the rest of the run.
            self._broken = True


class TermLog:
    """Addon owning the terminal log handler and the ``termlog_verbosity`` option."""

    def __init__(self, out: IO[str] | None = None, manage_root_level: bool = False) -> None:
        # manage_root_level: the CLI owns the process, so it may raise the root logger's
        # level to the verbosity; then a debug() call nobody prints costs almost nothing.
        self.handler = TermLogHandler(out)
        self.manage_root_level = manage_root_level
        self.handler.install()

    def load(self, loader: Any) -> None:
        loader.add_option(
            "termlog_verbosity", str, "info", "Log verbosity.", choices=LOG_LEVELS
        )

    def configure(self, updated: set[str]) -> None:
        if "termlog_verbosity" in updated:
            from proxycore import ctx

            self.set_verbosity(ctx.options.termlog_verbosity)

    def set_verbosity(self, name: str) -> None:
        level = level_number(name)
        self.handler.setLevel(level)
        self.handler.full_tracebacks = level <= logging.DEBUG
        if self.manage_root_level:
            logging.getLogger().setLevel(level)

    def uninstall(self) -> None:
        """Remove the handler; called last, after ``done``, so shutdown messages still show."""
        self.handler.uninstall()
