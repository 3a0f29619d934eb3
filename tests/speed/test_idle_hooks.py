"""Built-in addons that have nothing to do cost no hook task per request (issue 15)."""

from __future__ import annotations

from proxycore.addons.store import StoreAddon
from proxycore.test import taddons


def test_store_without_own_view_listens_to_no_flow_hook(tmp_path) -> None:
    store = StoreAddon()
    with taddons.context(store) as tctx:
        assert not tctx.master.addons.has_handlers("requestheaders")
        assert not tctx.master.addons.has_handlers("update")
        store.started = True
        tctx.configure(store, store=str(tmp_path / "flows.db"))  # proxydump with a store
        assert store.hooks_active
        assert tctx.master.addons.has_handlers("requestheaders")
        assert tctx.master.addons.has_handlers("update")
