"""HTTP/2 limits toward clients: rapid reset, stream limit, header block size. No sockets.

The layer runs between two h2-library peers (H2Pump); events and commands are
exchanged as the driver would, so every path here is the real layer code.
"""

from __future__ import annotations

import h2.errors
import h2.events
import hyperframe.frame

from proxycore.layers.http._http2 import GOAWAY_LINGER_SECONDS
from proxycore.layers.http._reset_window import SLICES, ResetWindow
from proxycore.proxy import commands, events
from tests.layers.test_http2_layer import H2Pump

ENHANCE_YOUR_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM


def open_and_reset(pump: H2Pump, count: int, start: int = 0) -> list[int]:
    """``count`` GET streams each followed at once by RST_STREAM(CANCEL), in one write."""
    ids = []
    for i in range(start, start + count):
        sid = pump.client.get_next_available_stream_id()
        pump.client.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"),
                                       (b":authority", b"example.com"), (b":path", b"/r%d" % i)], end_stream=True)
        pump.client.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        ids.append(sid)
    pump.pump_peers()
    return ids


def goaway(pump: H2Pump) -> h2.events.ConnectionTerminated | None:
    return next((e for e in pump.client_events if isinstance(e, h2.events.ConnectionTerminated)), None)


def test_stream_reset_before_forwarding_never_reaches_the_server():
    pump = H2Pump()
    open_and_reset(pump, 3)
    assert pump.server_requests() == {}
    assert pump.hooks.count("error") == 3  # addons still see the cancelled flows fail
    assert not pump.layer.streams
    assert goaway(pump) is None


def test_reset_while_an_addon_holds_the_request_is_not_forwarded():
    pump = H2Pump(hold_hooks=True)
    sid = pump.request("/held")
    assert pump.hooks == ["requestheaders"]
    pump.client.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    pump.pump_peers()
    pump.release_hooks()
    assert pump.server_requests() == {}
    assert pump.hooks[-1] == "error"


def test_reset_of_a_stream_queued_for_the_server_drops_it():
    """The server allows one stream at a time: the second request waits, and is cancelled."""
    pump = H2Pump()
    pump.server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    pump.pump_peers()
    first = pump.request("/first")
    second = pump.request("/second")
    assert [r["path"] for r in pump.server_requests().values()] == [b"/first"]
    pump.client.reset_stream(second, h2.errors.ErrorCodes.CANCEL)
    pump.pump_peers()
    (server_sid,) = pump.server_requests()
    pump.respond(server_sid, b"one")
    assert pump.client_responses()[first]["body"] == b"one"
    assert [r["path"] for r in pump.server_requests().values()] == [b"/first"]  # /second never went out


def test_goaway_enhance_your_calm_after_too_many_resets():
    pump = H2Pump(http2_max_resets=5)
    open_and_reset(pump, 5)
    assert goaway(pump) is None and "client" not in pump.closed
    open_and_reset(pump, 1, start=5)
    terminated = goaway(pump)
    assert terminated is not None and terminated.error_code == ENHANCE_YOUR_CALM
    assert "client" in pump.closed
    assert pump.server_requests() == {}
    # Only FIN so far: what the client still sends is dropped, then the linger ends it all.
    hooks = list(pump.hooks)
    frames = b"".join(hyperframe.frame.RstStreamFrame(sid).serialize() for sid in range(101, 201, 2))
    pump.feed(events.DataReceived(pump.context.client, frames + b"\xff" * 100))  # not even parsed
    assert pump.hooks == hooks and pump.server_requests() == {}
    (linger,) = pump.wakeups[-1:]
    assert linger.delay == GOAWAY_LINGER_SECONDS
    out = list(pump.layer.handle_event(events.Wakeup(linger)))
    assert [(type(c), c.half_close) for c in out] == [(commands.CloseConnection, False)]


def test_the_rest_of_a_burst_is_ignored_once_the_limit_is_hit():
    pump = H2Pump(http2_max_resets=10)
    open_and_reset(pump, 500)  # one write: the layer stops reading at the 11th reset
    assert goaway(pump).error_code == ENHANCE_YOUR_CALM
    assert pump.hooks.count("requestheaders") <= 11
    assert pump.server_requests() == {}


