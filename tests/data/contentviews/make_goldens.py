"""Writes the content view goldens from real mitmproxy 12.3.1.

Run with a Python that has mitmproxy 12.3.1 installed (not proxycore's venv):

    .cache-m12/bin/python tests/data/contentviews/make_goldens.py

Writes ``views.json`` (inputs and mitmproxy's ContentviewResult for each case) and
``yaml.json`` (random flat mappings and ruamel.yaml's text for them) next to this file.
The inputs are built here, so the test only needs the JSON files.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import struct
import zlib
from pathlib import Path

from mitmproxy import contentviews, http, tcp, version, websocket
from mitmproxy.test import tflow
from ruamel.yaml import YAML

HERE = Path(__file__).parent
assert version.VERSION == "12.3.1", version.VERSION


# ---------------------------------------------------------------- images
def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def make_png(extra: list[tuple[bytes, bytes]]) -> bytes:
    ihdr = struct.pack(">IIBBBBB", 3, 2, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\xff\x00\x00" * 3 + b"\x00" + b"\x00\xff\x00" * 3)
    chunks = [png_chunk(b"IHDR", ihdr), *(png_chunk(k, b) for k, b in extra), png_chunk(b"IDAT", idat)]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + png_chunk(b"IEND", b"")


PNG_PLAIN = make_png([])
PNG_META = make_png(
    [
        (b"gAMA", struct.pack(">I", 45455)),
        (b"pHYs", struct.pack(">IIB", 2835, 2835, 1)),
        (b"tEXt", b"Title\x00A red square"),
        (b"tEXt", b"Comment\x00caf\xe9"),
        (b"zTXt", b"Author\x00\x00" + zlib.compress(b"Some One")),
        (b"iTXt", b"Description\x00\x00\x00en\x00Beschreibung\x00gr\xc3\xbc\xc3\x9fe"),
        (b"tEXt", b"Title\x00A second title"),
    ]
)
GIF = (
    b"GIF89a" + struct.pack("<HHBBB", 5, 7, 0x80, 1, 0)
    + b"\x00\x00\x00\xff\xff\xff"  # global colour table, 2 entries
    + b"\x21\xfe\x0chello world!\x05again\x00"  # comment extension
    + b"\x21\xfe\x00"  # an empty comment
    + b"\x2c" + struct.pack("<HHHHB", 0, 0, 5, 7, 0) + b"\x02\x02\x44\x01\x00"
    + b"\x3b"
)


def jpeg_segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def tiff_ifd0(fields: list[tuple[int, int, bytes]]) -> bytes:
    """A little-endian TIFF header and IFD0 whose field values all live after the IFD."""
    head = b"II*\x00" + struct.pack("<I", 8)
    data_at = 8 + 2 + 12 * len(fields) + 4
    entries, blob = b"", b""
    for tag, kind, value in fields:
        count = len(value)
        if count <= 4:
            entries += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
        else:
            entries += struct.pack("<HHII", tag, kind, count, data_at + len(blob))
            blob += value
    return head + struct.pack("<H", len(fields)) + entries + b"\x00\x00\x00\x00" + blob


SOF0 = jpeg_segment(0xC0, b"\x08" + struct.pack(">HH", 48, 64) + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01")
JPEG_JFIF = (
    b"\xff\xd8"
    + jpeg_segment(0xE0, b"JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x00\x00")
    + jpeg_segment(0xFE, b"a jpeg comment")
    + SOF0
    + b"\xff\xd9"
)
JPEG_EXIF = (
    b"\xff\xd8"
    + jpeg_segment(
        0xE1,
        b"Exif\x00\x00"
        + tiff_ifd0([(0x010F, 2, b"Camera Maker\x00"), (0x0110, 2, b"Model 7\x00"), (0x0112, 3, b"\x01\x00")]),
    )
    + SOF0
    + b"\xff\xd9"
)
ICO = (
    struct.pack("<HHH", 0, 1, 2)
    + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(PNG_PLAIN), 6 + 32)
    + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 8, 40, 6 + 32 + len(PNG_PLAIN))
    + PNG_PLAIN
    + bytes(40)
)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + bytes(24)


# ---------------------------------------------------------------- bodies
MULTIPART = (
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="field"\r\n\r\n'
    b"value one\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="field"\r\n\r\n'
    b"value two\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="upload"; filename="a.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\n"
    b"line 1\r\nline 2 \xff\r\n"
    b"--XyZ--\r\n"
)
XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- a comment -->'
    b"<root a=\"1\"><item>one</item><item>two<b>bold</b></item><empty/><empty></empty>"
    b"<![CDATA[ <not> a tag ]]><text>\n   multi\n   line\n</text>"
    b"<deep><a><b><c><d><e><f><g><h><i><j><k><l><m><n><o><p><q><r><s>x</s></r></q></p></o></n>"
    b"</m></l></k></j></i></h></g></f></e></d></c></b></a></deep></root>"
)
HTML = (
    "<!DOCTYPE html>\n<html><head><meta charset=utf-8><title>Tïtle</title>"
    "<link rel=stylesheet href=a.css><script>if (a < b) { x(); }</script></head>"
    "<body><p>Some <em>inline</em> text<br>next line</p><ul><li>one</li><li>two\n   lines</li></ul>"
    "<img src=x.png><div></div></body></html>"
).encode()
CSS = b"body{color:red;margin:0 auto}a:hover,a:focus{text-decoration:underline}/* a {b} comment */@media (max-width:600px){p{font-size:12px;content:\"a;b{c}\"}}"
JS = (
    b"function f(a,b){if(a<b){return 'x;y{z}';}else{for(var i=0;i<3;i++){g(i);}}}"
    b"var re=/ab+c;/g;var s=\"q{\";// comment {\nconst t=`tpl ${a};`;f(1,2);"
)
GRAPHQL = json.dumps({"query": "query Q {\n  user { id }\n}", "variables": {"id": 1}, "operationName": "Q"}).encode()
GRAPHQL_BATCH = json.dumps([{"query": "{ a }"}, {"query": "{ b }", "variables": None}]).encode()

rng = random.Random(1234)
BINARY = bytes(rng.randrange(256) for _ in range(300))


def case(id: str, kind: str, data: bytes, headers: list[tuple[str, str]] = (), view: str = "auto", **extra):
    return {"id": id, "kind": kind, "content_b64": base64.b64encode(data).decode(),
            "headers": [list(h) for h in headers], "view": view, **extra}


JSON_CT = [("content-type", "application/json")]
CASES = [
    case("json-object", "response", b'{"b": [1, 2.5, {"c": null}], "a": "\\u00fc\\ud83d\\ude00", "t": true}', JSON_CT),
    case("json-array", "response", b"[1, [], {}, \"x\"]", [("Content-Type", "application/json; charset=utf-8")]),
    case("json-vendor", "response", b'{"data": {"id": "1"}}', [("content-type", "application/vnd.api+json")]),
    case("json-rpc", "request", b'{"jsonrpc": "2.0", "method": "m"}', [("content-type", "application/json-rpc")], method="POST"),
    case("json-invalid", "response", b"{not json", JSON_CT),
    case("json-explicit-on-text", "response", b"plain text", [("content-type", "text/plain")], view="json"),
    case("json-gzip", "response", gzip.compress(b'{"zipped": 1}', mtime=0), JSON_CT + [("content-encoding", "gzip")]),
    case("gzip-broken", "response", b"not gzip at all", [("content-type", "text/plain"), ("content-encoding", "gzip")]),
    case("encoding-unknown", "response", b"abc", [("content-encoding", "foo")]),
    case("urlencoded", "request", b"a=1&b=hello+world&a=2&empty=&%C3%BC=%FF&flag&x=%0A%09",
         [("content-type", "application/x-www-form-urlencoded")], method="POST"),
    case("urlencoded-long", "request", b"text=" + b"lorem+ipsum+" * 20 + b"&q=it%27s&n=1.5&t=true&d=2024-01-02&k=%23hash&c=a%3A+b",
         [("content-type", "application/x-www-form-urlencoded")], method="POST"),
    case("multipart", "request", MULTIPART, [("content-type", "multipart/form-data; boundary=XyZ")], method="POST"),
    case("multipart-no-boundary", "request", MULTIPART, [("content-type", "multipart/form-data")], method="POST"),
    case("multipart-broken", "request", b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nvalue\r\n--XyZ--",
         [("content-type", "multipart/form-data; boundary=XyZ")], method="POST"),
    case("xml", "response", XML, [("content-type", "text/xml")]),
    case("xml-sniffed", "response", b"\r\n  <a><b>text</b></a>"),
    case("html", "response", HTML, [("content-type", "text/html")]),
    case("html-latin1", "response", "<p>caf\xe9</p>".encode("latin-1"), [("content-type", "text/html; charset=iso-8859-1")]),
    case("css", "response", CSS, [("content-type", "text/css")]),
    case("javascript", "response", JS, [("content-type", "application/javascript")]),
    case("graphql", "request", GRAPHQL, JSON_CT, method="POST"),
    case("graphql-batch", "request", GRAPHQL_BATCH, JSON_CT, method="POST"),
    case("graphql-explicit-not", "request", b'{"a": 1}', JSON_CT, view="graphql", method="POST"),
    case("binary", "response", BINARY, [("content-type", "application/octet-stream")]),
    case("binary-short", "response", b"\x00\x01\x02abc\xff", []),
    case("binary-17", "response", bytes(range(256))[100:117], []),
    case("all-bytes", "response", bytes(range(256)), [], view="hex dump"),
    case("hex-stream", "response", b"\x00hello\xff", [], view="Hex Stream"),
    case("text-plain", "response", b"just text\nwith\x01control\x7fchars\ttab\r\n", [("content-type", "text/plain")]),
    case("text-latin1-bytes", "response", b"caf\xe9 \xe9t\xe9", [("content-type", "text/plain")]),
    case("empty-response", "response", b"", [("content-type", "application/json")]),
    case("query", "request", b"", [], url="http://example.com/p?a=1&b=x%20y&a=2&c=&d=true"),
    case("query-with-body", "request", b"body", [], url="http://example.com/p?a=1", method="POST"),
    case("query-explicit-response", "response", b"x", [], view="query"),
    case("png", "response", PNG_META, [("content-type", "image/png")]),
    case("png-plain", "response", PNG_PLAIN, [("content-type", "image/png")]),
    case("gif", "response", GIF, [("content-type", "image/gif")]),
    case("jpeg", "response", JPEG_JFIF, [("content-type", "image/jpeg")]),
    case("jpeg-exif", "response", JPEG_EXIF, [("content-type", "image/jpeg")]),
    case("ico", "response", ICO, [("content-type", "image/x-icon")]),
    case("ico-truncated", "response", ICO[:-36], [("content-type", "image/vnd.microsoft.icon")]),
    case("urlencoded-ascii", "request", b"a=1&b=hello+world&a=2&empty=&flag&x=%0A%09&q=it%27s",
         [("content-type", "application/x-www-form-urlencoded")], method="POST"),
    case("webp", "response", WEBP, [("content-type", "image/webp")]),
    case("image-unknown", "response", b"definitely not an image", [("content-type", "image/png")]),
    case("image-svg", "response", b"<svg><g/></svg>", [("content-type", "image/svg+xml")]),
    case("png-truncated", "response", PNG_META[:40], [("content-type", "image/png")]),
    case("explicit-raw", "response", b'{"a": 1}', JSON_CT, view="Raw"),
    case("explicit-xml-on-json", "response", b'{"a": "<b>"}', JSON_CT, view="xml/html"),
    case("unknown-view", "response", b'{"a": 1}', JSON_CT, view="no-such-view"),
    case("ws-text", "websocket", b'{"hello": "ws"}', opcode=1),
    case("ws-binary", "websocket", b"\x00\x01binary\xfe", opcode=2),
    case("ws-xml", "websocket", b"<a><b/></a>", opcode=1),
    case("tcp", "tcp", b"\x16\x03\x01\x00\x05hello"),
    case("tcp-text", "tcp", b"EHLO example.com\r\n"),
]


def build(c):
    data = base64.b64decode(c["content_b64"])
    headers = [(k.encode(), v.encode()) for k, v in c["headers"]]
    f = tflow.tflow(resp=True)
    if c["kind"] == "request":
        req = http.Request.make(c.get("method", "GET"), c.get("url", "http://example.com/"), b"", headers)
        req.raw_content = data
        f.request = req
        return req, f
    if c["kind"] == "response":
        resp = http.Response.make(200, b"", headers)
        resp.raw_content = data
        f.response = resp
        return resp, f
    if c["kind"] == "websocket":
        f = tflow.twebsocketflow()
        msg = websocket.WebSocketMessage(c["opcode"], True, data)
        f.websocket.messages = [msg]
        return msg, f
    f = tflow.ttcpflow()
    msg = tcp.TCPMessage(False, data)
    f.messages = [msg]
    return msg, f


def result(c):
    message, f = build(c)
    r = contentviews.prettify_message(message, f, c["view"])
    out = {"view_name": r.view_name, "syntax_highlight": r.syntax_highlight, "description": r.description}
    if r.syntax_highlight == "error":
        # Tracebacks name files of the mitmproxy installation: keep the first and last line.
        lines = r.text.strip().splitlines()
        out["text_first_line"], out["text_last_line"] = lines[0], lines[-1]
    else:
        out["text"] = r.text
    return out


# ---------------------------------------------------------------- YAML
ALPHABET = list("abcxyz  AZ09") + list("'\"#:-?,[]{}&*!|>%@`~=<.\\/\t\n") + ["\x85", "\u2028", "ü", "\U0001f600", "\ufeff", "\x00", "\x7f", "\xa0"]
WORDS = ["true", "false", "null", "~", "1", "-2", "1.5", ".5", "1e3", "0x1f", "0o7", ".inf", ".nan", "2001-12-14",
         "2001-12-14 21:59:43.10 -5", "<<", "=", "yes", "on", "---", "...", "- a", "a: b", "a #b", "#a", " ", "",
         "it's", "'q'", "\"dq\"", "a\nb", "word " * 20, "x" * 90, "ab " * 40 + "tail", "it's " * 25, "a\\nb " * 30]


def random_text() -> str:
    r = rng.random()
    if r < 0.3:
        return rng.choice(WORDS)
    if r < 0.5:
        return " ".join(rng.choice(["lorem", "ipsum", "dolor", "it's", "a:b", "#x", "q\"", "sit"]) for _ in range(rng.randrange(1, 40)))
    n = rng.choice([0, 1, 2, 3, 5, 8, 20, 70, 79, 80, 81, 120, 125, 200])
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def yaml_text(d) -> str:
    if not d:
        return ""
    out = io.StringIO()
    YAML(typ="rt", pure=True).dump(d, out)
    return out.getvalue()


def yaml_cases():
    out = []
    for _ in range(1500):
        d = {}
        for _ in range(rng.randrange(1, 4)):
            key = random_text() if rng.random() < 0.5 else rng.choice(["k", "key", "a b"])
            if rng.random() < 0.2:
                d[key] = [random_text() for _ in range(rng.randrange(2, 4))]
            else:
                d[key] = random_text()
        out.append({"data": list(d.items()), "yaml": yaml_text(d)})
    return out


def main() -> None:
    from mitmproxy.test import taddons

    with taddons.context():
        write()


def write() -> None:
    views = {
        "mitmproxy": version.VERSION,
        "available_views": contentviews.registry.available_views(),
        "cases": [{**c, "result": result(c)} for c in CASES],
    }
    (HERE / "views.json").write_text(json.dumps(views, indent=1, ensure_ascii=False) + "\n")
    (HERE / "yaml.json").write_text(json.dumps(yaml_cases(), ensure_ascii=True) + "\n")
    print("wrote", len(CASES), "view cases; sha256 of views.json",
          hashlib.sha256((HERE / "views.json").read_bytes()).hexdigest()[:12])


if __name__ == "__main__":
    main()
