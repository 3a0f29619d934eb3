"""WSGI and ASGI apps answering for their own host inside the proxy."""

from mitmproxy.addons import asgiapp


def wsgi_hello(environ, start_response):
    body = f"wsgi {environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "wsgi")])
    return [body]


async def asgi_hello(scope, receive, send):
    event = await receive()
    body = b"asgi " + scope["method"].encode() + b" " + event.get("body", b"")
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-app", b"asgi")]})
    await send({"type": "http.response.body", "body": body})


addons = [
    asgiapp.WSGIApp(wsgi_hello, "wsgi.example", 80),
    asgiapp.ASGIApp(asgi_hello, "asgi.example", 80),
]
