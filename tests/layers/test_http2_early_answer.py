"""HTTP/2: a request answered before its body is complete, and a request body held back while
a hook holds the request. The layer runs between two h2-library peers (H2Pump); no sockets."""

from __future__ import annotations

import h2.errors
import h2.events
import h2.settings

from proxycore.http import HTTPFlow, Response
from proxycore.proxy import events
from tests.layers.test_http2_layer import H2Pump

NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
WINDOW = 65535  # the smallest windows HTTP/2 allows: stream and connection


def small_windows(**options: object) -> H2Pump:
    """Small windows toward the client; an HTTP/1 server, which takes any amount of body."""
    return H2Pump(
        server_h2=False, hold_hooks=True, http2_stream_window=WINDOW, http2_connection_window=WINDOW, **options
    )


def start_upload(pump: H2Pump, path: str = "/upload", size: int = 500_000_000) -> int:
    sid = pump.client.get_next_available_stream_id()
    pump.client.send_headers(
        sid,
        [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"example.com"),
         (b":path", path.encode()), (b"content-length", str(size).encode())],
    )
    pump.pump_peers()
    return sid


def upload(pump: H2Pump, sid: int, size: int) -> int:
    """Send up to ``size`` bytes of body, as far as the client's windows allow; how many went."""
    sent = 0
    while sent < size:
        room = min(pump.client.local_flow_control_window(sid), pump.client.max_outbound_frame_size, size - sent)
        if room <= 0:
            break
        pump.client.send_data(sid, b"x" * room)
        sent += room
        pump.pump_peers()
    return sent


def held_flow(pump: H2Pump) -> HTTPFlow:
    return pump.held[-1].args()[0]


def events_of(pump: H2Pump, sid: int) -> list[str]:
    names = []
    for e in pump.client_events:
        if getattr(e, "stream_id", None) == sid:
            names.append(type(e).__name__ + (f"({e.error_code.name})" if isinstance(e, h2.events.StreamReset) else ""))
    return names


def test_answer_at_requestheaders_goes_out_and_the_upload_is_reset_with_no_error():
    pump = small_windows()
    sid = start_upload(pump)
    assert pump.hooks == ["requestheaders"]
    flow = held_flow(pump)
    flow.response = Response.make(407, b"auth first", {"Proxy-Authenticate": 'Basic realm="x"'})
    pump.release_hooks()
    assert pump.hooks == ["requestheaders", "request", "responseheaders", "response"]
    got = pump.client_responses()[sid]
    assert got["status"] == b"407" and got["body"] == b"auth first"
    # The answer ends the stream first, then RST_STREAM(NO_ERROR) asks the client to stop.
    assert events_of(pump, sid)[-3:] == ["DataReceived", "StreamEnded", "StreamReset(NO_ERROR)"]
    assert pump.server_requests() == {}  # nothing was forwarded
    assert flow.request.raw_content is None


def test_data_after_the_answer_is_dropped_and_only_the_connection_is_credited():
    pump = small_windows()
    sid = start_upload(pump)
    sent = upload(pump, sid, 40_000)  # arrives while the hook holds the request: held back
    assert sent == 40_000
    assert pump.client.outbound_flow_control_window == WINDOW - 40_000
    assert pump.client.local_flow_control_window(sid) == WINDOW - 40_000
    flow = held_flow(pump)
    flow.response = Response.make(407)
    pump.release_hooks()
    # The held bytes went back to the connection window, not to the stream's.
    assert pump.client.outbound_flow_control_window == WINDOW
    assert events_of(pump, sid)[-1] == "StreamReset(NO_ERROR)"
    assert flow.request.raw_content is None
    # Another upload on the same connection gets through in full: no credit was lost.
    pump.hold_hooks = False
    second = start_upload(pump, "/second", 200_000)
    assert upload(pump, second, 200_000) == 200_000
    pump.client.end_stream(second)
    pump.pump_peers()
    head, body = pump.to_server_raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /second ") and body == b"x" * 200_000


def test_data_arriving_while_later_hooks_run_is_not_queued_for_the_stream():
    pump = H2Pump(hold_hooks=True)
    sid = start_upload(pump)
    held_flow(pump).response = Response.make(407)
    pump.feed(events.HookCompleted(pump.held.pop(0)))  # answered; now the request hook is held
    assert pump.hooks[-1] == "request"
    upload(pump, sid, 300_000)
    stream = pump.layer.streams[sid]
    assert not stream._paused_event_queue  # dropped at the connection, not queued behind the hook
    pump.release_hooks()
    assert events_of(pump, sid)[-1] == "StreamReset(NO_ERROR)"
    assert pump.server_requests() == {}


