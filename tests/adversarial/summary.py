"""The adversarial battery's summary table, a plugin that tests/conftest.py loads.

Each attack's row rides on its teardown report (``user_properties``, see conftest.py here),
so the table is complete also when pytest-xdist runs the attacks in worker processes and
only the controlling process, which loads no conftest below tests/, prints it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / ".cache" / "adversarial-summary.jsonl"
ROWS: list[dict[str, Any]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, row in report.user_properties:
        if key == "adversarial_row":
            ROWS[:] = [r for r in ROWS if r["attack"] != row["attack"]]
            ROWS.append(row)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("adversarial battery")
    write(f"{'attack':<46} {'outcome':<70} {'canary':>9} {'peak RSS':>13} {'cpu':>5} {'s':>5}")
    for row in ROWS:
        rss = "-" if row["peak_rss_mib"] is None else f"{row['peak_rss_mib']:.0f}"
        canary = f"{row['canary_failures']}/{row['canary_requests']}"
        mark = "" if row["passed"] else "  FAILED"
        if not row["passed"]:
            write(f"  {row['outcome']}")
        cpu = "-" if row["proxy_cpu_s"] is None else f"{row['proxy_cpu_s']:.1f}"
        write(f"{row['attack']:<46} {row['outcome'][:70]:<70} {canary:>9} {rss:>6}/{row['limit_mib']:<4} MiB "
              f"{cpu:>5} {row['seconds']:>5}{mark}")
    write(f"(canary: failed/sent requests; peak RSS/bound; cpu: the proxy's CPU seconds; s: wall seconds. "
          f"Rows in {SUMMARY.relative_to(ROOT)})")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not ROWS or hasattr(session.config, "workerinput"):  # an xdist worker: its controller writes
        return
    SUMMARY.parent.mkdir(exist_ok=True)
    with SUMMARY.open("w") as f:
        for row in ROWS:
            f.write(json.dumps(row) + "\n")