class FakeClock:
    """The reset window's clock, moved on by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def with_fake_clock(pump: H2Pump) -> FakeClock:
    clock = FakeClock()
    resets = pump.layer.connections[pump.context.client].resets
    resets.clock = clock
    resets.current = resets._slice_now()
    return clock


def test_resets_spread_over_time_are_fine():
    pump = H2Pump(http2_max_resets=5, http2_reset_window=10)
    clock = with_fake_clock(pump)
    for round_ in range(4):
        open_and_reset(pump, 5, start=5 * round_)
        assert goaway(pump) is None
        clock.now += 10  # a whole window passes: the old resets slide out
    assert not pump.wakeups  # the window needs no timer
    open_and_reset(pump, 6, start=100)
    assert goaway(pump).error_code == ENHANCE_YOUR_CALM


def test_resets_within_one_window_add_up():
    pump = H2Pump(http2_max_resets=5, http2_reset_window=10)
    clock = with_fake_clock(pump)
    open_and_reset(pump, 3)
    clock.now += 9  # nine tenths of the window: the three are still counted
    open_and_reset(pump, 3, start=3)
    assert goaway(pump).error_code == ENHANCE_YOUR_CALM


def test_zero_max_resets_turns_detection_off():
    pump = H2Pump(http2_max_resets=0)
    open_and_reset(pump, 300)
    assert goaway(pump) is None and not pump.wakeups
    assert pump.server_requests() == {}


def test_reset_window_counts_by_slices():
    window = ResetWindow(limit=3, window=5)
    assert window.tick_interval == 5 / SLICES
    assert [window.add() for _ in range(4)] == [False, False, False, True]
    for _ in range(SLICES):
        window.tick()
    assert not window.counting and not window.add()


def test_reset_window_forgets_slices_by_the_clock():
    now = [0.0]
    window = ResetWindow(limit=3, window=5, clock=lambda: now[0])
    assert [window.add() for _ in range(3)] == [False, False, False]
    now[0] = 4.4  # still inside the window
    assert window.add() is True
    now[0] = 5.1  # the first three have left it; the fourth (at 4.4) is still in
    assert window.total == 4 and window.add() is False and window.total == 2
    now[0] = 100.0
    assert window.add() is False and window.total == 1


def test_streams_advertised_and_refused_over_the_limit():
    pump = H2Pump(http2_max_concurrent_streams=2)
    assert pump.client.remote_settings.max_concurrent_streams == 2
    # A client that ignores the setting (or sent before reading it):
    pump.client.remote_settings.max_concurrent_streams = 1000
    pump.client.remote_settings.acknowledge()
    ids = [pump.request(f"/s{i}") for i in range(3)]  # unanswered, so all still open
    got = pump.client_responses()
    assert got[ids[2]] == {"reset": REFUSED_STREAM}
    assert sorted(r["path"] for r in pump.server_requests().values()) == [b"/s0", b"/s1"]
    assert goaway(pump) is None  # only the one stream failed
    # Once a stream is done, a new one is accepted again.
    (server_first, _) = sorted(pump.server_requests())
    pump.respond(server_first, b"done")
    assert pump.client_responses()[ids[0]]["body"] == b"done"
    again = pump.request("/again")
    assert b"/again" in [r["path"] for r in pump.server_requests().values()]
    assert "reset" not in pump.client_responses().get(again, {})


def test_default_limits_are_advertised():
    pump = H2Pump()
    assert pump.client.remote_settings.max_concurrent_streams == 100
    assert pump.client.remote_settings.max_header_list_size == 65536


def test_oversized_header_list_closes_the_connection():
    pump = H2Pump(http2_max_header_list_size=1024)
    pump.client.send_headers(1, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com"),
                                 (b":path", b"/"), (b"x-big", b"v" * 2000)], end_stream=True)
    pump.pump_peers()
    assert goaway(pump).error_code == ENHANCE_YOUR_CALM
    assert pump.server_requests() == {} and "client" in pump.closed


def test_continuation_flood_is_cut_off_by_size():
    """HEADERS without END_HEADERS, then CONTINUATION frames that never end the block."""
    pump = H2Pump(http2_max_header_list_size=4096)
    headers = hyperframe.frame.HeadersFrame(1, data=b"\x82" * 1000)  # no END_HEADERS
    pump.feed(events.DataReceived(pump.context.client, headers.serialize()))
    for _ in range(8):  # 8 KiB + 1000 bytes: past twice the limit (h2 alone would take 64 frames)
        continuation = hyperframe.frame.ContinuationFrame(1, data=b"\x82" * 1024)
        pump.feed(events.DataReceived(pump.context.client, continuation.serialize()))
        if "client" in pump.closed:
            break
    pump.pump_peers()
    assert goaway(pump).error_code == ENHANCE_YOUR_CALM
    assert "client" in pump.closed and pump.hooks == []


def upload_what_the_window_allows(pump: H2Pump, sid: int, body: bytes, sent: int) -> int:
    """Send as much of ``body`` as the client's windows allow now; the new offset."""
    while sent < len(body):
        room = min(pump.client.local_flow_control_window(sid), pump.client.max_outbound_frame_size)
        if room <= 0:
            break
        pump.client.send_data(sid, body[sent : sent + room], end_stream=sent + room >= len(body))
        sent += min(room, len(body) - sent)
        pump.pump_peers()
    return sent


