"""``from mitmproxy.script import concurrent``."""

from proxycore.script.concurrent import concurrent

__all__ = ["concurrent"]
