"""HTTP/2 fields the flow model refuses (CR, LF, NUL) when h2 does not validate them:
only that stream is reset, nothing raises out of the layer."""

from __future__ import annotations

import h2.errors
import h2.events

from tests.layers.test_http2_layer import H2Pump, h2_peer

BAD_VALUES = [b"a\r\nInjected: 1", b"a\nb", b"a\x00b", b"a\rb"]


def _request_with_trailers(pump: H2Pump, value: bytes) -> int:
    sid = pump.client.get_next_available_stream_id()
    pump.client.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"),
                                   (b":authority", b"example.com"), (b":path", b"/t")])
    pump.client.send_data(sid, b"body")
    pump.client.send_headers(sid, [(b"x-trailer", value)], end_stream=True)
    pump.pump_peers()
    return sid


def test_client_trailers_with_line_breaks_reset_the_stream():
    for value in BAD_VALUES:
        pump = H2Pump(lax_client=True, validate_inbound_headers=False)
        sid = _request_with_trailers(pump, value)
        got = pump.client_responses()
        assert got[sid].get("reset") == h2.errors.ErrorCodes.PROTOCOL_ERROR, value
        assert "client" not in pump.closed
        # The connection goes on: the next stream is answered.
        ok = pump.request("/next")
        server_sid = max(pump.server_requests())
        pump.respond(server_sid, b"fine")
        assert pump.client_responses()[ok]["body"] == b"fine"


def test_client_headers_with_line_breaks_reset_the_stream():
    pump = H2Pump(lax_client=True, validate_inbound_headers=False)
    sid = pump.client.get_next_available_stream_id()
    pump.client.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com"),
                                   (b":path", b"/"), (b"x-a", b"1\r\nX-Injected: 1")], end_stream=True)
    pump.pump_peers()
    assert pump.client_responses()[sid].get("reset") == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert pump.server_requests() == {}


def test_server_trailers_with_line_breaks_fail_the_exchange():
    for value in BAD_VALUES:
        pump = H2Pump(validate_inbound_headers=False)
        pump.server = h2_peer(client_side=False, lax=True)
        sid = pump.request("/r")
        (server_sid,) = pump.server_requests()
        pump.server.send_headers(server_sid, [(b":status", b"200")])
        pump.server.send_data(server_sid, b"partial")
        pump.server.send_headers(server_sid, [(b"x-trailer", value)], end_stream=True)
        pump.pump_peers()
        # The stream ended with those trailers, so there is nothing left to reset upstream;
        # the client gets a 502 instead of the response (headers not sent yet: buffered).
        got = pump.client_responses()[sid]
        assert got["status"] == b"502" and got["trailers"] is None, value
        assert b"partial" not in got["body"]


def test_server_headers_with_line_breaks_fail_the_exchange():
    pump = H2Pump(validate_inbound_headers=False)
    pump.server = h2_peer(client_side=False, lax=True)
    sid = pump.request("/r")
    (server_sid,) = pump.server_requests()
    pump.server.send_headers(server_sid, [(b":status", b"200"), (b"set-cookie", b"a=1\r\nX-Injected: 1")])
    pump.server.send_data(server_sid, b"body")
    pump.pump_peers()
    got = pump.client_responses()[sid]
    assert got["status"] == b"502"
    resets = [e for e in pump.server_events if isinstance(e, h2.events.StreamReset)]
    assert [e.error_code for e in resets] == [h2.errors.ErrorCodes.PROTOCOL_ERROR]
