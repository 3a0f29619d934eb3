"""Log levels and the ``ctx.log`` object that mitmproxy scripts call.

Addons should log with :mod:`logging`; ``ctx.log.info(...)`` (mitmproxy's older API,
still common in scripts) goes to the same place: the ``proxycore.addons`` logger.
"""

from __future__ import annotations

import logging

from proxycore.addons.termlog import ALERT, LOG_LEVELS, level_number

__all__ = ["ALERT", "LOG_LEVELS", "Log", "LogEntry", "log_tier"]


class LogEntry:
    """One log line as the deprecated ``add_log`` hook hands it to addons."""

    def __init__(self, msg: str, level: str) -> None:
        self.msg = msg
        self.level = level

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogEntry) and (self.msg, self.level) == (other.msg, other.level)

    def __repr__(self) -> str:
        return f"LogEntry({self.msg!r}, {self.level!r})"


class Log:
    """``ctx.log``: one method per level, each a call on the ``proxycore.addons`` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("proxycore.addons")

    def debug(self, txt: str) -> None:
        self.logger.debug(txt)

    def info(self, txt: str) -> None:
        self.logger.info(txt)

    def alert(self, txt: str) -> None:
        self.logger.log(ALERT, txt)

    def warn(self, txt: str) -> None:
        self.logger.warning(txt)

    warning = warn

    def error(self, txt: str) -> None:
        self.logger.error(txt)

    def __call__(self, text: str, level: str = "info") -> None:
        self.logger.log(level_number(level), text)

    def __getattr__(self, name: str) -> object:
        # Everything else a logging.Logger offers (log, exception, setLevel...), as before.
        return getattr(self.logger, name)


_TIERS = {"error": 0, "warn": 1, "info": 2, "alert": 2, "debug": 3}


def log_tier(level: str) -> int | None:
    """Rank of a level name, lower is more severe; "alert" ranks with "info" as in mitmproxy."""
    return _TIERS.get(level)
