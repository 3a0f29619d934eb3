"""The terminal log's line format, compared with mitmdump 12.3.1's."""

from __future__ import annotations

import io
import logging
import re

from proxycore.addons.termlog import TermLogHandler


def line(**extra: object) -> str:
    handler = TermLogHandler(io.StringIO())
    record = logging.LogRecord("proxycore", logging.INFO, __file__, 1, "server connect 1.2.3.4:80", None, None)
    record.__dict__.update(extra)
    return handler.format(record)


def test_a_connection_is_named_right_after_the_time():
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\.\d{3}\]\[127\.0\.0\.1:5\] server connect 1\.2\.3\.4:80",
                        line(client=("127.0.0.1", 5)))


def test_a_replay_label_is_set_apart_from_the_time_as_mitmdump_does():
    # mitmdump: "[01:31:14.245] [replay] server connect localhost:18543 (127.0.0.1:18543)"
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\.\d{3}\] \[replay\] server connect 1\.2\.3\.4:80", line(client="replay"))


def test_a_record_without_a_connection():
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\.\d{3}\] server connect 1\.2\.3\.4:80", line())
