"""Sans-io protocol layers.  Nothing in this package may import asyncio, socket or selectors."""

from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.modes import HttpProxy
from proxycore.layers.tcp import TCPLayer
from proxycore.proxy.layer import Layer, NextLayer

__all__ = ["Layer", "NextLayer", "HttpLayer", "HTTPMode", "HttpProxy", "TCPLayer"]
