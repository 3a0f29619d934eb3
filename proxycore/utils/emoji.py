"""Flow marker emoji by short code (``:+1:``), as scripts that set ``flow.marked`` use them."""

from proxycore.markers import MARKERS as emoji  # noqa: F401 - the name mitmproxy exports
