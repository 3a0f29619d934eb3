"""Built-in addons, installed as proxycore.addons."""
