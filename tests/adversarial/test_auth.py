"""Authentication probes (issue 18, item 5 and the SOCKS5 version byte): proxy auth answers
407 before reading a body, and a malformed SOCKS5 sub-negotiation gets nowhere."""

from __future__ import annotations

import socket
import threading
import time

from tests.adversarial.harness import RecordingOrigin, read_head, status_of
from tests.e2e_servers import free_port


def test_proxyauth_200mb_body_without_credentials(attack):
    """The 407 comes right after the head, without 100 Continue, and the body is not
    buffered (the canary authenticates)."""
    origin = RecordingOrigin()
    size = 200 * 1024 * 1024
    sent = 0
    stop = threading.Event()
    client = None
    try:
        proxy = attack.proxy("--proxyauth", "alice:s3cret", canary_auth="alice:s3cret")
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        client.sendall(
            f"POST http://127.0.0.1:{origin.port}/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        started = time.monotonic()

        def upload() -> None:
            nonlocal sent
            chunk = b"y" * 65536
            try:
                while sent < size and not stop.is_set():
                    sent += client.send(chunk)
            except OSError:
                pass

        sender = threading.Thread(target=upload, daemon=True)
        sender.start()
        head, _ = read_head(client)
        took = time.monotonic() - started
        assert status_of(head) == 407, head
        assert b"100 Continue" not in head
        assert took < 2, took
        time.sleep(1.5)  # the client goes on uploading: the proxy reads and drops it
        stop.set()
        sender.join(10)
    finally:
        stop.set()
        if client is not None:
            client.close()
        origin.close()
    assert not origin.connections, "the refused request reached the origin"
    attack.outcome = f"407 after {took:.2f} s, no 100 Continue; the client still sent {sent >> 20} MiB, dropped"
    attack.check()


def test_socks5_auth_version_byte(attack):
    origin = RecordingOrigin()
    socks_port = free_port()
    try:
        attack.proxy("--mode", "regular", "--mode", f"socks5@127.0.0.1:{socks_port}", "--proxyauth", "user:pass", canary_auth="user:pass")
        answers = {}
        for version in (0x05, 0x00, 0xFF, 0x01):
            with socket.create_connection(("127.0.0.1", socks_port), timeout=5) as sock:
                sock.sendall(b"\x05\x01\x02")  # one method offered: username/password
                assert sock.recv(2) == b"\x05\x02"
                sock.sendall(bytes([version]) + b"\x04user\x04pass")
                answer = sock.recv(2)
                if answer == b"\x01\x00":
                    sock.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + origin.port.to_bytes(2, "big"))
                    assert sock.recv(10)[:2] == b"\x05\x00"
                    sock.sendall(b"GET /after-auth HTTP/1.1\r\nHost: x\r\n\r\n")
                    head, _ = read_head(sock)
                    assert status_of(head) == 200
                answers[f"0x{version:02x}"] = answer.hex() or "closed"
        assert answers == {"0x05": "closed", "0x00": "closed", "0xff": "closed", "0x01": "0100"}, answers
        assert len(origin.heads) == 1 and origin.heads[0].startswith(b"GET /after-auth ")
    finally:
        origin.close()
    attack.outcome = "version 0x05/0x00/0xff: closed without a word; 0x01: authenticated"
    attack.check()

