"""The save addon's stream file (``save_stream_file``, mitmdump -w): flows are written when
they end, open flows when the file closes, and a strftime name rotates the file."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from addons.save import Save
from proxycore.exceptions import OptionsError
from proxycore.io import FlowReader
from proxycore.test import taddons, tflow


def read(path: Path) -> list:
    with open(path, "rb") as f:
        return list(FlowReader(f).stream())


def test_a_flow_is_written_when_it_ends_and_an_open_one_when_the_file_closes(tmp_path):
    save = Save()
    path = tmp_path / "out.mitm"
    with taddons.context(save) as tctx:
        tctx.configure(save, save_stream_file=str(path))
        done, open_ = tflow.tflow(resp=True), tflow.tflow()
        save.request(done)
        save.request(open_)
        save.response(done)
        assert [f.id for f in read(path)] == [done.id]
        tctx.configure(save, save_stream_file=None)
        assert [f.id for f in read(path)] == [done.id, open_.id]
        assert read(path)[1].response is None
        save.response(open_)  # no file any more: nothing happens
        assert len(read(path)) == 2


def test_a_strftime_name_rotates_and_open_flows_go_to_the_new_file(tmp_path, monkeypatch):
    days = iter(["2026-12-05", "2026-12-06"])
    day = next(days)

    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime.datetime.fromisoformat(day)

    monkeypatch.setattr(datetime, "datetime", Clock)
    save = Save()
    with taddons.context(save) as tctx:
        tctx.configure(save, save_stream_file=str(tmp_path / "flows-%Y-%m-%d.mitm"))
        first, second = tflow.tflow(resp=True), tflow.tflow(resp=True)
        save.request(first)
        save.request(second)
        save.response(first)
        day = next(days)
        save.response(second)  # the name changed: a new file
        save.done()
    assert [f.id for f in read(tmp_path / "flows-2026-12-05.mitm")] == [first.id]
    assert [f.id for f in read(tmp_path / "flows-2026-12-06.mitm")] == [second.id]


def test_append_and_unwritable_targets(tmp_path):
    save = Save()
    path = tmp_path / "out.mitm"
    with taddons.context(save) as tctx:
        for _ in range(2):
            tctx.configure(save, save_stream_file="+" + str(path))
            flow = tflow.tflow(resp=True)
            save.request(flow)
            save.response(flow)
            tctx.configure(save, save_stream_file=None)
        assert len(read(path)) == 2
        with pytest.raises(OptionsError):
            tctx.configure(save, save_stream_file=str(tmp_path))  # a directory


def test_tcp_and_websocket_flows_are_written_at_their_end(tmp_path):
    save = Save()
    path = tmp_path / "out.mitm"
    with taddons.context(save) as tctx:
        tctx.configure(save, save_stream_file=str(path))
        tcp, ws = tflow.ttcpflow(), tflow.twebsocketflow()
        save.tcp_start(tcp)
        save.request(ws)
        save.response(ws)  # the handshake: the WebSocket flow is not over yet
        assert read(path) == []
        save.tcp_end(tcp)
        save.websocket_end(ws)
        assert [f.id for f in read(path)] == [tcp.id, ws.id]


def test_a_plain_name_is_not_expanded_again_for_each_flow(tmp_path, monkeypatch):
    """Only a name with strftime codes can change between flows; a plain one is opened once."""
    save = Save()
    with taddons.context(save) as tctx:
        tctx.configure(save, save_stream_file=str(tmp_path / "plain.mitm"))
        assert not save.rotates
        monkeypatch.setattr(save, "_expanded_path", lambda: pytest.fail("expanded again"))
        flow = tflow.tflow(resp=True)
        save.request(flow)
        save.response(flow)
        monkeypatch.undo()
        tctx.configure(save, save_stream_file=str(tmp_path / "other.mitm"))  # another plain name
        second = tflow.tflow(resp=True)
        save.request(second)
        save.response(second)
        tctx.configure(save, save_stream_file=str(tmp_path / "flows-%Y.mitm"))
        assert save.rotates
    assert [f.id for f in read(tmp_path / "plain.mitm")] == [flow.id]
    assert [f.id for f in read(tmp_path / "other.mitm")] == [second.id]


@pytest.mark.parametrize("failing", ["maybe_rotate_to_new_file", "flush"])
def test_a_failing_disk_ends_the_process_with_a_message(tmp_path, monkeypatch, capsys, failing):
    """As mitmdump: a capture that goes on while losing flows would be worse. mitmproxy's own
    test makes maybe_rotate_to_new_file raise, so each written flow must still go through it."""
    save = Save()
    with taddons.context(save) as tctx:
        tctx.configure(save, save_stream_file=str(tmp_path / "plain.mitm"))

        def fail(*_: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(save if failing != "flush" else save.file, failing, fail)
        flow = tflow.tflow(resp=True)
        save.request(flow)
        with pytest.raises(SystemExit):
            save.response(flow)
        monkeypatch.undo()
    assert "Error while writing" in capsys.readouterr().err


def test_the_request_hook_is_noted_by_its_gate_which_leaves_the_handler_nothing(tmp_path):
    """The driver calls the gate and, as it says False, not the handler (as for every flow of
    proxydump -w): the flow is still written when the file closes."""
    save = Save()
    path = tmp_path / "out.mitm"
    with taddons.context(save) as tctx:
        assert save.request.gate(tflow.tflow()) is False  # no file: nothing noted
        assert not save.active_flows
        tctx.configure(save, save_stream_file=str(path))
        gated, called = tflow.tflow(), tflow.tflow()
        assert save.request.gate(gated) is False
        save.request(called)
        assert save.active_flows == {gated, called}
        save.done()
    assert sorted(f.id for f in read(path)) == sorted([gated.id, called.id])
