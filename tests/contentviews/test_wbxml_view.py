"""The WBXML view against what mitmproxy's prints for the same bodies
(tests/data/wbxml/goldens.json, recorded by record.py there), and properties."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore import contentviews, http
from proxycore.contentviews.api import Metadata
from proxycore.contentviews.wbxml_view import MAX_DEPTH, wbxml
from tests.hypothesis_budget import budget

GOLDENS = json.loads((Path(__file__).parents[1] / "data" / "wbxml" / "goldens.json").read_text())
HEADER = b"\x03\x01\x6a\x00"


@pytest.mark.parametrize("case", GOLDENS, ids=[str(i) for i in range(len(GOLDENS))])
def test_output_equals_mitmproxy(case):
    data = base64.b64decode(case["data"])
    try:
        got = {"text": wbxml.prettify(data, Metadata())}
    except ValueError:
        got = {"error": True}
    expected = dict(case["expected"])
    if "text" in expected:
        # The one deliberate difference: mitmproxy reads each string byte as a character;
        # we decode UTF-8 (ActiveSync's charset), so "café" is not "cafÃ©".
        try:
            expected["text"] = expected["text"].encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    assert got == expected


@budget(300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_text_or_a_value_error(data):
    for body in (data, HEADER + data, HEADER + b"\x45" + data):
        try:
            assert isinstance(wbxml.prettify(body, Metadata()), str)
        except ValueError:
            pass


def test_a_string_without_its_nul_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="NUL"):
        wbxml.prettify(HEADER + b"\x45\x03abc", Metadata())


def test_nesting_is_bounded():
    with pytest.raises(ValueError, match="nested deeper"):
        wbxml.prettify(HEADER + b"\x45" * (MAX_DEPTH + 5), Metadata())


def test_picked_for_activesync_content_types():
    response = http.Response.make(200, b"", {"content-type": "application/vnd.ms-sync.wbxml"})
    response.raw_content = HEADER + b"\x45\x4b" + b"\x03" + b"7" + b"\x00\x01\x01"
    result = contentviews.prettify_message(response, None)
    assert result.view_name == "WBXML" and result.syntax_highlight == "xml"
    assert result.text == '<?xml version="1.0" ?>\n<Sync>\n    <SyncKey>7</SyncKey>\n</Sync>\n'
