"""mitmproxy-compatible flow files: read, write, upgrade old versions.

>>> with open("flows.mitm", "wb") as f:          # doctest: +SKIP
...     FlowWriter(f).add(flow)
>>> with open("flows.mitm", "rb") as f:          # doctest: +SKIP
...     flows = list(FlowReader(f).stream())
"""

from proxycore.io.io import (
    FilteredFlowWriter,
    FlowReader,
    FlowReadException,
    FlowWriter,
    read_flows_for,
    read_flows_from_paths,
)

__all__ = [
    "FilteredFlowWriter",
    "FlowReadException",
    "FlowReader",
    "FlowWriter",
    "read_flows_for",
    "read_flows_from_paths",
]
