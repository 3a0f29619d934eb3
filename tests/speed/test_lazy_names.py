"""The HTTP/2 and HTTP/3 connection layers are imported on first use but stay reachable
under their old names, and what the HTTP layer asks of a connection layer (does it take
backpressure, does it carry several exchanges at once) no longer needs an isinstance check
against a class that may not be imported yet."""

from __future__ import annotations

import pytest

import proxycore.layers.http as http_layers
from proxycore.layers.http import _http1, _http2, _http3
from proxycore.proxy.layer import Layer


def test_old_names_still_import() -> None:
    from proxycore.layers.http import Http2Client, Http2Server, Http3Client, Http3Server

    assert (Http2Client, Http2Server) == (_http2.Http2Client, _http2.Http2Server)
    assert (Http3Client, Http3Server) == (_http3.Http3Client, _http3.Http3Server)
    with pytest.raises(AttributeError):
        http_layers.Http4Server  # noqa: B018


def test_connection_layer_traits() -> None:
    for cls in (_http1.Http1Server, _http1.Http1Client):
        assert cls.relays_backpressure and not cls.multiplexed
    for cls in (_http2.Http2Server, _http2.Http2Client):
        assert cls.relays_backpressure and cls.multiplexed
    for cls in (_http3.Http3Server, _http3.Http3Client):
        assert not cls.relays_backpressure and cls.multiplexed
    assert not Layer.relays_backpressure  # e.g. client replay's stand-in for a client
