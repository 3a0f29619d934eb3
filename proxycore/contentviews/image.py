"""The Image view: format, size and embedded text of PNG, GIF, JPEG and ICO images."""

from __future__ import annotations

from proxycore.contentviews import imageinfo, yamlout
from proxycore.contentviews.api import Contentview, Metadata
from proxycore.contentviews.forms import merge_repeated

# Magic numbers in the order mitmproxy tries them (the old stdlib imghdr plus ICO).
_SIGNATURES = (
    ("jpeg", lambda h: h[6:10] in (b"JFIF", b"Exif") or h[:4] == b"\xff\xd8\xff\xdb"),
    ("png", lambda h: h.startswith(imageinfo.PNG_MAGIC)),
    ("gif", lambda h: h[:6] in (b"GIF87a", b"GIF89a")),
    ("tiff", lambda h: h[:2] in (b"MM", b"II")),
    ("rgb", lambda h: h.startswith(b"\x01\xda")),
    ("pbm", lambda h: len(h) >= 3 and h[0] == ord("P") and h[1] in b"14" and h[2] in b" \t\n\r"),
    ("pgm", lambda h: len(h) >= 3 and h[0] == ord("P") and h[1] in b"25" and h[2] in b" \t\n\r"),
    ("ppm", lambda h: len(h) >= 3 and h[0] == ord("P") and h[1] in b"36" and h[2] in b" \t\n\r"),
    ("rast", lambda h: h.startswith(b"\x59\xa6\x6a\x95")),
    ("xbm", lambda h: h.startswith(b"#define ")),
    ("bmp", lambda h: h.startswith(b"BM")),
    ("webp", lambda h: h.startswith(b"RIFF") and h[8:12] == b"WEBP"),
    ("exr", lambda h: h.startswith(b"\x76\x2f\x31\x01")),
    ("ico", lambda h: h.startswith(b"\x00\x00\x01\x00")),
)

_PARSERS = {
    "png": imageinfo.parse_png,
    "gif": imageinfo.parse_gif,
    "jpeg": imageinfo.parse_jpeg,
    "ico": imageinfo.parse_ico,
}


def image_type(data: bytes) -> str | None:
    for name, matches in _SIGNATURES:
        if matches(data):
            return name
    return None


class ImageContentview(Contentview):
    name = "Image"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        kind = image_type(data)
        parse = _PARSERS.get(kind or "")
        fields = parse(data) if parse else []
        title = f"{kind.upper()} Image" if kind else "Unknown Image"
        return f"# {title}\n" + yamlout.dumps(merge_repeated(fields))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        ct = metadata.content_type or ""
        return float(ct.startswith("image/") and not ct.endswith("+xml"))


image = ImageContentview()
