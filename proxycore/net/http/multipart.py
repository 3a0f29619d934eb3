"""multipart/form-data bodies: the parts' names and values, in order (mitmproxy's module)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(rb'name="([^"]*)"')
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def decode_multipart(content_type: str | None, content: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) of each part; [] unless the type is multipart/form-data with a boundary."""
    match = _BOUNDARY.search(content_type or "")
    if "multipart/form-data" not in (content_type or "").lower() or not match:
        return []
    boundary = b"--" + match.group(1).encode("ascii", "replace")
    fields: list[tuple[bytes, bytes]] = []
    for part in content.split(boundary)[1:]:
        # Heads end with a blank line; some clients write bare LF line ends.
        blank = _BLANK_LINE.search(part)
        name = _NAME.search(part[: blank.start()]) if blank else None
        if blank and name:
            body = part[blank.end() :]
            body = body[:-2] if body.endswith(b"\r\n") else body[:-1] if body.endswith(b"\n") else body
            fields.append((name.group(1), body))
    return fields


def encode_multipart(content_type: str, parts: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A body for ``parts`` with the boundary named in ``content_type``."""
    match = _BOUNDARY.search(content_type)
    if not match:
        raise ValueError(f"no boundary in {content_type!r}")
    boundary = match.group(1).encode("ascii")
    body = b"".join(
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (boundary, name, value)
        for name, value in parts
    )
    return body + b"--%s--\r\n" % boundary
