"""TLS data that scripts' tls_* hooks receive (``from mitmproxy import tls``)."""

from proxycore.layers.tls import ClientHelloData, TlsData
from proxycore.net.clienthello import ClientHello

__all__ = ["ClientHello", "ClientHelloData", "TlsData"]
