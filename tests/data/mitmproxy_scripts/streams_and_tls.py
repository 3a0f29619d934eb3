"""WebSocket, TCP and TLS hook families, and the proxy.* module paths."""

from mitmproxy import connection, http, tcp, tls, websocket
from mitmproxy.proxy import context, layers, server_hooks


class Streams:
    def __init__(self) -> None:
        self.sni: dict[str, str] = {}
        self.established: set[str] = set()
        self.servers_seen: set[str] = set()

    def client_connected(self, client: connection.Client) -> None:
        assert isinstance(client, connection.Client)

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        self.servers_seen.add(data.client.id)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        assert isinstance(data.context, context.Context)
        self.sni[data.context.client.id] = data.client_hello.sni or ""

    def tls_established_client(self, data: tls.TlsData) -> None:
        self.established.add(data.conn.id)

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.request.scheme == "https":
            flow.response.headers["x-sni"] = self.sni.get(flow.client_conn.id, "?")
            flow.response.headers["x-tls-established"] = str(flow.client_conn.id in self.established)
            flow.response.headers["x-server-connected"] = str(flow.client_conn.id in self.servers_seen)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        assert isinstance(flow.websocket, websocket.WebSocketData)
        message = flow.websocket.messages[-1]
        if message.from_client and message.is_text:
            message.text = message.text.upper()

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        message = flow.messages[-1]
        if not message.from_client:
            message.content = message.content.replace(b"pong", b"PONG")

    def next_layer(self, nextlayer: layers.NextLayer) -> None:
        pass  # the hook is there; proxycore decides the layer


addons = [Streams()]
