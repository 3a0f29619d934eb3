"""The GraphQL view: a query's other fields as JSON, then the query text itself."""

from __future__ import annotations

import json
from typing import Any

from proxycore.contentviews.api import Contentview, Metadata


def _one(operation: dict[str, Any]) -> str:
    header = dict(operation, query="...")
    return f"{json.dumps(header, indent=2)}\n---\n{operation['query']}\n"


def _is_query(data: Any) -> bool:
    return isinstance(data, dict) and "query" in data and "\n" in data["query"]


def _is_batch(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "query" in data[0]


class GraphQLContentview(Contentview):
    name = "GraphQL"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        parsed = json.loads(data)
        if _is_query(parsed):
            return _one(parsed)
        if _is_batch(parsed):
            last = len(parsed) - 1
            return "".join(f"--- {i}/{last}\n{_one(op)}" for i, op in enumerate(parsed))
        raise ValueError("Not a GraphQL message.")

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        if metadata.content_type != "application/json" or not data:
            return 0
        try:
            parsed = json.loads(data)
        except ValueError:
            return 0
        return 2 if _is_query(parsed) or _is_batch(parsed) else 0


graphql = GraphQLContentview()
