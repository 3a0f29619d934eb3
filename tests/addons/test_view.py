"""The flow view addon: store, filter, order, signals and the view.* commands."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from proxycore.addons.view import View
from proxycore.exceptions import CommandError, OptionsError
from proxycore.io import FlowWriter
from proxycore.master import Master
from proxycore.options import Options
from tests.flows import http_flow, tcp_flow


class Recorder:
    """Collects the view's signals as (name, flow id or None) tuples."""

    def __init__(self, view: View) -> None:
        self.events: list[tuple[str, Any]] = []
        view.sig_view_add.connect(lambda f: self.events.append(("add", f.id)))
        view.sig_view_update.connect(lambda f: self.events.append(("update", f.id)))
        view.sig_view_remove.connect(lambda f, i: self.events.append(("remove", f.id)))
        view.sig_view_refresh.connect(lambda: self.events.append(("refresh", None)))
        view.sig_store_remove.connect(lambda f: self.events.append(("store_remove", f.id)))
        view.sig_store_refresh.connect(lambda: self.events.append(("store_refresh", None)))

    def take(self) -> list[tuple[str, Any]]:
        events, self.events = self.events, []
        return events


@pytest.fixture(params=["memory", "sqlite"])
def master(request: Any, tmp_path: Any) -> Any:
    """Every view test runs on flows in memory and on flows in a SQLite store."""
    master = Master(Options())
    master.view = View()
    master.addons.add(master.view)
    if request.param == "sqlite":
        from proxycore.store.sqlite import SQLiteStore

        master.view.use_store(SQLiteStore(str(tmp_path / "view.db")))
    yield master
    if master.view.db is not None:
        master.view.close_store()
        master.view.db.close()


@pytest.fixture
def view(master: Master) -> View:
    return master.view


def flows_at(*timestamps: float) -> list[Any]:
    flows = []
    for ts in timestamps:
        f = http_flow(url=f"http://example.com/{ts}")
        f.timestamp_created = ts
        flows.append(f)
    return flows


def ids(flows: Any) -> list[str]:
    return [f.id for f in flows]


def test_add_orders_by_time_and_ignores_duplicates(view: View) -> None:
    rec = Recorder(view)
    a, b, c = flows_at(3, 1, 2)
    view.add([a, b, c])
    view.add([a])
    assert ids(view) == ids([b, c, a])
    assert len(view) == 3 and view.store_count() == 3
    assert view[0] is b and view[-1] is a
    assert view.index(c) == 1
    assert rec.take() == [("add", a.id), ("add", b.id), ("add", c.id)]
    assert view.get_by_id(b.id) is b and view.get_by_id("nope") is None


def test_equal_keys_keep_arrival_order(view: View) -> None:
    flows = flows_at(5, 5, 5, 5)
    view.add(flows)
    assert ids(view) == ids(flows)


def test_update_signals_only_for_shown_flows(master: Master, view: View) -> None:
    a, b = flows_at(1, 2)
    view.add([a])
    rec = Recorder(view)
    view.update([a, b])  # b is not in the store: ignored
    assert rec.take() == [("update", a.id)]


def test_filter_hides_and_update_moves_flows_in_and_out(master: Master, view: View) -> None:
    rec = Recorder(view)
    get, post = http_flow(method="GET"), http_flow(method="POST")
    view.add([get, post])
    rec.take()
    master.options.update(view_filter="~m POST")
    assert ids(view) == [post.id] and view.store_count() == 2
    assert rec.take() == [("refresh", None)]
    get.request.method = "POST"
    view.update([get])
    post.request.method = "PUT"
    view.update([post])
    assert rec.take() == [("add", get.id), ("remove", post.id)]
    assert ids(view) == [get.id]
    view.update([post])  # still hidden: no signal
    assert rec.take() == []
    master.options.update(view_filter=None)
    assert len(view) == 2


def test_bad_view_filter_is_an_option_error(master: Master, view: View) -> None:
    with pytest.raises(OptionsError, match="Invalid filter expression"):
        master.options.update(view_filter="~q (")
    assert master.options.view_filter is None


@pytest.mark.parametrize(
    "order, expected",
    [("method", ["DELETE", "GET", "POST"]), ("url", ["DELETE", "POST", "GET"]), ("size", ["GET", "DELETE", "POST"])],
)
def test_orders(master: Master, view: View, order: str, expected: list[str]) -> None:
    view.add([
        http_flow(method="POST", url="http://b/", req_body=b"xxxxx"),
        http_flow(method="GET", url="http://c/", req_body=b""),
        http_flow(method="DELETE", url="http://a/", req_body=b"xx"),
    ])
    rec = Recorder(view)
    master.options.update(view_order=order)
    assert [f.request.method for f in view] == expected
    assert rec.take() == []  # a new order alone is no refresh, as in mitmproxy
    master.options.update(view_order_reversed=True)
    assert [f.request.method for f in view] == expected[::-1]
    assert view[0].request.method == expected[-1]
    assert view.index(view[0]) == 0
    assert rec.take() == [("refresh", None)]


