"""Per-file figures of a conformance run (junit xml files) as a Markdown table, and every
test that did not pass with the first line of its failure."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def result_name(target: str) -> str:
    return target.removeprefix("test/mitmproxy/").removesuffix(".py").replace("/", "__")


def main(results: Path, targets: list[str]) -> None:
    total_collected = total_passed = 0
    rows, failures = [], []
    for target in targets:
        path = results / f"{result_name(target)}.xml"
        if not path.exists():
            rows.append(f"| {target} | not run | |")
            continue
        cases = ET.parse(path).getroot().iter("testcase")
        collected = passed = 0
        for case in cases:
            collected += 1
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            if problem is None and case.find("skipped") is None:
                passed += 1
            elif problem is not None:
                first = (problem.get("message") or "").splitlines()[0:1] or [""]
                failures.append(f"| {target} | `{case.get('name')}` | {first[0][:140]} |")
        total_collected += collected
        total_passed += passed
        rows.append(f"| {target} | {passed}/{collected} | {100 * passed / max(collected, 1):.0f}% |")
    print("| file | passed/collected | rate |\n|---|---|---|")
    print("\n".join(rows))
    rate = 100 * total_passed / max(total_collected, 1)
    print(f"| **total** | **{total_passed}/{total_collected}** | **{rate:.1f}%** |\n")
    print("| file | test | first line of the failure |\n|---|---|---|")
    print("\n".join(failures))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
