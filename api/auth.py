"""Who may use the web API: a random token per run, or the ``web_password`` option.

As in mitmweb 12: an empty ``web_password`` means a fresh 32-hex-digit token is
made at start and printed in the URL; a value starting with ``$`` is an argon2
hash; anything else is a plaintext password, compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from proxycore import ctx
from proxycore.exceptions import OptionsError

logger = logging.getLogger("proxycore.web")


def _argon2() -> Any:
    try:
        import argon2
    except ImportError:  # pragma: no cover - argon2-cffi is a dependency
        raise OptionsError(
            "`web_password` is an argon2 hash, but argon2-cffi is not installed."
        ) from None
    return argon2


class WebAuth:
    """Addon owning ``web_password`` and the secret the API compares against."""

    def __init__(self) -> None:
        self._password = secrets.token_hex(16)

    def load(self, loader: Any) -> None:
        loader.add_option(
            "web_password",
            str,
            "",
            "Password to protect the web interface. Values starting with `$` are an argon2 "
            "hash, anything else a plaintext password. Empty: a random token is made at "
            "start. Clients give it as the token query parameter, an `Authorization: "
            "Bearer ...` header, or log in through the page.",
        )

    def configure(self, updated: set[str]) -> None:
        if "web_password" not in updated:
            return
        password = ctx.options.web_password
        if password.startswith("$"):
            argon2 = _argon2()
            try:
                argon2.extract_parameters(password)
            except argon2.exceptions.InvalidHashError:
                raise OptionsError(
                    "`web_password` starts with `$`, but it's not a valid argon2 hash."
                ) from None
        elif password:
            logger.warning(
                "Using a plaintext password to protect the web interface. "
                "Consider an argon2 hash for `web_password` instead."
            )
        self._password = password or secrets.token_hex(16)

    @property
    def token(self) -> str | None:
        """The generated token, or None when the user set a password (never printed)."""
        return None if ctx.options.web_password else self._password

    def is_valid_password(self, password: str) -> bool:
        if not password:
            return False
        if self._password.startswith("$"):
            argon2 = _argon2()
            try:
                return bool(argon2.PasswordHasher().verify(self._password, password))
            except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
                return False
        return hmac.compare_digest(self._password.encode(), password.encode("utf-8", "surrogateescape"))


AUTH_COOKIE_VALUE = b"y"


class AuthMixin:
    """Request handler part: lets a request through with a valid auth cookie, Bearer
    header or ``token`` argument (in that order), else answers 403.

    Mixed into the REST handlers and the WebSocket handler alike.  A request that
    authenticates with the header or the argument gets the signed auth cookie
    (``mitmproxy-auth-<web_port>``, 400 days, HttpOnly, SameSite=Strict).
    """

    def get_current_user(self: Any) -> bool:
        cookie = self.get_signed_cookie(self.application.auth_cookie_name(), min_version=2)
        return cookie == AUTH_COOKIE_VALUE

    def given_password(self: Any) -> str:
        header = self.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme == "Bearer" and value:
            return value
        return self.get_argument("token", default="")

    def authenticate(self: Any) -> bool:
        """True if the request may go on; otherwise the 403 answer has been written."""
        if self.current_user:
            return True
        password = self.given_password()
        if not self.application.auth.is_valid_password(password):
            self.set_status(403)
            self.auth_fail(bool(password))
            if not self._finished:
                self.finish()
            return False
        self.set_signed_cookie(
            self.application.auth_cookie_name(),
            AUTH_COOKIE_VALUE,
            expires_days=400,
            httponly=True,
            samesite="Strict",
        )
        return True

    def auth_fail(self, invalid_password: bool) -> None:
        """Write the body of a 403 answer (empty unless a handler says otherwise)."""
