"""Runs the browser tests and ends with one line, `e2e: <N> passed, <M> failed`
(what `make e2e` promises); the exit status is non-zero on any failure."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest


class Count:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            self.failed += 1
        elif report.when == "call" and report.passed:
            self.passed += 1


def main() -> int:
    count = Count()
    here = Path(__file__).resolve().parent
    status = pytest.main(["-q", "-p", "no:cacheprovider", "-o", "addopts=", str(here), *sys.argv[1:]],
                         plugins=[count])
    failed = count.failed if count.failed or status == 0 else max(1, count.failed)
    print(f"e2e: {count.passed} passed, {failed} failed", flush=True)
    return 0 if status == 0 and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
