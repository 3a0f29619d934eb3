"""Status code constants and their reason phrases (``status_codes.NOT_FOUND``, ``RESPONSES``).

The constants are the standard library's HTTPStatus names plus the spellings mitmproxy
uses where they differ (``NOT_ALLOWED``, ``PROXY_AUTH_REQUIRED``...).
"""

from __future__ import annotations

import http as _stdlib_http

from proxycore.http import status_reason

globals().update({s.name: s.value for s in _stdlib_http.HTTPStatus})

# mitmproxy's names where the standard library spells them differently, and two
# non-standard codes (nginx's 444 and 499).
SWITCHING = 101
MULTIPLE_CHOICE = 300
NOT_ALLOWED = 405
PROXY_AUTH_REQUIRED = 407
PAYLOAD_TOO_LARGE = 413
REQUEST_URI_TOO_LONG = 414
UNPROCESSABLE_CONTENT = 422
NO_RESPONSE = 444
CLIENT_CLOSED_REQUEST = 499
INSUFFICIENT_STORAGE_SPACE = 507

#: status code -> reason phrase, as mitmproxy shows them.
RESPONSES: dict[int, str] = {
    code: status_reason(code)
    for code in sorted({s.value for s in _stdlib_http.HTTPStatus} | {444, 499})
    if status_reason(code)
}
