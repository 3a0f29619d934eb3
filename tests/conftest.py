import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.hypothesis_budget import EVERYDAY

# HYPOTHESIS_PROFILE picks how hard the property tests try:
#   fast (default): 50 random examples per property (more where a test asks for budget(n));
#   ci (.ci/run): the same 50, derived from each test rather than drawn at random, so a
#   landing is judged on (nearly) the same examples each time: hypothesis also mixes in
#   constants of the modules imported so far, which the order of the tests can change (seen
#   once: a request with Content-Encoding "0"); random exploration is for `make test` and
#   the deeper profiles;
#   deep: 5,000; thorough: 100,000 per property and no deadline, for a one-off run of the
#   parser properties (docs/testing.md says how).
settings.register_profile("fast", max_examples=EVERYDAY, deadline=None)
settings.register_profile("ci", max_examples=EVERYDAY, deadline=None, derandomize=True)
settings.register_profile("deep", max_examples=5000, deadline=None)
settings.register_profile(
    "thorough", max_examples=100_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

# The adversarial battery's table is printed by the process that reports, which under
# pytest-xdist loads no conftest below this one.
pytest_plugins = ("tests.adversarial.summary",)


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a PostgreSQL server started for this test session (tests/pg_server.py)."""
    from tests.pg_server import server

    with server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh database on the session's PostgreSQL server."""
    from tests.pg_server import new_database

    return new_database(postgres_server)


# --------------------------------------------------------------------------- origins


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """The port of an HTTP/1.1 origin on 127.0.0.1 (tests/e2e_servers.py), one per module."""
    from tests.e2e_servers import start_http

    server, port = start_http()
    yield port
    server.shutdown()


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The same origin over HTTPS (a self-signed certificate), one per module."""
    from tests.e2e_servers import start_http

    server, port = start_http(tmp_path_factory.mktemp("tls"))
    yield port
    server.shutdown()


# --------------------------------------------------------------------------- markers


# Fixtures that may build a venv under .cache/ on first use (pip installs: a minute or more
# on a machine whose pip cache is empty), longer than the default per-test timeout.
VENV_FIXTURES = {"mitmproxy_pythons", "mitm_python", "py312_python"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e/ and tests/adversarial/, and every test on the PostgreSQL
    server (a process, reached over libpq where the e2e guard cannot see it), is e2e. A test
    whose fixture may build a venv gets 15 minutes instead of the default timeout."""
    for item in items:
        parts = item.path.relative_to(item.config.rootpath).parts
        uses = getattr(item, "fixturenames", ())
        if parts[:2] in (("tests", "e2e"), ("tests", "adversarial")) or "postgres_server" in uses:
            item.add_marker(pytest.mark.e2e)
        if VENV_FIXTURES & set(uses) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(900))


def _guarded(item: pytest.Item, phase: str):
    """Run one phase of a test not marked e2e under tests/e2e_guard.py's watch.

    Teardown is not watched: the last test of a session tears down the session's fixtures
    (the PostgreSQL server), whatever test that is."""
    if item.get_closest_marker("e2e") is not None:
        return (yield)
    from tests.e2e_guard import complaint, watch

    with watch() as seen:
        result = yield
    if seen:
        pytest.fail(complaint(phase, seen), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    return (yield from _guarded(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from _guarded(item, "call"))


@pytest.fixture(scope="session")
def mitmproxy_pythons(request: pytest.FixtureRequest) -> dict[str, object]:
    """Real mitmproxy 11.0.2 and 12.3.1, each in its venv under .cache/ (tests/real_mitmproxy.py):
    version -> interpreter, for reading back the flow files a test wrote."""
    from tests.real_mitmproxy import VERSIONS, mitmproxy_python

    return {version: mitmproxy_python(version, request.config) for version in VERSIONS}
