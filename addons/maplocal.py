"""Option ``map_local``: answer requests from local files with
``[/flow-filter]/url-regex/file-or-directory-path``.

For a file, every matching URL gets that file. For a directory, the part of the URL after
the regex match (or the regex's first group) names the file below it, with ``index.html``
for directories; names that would leave the directory (``..``, absolute paths) are never
served. Responses are 200 with a Content-Type guessed from the file name, or 404 when no
candidate file exists. The server is not contacted for mapped requests.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NamedTuple

from proxycore import __version__, ctx
from proxycore.addonmanager import Loader
from proxycore.http import HTTPFlow, Response
from proxycore.utils.spec import (
    RuleAddon,
    SpecError,
    check_regex,
    matching,
    parse_option,
    parse_spec,
)

if TYPE_CHECKING:
    from proxycore.flowfilter import Filter

logger = logging.getLogger("proxycore.maplocal")


class MapLocalSpec(NamedTuple):
    matches: Filter
    regex: str
    local_path: Path


def parse_map_local_spec(option: str) -> MapLocalSpec:
    matches, regex, replacement = parse_spec(option)
    check_regex(regex)
    try:
        path = Path(replacement).expanduser().resolve(strict=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise SpecError(f"Invalid file path: {replacement} ({e})") from None
    return MapLocalSpec(matches, regex, path)


def safe_join(root: Path, untrusted: str) -> Path | None:
    """``root / untrusted`` if every part of ``untrusted`` is a plain name, else None."""
    parts = PurePosixPath(untrusted).parts
    for part in parts:
        if part in ("", ".", "..") or "/" in part or "\\" in part or "\0" in part:
            return None
    return root.joinpath(*parts)


def file_candidates(url: str, spec: MapLocalSpec) -> list[Path]:
    """Files that could answer ``url`` below ``spec.local_path``, best first (the regex matches)."""
    match = re.search(spec.regex, url)
    assert match
    if match.groups():
        suffix = match.group(1) or ""
    else:
        suffix = url[match.end():].split("?", 1)[0]  # the rest of the path, without the query
    suffix = suffix.strip("/")
    if not suffix:
        return [spec.local_path / "index.html"]
    decoded = urllib.parse.unquote(suffix)
    names = [decoded, f"{decoded}/index.html"]
    escaped = re.sub(r"[^0-9a-zA-Z\-_.=(),/]", "_", decoded)
    if escaped != decoded:
        names += [escaped, f"{escaped}/index.html"]
    candidates = [safe_join(spec.local_path, name) for name in names]
    if any(c is None for c in candidates):
        return []
    return [c for c in candidates if c is not None]


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # e.g. a name too long for the file system
        return False


class MapLocal(RuleAddon[MapLocalSpec]):
    def load(self, loader: Loader) -> None:
        loader.add_option(
            "map_local", Sequence[str], [],
            "Map remote resources to a local file using a pattern of the form "
            '"[/flow-filter]/url-regex/file-or-directory-path", where the separator can be any '
            "character.",
        )

    def configure(self, updated: set[str]) -> None:
        if "map_local" in updated:
            self.rules = parse_option("map_local", ctx.options.map_local, parse_map_local_spec)

    def request(self, flow: HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        url = flow.request.pretty_url
        tried: list[Path] = []
        for rule in matching(self.rules, flow):
            if not re.search(rule.regex, url):
                continue
            candidates = [rule.local_path] if _is_file(rule.local_path) else file_candidates(url, rule)
            tried += candidates
            local_file = next((c for c in candidates if _is_file(c)), None)
            if local_file is None:
                continue
            try:
                contents = local_file.read_bytes()
            except OSError as e:
                logger.warning(f"Could not read file: {e}")
                continue
            headers = {"Server": f"proxycore {__version__}"}
            import mimetypes  # its type table is read at the first file served

            mimetype = mimetypes.guess_type(local_file.name)[0]
            if mimetype:
                headers["Content-Type"] = mimetype
            flow.response = Response.make(200, contents, headers)
            return  # the first rule with a file answers
        if tried:
            flow.response = Response.make(404)
            logger.info(f"None of the local file candidates exist: {', '.join(map(str, tried))}")
