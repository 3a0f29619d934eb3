"""The ZIP view: the names of the files in an archive, as a YAML list."""

from __future__ import annotations

import io
import zipfile

from proxycore.contentviews import yamltree
from proxycore.contentviews.api import Contentview, Metadata


class ZipContentview(Contentview):
    name = "ZIP Archive"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = [info.filename for info in archive.infolist()]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as e:
            raise ValueError(f"not a ZIP archive: {e}") from None
        return yamltree.dumps(names) if names else "(empty zip file)"

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return 1 if data and metadata.content_type == "application/zip" else 0


zip_archive = ZipContentview()
