"""The DNS view: a DNS message as YAML (mitmweb's field names, without the HTTP status).

Over TCP a message carries a two-byte length first, which is skipped.  An HTTP body
(DNS over HTTPS, ``application/dns-message``) is a bare message and is parsed whole:
mitmproxy 12.3.1 also skips two bytes there and so fails on every DoH body.
"""

from __future__ import annotations

from proxycore.contentviews import yamltree
from proxycore.contentviews.api import Contentview, Metadata


class DNSContentview(Contentview):
    name = "DNS"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        from proxycore.dns import DNSMessage

        if metadata.tcp_message is not None:
            data = data[2:]
        message = DNSMessage.unpack(data).to_json()
        del message["status_code"]
        message.pop("timestamp", None)
        return yamltree.dumps(message)

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        if metadata.dns_message is not None or metadata.content_type == "application/dns-message":
            return 1
        server = getattr(metadata.flow, "server_conn", None)
        address = getattr(server, "address", None)
        return 1 if address and address[1] in (53, 5353) else 0


dns = DNSContentview()
