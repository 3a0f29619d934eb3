"""The two HTML pages the API renders itself: the login form and the "no front end" page."""

from __future__ import annotations

import html

_STYLE = """<style>
body { font-family: sans-serif; display: flex; flex-direction: column; align-items: center; }
input, code { font-family: monospace; }
</style>"""


def login_page(invalid_password: bool, xsrf_form_html: str) -> str:
    """The 403 page of ``/``: a form that posts ``token`` (and ``_xsrf``) back to ``/``."""
    if invalid_password:
        heading = '<h1 style="color: darkred">403 Invalid Password</h1>'
    else:
        heading = "<h1>403 Authentication Required</h1>"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>proxycore</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{_STYLE}
</head>
<body>
{heading}
<p>Enter the password or the token that proxyweb printed when it started.</p>
<form method="POST">
<label><input type="password" name="token" size="32" placeholder=""></label>
{xsrf_form_html}
<input type="submit">
</form>
</body>
</html>
"""


def no_frontend_page() -> str:
    """``/`` when the ``web_static`` option names no front end."""
    example = html.escape("proxyweb --set web_static=/path/to/mitmproxy/tools/web")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>proxycore</title>
{_STYLE}
</head>
<body>
<h1>proxycore web API</h1>
<p>The API is running, but no front end is configured.</p>
<p>proxycore speaks mitmweb's web API, so mitmproxy's own web front end works with it:
point the <code>web_static</code> option at a directory holding its <code>index.html</code>
and <code>static/</code> folder, e.g. from the mitmproxy wheel on PyPI:</p>
<p><code>{example}</code></p>
<p>See docs/web.md in proxycore for details.</p>
</body>
</html>
"""
