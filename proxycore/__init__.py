"""proxycore: a sans-io intercepting proxy engine, compatible with mitmproxy's addon API."""

__version__ = "0.1.0"
