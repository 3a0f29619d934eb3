"""Sans-io protocol layers.  Nothing in this package may import asyncio, socket or selectors."""

from proxycore.layer import Layer, NextLayer
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.modes import HttpProxy
from proxycore.layers.tcp import TCPLayer

__all__ = ["Layer", "NextLayer", "HttpLayer", "HTTPMode", "HttpProxy", "TCPLayer"]
