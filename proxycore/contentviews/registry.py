"""The set of known content views and the choice of the best one for some data."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from proxycore.contentviews.api import Contentview, Metadata

logger = logging.getLogger("proxycore.contentviews")


class ContentviewRegistry(Mapping[str, Contentview]):
    """Views by lowercase name; registering a name again replaces the old view."""

    def __init__(self) -> None:
        self._by_name: dict[str, Contentview] = {}

    def register(self, view: Contentview | type[Contentview]) -> None:
        if isinstance(view, type):
            view = view()
        name = view.name.lower()
        if name in self._by_name:
            logger.info(f"Replacing existing {name} contentview.")
        self._by_name[name] = view

    def unregister(self, view: Contentview | str) -> None:
        name = (view if isinstance(view, str) else view.name).lower()
        self._by_name.pop(name, None)

    def available_views(self) -> list[str]:
        """``"auto"`` and then every registered name, sorted."""
        return ["auto", *sorted(self._by_name)]

    def get_view(self, data: bytes, metadata: Metadata, view_name: str = "auto") -> Contentview:
        """The view called ``view_name``, or the best one if that is "auto" or unknown."""
        if view_name.lower() != "auto":
            try:
                return self[view_name]
            except KeyError:
                logger.warning(f"Unknown contentview {view_name!r}, selecting best match instead.")
        best: tuple[float, Contentview] | None = None
        for view in self._by_name.values():
            try:
                priority = view.render_priority(data, metadata)
                if not isinstance(priority, int | float):
                    raise TypeError(f"render_priority for {view.name} did not return a number.")
            except Exception:
                logger.exception(f"Error in {view.name}.render_priority")
                continue
            if best is None or best[0] < priority:
                best = (priority, view)
        if best is None:
            raise RuntimeError("no content view has a working render_priority")
        return best[1]

    def __getitem__(self, name: str) -> Contentview:
        return self._by_name[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)
