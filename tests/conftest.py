"""Paths shared by all tests: the repository and the test data it carries (tests/data)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
REAL_YELLOW_SAMPLE = DATA / "yellow_tripdata_2021-01_head100.csv"


@pytest.fixture(scope="session")
def real_yellow_sample() -> Path:
    """The first 99 rows of TLC's yellow 2021-01 file (3 with zero passengers); see tests/data/SOURCES.md."""
    return REAL_YELLOW_SAMPLE
