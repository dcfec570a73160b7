"""Paths shared by all tests: the repository and the team's read-only kit beside it."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KIT = REPO.parent / "shared"
REAL_YELLOW_SAMPLE = KIT / "data" / "real" / "yellow_tripdata_2021-01_head100.csv"


@pytest.fixture(scope="session")
def real_yellow_sample() -> Path:
    """The first 99 rows of TLC's yellow 2021-01 file (3 with zero passengers)."""
    if not REAL_YELLOW_SAMPLE.exists():
        pytest.fail(f"the team kit is missing: {REAL_YELLOW_SAMPLE} (tests read ../shared beside the repo)")
    return REAL_YELLOW_SAMPLE
