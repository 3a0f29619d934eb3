"""Option ``map_remote``: send requests elsewhere with ``[/flow-filter]/url-regex/replacement``.

The regex is applied (``re.sub``, so ``\\1`` group references work) to the request's
``pretty_url``; if the URL changed, the request goes to the new URL (scheme, host, port, path,
and the Host header follow).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from proxycore import ctx
from proxycore.addonmanager import Loader
from proxycore.http import HTTPFlow
from proxycore.utils.spec import RuleAddon, Spec, check_regex, matching, parse_option, parse_spec

logger = logging.getLogger("proxycore.mapremote")


def parse_map_remote_spec(option: str) -> Spec:
    spec = parse_spec(option)
    check_regex(spec.subject)
    return spec


class MapRemote(RuleAddon[Spec]):
    def load(self, loader: Loader) -> None:
        loader.add_option(
            "map_remote", Sequence[str], [],
            "Map remote resources to another remote URL using a pattern of the form "
            '"[/flow-filter]/url-regex/replacement", where the separator can be any character.',
        )

    def configure(self, updated: set[str]) -> None:
        if "map_remote" in updated:
            self.rules = parse_option("map_remote", ctx.options.map_remote, parse_map_remote_spec)

    def request(self, flow: HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        for rule in matching(self.rules, flow):
            url = flow.request.pretty_url
            try:
                new_url = re.sub(rule.subject, rule.replacement, url)
            except (re.error, IndexError) as e:  # e.g. a group reference the regex does not have
                logger.warning(f"map_remote: cannot apply {rule.replacement!r} to {url}: {e}")
                continue
            if new_url == url:
                continue  # setting .url would also rewrite the Host header
            try:
                flow.request.url = new_url
            except ValueError as e:
                logger.warning(f"map_remote: {url} would become an invalid URL {new_url!r}: {e}")
