"""``browser.start``: open a throwaway Chrome/Chromium or Firefox profile that uses this proxy.

The browser gets a fresh profile in a temporary directory (no history, extensions or
first-run pages) with the proxy at ``listen_host:listen_port`` (127.0.0.1:8080 by
default); it is closed and its profile removed when proxycore stops.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from proxycore import ctx
from proxycore.addons.termlog import ALERT
from proxycore.command import command

if TYPE_CHECKING:
    import tempfile

logger = logging.getLogger("proxycore.browser")

CHROME_NAMES = (
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    r"C:\Program Files (x86)\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "chromium",
    "chromium-browser",
    "google-chrome-unstable",
)
CHROME_FLATPAKS = ("com.google.Chrome", "org.chromium.Chromium", "com.github.Eloston.UngoogledChromium")
FIREFOX_NAMES = (
    "/Applications/Firefox.app/Contents/MacOS/firefox",
    r"C:\Program Files\Mozilla Firefox\firefox.exe",
    "firefox",
    "mozilla-firefox",
)
FIREFOX_FLATPAKS = ("org.mozilla.firefox",)


def find_executable(names: tuple[str, ...]) -> list[str] | None:
    for name in names:
        if shutil.which(name):
            return [name]
    return None


def find_flatpak(apps: tuple[str, ...]) -> list[str] | None:
    if not shutil.which("flatpak"):
        return None
    for app in apps:
        found = subprocess.run(["flatpak", "info", app], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if found.returncode == 0:
            return ["flatpak", "run", "-p", app]
    return None


def _firefox_prefs(host: str, port: int) -> str:
    """A profile that proxies HTTP and HTTPS through us and stays quiet on first start."""
    prefs: list[tuple[str, object]] = [
        ("network.proxy.type", 1),
        ("network.proxy.share_proxy_settings", True),
        ("network.proxy.http", host),
        ("network.proxy.http_port", port),
        ("network.proxy.ssl", host),
        ("network.proxy.ssl_port", port),
        ("datareporting.policy.firstRunURL", ""),
        ("datareporting.healthreport.uploadEnabled", False),
        ("app.update.auto", False),
        ("browser.shell.checkDefaultBrowser", False),
        ("network.captive-portal-service.enabled", False),
        ("network.connectivity-service.enabled", False),
    ]

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int) else f'"{v}"'

    return "".join(f'user_pref("{name}", {value(v)});\n' for name, v in prefs)


class Browser:
    def __init__(self) -> None:
        self.browsers: list[subprocess.Popen[bytes]] = []
        self.profiles: list[tempfile.TemporaryDirectory[str]] = []

    @command("browser.start")
    def start(self, browser: str = "chrome") -> None:
        """Open a fresh browser profile (chrome, chromium or firefox) that uses this proxy."""
        if self.browsers:
            logger.log(ALERT, "Starting additional browser")
        if browser in ("chrome", "chromium"):
            cmd = find_executable(CHROME_NAMES) or find_flatpak(CHROME_FLATPAKS)
            self._launch("Chrome or Chromium", cmd, self._chrome_args)
        elif browser == "firefox":
            cmd = find_executable(FIREFOX_NAMES) or find_flatpak(FIREFOX_FLATPAKS)
            self._launch("Firefox", cmd, self._firefox_args)
        else:
            logger.log(ALERT, "Invalid browser name.")

    @staticmethod
    def _proxy() -> tuple[str, int]:
        return ctx.options.listen_host or "127.0.0.1", ctx.options.listen_port or 8080

    def _chrome_args(self, profile: Path) -> list[str]:
        host, port = self._proxy()
        return [
            f"--user-data-dir={profile}",
            f"--proxy-server={host}:{port}",
            "--disable-fre",
            "--no-default-browser-check",
            "--no-first-run",
            "--disable-extensions",
            "about:blank",
        ]

    def _firefox_args(self, profile: Path) -> list[str]:
        (profile / "prefs.js").write_text(_firefox_prefs(*self._proxy()))
        return ["--profile", str(profile), "--new-window", "about:blank"]

    def _launch(self, name: str, cmd: list[str] | None, args: Callable[[Path], list[str]]) -> None:
        if cmd is None:
            logger.log(ALERT, f"Could not find {name}; start a browser with this proxy's settings instead.")
            return
        import tempfile  # only when a browser is started (issue 15: start-up imports)

        profile = tempfile.TemporaryDirectory(prefix="proxycore-browser-")
        self.profiles.append(profile)
        self.browsers.append(
            subprocess.Popen(
                [*cmd, *args(Path(profile.name))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def done(self) -> None:
        for process in self.browsers:
            process.kill()
            process.wait()
        for profile in self.profiles:
            profile.cleanup()
        self.browsers = []
        self.profiles = []