def test_the_reset_waits_until_the_whole_answer_is_out():
    pump = H2Pump(hold_hooks=True)
    pump.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100})
    pump.pump_peers()
    sid = start_upload(pump)
    held_flow(pump).response = Response.make(407, b"y" * 1000)
    pump.release_hooks()
    assert "StreamReset(NO_ERROR)" not in events_of(pump, sid)  # 900 bytes still wait for window
    body = b""
    for _ in range(20):
        got = pump.client_responses()[sid]  # reading acknowledges: more window
        pump.pump_peers()
        body = got["body"]
        if got.get("ended"):
            break
    assert body == b"y" * 1000
    assert events_of(pump, sid)[-1] == "StreamReset(NO_ERROR)"


def test_a_client_that_finished_its_upload_is_not_reset():
    pump = H2Pump(hold_hooks=True)
    sid = start_upload(pump, size=10)
    pump.client.send_data(sid, b"0123456789", end_stream=True)
    pump.pump_peers()
    held_flow(pump).response = Response.make(407)
    pump.release_hooks()
    assert pump.client_responses()[sid]["status"] == b"407"
    assert not any(isinstance(e, h2.events.StreamReset) for e in pump.client_events)


# A body held back while a hook holds the request -----------------------------------------------


def test_a_held_request_gets_no_more_than_its_stream_window():
    pump = small_windows(body_buffer_limit="100k")
    sid = start_upload(pump, size=300_000)  # more than the proxy would buffer
    assert upload(pump, sid, 300_000) == WINDOW  # then the client has no window left
    assert pump.client.local_flow_control_window(sid) == 0
    queued = sum(len(getattr(e, "data", b"")) for e in pump.layer.streams[sid]._paused_event_queue)
    assert queued == WINDOW
    pump.release_hooks()
    pump.hold_hooks = False
    # Released: the client gets its window back and the body goes through.
    rest = 300_000 - WINDOW
    while rest:
        sent = upload(pump, sid, rest)
        assert sent, "the window did not open again"
        rest -= sent
    pump.client.end_stream(sid)
    pump.pump_peers()
    head, body = pump.to_server_raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /upload ") and body == b"x" * 300_000


def test_a_body_declared_within_body_buffer_limit_is_not_held_back():
    """It may arrive whole while the hook runs: it would be buffered whole anyway."""
    pump = small_windows(body_buffer_limit="100k")
    sid = start_upload(pump, size=90_000)
    assert upload(pump, sid, 90_000) == 90_000  # the window was given back meanwhile
    pump.client.end_stream(sid)
    pump.pump_peers()
    pump.release_hooks()
    head, body = pump.to_server_raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /upload ") and body == b"x" * 90_000


def test_a_request_without_body_is_not_held():
    pump = H2Pump()
    pump.request("/get")
    (request,) = pump.server_requests().values()
    assert request["path"] == b"/get" and request["ended"]


def test_a_response_held_in_responseheaders_gets_no_more_than_its_stream_window():
    pump = H2Pump(http2_stream_window=WINDOW, http2_connection_window=4 * WINDOW)
    sid = pump.request("/download")
    (server_sid,) = pump.server_requests()
    pump.hold_hooks = True
    pump.server.send_headers(server_sid, [(b":status", b"200")])
    pump.pump_peers()
    assert pump.hooks[-1] == "responseheaders"
    sent = 0
    while sent < 4 * WINDOW and (
        room := min(pump.server.local_flow_control_window(server_sid), pump.server.max_outbound_frame_size)
    ):
        pump.server.send_data(server_sid, b"d" * room)
        sent += room
        pump.pump_peers()
    assert sent == WINDOW  # the proxy gave nothing back while the hook held the response
    pump.release_hooks()
    assert pump.server.local_flow_control_window(server_sid) > 0  # credit again
    pump.server.end_stream(server_sid)
    pump.pump_peers()
    got = pump.client_responses()[sid]
    assert got["body"] == b"d" * WINDOW and got["ended"]


def test_an_http1_server_is_not_read_while_a_slow_h2_client_holds_its_response_back():
    """The client grants no window: past a stream window queued for it, and then past
    body_buffer_limit more, the HTTP/1 server is not read until the client catches up."""
    pump = H2Pump(server_h2=False, http2_stream_window=WINDOW, body_buffer_limit="100k")
    pump.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
    pump.pump_peers()
    sid = pump.request("/download")
    size = 2_000_000
    pump.feed(events.DataReceived(pump.server_conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size))
    sent = 0
    while "server" not in pump.paused and sent < size:
        pump.feed(events.DataReceived(pump.server_conn, b"s" * 10_000))
        sent += 10_000
    # The client's window (64 KiB) went out, a stream window queued, then 100 KB more.
    assert "server" in pump.paused and sent < 4 * WINDOW + 100_000, sent
    # The client reads: the queue drains and the server is read again.
    got = 0
    for _ in range(100):
        if "server" not in pump.paused:
            break
        for e in pump.client_events:
            if isinstance(e, h2.events.DataReceived):
                got += len(e.data)
                pump.client.acknowledge_received_data(e.flow_controlled_length, sid)
        pump.client_events.clear()
        pump.pump_peers()
    assert "server" not in pump.paused and got > WINDOW
