"""``block_list``: answer requests matching a filter with a fixed status, or drop them.

Each entry is ``<sep>filter<sep>status``, the separator being its first character
(``/~d ads.example/404``).  Status 444 closes the connection without a response, as
nginx does.  Matching flows get ``metadata["blocklisted"] = True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from proxycore.exceptions import OptionsError
from proxycore.http import HTTPFlow, Response

NO_RESPONSE = 444


class BlockSpec(NamedTuple):
    matches: Any
    status_code: int


def parse_spec(option: str) -> BlockSpec:
    """``"/filter/status"`` -> BlockSpec; ValueError naming what is wrong."""
    if not option:
        raise ValueError("empty specification")
    separator, rest = option[0], option[1:]
    parts = rest.split(separator, 2)
    if len(parts) != 2:
        raise ValueError("Invalid number of parameters (2 are expected)")
    pattern, status = parts
    try:
        code = int(status)
    except ValueError:
        raise ValueError(f"Invalid HTTP status code: {status}") from None
    if not 100 <= code <= 999:
        raise ValueError(f"Invalid HTTP status code: {status}")
    from proxycore import flowfilter

    return BlockSpec(flowfilter.parse(pattern), code)


class BlockList:
    def __init__(self) -> None:
        self.items: list[BlockSpec] = []

    @property
    def hooks_active(self) -> bool:
        """No rules, no request hook: nothing to pay per request."""
        return bool(self.items)

    def load(self, loader: Any) -> None:
        loader.add_option(
            "block_list", Sequence[str], [],
            'Answer matching requests with an empty response of the given status: "/filter/status", '
            "any character as separator. Status 444 closes the connection without a response.",
        )

    def configure(self, updated: set[str]) -> None:
        from proxycore import ctx

        if "block_list" in updated:
            items = []
            for option in ctx.options.block_list:
                try:
                    items.append(parse_spec(option))
                except ValueError as e:
                    raise OptionsError(f"Cannot parse block_list option {option}: {e}") from None
            self.items = items

    def request(self, flow: HTTPFlow) -> None:
        if not self.items or flow.response is not None or flow.error is not None or not flow.live:
            return
        for spec in self.items:
            if spec.matches(flow):
                flow.metadata["blocklisted"] = True
                if spec.status_code == NO_RESPONSE:
                    flow.kill()
                else:
                    from proxycore.version import MITMPROXY

                    flow.response = Response.make(spec.status_code, b"", {"Server": MITMPROXY})
                return
