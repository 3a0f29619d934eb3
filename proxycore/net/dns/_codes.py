"""Name <-> number tables for DNS codes, with mitmproxy's fallback spelling ``KIND(n)``."""

from __future__ import annotations


class CodeTable:
    """Numbers of one DNS registry (types, classes...); unknown ones print as ``KIND(n)``."""

    def __init__(self, kind: str, names: dict[str, int]) -> None:
        self.kind = kind
        self.by_name = names
        self.by_number = {number: name for name, number in names.items()}

    def to_str(self, number: int) -> str:
        return self.by_number.get(number, f"{self.kind}({number})")

    def from_str(self, text: str) -> int:
        """A name of the table, or ``KIND(n)``; ValueError otherwise."""
        if text in self.by_name:
            return self.by_name[text]
        inner = text.removeprefix(f"{self.kind}(").removesuffix(")")
        return int(inner)
