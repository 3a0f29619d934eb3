"""The e2e guard: a test that starts a process or opens a network socket must be marked e2e.

``make test-fast`` runs ``-m "not e2e"`` and promises no processes and no sockets, so that it
stays fast and runs anywhere. Rather than trusting every author to remember the marker,
tests/conftest.py runs each unmarked test's setup, call and teardown inside ``watch()``,
which records (and lets through) every ``subprocess.Popen``, ``os.fork`` and every
``bind``/``connect`` of an IPv4/IPv6 socket; the test then fails naming what it did.
Recording instead of refusing keeps the test's own behaviour unchanged (code that catches
``OSError`` would otherwise hide the refusal). AF_UNIX socket pairs, which every asyncio
loop opens for itself, are not network sockets and pass.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6)


@contextmanager
def watch() -> Iterator[list[str]]:
    """Yield a list that fills with one line per process started or network socket used."""
    seen: list[str] = []
    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, describe: Callable[..., str | None]) -> None:
        original = getattr(owner, name)
        own = name in vars(owner)  # else inherited (socket.socket.bind): delete, not set, after

        def recording(*args: Any, **kwargs: Any) -> Any:
            what = describe(*args, **kwargs)
            if what is not None:
                seen.append(what)
            return original(*args, **kwargs)

        originals.append((owner, name, original if own else None))
        setattr(owner, name, recording)

    def sock_call(verb: str) -> Callable[..., str | None]:
        def describe(sock: socket.socket, address: Any, *_: Any) -> str | None:
            return f"socket.{verb}({address!r})" if sock.family in NETWORK_FAMILIES else None

        return describe

    def popen(_self: Any, args: Any, *_: Any, **__: Any) -> str:
        return f"subprocess.Popen({args!r})"

    wrap(socket.socket, "bind", sock_call("bind"))
    wrap(socket.socket, "connect", sock_call("connect"))
    wrap(socket.socket, "connect_ex", sock_call("connect_ex"))
    wrap(subprocess.Popen, "__init__", popen)
    wrap(os, "fork", lambda: "os.fork()")
    try:
        yield seen
    finally:
        for owner, name, original in reversed(originals):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def complaint(phase: str, seen: list[str]) -> str:
    """The failure message for a test that is not marked e2e but did what ``seen`` lists."""
    listed = "\n  ".join(dict.fromkeys(seen))
    return (
        f"this test is not marked e2e but its {phase} started a process or used a network "
        f"socket (mark it @pytest.mark.e2e, or use the in-memory peers of proxycore.testing):\n  {listed}"
    )
