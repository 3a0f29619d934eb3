"""Http1Connection._take: the first bytes of the read buffer, by either copying path."""

import pytest

from proxycore.layers.http._http1 import SMALL_TAKE, Http1Client, Http1Server
from proxycore.testing import make_context


@pytest.mark.parametrize("layer_class", [Http1Server, Http1Client])
@pytest.mark.parametrize("size", [1, 67, SMALL_TAKE, SMALL_TAKE + 1, 3 * SMALL_TAKE])
@pytest.mark.parametrize("rest", [b"", b"HTTP/1.1 200 OK\r\n"])
def test_take_leaves_the_rest_in_the_buffer(layer_class: type, size: int, rest: bytes) -> None:
    layer = layer_class(make_context())
    taken = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    layer.buf += taken + rest
    data = layer._take(size)
    assert type(data) is bytes and data == taken
    assert layer.buf == rest
    layer.buf += b"more"  # (no view of the buffer is left: it can grow again)
    assert layer.buf == rest + b"more"
