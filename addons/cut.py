"""Cut addon: pick values out of flows (``cut @all request.method,response.status_code``).

A cut specification is an attribute path from the flow, as in mitmproxy:
``request.host``, ``response.status_code``, ``client_conn.peername.port``,
``request.header[User-Agent]``. ``host`` and ``port`` after an address give its
parts; booleans become "true"/"false", certificates PEM text, bytes stay bytes,
everything else becomes a string (missing or empty values become "").
``cut.save`` and ``cut.clip`` write one value as it is, or several as CSV.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from typing import Any

from proxycore import types
from proxycore.addons.termlog import ALERT
from proxycore.command import command
from proxycore.exceptions import CommandError
from proxycore.flow import Flow
from proxycore.http import HTTPFlow
from proxycore.utils import clipboard

logger = logging.getLogger("proxycore.cut")


def header_name(spec: str) -> str:
    if not (spec.startswith("header[") and spec.endswith("]")):
        raise CommandError(f"Invalid header spec: {spec}")
    return spec[len("header[") : -1].strip()


headername = header_name  # mitmproxy's name


def _is_address(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) > 1


def extract(cut: str, flow: Flow) -> str | bytes:
    """The value ``cut`` names in ``flow``: str, or bytes for bodies."""
    if (
        isinstance(flow, HTTPFlow)
        and flow.websocket is not None
        and cut in ("request.content", "response.content")
    ):
        # "Save the body" of a WebSocket flow: its messages, one per line.
        return b"\n".join(
            (b"[OUTGOING] " if m.from_client else b"[INCOMING] ") + m.content for m in flow.websocket.messages
        )
    parts = cut.split(".")
    current: Any = flow
    for i, spec in enumerate(parts):
        if spec.startswith("_"):
            raise CommandError(f"Can't access internal attribute {spec}")
        try:
            value = getattr(current, spec, None)
        except (ValueError, TypeError) as e:  # e.g. request.text of a body that does not decode
            raise CommandError(f"Can't cut {cut}: {e}") from e
        if i == len(parts) - 1:
            if spec == "port" and _is_address(current):
                return str(current[1])
            if spec == "host" and _is_address(current):
                return str(current[0])
            if spec.startswith("header["):
                headers = getattr(current, "headers", None)
                return headers.get(header_name(spec), "") if headers is not None else ""
            if isinstance(value, bytes):
                return value
            if isinstance(value, bool):
                return "true" if value else "false"
            # Imported here: cryptography costs ~10 MB, and a proxy that never cuts a
            # certificate field should not load it at start.
            from proxycore.certs import Cert

            if isinstance(value, Cert):
                return value.to_pem().decode("ascii")
            if isinstance(value, list) and value and isinstance(value[0], Cert):
                return value[0].to_pem().decode("ascii")  # the leaf of a chain
        current = value
    return str(current or "")


def extract_str(cut: str, flow: Flow) -> str:
    """Like extract, with bytes shown as their Python literal (for CSV)."""
    value = extract(cut, flow)
    return repr(value) if isinstance(value, bytes) else value


def _csv(flows: Sequence[Flow], cuts: Sequence[str], out: io.TextIOBase | Any) -> None:
    import csv  # only cut commands with several values write CSV

    writer = csv.writer(out)
    for flow in flows:
        writer.writerow([extract_str(c, flow) for c in cuts])


class Cut:
    @command("cut")
    def cut(self, flows: Sequence[Flow], cuts: types.CutSpec) -> types.Data:
        """Values from flows, one row per flow and one column per cut specification
        (an attribute path such as request.method, response.header[Content-Type] or
        server_conn.address.host). Bodies are bytes, everything else text.
        """
        # types.Data names the result for the command catalogue; the value is a plain list
        return [[extract(c, flow) for c in cuts] for flow in flows]  # type: ignore[return-value]

    @command("cut.save")
    def save(self, flows: Sequence[Flow], cuts: types.CutSpec, path: types.Path) -> None:
        """Save cuts to a file: one value as it is (bodies keep their bytes), several as
        UTF-8 CSV. A path starting with + appends.
        """
        append = path.startswith("+")
        target = os.path.expanduser(path[1:]) if append else path
        try:
            if len(cuts) == 1 and len(flows) == 1:
                with open(target, "ab" if append else "wb") as fp:
                    if fp.tell() > 0:
                        fp.write(b"\n")  # appending to a file that has content
                    value = extract(cuts[0], flows[0])
                    fp.write(value if isinstance(value, bytes) else value.encode("utf-8"))
                logger.log(ALERT, "Saved single cut.")
            else:
                with open(target, "a" if append else "w", newline="", encoding="utf-8") as tfp:
                    _csv(flows, cuts, tfp)
                logger.log(ALERT, f"Saved {len(cuts)} cuts over {len(flows)} flows as CSV.")
        except OSError as e:
            logger.error(str(e))

    @command("cut.clip")
    def clip(self, flows: Sequence[Flow], cuts: types.CutSpec) -> None:
        """Copy cuts to the system clipboard: one value as it is, several as CSV."""
        out = io.StringIO(newline="")
        if len(cuts) == 1 and len(flows) == 1:
            out.write(extract_str(cuts[0], flows[0]))
        else:
            _csv(flows, cuts, out)
        try:
            clipboard.copy(out.getvalue())
        except clipboard.ClipboardError as e:
            logger.error(str(e))  # logged, not raised, as mitmproxy's clip commands do
            return
        if len(cuts) == 1 and len(flows) == 1:
            logger.log(ALERT, "Clipped single cut.")
        else:
            logger.log(ALERT, f"Clipped {len(cuts)} cuts as CSV.")
