"""The JSON view: re-indented with four spaces, non-ASCII characters kept."""

from __future__ import annotations

import json

from proxycore.contentviews.api import Contentview, Metadata


class JSONContentview(Contentview):
    name = "JSON"
    syntax_highlight = "yaml"  # JSON is YAML, and the YAML highlighter colours it well

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return json.dumps(json.loads(data), indent=4, ensure_ascii=False)

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        if not data:
            return 0
        ct = metadata.content_type or ""
        if ct in ("application/json", "application/json-rpc"):
            return 1
        if ct.startswith("application/") and ct.endswith("json"):
            return 1
        return 0


json_view = JSONContentview()