def test_streamed_upload_to_a_slow_server_stops_the_client():
    """The server takes 1000 bytes and no more: the client must run out of window, not
    the proxy fill up with the rest of a big upload."""
    window = 16384
    pump = H2Pump(server_window=1000, stream_large_bodies="1k",
                  http2_stream_window=window, http2_connection_window=4 * window)
    body = bytes(range(256)) * 4096  # 1 MiB
    sid = pump.request("/upload", end=False)
    sent = upload_what_the_window_allows(pump, sid, body, 0)
    (server_sid,) = pump.server_requests()
    # Before the server's SETTINGS arrive the default 64 KiB window applies, then 1000 bytes.
    taken = len(pump.server_requests()[server_sid]["body"])
    assert taken <= 65535
    assert sent - taken <= 3 * window, sent  # the proxy holds at most about two windows of it
    assert upload_what_the_window_allows(pump, sid, body, sent) == sent  # and stays stuck
    # The server catches up: the proxy passes the credit on and the upload completes intact.
    for _ in range(2000):
        pump.server.increment_flow_control_window(65535, server_sid)
        pump.server.increment_flow_control_window(65535)
        pump.pump_peers()
        sent = upload_what_the_window_allows(pump, sid, body, sent)
        if pump.server_requests()[server_sid]["ended"]:
            break
    assert sent == len(body)
    assert pump.server_requests()[server_sid]["body"] == body
    assert not pump.layer.connections[pump.context.client].held  # nothing left held back


def test_streamed_download_to_a_slow_client_stops_the_server():
    """The client reads nothing: the server must run out of window toward the proxy."""
    window = 16384
    pump = H2Pump(stream_large_bodies="1k", http2_stream_window=window, http2_connection_window=4 * window)
    sid = pump.request("/download")
    (server_sid,) = pump.server_requests()
    body = bytes(range(256)) * 4096  # 1 MiB
    pump.server.send_headers(server_sid, [(b":status", b"200")])
    sent = 0
    for _ in range(100):
        room = min(pump.server.local_flow_control_window(server_sid), pump.server.max_outbound_frame_size)
        if room <= 0:
            break
        pump.server.send_data(server_sid, body[sent : sent + room])
        sent += room
        pump.pump_peers()
    assert sent <= 65535 + 3 * window, sent  # the client's window, plus about two of ours
    # The client reads it all: credit flows back to the server and the body arrives intact.
    for _ in range(2000):
        pump.client_responses()  # acknowledges what arrived
        pump.pump_peers()
        room = min(pump.server.local_flow_control_window(server_sid), pump.server.max_outbound_frame_size,
                   len(body) - sent)
        if room > 0:
            pump.server.send_data(server_sid, body[sent : sent + room], end_stream=sent + room == len(body))
            sent += room
            pump.pump_peers()
        got = pump.client_responses().get(sid, {})
        if got.get("ended"):
            break
    assert pump.client_responses()[sid]["body"] == body


def test_upload_waiting_for_the_server_connection_stops_the_client():
    window = 16384
    pump = H2Pump(hold_connects=True, stream_large_bodies="1k",
                  http2_stream_window=window, http2_connection_window=4 * window)
    body = bytes(range(256)) * 4096  # 1 MiB
    sid = pump.request("/upload", end=False)
    sent = upload_what_the_window_allows(pump, sid, body, 0)
    assert pump.held_connects and sent <= 2 * window, sent  # no credit while connecting
    pump.release_connects()
    (server_sid,) = pump.server_requests()
    for _ in range(400):
        sent = upload_what_the_window_allows(pump, sid, body, sent)
        pump.server.increment_flow_control_window(65535, server_sid)
        pump.server.increment_flow_control_window(65535)
        pump.pump_peers()
        if pump.server_requests()[server_sid]["ended"]:
            break
    assert sent == len(body) and pump.server_requests()[server_sid]["body"] == body


def test_upload_queued_for_a_free_server_stream_stops_the_client():
    """The server runs one stream at a time: a second upload waits, and so must its client."""
    window = 16384
    pump = H2Pump(stream_large_bodies="1k", http2_stream_window=window, http2_connection_window=8 * window)
    pump.server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    pump.pump_peers()
    first = pump.request("/first")
    body = bytes(range(256)) * 4096  # 1 MiB
    second = pump.request("/second", end=False)
    sent = upload_what_the_window_allows(pump, second, body, 0)
    assert [r["path"] for r in pump.server_requests().values()] == [b"/first"]
    assert sent <= 3 * window, sent
    (server_first,) = pump.server_requests()
    pump.respond(server_first, b"one")
    assert pump.client_responses()[first]["body"] == b"one"
    for _ in range(400):
        for server_sid in pump.server_requests():
            if server_sid != server_first:
                pump.server.increment_flow_control_window(65535, server_sid)
        pump.server.increment_flow_control_window(65535)
        pump.pump_peers()
        sent = upload_what_the_window_allows(pump, second, body, sent)
        seen = [r for r in pump.server_requests().values() if r["path"] == b"/second"]
        if seen and seen[0]["ended"]:
            break
    assert sent == len(body) and seen[0]["body"] == body
