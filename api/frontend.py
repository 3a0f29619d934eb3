"""mitmproxy's web front end, fetched once on first use.

proxyweb speaks mitmweb's web API, and the UI that mitmproxy users know is mitmproxy's own
(MIT licensed), which ships as built files inside mitmproxy's wheel on the package index.
Those files are not part of this repository: when ``web_static`` is unset, proxyweb fetches
one pinned wheel from the index pip uses, refuses it unless its sha256 is the pinned one, and
keeps only the front end (``index.html``, ``static/`` and mitmproxy's licence) under
``<confdir>/web/<version>/``.  Later starts serve that copy without touching the network.

A start with the copy in place runs ``ensure`` only: what fetching needs (urllib.request,
zipfile, tempfile, html.parser: ~25 M instructions) is imported by the functions that fetch.
"""

from __future__ import annotations

import io
import os
import ssl
import urllib.parse
from collections.abc import Callable
from pathlib import Path

VERSION = "12.3.1"
WHEEL = f"mitmproxy-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "87afb808ac8d55383dbe6aa30eadeb0fedaeffd26210e7e23c25c9cd43bdb36a"
DEFAULT_INDEX = "https://pypi.org/simple"
TIMEOUT = 60  # seconds per network operation
MAX_WHEEL_SIZE = 50 * 2**20  # the pinned wheel is 1.1 MB; anything far larger is not it

_WEB_PREFIX = "mitmproxy/tools/web/"
_LICENSE = f"mitmproxy-{VERSION}.dist-info/LICENSE"
# JSON (PEP 691) if the index offers it, else the HTML page every index serves (PEP 503).
_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


class FrontendUnavailable(Exception):
    """The front end could not be fetched; the message is one line meant for the user."""


def frontend_dir(confdir: str) -> Path:
    return Path(os.path.expanduser(confdir)) / "web" / VERSION


def index_url() -> str:
    """The package index pip would use: ``PIP_INDEX_URL`` if set, else PyPI."""
    return (os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX).rstrip("/")


def ensure(confdir: str, announce: Callable[[str], None], index: str | None = None) -> Path:
    """The front end's directory, fetched first if this confdir has none yet."""
    target = frontend_dir(confdir)
    if (target / "index.html").is_file():
        return target
    index = index or index_url()
    announce(
        f"Fetching the web front end once: mitmproxy {VERSION}'s (MIT licence) from "
        f"{shown(index)} into {target}"
    )
    unpack(fetch_wheel(index), target)
    return target


def fetch_wheel(index: str) -> bytes:
    """The pinned wheel's bytes, found through ``index``'s project page; sha256-checked."""
    import hashlib

    url = wheel_url(index)
    data = download(url)
    digest = hashlib.sha256(data).hexdigest()
    if digest != WHEEL_SHA256:
        raise FrontendUnavailable(
            f"{WHEEL} from {shown(url)} has sha256 {digest}, not the pinned {WHEEL_SHA256}; not using it"
        )
    return data


def wheel_url(index: str, project: str = "mitmproxy", filename: str = WHEEL) -> str:
    """Where ``index`` keeps ``filename``, from its page for ``project`` (PEP 691 or 503)."""
    import urllib.error
    import urllib.request

    page_url = f"{index.rstrip('/')}/{project}/"
    request = urllib.request.Request(page_url, headers={"Accept": _ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=_tls_context()) as response:
            content_type = response.headers.get("Content-Type", "")
            body = response.read(10 * 2**20)
            page_url = response.geturl()
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise FrontendUnavailable(f"cannot reach the package index at {shown(page_url)}: {_reason(e)}") from None
    try:
        links = _json_links(body) if "json" in content_type else _html_links(body.decode("utf-8", "replace"))
    except ValueError as e:
        raise FrontendUnavailable(f"unreadable project page {shown(page_url)}: {e}") from None
    for name, href in links:
        if name == filename:
            return urllib.parse.urljoin(page_url, href).split("#")[0]
    raise FrontendUnavailable(f"the package index at {shown(page_url)} does not list {filename}")


def unpack(wheel: bytes, target: Path) -> None:
    """Extract the front end's files into ``target``, whole or not at all."""
    import shutil
    import tempfile
    import zipfile

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetching-") as tmp:
        staging = Path(tmp) / "web"
        with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
            for name in archive.namelist():
                if name == _LICENSE:
                    relative = "LICENSE"
                elif name.startswith(_WEB_PREFIX):
                    relative = name.removeprefix(_WEB_PREFIX)
                    if relative != "index.html" and not relative.startswith("static/"):
                        continue
                else:
                    continue
                parts = Path(relative).parts
                if not parts or ".." in parts or Path(relative).is_absolute() or name.endswith("/"):
                    continue
                out = staging / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.read(name))
        if not (staging / "index.html").is_file():
            raise FrontendUnavailable(f"{WHEEL} has no {_WEB_PREFIX}index.html")
        try:
            staging.rename(target)
        except OSError:
            if not (target / "index.html").is_file():  # not a concurrent fetch that finished first
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)


def download(url: str, limit: int = MAX_WHEEL_SIZE) -> bytes:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT, context=_tls_context()) as response:
            data = response.read(limit + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise FrontendUnavailable(f"cannot download {shown(url)}: {_reason(e)}") from None
    if len(data) > limit:
        raise FrontendUnavailable(f"{shown(url)} is larger than {limit} bytes; not using it")
    return data


def _tls_context() -> ssl.SSLContext:
    """The CA bundle pip would use: ``PIP_CERT`` if set, else certifi's."""
    cafile = os.environ.get("PIP_CERT")
    if not cafile:
        import certifi

        cafile = certifi.where()
    return ssl.create_default_context(cafile=cafile)


def shown(url: str) -> str:
    """``url`` without credentials, for messages (an index URL may carry a password)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _reason(e: Exception) -> str:
    return str(getattr(e, "reason", None) or e)


def _json_links(body: bytes) -> list[tuple[str, str]]:
    import json

    files = json.loads(body).get("files", [])
    return [(f["filename"], f["url"]) for f in files if "filename" in f and "url" in f]


def _html_links(text: str) -> list[tuple[str, str]]:
    import html.parser

    class _AnchorParser(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.links: list[tuple[str, str]] = []
            self._href: str | None = None
            self._text: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                self._href = dict(attrs).get("href")
                self._text = []

        def handle_data(self, data: str) -> None:
            if self._href is not None:
                self._text.append(data)

        def handle_endtag(self, tag: str) -> None:
            if tag == "a" and self._href is not None:
                self.links.append(("".join(self._text).strip(), self._href))
                self._href = None

    parser = _AnchorParser()
    parser.feed(text)
    return parser.links
