"""Copying text to the system clipboard with whatever tool the desktop has.

No Python package is needed: the usual command-line tools are tried in turn
(wl-copy on Wayland, xclip or xsel on X11, pbcopy on macOS, clip.exe on
Windows and WSL). Without one, ``copy`` raises ClipboardError saying what to install.
If the pyperclip package is installed (mitmproxy's way), it is used instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


class ClipboardError(Exception):
    """The text could not be copied; the message says why."""


# (executable, arguments, environment variable that must be set or None)
_TOOLS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("wl-copy", (), "WAYLAND_DISPLAY"),
    ("xclip", ("-selection", "clipboard"), "DISPLAY"),
    ("xsel", ("--clipboard", "--input"), "DISPLAY"),
    ("pbcopy", (), None),
    ("clip.exe", (), None),
)


def find_tool() -> list[str] | None:
    """The command line of the first usable clipboard tool, or None."""
    for name, args, needs in _TOOLS:
        if needs is not None and not os.environ.get(needs):
            continue
        if name == "pbcopy" and sys.platform != "darwin":
            continue
        path = shutil.which(name)
        if path:
            return [path, *args]
    return None


def copy(text: str) -> None:
    """Put ``text`` on the clipboard (UTF-8)."""
    try:
        import pyperclip
    except ImportError:
        pyperclip = None
    if pyperclip is not None:
        try:
            pyperclip.copy(text)
        except pyperclip.PyperclipException as e:
            raise ClipboardError(str(e)) from e
        return
    tool = find_tool()
    if tool is None:
        raise ClipboardError(
            "No clipboard tool found: install wl-clipboard (Wayland), xclip or xsel (X11), "
            "or save to a file instead."
        )
    try:
        subprocess.run(
            tool,
            input=text.encode("utf-8", "surrogateescape"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=True,
            timeout=10,
        )
    except subprocess.CalledProcessError as e:
        detail = e.stderr.decode("utf-8", "replace").strip() if e.stderr else f"exit status {e.returncode}"
        raise ClipboardError(f"{os.path.basename(tool[0])} failed: {detail}") from e
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ClipboardError(f"{os.path.basename(tool[0])} failed: {e}") from e
