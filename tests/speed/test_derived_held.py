"""The HTTP layers hold the options' cache of derived values for their connection's life
(issue 15: each ``options._derived`` read cost a call of OptManager's ``__getattr__``
slot, five times per request). That is right only because the dict is cleared in place on
every change and never replaced: an option changed between two requests on one connection
must still decide the second one."""

from __future__ import annotations

from typing import Any

from proxycore.layers.http._head_timer import HeadTimer, derived_values
from proxycore.layers.http._http1 import _size_limits, size_limits
from proxycore.options import Options
from proxycore.proxy import events
from tests.speed.test_layer_fast_paths import GET, OK, POST, Driver


def _sent_to_client(driver: Driver) -> list[bytes]:
    return [entry[2] for entry in driver.trace if entry[0] == "send" and entry[1] == "client"]


def _exchange(driver: Driver, request: bytes, response: bytes | None = OK) -> None:
    driver.trace.clear()
    driver.feed(events.DataReceived(driver.context.client, request))
    if response is not None and driver.server is not None and any(e[0] == "send" and e[1] == "server" for e in driver.trace):
        driver.feed(events.DataReceived(driver.server, response))


def test_the_cache_is_the_options_own_and_stays_it() -> None:
    options = Options()
    cache = derived_values(options)
    assert cache is options._derived
    size_limits(options)
    assert _size_limits in cache
    options.update(body_size_limit="1k", keepalive_timeout=7)
    assert options._derived is cache and _size_limits not in cache
    assert size_limits(options).body == 1024 and cache[_size_limits].body == 1024


def test_options_without_the_cache_compute_anew() -> None:
    class Plain:
        keepalive_timeout = 5.0
        request_head_timeout = 3.0

    plain: Any = Plain()
    assert derived_values(plain) == {}
    timer = HeadTimer(plain)
    assert timer.arm(idle=True) is not None and timer.delay == 5.0
    plain.keepalive_timeout = 0
    assert timer.arm(idle=True) is None
    assert derived_values(plain) == {}  # (nothing was kept)


def test_a_change_between_requests_decides_the_next_request_body() -> None:
    driver = Driver(instant_hooks=True)
    _exchange(driver, POST)
    assert _sent_to_client(driver)[0].startswith(b"HTTP/1.1 200")
    driver.context.options.update(body_size_limit="3")  # POST's body has 5 bytes
    _exchange(driver, POST)
    assert _sent_to_client(driver)[0].startswith(b"HTTP/1.1 413")


def test_a_change_between_requests_decides_the_next_response_body() -> None:
    driver = Driver(instant_hooks=True)
    _exchange(driver, GET)
    assert b"".join(_sent_to_client(driver)).endswith(b"abc")
    driver.context.options.update(body_size_limit="2")  # OK's body has 3 bytes
    _exchange(driver, GET)
    sent = b"".join(_sent_to_client(driver))
    assert not sent.endswith(b"abc") and b"body_size_limit" in sent


def test_a_change_between_requests_decides_the_next_head() -> None:
    driver = Driver(instant_hooks=True)
    _exchange(driver, GET)
    assert _sent_to_client(driver)[0].startswith(b"HTTP/1.1 200")
    driver.context.options.update(head_size_limit="20")
    _exchange(driver, GET)
    assert not any(data.startswith(b"HTTP/1.1 200") for data in _sent_to_client(driver))


def test_a_change_between_requests_sets_the_next_keep_alive_timer() -> None:
    driver = Driver(instant_hooks=True)
    client = driver.context.client
    driver.context.options.update(keepalive_timeout=11)
    _exchange(driver, GET)
    assert client.head_timer is not None and client.head_timer.delay == 11
    driver.context.options.update(keepalive_timeout=13)
    _exchange(driver, GET)
    assert client.head_timer is not None and client.head_timer.delay == 13
