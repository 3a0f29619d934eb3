"""proxycore/utils/malloc.py: glibc keeps body-sized buffers instead of faulting them in
afresh for every response."""

from __future__ import annotations

import http.client
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from proxycore.utils import malloc
from tests.processes import Proxy

GLIBC = malloc._glibc()


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_tune_takes_both_thresholds_on_glibc(monkeypatch):
    for name in [n for n in os.environ if n.startswith("MALLOC_")]:
        monkeypatch.delenv(name)
    assert malloc.tune() is True


def test_glibc_variables_leave_the_choice_to_the_user(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert malloc.tune() is False


def _minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


@pytest.mark.e2e
@pytest.mark.skipif(not GLIBC or not Path("/proc/self/stat").exists(), reason="glibc on Linux")
def test_buffered_1_mib_responses_do_not_fault_their_buffers_in_each_time(tmp_path, upstream):
    """Four connections fetching 1 MiB bodies at once (the bench's http_1m_c4): without the
    tuning each response cost ~235 minor faults, its buffer's pages."""
    proxy = Proxy(["-q"], tmp_path)

    def fetch(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        for _ in range(count):
            conn.request("GET", f"http://127.0.0.1:{upstream}/big/1048576")
            response = conn.getresponse()
            assert response.status == 200 and len(response.read()) == 1048576
        conn.close()

    def four(count: int) -> None:
        with ThreadPoolExecutor(4) as pool:
            for future in [pool.submit(fetch, count) for _ in range(4)]:
                future.result()

    try:
        four(3)  # the heap grows to its working size first
        before = _minor_faults(proxy.proc.pid)
        four(10)
        per_response = (_minor_faults(proxy.proc.pid) - before) / 40
    finally:
        assert proxy.stop() == 0
    assert per_response < 60, per_response
