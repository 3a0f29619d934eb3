"""Web API (Tornado), installed as proxycore.api."""
