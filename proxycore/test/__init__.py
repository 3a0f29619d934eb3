"""Helpers for testing addons: ``from mitmproxy.test import tflow, taddons, tutils`` works
unchanged (through :mod:`proxycore.compat`), or import them from ``proxycore.test``."""
