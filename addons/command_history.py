"""Remembers the commands a user ran (the web UI's command bar), across runs by default."""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Sequence
from typing import Any

from proxycore import ctx
from proxycore.command import command

logger = logging.getLogger("proxycore.command_history")


class CommandHistory:
    """``commands.history.*`` commands; the file is ``<confdir>/command_history``.

    The file gets one line per command; when it reaches ``VACUUM_SIZE`` lines it is
    cut to its newest half at shutdown.
    """

    VACUUM_SIZE = 1024

    def __init__(self) -> None:
        self.history: list[str] = []
        self.filtered: list[str] = [""]
        self.index = 0

    def load(self, loader: Any) -> None:
        loader.add_option(
            "command_history", bool, True, "Persist command history between proxycore runs."
        )

    @property
    def history_file(self) -> pathlib.Path:
        return pathlib.Path(os.path.expanduser(ctx.options.confdir)) / "command_history"

    def configure(self, updated: set[str]) -> None:
        if {"command_history", "confdir"} & updated:
            if ctx.options.command_history and self.history_file.is_file():
                try:
                    self.history = self.history_file.read_text(errors="replace").splitlines()
                except OSError as e:
                    logger.warning(f"Cannot read {self.history_file}: {e}")
                self.set_filter("")

    def done(self) -> None:
        if ctx.options.command_history and len(self.history) >= self.VACUUM_SIZE:
            kept = self.history[-self.VACUUM_SIZE // 2 :]
            try:
                self.history_file.write_text("".join(f"{c}\n" for c in kept))
            except OSError as e:
                logger.warning(f"Cannot write {self.history_file}: {e}")

    @command("commands.history.add")
    def add_command(self, command: str) -> None:
        """Add a command to the history."""
        if not command.strip():
            return
        self.history.append(command)
        if ctx.options.command_history:
            try:
                self.history_file.parent.mkdir(parents=True, exist_ok=True)
                with self.history_file.open("a") as f:
                    f.write(f"{command}\n")
            except OSError as e:
                logger.warning(f"Cannot write {self.history_file}: {e}")
        self.set_filter("")

    @command("commands.history.get")
    def get_history(self) -> Sequence[str]:
        """Get the entire command history."""
        return list(self.history)

    @command("commands.history.clear")
    def clear_history(self) -> None:
        """Forget every command, also in the history file."""
        try:
            self.history_file.unlink(missing_ok=True)
        except OSError as e:
            logger.warning(f"Cannot delete {self.history_file}: {e}")
        self.history = []
        self.set_filter("")

    @command("commands.history.filter")
    def set_filter(self, prefix: str) -> None:
        """Step through only the commands starting with prefix (next/prev)."""
        self.filtered = [c for c in self.history if c.startswith(prefix)] + [prefix]
        self.index = len(self.filtered) - 1

    @command("commands.history.next")
    def get_next(self) -> str:
        """The next (newer) command of the filtered history."""
        self.index = min(self.index + 1, len(self.filtered) - 1)
        return self.filtered[self.index]

    @command("commands.history.prev")
    def get_prev(self) -> str:
        """The previous (older) command of the filtered history."""
        self.index = max(0, self.index - 1)
        return self.filtered[self.index]
