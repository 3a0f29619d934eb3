"""A throwaway PostgreSQL server for the store tests: initdb + pg_ctl in a temp directory.

Binaries come from the Debian ``postgresql`` package (/usr/lib/postgresql/*/bin).  Without
them the tests are skipped, unless PROXYCORE_REQUIRE_POSTGRES=1 (set by .ci/run), when
they fail.  As root, the server runs as the ``postgres`` user (initdb refuses root).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

_names = itertools.count()


def _bindir() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


def unavailable(reason: str) -> None:
    if os.environ.get("PROXYCORE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL required (PROXYCORE_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(reason)


@contextmanager
def server() -> Iterator[str]:
    """A running server; yields the URL of its ``postgres`` database."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[dev]')")
    bindir = _bindir()
    if bindir is None:
        unavailable("no initdb: apt-get install -y postgresql (.ci/run does)")
    assert bindir is not None
    prefix: list[str] = []
    base = tempfile.mkdtemp(prefix="proxycore-pg-")
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and there is no postgres user to run the server as")
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(base, "data")
    port = 20000 + os.getpid() % 20000
    run = lambda *args: subprocess.run(  # noqa: E731
        [*prefix, *args], check=True, capture_output=True, timeout=120
    )
    run(f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync")
    options = f"-k {base} -p {port} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
    run(f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", os.path.join(base, "log"), "-w", "start")
    try:
        yield f"postgresql://postgres@/postgres?host={base}&port={port}"
    finally:
        subprocess.run([*prefix, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def new_database(url: str) -> str:
    """A fresh, empty database on the server ``url`` points to; its URL."""
    import psycopg

    name = f"t{os.getpid()}_{next(_names)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.replace("/postgres?", f"/{name}?")
