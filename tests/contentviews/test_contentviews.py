"""Content views: outputs equal mitmproxy 12.3.1's (goldens in tests/data/contentviews), the
registry API addons use, and properties over arbitrary input."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore import contentviews, http
from proxycore.contentviews import yamlout
from proxycore.contentviews.hexdump import _address_digits, hex_stream, hexdump
from proxycore.contentviews.xml_html import format_xml, tokenize
from proxycore.tcp import TCPMessage
from proxycore.websocket import WebSocketMessage
from tests.hypothesis_budget import budget

GOLDEN = Path(__file__).parents[1] / "data" / "contentviews"
VIEWS = json.loads((GOLDEN / "views.json").read_text())
YAML_CASES = json.loads((GOLDEN / "yaml.json").read_text())


def build(case: dict) -> object:
    data = base64.b64decode(case["content_b64"])
    if case["kind"] == "request":
        request = http.Request.make(case.get("method", "GET"), case.get("url", "http://example.com/"), b"", case["headers"])
        request.raw_content = data
        return request
    if case["kind"] == "response":
        response = http.Response.make(200, b"", case["headers"])
        response.raw_content = data
        return response
    if case["kind"] == "websocket":
        return WebSocketMessage(case["opcode"], True, data)
    return TCPMessage(False, data)


def summary(result: contentviews.ContentviewResult) -> dict:
    out = {"view_name": result.view_name, "syntax_highlight": result.syntax_highlight, "description": result.description}
    if result.syntax_highlight == "error":
        # mitmproxy's traceback names its own files; compare the frame around it
        lines = result.text.strip().splitlines()
        out["text_first_line"], out["text_last_line"] = lines[0], lines[-1]
    else:
        out["text"] = result.text
    return out


@pytest.mark.parametrize("case", VIEWS["cases"], ids=[c["id"] for c in VIEWS["cases"]])
def test_view_output_equals_mitmproxy(case):
    result = contentviews.prettify_message(build(case), None, case["view"])
    assert summary(result) == case["result"]


def test_yaml_text_equals_ruamel_for_random_mappings():
    mismatches = []
    for case in YAML_CASES:
        data = dict(case["data"])
        if yamlout.dumps(data) != case["yaml"]:
            mismatches.append(data)
    assert not mismatches[:3]
    assert len(YAML_CASES) >= 1000


def test_view_names_like_mitmweb_state():
    names = contentviews.view_names()
    assert names[0] == "auto" and "query" not in names
    assert names[1:] == sorted(names[1:])
    builtin = {"raw", "hex dump", "hex stream", "json", "xml/html", "javascript", "viewcss", "url-encoded",
               "multipart form", "image", "graphql"}
    assert builtin <= set(names)
    assert builtin | {"auto", "query"} <= set(VIEWS["available_views"])  # mitmproxy's names


def test_lookup_is_case_insensitive_and_unknown_falls_back_to_auto(caplog):
    response = http.Response.make(200, b'{"a": 1}', {"content-type": "application/json"})
    assert contentviews.prettify_message(response, None, "HEX STREAM").text == b'{"a": 1}'.hex()
    assert contentviews.prettify_message(response, None, "Auto").view_name == "JSON"
    result = contentviews.prettify_message(response, None, "nope")
    assert result.view_name == "JSON" and "Unknown contentview 'nope'" in caplog.text
    assert contentviews.get("xml/HTML") is contentviews.registry["xml/html"]
    assert contentviews.get("nope") is None


def test_missing_content():
    response = http.Response.make(200, b"")
    response.raw_content = None
    result = contentviews.prettify_message(response, None)
    assert (result.text, result.view_name, result.syntax_highlight, result.description) == (
        "Content is missing.", None, "error", "")


def test_explicit_view_failure_shows_the_error():
    response = http.Response.make(200, b"not json")
    result = contentviews.prettify_message(response, None, "json")
    assert result.syntax_highlight == "error" and result.view_name == "JSON"
    assert result.text.startswith("Couldn't parse as JSON:\nTraceback (most recent call last):\n")
    assert "prettify_message" not in result.text  # the traceback starts in the view


def test_addon_views_can_be_added_replaced_and_removed():
    class ShoutContentview(contentviews.Contentview):
        def prettify(self, data, metadata):
            return data.decode().upper()

        def render_priority(self, data, metadata):
            return 5 if metadata.content_type == "text/x-shout" else 0

    contentviews.add(ShoutContentview)
    try:
        assert "shout" in contentviews.view_names()
        response = http.Response.make(200, b"hey\x01", {"content-type": "text/x-shout; charset=utf-8"})
        result = contentviews.prettify_message(response, None)
        assert (result.text, result.view_name) == ("HEY.", "Shout")
        assert contentviews.prettify_message(response, None, "raw").text == "hey."
    finally:
        contentviews.remove(ShoutContentview)
    assert "shout" not in contentviews.view_names()


def test_a_view_with_a_broken_render_priority_is_skipped(caplog):
    class Broken(contentviews.Contentview):
        name = "Broken"

        def prettify(self, data, metadata):
            return "never"

        def render_priority(self, data, metadata):
            raise RuntimeError("boom")

    contentviews.add(Broken())
    try:
        result = contentviews.prettify_message(http.Response.make(200, b"text"), None)
        assert result.view_name == "Raw" and "Error in Broken.render_priority" in caplog.text
    finally:
        contentviews.remove("broken")


def test_hexdump_address_width_grows_with_the_data():
    # measured with mitmproxy_rs 0.12: 4 digits up to 0x1000 full lines, then 6, then 8
    assert hexdump(bytes(0x10001)).splitlines()[-1].startswith("10000:   00 ")
    assert hexdump(bytes(0x10010)).splitlines()[0].startswith("000000:")
    assert _address_digits(0x1000000) == 6 and _address_digits(0x1000010) == 8
    assert hexdump(b"") == ""


@given(st.binary(max_size=300))
def test_hex_stream_reencodes_to_the_same_bytes(data):
    assert hex_stream.reencode(hex_stream.prettify(data, contentviews.Metadata()) + "\n", contentviews.Metadata()) == data


@budget(300)
@given(
    st.binary(max_size=400),
    st.sampled_from(["", "application/json", "text/html", "text/xml", "text/css", "application/javascript",
                     "multipart/form-data; boundary=b", "application/x-www-form-urlencoded", "image/png",
                     "image/gif", "image/jpeg", "image/x-icon", "text/plain; charset=utf-16"]),
    st.sampled_from(["auto", *contentviews.view_names()[1:], "query"]),
    st.sampled_from(["", "gzip", "br", "deflate", "zstd", "bogus"]),
)
def test_prettify_never_raises(data, content_type, view, coding):
    headers = {"content-type": content_type} if content_type else {}
    if coding:
        headers["content-encoding"] = coding
    for message in (http.Response.make(200, b"", headers), http.Request.make("POST", "http://x/?a=1", b"", headers)):
        message.raw_content = data
        result = contentviews.prettify_message(message, None, view)
        assert isinstance(result.text, str)
        assert not any(ch in result.text for ch in "\x00\x1b\x7f")


@given(st.binary(max_size=300).map(lambda b: b"\x89PNG\r\n\x1a\n" + b) | st.binary(max_size=300).map(lambda b: b"GIF89a" + b)
       | st.binary(max_size=300).map(lambda b: b"\xff\xd8\xff\xe0\x00\x10JFIF" + b) | st.binary(max_size=300).map(lambda b: b"\x00\x00\x01\x00" + b))
def test_image_parsers_only_raise_value_errors(data):
    view = contentviews.registry["image"]
    try:
        text = view.prettify(data, contentviews.Metadata())
    except ValueError:
        return
    assert text.startswith("# ")


@given(st.text(alphabet="<>/!-[]CDATA abc\n=\"'", max_size=200))
def test_xml_formatter_keeps_every_non_space_character(doc):
    formatted = format_xml(tokenize(doc))
    assert "".join(formatted.split()) == "".join(doc.split())


@given(st.dictionaries(st.text(max_size=130), st.text(max_size=200) | st.lists(st.text(max_size=50), min_size=2, max_size=3), max_size=4))
def test_yaml_dumps_any_mapping(data):
    text = yamlout.dumps(data)
    assert text == "" if not data else text.endswith("\n")


@pytest.mark.parametrize(
    "content_type, content, charset",
    [("", b"", "latin-1"), ("text/html", b"", "utf8"), ("text/html", b'<meta charset="iso-8859-2">', "iso-8859-2"),
     ("application/xml", b'<?xml version="1.0" encoding="windows-1252"?>', "windows-1252"),
     ("text/css", b'@charset "utf-16";', "utf-16"), ("text/plain; charset=GBK", b"", "gb18030"),
     ("application/json", b"", "utf8"), ("text/plain", b"\xef\xbb\xbfx", "utf-8-sig"),
     ("text/plain", b"\xff\xfe\x00\x00", "utf-32le"), ("application/javascript", b"", "utf8"),
     ('text/plain; charset="utf-8"', b"", '"utf-8"')],  # quotes kept, as mitmproxy does
)
def test_charset_inference_like_mitmproxy(content_type, content, charset):
    assert http.infer_content_encoding(content_type, content) == charset


def test_get_text_falls_back_to_utf8_with_surrogates():
    response = http.Response.make(200, b"", {"content-type": "text/plain; charset=nope"})
    response.raw_content = b"caf\xc3\xa9 \xff"
    assert response.get_text(strict=False) == "café \udcff"
    with pytest.raises(ValueError, match="nope"):
        response.get_text()  # ValueError as in mitmproxy, also for an unknown charset
