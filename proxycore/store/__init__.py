"""Flow stores: where the view's flows live (memory, SQLite file, PostgreSQL fleet)."""

from __future__ import annotations

import os

from proxycore.store.base import FlowStore, Record, Stats, StoreError, record_of
from proxycore.store.memory import MemoryStore

__all__ = ["FlowStore", "MemoryStore", "Record", "Stats", "StoreError", "open_store", "record_of"]


def open_store(spec: str, instance: str = "") -> FlowStore:
    """The store ``spec`` names: ``memory``, ``postgresql://...`` or a SQLite file path."""
    if spec == "memory":
        return MemoryStore()
    if spec.startswith(("postgresql://", "postgres://")):
        from proxycore.store.postgres import PostgresStore

        return PostgresStore(spec, instance)
    from proxycore.store.sqlite import SQLiteStore

    path = os.path.expanduser(spec)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise StoreError(f"cannot open store {spec}: no directory {parent}")
    return SQLiteStore(path, instance)
