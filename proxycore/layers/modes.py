"""Top layers of the proxy modes: they decide what the first layer below is."""

from __future__ import annotations

from proxycore import events
from proxycore.layer import CommandGenerator, Layer, NextLayer


class HttpProxy(Layer):
    """Regular (explicit) proxy: the next_layer hook picks HttpLayer(regular) for the client."""

    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(context)
        self.child_layer = NextLayer(self.context)

    def handle_event(self, event: events.Event) -> CommandGenerator:
        # Never blocks itself, so the child's generator can be handed up unwrapped.
        return self.child_layer.handle_event(event)

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        return self.child_layer.handle_event(event)
