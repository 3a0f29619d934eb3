"""Option ``modify_body``: regex replacements in bodies with ``[/flow-filter]/regex/[@]replacement``.

The regex runs over the decoded body (``.content``; re-encoded afterwards) with ``re.DOTALL``,
on requests in ``request`` and responses in ``response``. The replacement is literal bytes
(``\\n``-style escapes allowed), or the contents of a file with ``@path``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from proxycore import ctx
from proxycore.addonmanager import Loader
from proxycore.addons.modifyheaders import read_replacement
from proxycore.http import HTTPFlow, Message
from proxycore.utils.spec import ModifySpec, RuleAddon, matching, parse_modify_spec, parse_option

logger = logging.getLogger("proxycore.modifybody")


def parse_modify_body_spec(option: str) -> ModifySpec:
    return parse_modify_spec(option, subject_is_regex=True)


class ModifyBody(RuleAddon[ModifySpec]):
    def load(self, loader: Loader) -> None:
        loader.add_option(
            "modify_body", Sequence[str], [],
            'Replacement pattern of the form "[/flow-filter]/regex/[@]replacement", where the '
            "separator can be any character. The @ allows to provide a file path that is used "
            "to read the replacement string.",
        )

    def configure(self, updated: set[str]) -> None:
        if "modify_body" in updated:
            self.rules = parse_option("modify_body", ctx.options.modify_body, parse_modify_body_spec)
        if (
            ctx.options.modify_body
            and ctx.options.stream_large_bodies
            and updated & {"modify_body", "stream_large_bodies"}
        ):
            logger.warning(
                "Both modify_body and stream_large_bodies are active. "
                "Streamed bodies will not be modified."
            )

    def request(self, flow: HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        self.run(flow, flow.request)

    def response(self, flow: HTTPFlow) -> None:
        if flow.error or not flow.live or flow.response is None:
            return
        self.run(flow, flow.response)

    def run(self, flow: HTTPFlow, message: Message) -> None:
        for rule in matching(self.rules, flow):
            replacement = read_replacement(rule)
            if replacement is None:
                continue
            try:
                content = message.content
            except ValueError as e:  # a body that claims an encoding it does not have
                logger.warning(f"Cannot modify body of {flow.request.pretty_url}: {e}")
                return
            if content is None:  # streamed: nothing kept to modify
                return

            def insert(_: re.Match[bytes], r: bytes = replacement) -> bytes:
                return r  # a function, so that backslashes in the replacement stay literal

            modified = re.sub(rule.subject, insert, content, flags=re.DOTALL)
            if modified != content:  # unchanged bodies keep their original encoding bytes
                message.content = modified
