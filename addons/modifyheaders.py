"""Option ``modify_headers``: set or remove headers with ``[/flow-filter]/name/[@]value`` rules.

Each matching rule first removes every ``name`` header, then adds ``value`` unless it is
empty, so an empty value deletes the header. ``@path`` reads the value from a file on every
use (a trailing line break is dropped). Rules apply to requests in ``requestheaders`` and to
responses in ``responseheaders``; filters are evaluated before any rule changes the flow.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from proxycore import ctx
from proxycore.addonmanager import Loader
from proxycore.http import Headers, HTTPFlow
from proxycore.utils.spec import (
    ModifySpec,
    RuleAddon,
    SpecError,
    matching,
    parse_modify_spec,
    parse_option,
)

logger = logging.getLogger("proxycore.modifyheaders")


def parse_modify_headers_spec(option: str) -> ModifySpec:
    spec = parse_modify_spec(option, subject_is_regex=False)
    if not spec.subject.strip():
        raise SpecError("empty header name")
    return spec


def read_replacement(rule: ModifySpec) -> bytes | None:
    """The rule's replacement, or None (after a warning) if its file cannot be read now."""
    try:
        return rule.read_replacement()
    except OSError as e:
        logger.warning(f"Could not read replacement file: {e}")
        return None


class ModifyHeaders(RuleAddon[ModifySpec]):
    def load(self, loader: Loader) -> None:
        loader.add_option(
            "modify_headers", Sequence[str], [],
            'Header modify pattern of the form "[/flow-filter]/header-name/[@]header-value", where '
            "the separator can be any character. The @ allows to provide a file path that is used "
            "to read the header value string. An empty header-value removes existing header-name "
            "headers.",
        )

    def configure(self, updated: set[str]) -> None:
        if "modify_headers" in updated:
            self.rules = parse_option("modify_headers", ctx.options.modify_headers, parse_modify_headers_spec)

    def requestheaders(self, flow: HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        self.run(flow, flow.request.headers)

    def responseheaders(self, flow: HTTPFlow) -> None:
        if flow.error or not flow.live or flow.response is None:
            return
        self.run(flow, flow.response.headers)

    def run(self, flow: HTTPFlow, headers: Headers) -> None:
        rules = list(matching(self.rules, flow))  # every filter sees the flow as it came in
        for rule in rules:
            headers.pop(rule.subject, None)
        for rule in rules:
            value = read_replacement(rule)
            if value and rule.replacement_str.startswith("@"):
                value = value.rstrip(b"\r\n")
            if value:
                headers.add(rule.subject, value)
