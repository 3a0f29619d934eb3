"""Small helpers at the paths mitmproxy scripts import them from (``mitmproxy.utils.*``)."""