def test_changing_sort_key_moves_flow_and_refreshes(master: Master, view: View) -> None:
    master.options.update(view_order="size")
    small, big = http_flow(req_body=b"a"), http_flow(req_body=b"aaaa")
    view.add([small, big])
    rec = Recorder(view)
    small.request.content = b"a" * 10
    view.update([small])
    assert ids(view) == [big.id, small.id]
    assert rec.take() == [("refresh", None)]
    view.update([small])
    assert rec.take() == [("update", small.id)]


def test_tcp_flows_sort_by_method_and_url(master: Master, view: View) -> None:
    master.options.update(view_order="url")
    tcp, web = tcp_flow(), http_flow(url="http://zzz/")
    view.add([web, tcp])
    assert ids(view) == [web.id, tcp.id]  # "http://zzz/" < "tcp.example:7"
    master.options.update(view_order="method")
    assert ids(view) == [web.id, tcp.id]  # "GET" < "TCP"


def test_remove_kills_live_flows(view: View) -> None:
    rec = Recorder(view)
    a, b = flows_at(1, 2)
    a.live = True
    view.add([a, b])
    rec.take()
    view.remove([a])
    assert a.error is not None and a.error.msg == "Connection killed."
    assert ids(view) == [b.id] and view.get_by_id(a.id) is None
    assert rec.take() == [("remove", a.id), ("store_remove", a.id)]
    view.remove([a])  # already gone
    assert rec.take() == []


def test_clear_and_clear_unmarked(view: View) -> None:
    a, b, c = flows_at(1, 2, 3)
    b.marked = ":red_circle:"
    view.add([a, b, c])
    rec = Recorder(view)
    view.clear_not_marked()
    assert ids(view) == [b.id] and view.store_count() == 1
    assert rec.take() == [("refresh", None), ("store_refresh", None)]
    view.clear()
    assert len(view) == 0 and view.store_count() == 0
    assert rec.take() == [("refresh", None), ("store_refresh", None)]


def test_marked_only_toggle(view: View) -> None:
    a, b = flows_at(1, 2)
    a.marked = ":default:"
    view.add([a, b])
    view.toggle_marked()
    assert ids(view) == [a.id] and view.get_marked() is True
    view.toggle_marked()
    assert len(view) == 2


def test_resolve(master: Master, view: View) -> None:
    a, b, c = http_flow(method="GET"), http_flow(method="POST"), tcp_flow()
    b.marked = ":default:"
    view.add([a, b, c])
    master.options.update(view_filter="~http")
    assert ids(view.resolve("@all")) == ids([a, b, c])
    assert ids(view.resolve("@shown")) == ids([a, b])
    assert ids(view.resolve("@hidden")) == [c.id]
    assert ids(view.resolve("@marked")) == [b.id]
    assert ids(view.resolve("@unmarked")) == ids([a, c])
    assert ids(view.resolve(f"@{c.id},{a.id}")) == ids([a, c])
    assert ids(view.resolve("~m POST")) == [b.id]
    with pytest.raises(CommandError, match="Invalid filter expression"):
        view.resolve("~m (")


def test_commands_resolve_flow_arguments(master: Master, view: View) -> None:
    from proxycore.addons.core import Core

    master.addons.add(Core())
    a, b = http_flow(), http_flow()
    view.add([a, b])
    master.commands.execute(f"flow.mark @{b.id} :green_circle:")
    assert b.marked == ":green_circle:" and a.marked == ""
    assert master.commands.execute("view.properties.length") == 2
    assert master.commands.execute("view.properties.inbounds 1") is True
    assert master.commands.execute("view.properties.inbounds 2") is False
    master.commands.execute("view.flows.remove @marked")
    assert ids(view) == [a.id]


def test_create_and_duplicate(view: View) -> None:
    view.create("get", "https://example.com:8443/x?y=1")
    (flow,) = view
    assert flow.request.method == "GET" and flow.request.url == "https://example.com:8443/x?y=1"
    assert flow.request.headers["Host"] == "example.com"
    assert flow.server_conn.address == ("example.com", 8443)
    assert flow.client_conn.timestamp_start < flow.request.timestamp_start
    with pytest.raises(CommandError, match="Invalid URL"):
        view.create("GET", "not a url")
    flow.backup()
    flow.request.path = "/changed"
    view.duplicate([flow])
    assert len(view) == 2
    copy = view[1]
    assert copy.id != flow.id and copy.live is False and copy.modified()
    assert copy.client_conn.id == flow.client_conn.id


