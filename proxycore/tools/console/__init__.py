"""The parts of mitmproxy's console UI (``mitmproxy.tools.console``) that addon code and
addon tests import. proxycore has no console UI: use proxydump or proxyweb."""
