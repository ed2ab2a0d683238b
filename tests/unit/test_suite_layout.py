"""The test suite's own layout, checked in the fast lane."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_files_share_a_name() -> None:
    # The test folders are not packages, so pytest imports each file by its basename: two
    # files with one name stop the whole run at collection. `make check` collects tests/unit
    # alone and would never see it; only the full run (CI) does.
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    shared = sorted(name for name, count in names.items() if count > 1)
    assert not shared, f"test files that share a name (rename one): {shared}"