def test_load_file_adds_copies(tmp_path, view: View) -> None:
    a, b = flows_at(1, 2)
    path = tmp_path / "flows"
    with path.open("wb") as f:
        writer = FlowWriter(f)
        writer.add(a)
        writer.add(b)
    view.load_file(path)
    view.load_file(path)  # new ids each time
    assert len(view) == 4 and len(set(ids(view))) == 4
    view.load_file(tmp_path / "missing")
    assert len(view) == 4


def test_order_commands(master: Master, view: View) -> None:
    assert view.order_options() == ["method", "size", "time", "url"]
    view.order_set("url")
    assert view.get_order() == "url"
    with pytest.raises(CommandError, match="Unknown flow order"):
        view.order_set("nope")
    view.order_reverse(True)
    assert view.order_reversed
    with pytest.raises(OptionsError):
        master.options.update(view_order="nope")


def test_hooks_feed_the_view(master: Master, view: View) -> None:
    """A flow enters at requestheaders; every later hook ends in an update signal."""
    from proxycore.layers.http._hooks import HttpRequestHeadersHook, HttpResponseHook

    rec = Recorder(view)
    flow = http_flow()

    async def run() -> None:
        await master.addons.handle_lifecycle(HttpRequestHeadersHook(flow))
        await master.addons.handle_lifecycle(HttpResponseHook(flow))

    asyncio.run(run())
    assert rec.take() == [("add", flow.id), ("update", flow.id), ("update", flow.id)]
    assert master.addons.has_handlers("response")  # so the driver never skips it


def test_large_view_stays_sorted(view: View) -> None:
    """Random arrival times: the view is the sorted store, however flows trickle in."""
    import random

    rnd = random.Random(7)
    flows = flows_at(*(rnd.random() for _ in range(500)))
    start = time.perf_counter()
    for f in flows:
        view.add([f])
    for f in flows[::3]:
        view.remove([f])
    assert time.perf_counter() - start < 5
    expected = sorted((f for f in flows if view.get_by_id(f.id)), key=lambda f: f.timestamp_created)
    assert ids(view) == ids(expected)


# focus and per-flow settings (mitmproxy console's API) -----------------------------------


def _flows(*starts: float) -> list:
    from proxycore.test import tflow

    out = []
    for start in starts:
        f = tflow.tflow()
        f.timestamp_created = start
        out.append(f)
    return out


def test_focus_stays_on_a_shown_flow_as_the_view_changes():
    from proxycore import flowfilter
    from proxycore.addons.view import View

    v = View()
    assert v.focus.flow is None and v.focus.index is None
    a, b, c = _flows(1, 2, 3)
    v.add([b])
    assert v.focus.flow is b  # the first shown flow gets the focus
    v.add([a, c])
    assert v.focus.index == 1  # still b, now in the middle
    v.go(-1)
    assert v.focus.flow is c
    v.focus_next()
    assert v.focus.flow is c  # at the end already
    v.remove([c])
    assert v.focus.flow is b  # the neighbour takes over
    b.request.method = "PUT"
    v.set_filter(flowfilter.parse("~m GET"))
    assert v.focus.flow is a
    v.clear()
    assert v.focus.flow is None
    v.go(3)  # an empty view: nothing to focus, no error


def test_focus_follow_and_duplicate_move_the_focus_to_new_flows():
    from proxycore.addons.view import View
    from proxycore.test import taddons

    v = View()
    with taddons.context(v) as tctx:
        a, b = _flows(1, 2)
        v.add([a, b])
        assert v.focus.flow is a
        tctx.configure(v, console_focus_follow=True)
        (c,) = _flows(3)
        v.add([c])
        assert v.focus.flow is c
        v.duplicate([a])
        assert v.focus.flow.id != a.id and v.focus.flow.request.url == a.request.url


def test_per_flow_settings_live_and_die_with_the_flow():
    import pytest

    from proxycore.addons.view import View

    v = View()
    (f,) = _flows(1)
    with pytest.raises(KeyError):
        v.settings[f]
    v.add([f])
    v.setvalue([f], "k", "v")
    assert v.getvalue(f, "k", "d") == "v" and v.getvalue(f, "other", "d") == "d"
    v.setvalue_toggle([f], "k")
    assert v.getvalue(f, "k", "d") == "true"
    v.setvalue_toggle([f], "k")
    assert v.getvalue(f, "k", "d") == "false"
    v.remove([f])
    assert len(v.settings) == 0
