"""The index ``sig_view_remove`` carries is the flow's real position, with a database
store as with memory: mitmproxy's view sends the position in ascending order (before
``view_order_reversed``), and its focus moves to the flow that takes that place."""

from __future__ import annotations

from typing import Any

import pytest

from proxycore import flowfilter
from proxycore.addons.view import View
from proxycore.store.sqlite import SQLiteStore
from proxycore.test import tflow

# The PostgreSQL cases start a server (a process): e2e.
POSTGRES = pytest.param("postgres", marks=pytest.mark.e2e)


def _flows() -> list[Any]:
    flows = []
    for i in range(14):
        f = tflow.tflow(resp=True)
        f.live = False
        f.timestamp_created = 1000 + i // 3  # ties: arrival decides
        f.request.path = f"/{(i * 7) % 14:02d}"
        f.response.content = b"x" * ((i * 5) % 9)
        f.response.status_code = 500 if i % 4 else 200
        flows.append(f)
    flows[2].marked = ":default:"
    return flows


def _view(kind: str, tmp_path: Any, request: Any) -> View:
    view = View()
    if kind == "sqlite":
        view.use_store(SQLiteStore(str(tmp_path / "i.db")))
    elif kind == "postgres":
        from proxycore.store.postgres import PostgresStore

        view.use_store(PostgresStore(request.getfixturevalue("postgres_url"), "t:1"))
    return view


class Model:
    """The view's flows in ascending order, changed only by the signals' indexes."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.ids = self.ascending()
        view.sig_view_remove.connect(self.removed)

    def ascending(self) -> list[str]:
        ids = [f.id for f in self.view]
        return ids[::-1] if self.view.order_reversed else ids

    def removed(self, flow: Any, index: int) -> None:
        assert 0 <= index < len(self.ids) and self.ids[index] == flow.id, (index, flow.id, self.ids)
        del self.ids[index]


@pytest.mark.parametrize("kind", ["memory", "sqlite", POSTGRES])
@pytest.mark.parametrize("order", ["time", "url", "size"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("expr", ["", "~c 500", "~c 500 & ~b xx"])  # the last one is checked in Python
def test_removal_index_is_the_flows_position(kind, order, reverse, expr, tmp_path, request) -> None:
    view = _view(kind, tmp_path, request)
    view.set_order(order)
    view.set_reversed(reverse)
    view.set_filter(flowfilter.parse(expr) if expr else None)
    flows = _flows()
    view.add(flows)
    model = Model(view)
    assert len(model.ids) > 6
    shown = [view.get_by_id(i) for i in model.ids]
    view.remove([shown[3], shown[0], shown[-2]])  # flows the UI deletes
    if expr:  # flows that stop matching the filter
        for changed in (view.get_by_id(model.ids[2]), view.get_by_id(model.ids[-1])):
            changed.response.status_code = 404
            view.update([changed])
    view.retention_limits = (8, 0, 0)  # the oldest unmarked go, wherever they are shown
    view.apply_retention()
    assert view.store_count() == 8
    assert len(model.ids) == len(view)
    assert model.ids == model.ascending()
    if view.db is not None:
        view.close_store()
        view.db.close()


@pytest.mark.parametrize("kind", ["sqlite", POSTGRES])
@pytest.mark.parametrize("order", ["time", "url"])
@pytest.mark.parametrize(("reverse", "expr"), [(False, "~c 500"), (True, "")])
def test_removal_index_counted_from_either_end(kind, order, reverse, expr, tmp_path, request, monkeypatch) -> None:
    """Counts stop after RANK_CAP rows and count from the other end (flows near the end)."""
    from proxycore.store.sql import SQLStore

    monkeypatch.setattr(SQLStore, "RANK_CAP", 2)
    test_removal_index_is_the_flows_position(kind, order, reverse, expr, tmp_path, request)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_focus_moves_to_the_next_flow_when_the_focused_one_is_removed(kind, tmp_path, request) -> None:
    view = _view(kind, tmp_path, request)
    flows = _flows()
    view.add(flows)
    view.focus.flow = view[5]
    following = view[6].id
    view.remove([view.focus.flow])
    assert view.focus.flow is not None and view.focus.flow.id == following
    if view.db is not None:
        view.close_store()
        view.db.close()


@pytest.mark.e2e
def test_web_delete_with_a_database_store_sends_the_bare_id_and_no_receiver_fails(tmp_path) -> None:
    from tests.webapi import request, running, ws_connect, ws_until

    with running(tmp_path) as server:  # proxyweb's default: a per-run SQLite store
        assert server.call(lambda: server.view.db) is not None
        flows = _flows()
        server.add(*flows)
        server.call(lambda: setattr(server.view.focus, "flow", server.view[4]))
        with ws_connect(server.port) as ws:
            assert request(server.port, "DELETE", f"/flows/{flows[4].id}").status == 200
            message, _ = ws_until(ws, "flows/remove")
        assert message["payload"] == flows[4].id  # what mitmweb sends: the id alone
        assert server.call(lambda: server.view.focus.flow.id) == flows[5].id
        assert "failed" not in server.log.getvalue()
