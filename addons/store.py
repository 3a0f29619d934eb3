"""The ``store`` option family: where flows are kept, how many, and the store.* commands.

``store`` names the backend: ``memory`` (mitmweb's way: every flow in RAM), a
SQLite file path (``flows.db``: a named session, its flows back after a restart),
or ``postgresql://...`` (several instances sharing one database).  Empty means
the tool's default: none for proxydump, a per-run SQLite file in the confdir for
proxyweb (deleted at exit unless ``store_keep``).

With a view (proxyweb) the view keeps its flows in the store.  Without one
(proxydump ``--set store=...``) this addon feeds a view of its own that is not
an addon, so flows are written the same way.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from proxycore import ctx, types
from proxycore.command import command
from proxycore.exceptions import CommandError, OptionsError
from proxycore.flow import Flow
from proxycore.options import parse_size

if TYPE_CHECKING:
    from proxycore.store import FlowStore

logger = logging.getLogger("proxycore.store")

_AGE = re.compile(r"(\d+)([smhd]?)")
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(value: str) -> float:
    """'90' or '90s', '15m', '2h', '7d' -> seconds; '' or '0' -> 0 (no limit)."""
    found = _AGE.fullmatch(value.strip().lower()) if value.strip() else None
    if value.strip() and found is None:
        raise OptionsError(f"Invalid store_max_age: {value!r} (examples: 3600, 30m, 12h, 7d)")
    return int(found.group(1)) * _AGE_UNITS[found.group(2)] if found else 0


def check_spec(spec: str) -> None:
    """Refuse at start what cannot open later: a missing directory, psycopg not installed."""
    if not spec or spec == "memory":
        return
    if spec.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise OptionsError(
                "store: postgresql:// needs psycopg 3 (pip install 'proxycore[postgres]')"
            ) from None
        return
    parent = os.path.dirname(os.path.abspath(os.path.expanduser(spec)))
    if not os.path.isdir(parent):
        raise OptionsError(f"store: cannot create {spec}: no directory {parent}")


class StoreAddon:
    """See the module docstring.  ``per_run_default``: proxyweb's default store."""

    name = "store"

    def __init__(self, per_run_default: bool = False) -> None:
        self.per_run_default = per_run_default
        self.backend: FlowStore | None = None
        self.per_run_path: str | None = None
        self.started = False
        self._own_view: Any = None

    @property
    def hooks_active(self) -> bool:
        """Flow hooks only matter while we feed our own view (proxydump with a store): without
        one, proxydump's flows cost no hook task here."""
        return self._own_view is not None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "store", str, "",
            "Where flows are kept: 'memory', a SQLite file (PATH.db; flows survive restarts), "
            "or postgresql://... (shared by several instances). Empty: proxydump keeps none, "
            "proxyweb a per-run SQLite file in the confdir, deleted at exit unless store_keep.",
        )
        loader.add_option("store_keep", bool, False, "Keep proxyweb's per-run store file at exit.")
        loader.add_option(
            "store_memory", str, "128m",
            "Memory for full flows cached from a database store (e.g. 64m, 1g); live flows "
            "are held in addition.",
        )
        loader.add_option(
            "store_max_flows", int, 0,
            "Most flows a store keeps; the oldest unmarked go first (0: no limit).",
        )
        loader.add_option(
            "store_max_bytes", str, "0",
            "Most bytes of flows a store keeps, e.g. 2g; the oldest unmarked go first (0: no limit).",
        )
        loader.add_option(
            "store_max_age", str, "0",
            "Oldest flow a store keeps, in seconds or with s/m/h/d, e.g. 12h; marked flows "
            "stay (0: no limit).",
        )
        loader.add_option(
            "store_instance", str, "",
            "Name this instance's flows carry in a shared store (default: hostname:listen_port).",
        )
        loader.add_option(
            "store_scope", str, "instance",
            "In a shared (PostgreSQL) store, what retention and view.clear act on: 'instance' "
            "(this instance's flows; a clear hides the others' from this view only) or 'fleet' "
            "(every instance's flows, removed from every viewer).",
            choices=["instance", "fleet"],
        )

    # configuration -------------------------------------------------------------------

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        limits = {"store_max_flows", "store_max_bytes", "store_max_age", "store_memory"}
        if updated & limits:
            if opts.store_max_flows < 0:
                raise OptionsError("store_max_flows must be 0 or more")
            max_bytes = parse_size(opts.store_max_bytes) or 0
            max_age = parse_age(opts.store_max_age)
            memory = parse_size(opts.store_memory)
            if not memory:
                raise OptionsError("store_memory must be a size above 0, e.g. 128m")
            for view in self._views():
                view.cache_limit = memory
                view.retention_limits = (opts.store_max_flows, max_bytes, max_age)
                view.retention_soon()
        if "store" in updated and not self.started:
            check_spec(opts.store)
        if self.started and updated & {"store", "store_instance"}:
            self._open()
        elif "store_scope" in updated and self.backend is not None:
            self.backend.scope = opts.store_scope

    def _views(self) -> list[Any]:
        views = [v for v in (ctx.master.addons.get("view"), self._own_view) if v is not None]
        return views

    def instance(self) -> str:
        opts = ctx.options
        return opts.store_instance or f"{socket.gethostname()}:{opts.listen_port or 8080}"

    def spec(self) -> str:
        """The store to open: the option, or the tool's default ('' for none)."""
        spec = ctx.options.store
        if spec or not self.per_run_default:
            return spec
        if self.per_run_path is None:
            confdir = os.path.expanduser(ctx.options.confdir)
            os.makedirs(confdir, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.per_run_path = os.path.join(confdir, f"flows-{stamp}-{os.getpid()}.db")
        return self.per_run_path

    def _open(self) -> None:
        spec = self.spec()
        old = self.backend
        new = None
        if spec:  # the store package (hashing, SQL) is imported only for a store
            from proxycore.store import StoreError, open_store

            try:
                new = open_store(spec, self.instance())
            except StoreError as e:
                raise OptionsError(str(e)) from None
            new.scope = ctx.options.store_scope
        view = ctx.master.addons.get("view")
        if view is None and new is not None and new.persistent and self._own_view is None:
            from proxycore.addons.view import View

            self._own_view = View()
            self.configure({"store_memory"})
            ctx.master.addons.refresh_hooks()  # hooks_active changed
        target = view if view is not None else self._own_view
        if target is not None:
            target.instance = self.instance()
            # "memory" keeps the view's own structures (mitmweb's behaviour exactly).
            target.use_store(new if new is not None and new.persistent else None)
        self.backend = new
        if old is not None:
            old.close()
        if new is not None and new.persistent:
            logger.info(f"Flows are stored in {new.backend} store {new.location}.")

    def running(self) -> None:
        self.started = True
        self._open()

    def done(self) -> None:
        per_run = bool(self.per_run_path) and self.backend is not None and self.backend.location == self.per_run_path
        removed = per_run and not ctx.options.store_keep
        for view in self._views():
            view.close_store(keep=not removed)
        if self.backend is not None:
            self.backend.close()
        if per_run:
            if not removed:
                logger.info(f"Flows kept in {self.per_run_path} (open again with --set store=PATH).")
            else:
                remove = getattr(self.backend, "remove_files", None)
                if remove is not None:
                    remove()
        self.backend = None

    # without a view (proxydump): feed our own -----------------------------------------

    def requestheaders(self, flow: Flow) -> None:
        if self._own_view is not None:
            self._own_view.add([flow])

    tcp_start = udp_start = dns_request = requestheaders

    def update(self, flows: Sequence[Flow]) -> None:
        if self._own_view is not None:
            self._own_view.update(flows)

    # commands ------------------------------------------------------------------------

    def _view(self) -> Any:
        view = ctx.master.addons.get("view")
        if view is None:  # not "or": an empty view is falsy
            view = self._own_view
        if view is None:
            raise CommandError("No flow store: set the store option (e.g. --set store=flows.db).")
        return view

    @command("store.export")
    def export(self, path: types.Path, *filter_expr: str) -> None:
        """Write the stored flows matching a filter (all without one) to a flow file, or HAR
        when the path ends in .har."""
        from proxycore import flowfilter
        from proxycore.io import FlowWriter, har

        expr = " ".join(filter_expr)
        try:
            flt = flowfilter.parse(expr) if expr else flowfilter.parse("~all")
        except flowfilter.FilterError as e:
            raise CommandError(str(e)) from e
        flows = self._view()._select(flt)
        target = os.path.expanduser(path)
        try:
            if target.endswith(".har"):
                text, _ = har.dumps(flows)
                with open(target, "w", encoding="utf-8") as f:
                    f.write(text)
            else:
                with open(target, "wb") as fb:
                    writer = FlowWriter(fb)
                    for flow in flows:
                        writer.add(flow)
        except OSError as e:
            raise CommandError(f"Cannot write {target}: {e.strerror or e}") from e
        logger.info(f"Exported {len(flows)} flows to {target}.")

    @command("store.import")
    def import_file(self, path: types.Path) -> None:
        """Add the flows of a flow file or HAR file to the store (ids already there are skipped)."""
        from proxycore.io import FlowReader, FlowReadException

        view = self._view()
        count = 0
        try:
            with open(os.path.expanduser(path), "rb") as f:
                batch: list[Flow] = []
                for flow in FlowReader(f).stream():
                    batch.append(flow)
                    if len(batch) >= 500:
                        view.add(batch)
                        count += len(batch)
                        batch = []
                view.add(batch)
                count += len(batch)
        except OSError as e:
            raise CommandError(f"Cannot read {path}: {e.strerror or e}") from e
        except FlowReadException as e:
            raise CommandError(str(e)) from e
        view.sync()
        logger.info(f"Imported {count} flows from {path}.")

    @command("store.stats")
    def stats(self) -> str:
        """Flows, bytes and marked flows in the store."""
        view = self._view()
        if view.db is None:
            from proxycore.store import MemoryStore

            memory = MemoryStore()
            memory.put(view._all_flows())
            return memory.stats().text()
        view.sync()
        return view.db.stats().text()

    @command("store.vacuum")
    def vacuum(self) -> None:
        """Give the space of deleted flows back to the file system."""
        view = self._view()
        if view.db is not None:
            view.sync()
            view.db.vacuum()
