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
    """``/`` when there is no front end: ``web_static`` unset and the first-use fetch off or failed."""
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
<p>The API is running, but there is no web front end to show.</p>
<p>proxyweb serves mitmproxy's own front end: when the <code>web_static</code> option is unset,
it downloads mitmproxy's release from the package index into its confdir on first use.
That did not happen this time (the reason is in proxyweb's log), or
<code>web_fetch_frontend</code> is off.</p>
<p>To get the UI, restart proxyweb with access to the package index (or with
<code>PIP_INDEX_URL</code> naming a mirror), or point <code>web_static</code> at a directory
holding mitmproxy's <code>index.html</code> and <code>static/</code> folder:</p>
<p><code>{example}</code></p>
<p>See docs/web.md in proxycore for details.</p>
</body>
</html>
"""
