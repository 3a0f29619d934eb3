"""The front end's static routes: whatever path a client asks for, a file below the folder,
a 404 or a 400, never a 500 and never a file outside it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.hypothesis_budget import budget
from tests.webapi import WebServer, request, running

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

APP_JS = b"console.log('front end')"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    tmp = tmp_path_factory.mktemp("static")
    front = tmp / "front"
    (front / "static" / "sub").mkdir(parents=True)
    (front / "index.html").write_text("<script></script>")
    (front / "static" / "app.js").write_bytes(APP_JS)
    (front / "static" / "sub" / "x.css").write_text("body{}")
    (tmp / "secret.txt").write_text("SECRET")
    (front / "secret.txt").write_text("SECRET")
    with running(tmp, web_static=str(front)) as s:
        yield s
    assert "Traceback" not in s.log.getvalue(), s.log.getvalue()


def get_raw(port: int, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as given (http.client refuses some of these)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    "path",
    ["/static/..%00/x", "/static/%00", "/static/app.js%00", "/static/app.js%00.png", "/static/..%2fsecret.txt",
     "/static/../secret.txt", "/static/%2e%2e/%2e%2e/secret.txt", "/static/sub/..%5c..%5csecret.txt",
     "/static/%5c..%5csecret.txt", "/static//etc/passwd", "/static/app.js/", "/static/", "/static/.",
     "/static/%0d%0aX:y", "/static/%7f", "/static/%ff", "/static/%ED%A0%80"],
)
def test_bad_static_paths_are_404_or_400(server: WebServer, path: str) -> None:
    status, body = get_raw(server.port, path)
    assert status in (400, 404), (path, status)
    assert b"SECRET" not in body


def test_good_static_paths(server: WebServer) -> None:
    assert get_raw(server.port, "/static/app.js") == (200, APP_JS)
    assert get_raw(server.port, "/static/sub/x.css")[0] == 200
    assert get_raw(server.port, "/static/sub/%78.css")[0] == 200


segments = st.one_of(
    st.sampled_from(["..", ".", "", "%00", "%2e%2e", "%2e", "%2f", "%5c", "\\", "app.js", "sub", "x.css",
                     "secret.txt", "%ff", "%c0%ae", "%25", "%0a", "static", "a" * 300]),
    st.text(max_size=8).map(lambda t: quote(t, safe="")),
    st.binary(max_size=6).map(lambda b: quote(b, safe="")),
)


@budget(300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(segments, min_size=1, max_size=5), prefix=st.sampled_from(["/static/", "/"]))
def test_fuzzed_static_paths_never_fail(server: WebServer, parts: list[str], prefix: str) -> None:
    path = prefix + "/".join(parts)
    status, body = get_raw(server.port, path)
    assert status in (200, 304, 400, 403, 404, 405), (path, status)
    assert b"SECRET" not in body, path
    if status == 200 and prefix == "/static/":
        assert body in (APP_JS, b"body{}"), path
    assert request(server.port, "GET", "/static/app.js", auth=False).status == 200
