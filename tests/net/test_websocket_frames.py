"""proxycore.net.websocket_frames against wsproto as the reading peer: every length class,
masked and unmasked, text and binary, a fragmented message."""

from __future__ import annotations

import wsproto
import wsproto.events as ws
from hypothesis import given
from hypothesis import strategies as st

from proxycore.net import websocket_frames as wf


def read(frames: list[bytes], server_reads: bool) -> list[ws.Event]:
    """Feed the pieces to a wsproto peer (a server reads masked client frames)."""
    kind = wsproto.ConnectionType.SERVER if server_reads else wsproto.ConnectionType.CLIENT
    peer = wsproto.Connection(kind)
    for piece in frames:
        peer.receive_data(piece)
    return list(peer.events())


def payload_of(events: list[ws.Event]) -> bytes:
    assert not [e for e in events if isinstance(e, ws.CloseConnection)], events
    return b"".join(e.data if isinstance(e.data, bytes) else e.data.encode() for e in events if isinstance(e, ws.Message))


def test_header_lengths_choose_the_shortest_form():
    assert wf.frame_header(wf.OPCODE_BINARY, True, 125, None) == b"\x82\x7d"
    assert wf.frame_header(wf.OPCODE_BINARY, True, 126, None) == b"\x82\x7e\x00\x7e"
    assert wf.frame_header(wf.OPCODE_TEXT, False, 65535, None) == b"\x01\x7e\xff\xff"
    assert wf.frame_header(wf.OPCODE_CONTINUATION, True, 65536, b"abcd") == b"\x80\xff" + (65536).to_bytes(8, "big") + b"abcd"


@given(
    size=st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, wf.CHUNK - 1, wf.CHUNK, wf.CHUNK + 3, 2 * wf.CHUNK + 1]),
    masked=st.booleans(),
    text=st.booleans(),
)
def test_a_frame_reads_back_as_its_payload(size: int, masked: bool, text: bool) -> None:
    payload = (b"proxycore-" * (size // 10 + 1))[:size]
    opcode = wf.OPCODE_TEXT if text else wf.OPCODE_BINARY
    pieces = list(wf.frame_pieces(opcode, True, memoryview(payload), masked))
    assert all(len(p) <= wf.CHUNK for p in pieces[1:])
    events = read(pieces, server_reads=masked)
    assert payload_of(events) == payload
    assert all(isinstance(e, ws.TextMessage if text else ws.BytesMessage) for e in events)
    assert events[-1].message_finished


def test_masked_frames_differ_from_their_payload_and_use_fresh_keys():
    payload = b"\x00" * 64
    first = b"".join(wf.frame_pieces(wf.OPCODE_BINARY, True, memoryview(payload), True))
    second = b"".join(wf.frame_pieces(wf.OPCODE_BINARY, True, memoryview(payload), True))
    assert first[2:6] != second[2:6]  # 2**-32 chance of a false failure
    assert first[6:] == first[2:6] * 16  # zeros XOR key = the key repeated


def test_a_fragmented_message():
    payload = b"0123456789" * 30000
    pieces: list[bytes] = []
    sizes = [100_000, 150_000, 50_000]
    opcode, start = wf.OPCODE_BINARY, 0
    for i, size in enumerate(sizes):
        pieces += wf.frame_pieces(opcode, i == len(sizes) - 1, memoryview(payload)[start : start + size], True)
        opcode, start = wf.OPCODE_CONTINUATION, start + size
    events = read(pieces, server_reads=True)
    assert payload_of(events) == payload
    assert [e.message_finished for e in events if e.frame_finished] == [False, False, True]
