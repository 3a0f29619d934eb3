"""Version numbers, under mitmproxy's names (flow files record FLOW_FORMAT_VERSION)."""

from proxycore import __version__ as VERSION  # noqa: N812
from proxycore.flow import FLOW_FORMAT_VERSION  # noqa: F401

#: What ``mitmproxy.version.MITMPROXY`` is in mitmproxy: the product name and version.
MITMPROXY = PROXYCORE = f"proxycore {VERSION}"
