import os

import pytest
from hypothesis import HealthCheck, settings

# HYPOTHESIS_PROFILE picks how hard the property tests try:
#   fast (default, CI): 50 examples per property (more where a test asks for at_least(n));
#   deep: 5,000; thorough: 100,000 per property and no deadline, for a one-off run of the
#   parser properties (docs/testing.md says how).
settings.register_profile("fast", max_examples=50, deadline=None)
settings.register_profile("deep", max_examples=5000, deadline=None)
settings.register_profile(
    "thorough", max_examples=100_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
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
