import os

import pytest
from hypothesis import settings

settings.register_profile("fast", max_examples=50, deadline=None)
settings.register_profile("deep", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


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
