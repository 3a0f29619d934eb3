"""Request and response keep their raw fields in separate typed classes (RequestData,
ResponseData over MessageData), as mitmproxy does; equality, copies and state stay as before."""

from __future__ import annotations

import copy

import pytest

from proxycore.http import MessageData, Request, RequestData, Response, ResponseData
from proxycore.test.tutils import treq, tresp


def test_each_message_has_its_own_data_class() -> None:
    request, response = treq(), tresp()
    assert type(request.data) is RequestData and type(response.data) is ResponseData
    assert isinstance(request.data, MessageData) and isinstance(response.data, MessageData)
    # the fields of the other side are not there at all (slots, no __dict__)
    assert not hasattr(request.data, "status_code") and not hasattr(response.data, "method")
    with pytest.raises(AttributeError):
        request.data.status_code = 200  # type: ignore[attr-defined]  # the point of the test
    assert not hasattr(request.data, "__dict__")


def test_data_equality_compares_every_field_of_the_same_kind() -> None:
    a, b = treq(), treq()
    b.timestamp_start = a.timestamp_start
    b.timestamp_end = a.timestamp_end
    assert a.data == b.data
    b.data.path = b"/other"
    assert a.data != b.data
    b.data.path = a.data.path
    b.headers["x"] = "1"  # a base-class field counts as well
    assert a.data != b.data
    assert treq().data != tresp().data  # a request's data never equals a response's
    with pytest.raises(TypeError):
        hash(a.data)


def test_copies_and_state_round_trips_keep_the_data_class() -> None:
    request, response = treq(content=b"body"), tresp(content=b"answer")
    for message in (request, response):
        duplicate = copy.deepcopy(message)
        assert type(duplicate.data) is type(message.data)
        assert duplicate.data == message.data and duplicate.data is not message.data
        duplicate.headers["changed"] = "yes"
        assert "changed" not in message.headers
    assert Request.from_state(request.get_state()).data == request.data
    assert Response.from_state(response.get_state()).data == response.data
