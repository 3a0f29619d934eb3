"""proxyweb's first-use fetch of mitmproxy's web front end (proxycore.api.frontend).

A package index on loopback (tests/package_index.py) serves the real pinned wheel (downloaded
once into .cache, see tests/downloads.py), so the whole path runs here: index page, download, sha256 check,
extraction, and proxyweb serving the result.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxycore.api import frontend
from tests.downloads import pinned_wheel
from tests.e2e_servers import free_port
from tests.package_index import Index, serve_index
from tests.processes import ProxyWeb
from tests.webapi import request


@pytest.fixture(scope="session")
def real_wheel(request: pytest.FixtureRequest) -> bytes:
    return pinned_wheel(frontend.WHEEL, request.config).read_bytes()


@pytest.fixture
def index(real_wheel: bytes) -> Iterator[Index]:
    with serve_index(real_wheel) as served:
        yield served


def fetch(tmp_path: Path, index: Index) -> tuple[Path, list[str]]:
    said: list[str] = []
    return frontend.ensure(str(tmp_path / "conf"), said.append, index=index.url), said


@pytest.mark.e2e  # its fixture downloads the wheel (once)
def test_real_wheel_is_the_pinned_one(real_wheel: bytes) -> None:
    assert hashlib.sha256(real_wheel).hexdigest() == frontend.WHEEL_SHA256


@pytest.mark.e2e
@pytest.mark.parametrize("json_pages", [False, True], ids=["html-index", "json-index"])
def test_first_use_fetches_only_the_front_end_then_reuses_it(tmp_path: Path, index: Index, json_pages: bool) -> None:
    index.json_pages = json_pages
    target, said = fetch(tmp_path, index)
    assert target == tmp_path / "conf" / "web" / frontend.VERSION
    assert len(said) == 1 and "mitmproxy 12.3.1" in said[0] and str(target) in said[0]
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files[:2] == ["LICENSE", "index.html"] and len(files) > 3
    assert all(f.startswith("static/") for f in files[2:])
    assert "MIT" in (target / "LICENSE").read_text() or "Permission is hereby granted" in (target / "LICENSE").read_text()
    assert index.requests == ["/simple/mitmproxy/", f"/files/{frontend.WHEEL}"]
    # a second start: no announcement, no network, the same directory
    again, said = fetch(tmp_path, index)
    assert again == target and said == [] and len(index.requests) == 2
    assert [p.name for p in target.parent.iterdir()] == [frontend.VERSION]  # no staging left over


@pytest.mark.e2e
def test_a_wheel_with_another_sha256_is_refused(tmp_path: Path, index: Index) -> None:
    tampered = bytearray(index.wheel)
    tampered[len(tampered) // 2] ^= 1
    index.wheel = bytes(tampered)
    with pytest.raises(frontend.FrontendUnavailable, match=rf"has sha256 [0-9a-f]{{64}}, not the pinned {frontend.WHEEL_SHA256}"):
        fetch(tmp_path, index)
    assert not (tmp_path / "conf" / "web" / frontend.VERSION).exists()


@pytest.mark.e2e
def test_an_index_without_the_release_is_a_clear_error(tmp_path: Path, index: Index) -> None:
    index.listed = False
    with pytest.raises(frontend.FrontendUnavailable, match=f"does not list {re.escape(frontend.WHEEL)}"):
        fetch(tmp_path, index)


@pytest.mark.e2e
def test_an_unreachable_index_is_a_clear_error(tmp_path: Path) -> None:
    offline = f"http://127.0.0.1:{free_port()}/simple"
    with pytest.raises(frontend.FrontendUnavailable, match="cannot reach the package index at http://127.0.0.1"):
        frontend.ensure(str(tmp_path), lambda _: None, index=offline)


def test_index_url_is_pips_and_messages_hide_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    assert frontend.index_url() == "https://pypi.org/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:s3cret@mirror.example:8443/pypi/simple/")
    assert frontend.index_url() == "https://user:s3cret@mirror.example:8443/pypi/simple"
    assert frontend.shown(frontend.index_url()) == "https://mirror.example:8443/pypi/simple"


def test_unpack_keeps_only_front_end_files_inside_the_target(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("mitmproxy/tools/web/index.html", "<html></html>")
        z.writestr("mitmproxy/tools/web/static/app.js", "js")
        z.writestr("mitmproxy/tools/web/static/../../../../evil.txt", "no")
        z.writestr("mitmproxy/tools/web/webaddons.py", "no")
        z.writestr("mitmproxy/tools/web/templates/login.html", "no")
        z.writestr("mitmproxy/addons/core.py", "no")
    target = tmp_path / "web" / "x"
    frontend.unpack(buffer.getvalue(), target)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["web/x/index.html", "web/x/static/app.js"]


def test_unpack_refuses_a_wheel_without_the_front_end(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("mitmproxy/__init__.py", "")
    with pytest.raises(frontend.FrontendUnavailable, match="has no mitmproxy/tools/web/index.html"):
        frontend.unpack(buffer.getvalue(), tmp_path / "web")
    assert not (tmp_path / "web").exists()


# proxyweb itself --------------------------------------------------------------------


@pytest.mark.e2e
def test_proxyweb_fetches_and_serves_the_front_end_on_first_use(
    tmp_path: Path, index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    for run in ("first", "second"):
        pw = ProxyWeb(tmp_path, fetch_frontend=True)
        try:
            token = pw.web_url.partition("?token=")[2]
            page = request(pw.web_port, "GET", f"/?token={token}", auth=False)
            assert page.status == 200 and '<div id="mitmproxy">' in page.text, page.text
            script = re.search(r'src="\./static/([^"]+\.js)"', page.text)
            assert script, page.text
            js = request(pw.web_port, "GET", f"/static/{script.group(1)}", auth=False)
            assert js.status == 200 and len(js.body) > 10_000
        finally:
            assert pw.stop() == 0
        announced = pw.stderr().count("Fetching the web front end once")
        assert announced == (1 if run == "first" else 0), pw.stderr()
        assert "Traceback" not in pw.stderr()
    assert index.requests == ["/simple/mitmproxy/", f"/files/{frontend.WHEEL}"]


@pytest.mark.e2e
def test_proxyweb_offline_says_how_to_get_the_front_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    pw = ProxyWeb(tmp_path, fetch_frontend=True)
    try:
        token = pw.web_url.partition("?token=")[2]
        page = request(pw.web_port, "GET", f"/?token={token}", auth=False)
        assert page.status == 200 and "web_static" in page.text and "PIP_INDEX_URL" in page.text
        assert request(pw.web_port, "GET", "/flows", headers={"Authorization": f"Bearer {token}"}, auth=False).status == 200
    finally:
        assert pw.stop() == 0
    warning = [line for line in pw.stderr().splitlines() if "No web front end:" in line]
    assert len(warning) == 1 and "cannot reach the package index at http://127.0.0.1" in warning[0], pw.stderr()
    assert "Traceback" not in pw.stderr()
