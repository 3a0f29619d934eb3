"""tests/e2e_guard.py sees what makes a test e2e, and nothing an in-memory test does."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest

from tests.e2e_guard import complaint, watch

# The guard is off for e2e tests; these tests bind and spawn on purpose.
pytestmark = pytest.mark.e2e


def test_network_sockets_and_processes_are_recorded():
    with watch() as seen:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            socket.create_connection(server.getsockname()).close()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert seen[0] == "socket.bind(('127.0.0.1', 0))"
    assert seen[1].startswith("socket.connect(('127.0.0.1', ")
    assert seen[2].startswith("subprocess.Popen([")
    assert "mark it @pytest.mark.e2e" in complaint("call", seen)


def test_socket_pairs_and_event_loops_are_not_network_io():
    with watch() as seen:
        a, b = socket.socketpair()
        a.close()
        b.close()
        asyncio.run(asyncio.sleep(0))
    assert seen == []


def test_the_patches_are_undone():
    bind, connect, popen_init, fork = socket.socket.bind, socket.socket.connect, subprocess.Popen.__init__, os.fork
    with watch():
        assert socket.socket.bind is not bind
    assert "bind" not in vars(socket.socket) and socket.socket.connect is connect
    assert subprocess.Popen.__init__ is popen_init and os.fork is fork
