"""The HTML status page as a browser sees it: rendered in headless Chromium, screenshot kept.

The page is built from plain data covering every state, so this test needs no
emulator, only Debian's `chromium` (installed by .ci/run). The DOM Chromium
dumps — not our own string — is what is checked: one cell per date with its
state, the counts (and the run ledger's attempts) in each cell's hover title, and a
legend with every state.
With TAXI_STACK=1 a missing browser fails the run instead of skipping it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from shared.core.ledger_read import RunRecord
from shared.operate.status import STATES, LakeDay, LedgerEntry, build_report
from shared.operate.status_page import render_html

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
T0 = dt.datetime(2021, 3, 2, 6, 0, tzinfo=dt.UTC)
START, END = dt.date(2021, 1, 25), dt.date(2021, 2, 10)


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        problem = "chromium not installed (apt-get install -y chromium)"
        if os.environ.get("TAXI_STACK") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return path


def run_chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
            page.as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result


def sample_report():
    """Seventeen dates across a month boundary, in every state."""
    lake, bigquery, postgres, ledger = {}, {}, {}, {}
    runs = {  # what the run ledger says of dates the counts alone would call missing
        dt.date(2021, 2, 6): [RunRecord("ingest", "11", "running", 1, updated_at=T0)],
        dt.date(2021, 2, 8): [
            RunRecord("ingest", "12", "retrying", 3, "download_failed", "HTTP 500 <from> the host", updated_at=T0)
        ],
        dt.date(2021, 2, 9): [RunRecord("ingest", "13", "dead_lettered", 1, "source_not_found", "404", updated_at=T0)],
    }
    for i in range((END - START).days + 1):
        day = START + dt.timedelta(days=i)
        rows = 40_000 + 137 * i
        if day == dt.date(2021, 2, 3):  # deleted from Postgres: partial
            lake[day], bigquery[day] = LakeDay(rows, 12, 1000 + i, T0), rows
        elif day == dt.date(2021, 2, 4):  # counts differ: mismatch
            lake[day], bigquery[day], postgres[day] = LakeDay(rows, 12, 1000 + i, T0), rows, rows - 5
        elif day == dt.date(2021, 2, 5):  # quarantined after the last good write: failed
            lake[day] = LakeDay(rows, 12, 1000 + i, T0, T0 + dt.timedelta(hours=1), "row count fell by 80%")
        elif day > dt.date(2021, 2, 7) or day in runs:  # not in the lake: missing, unless the ledger says more
            continue
        else:
            lake[day], bigquery[day], postgres[day] = LakeDay(rows, 12, 1000 + i, T0), rows, rows
            ledger[day] = LedgerEntry(str(1000 + i), rows, f"trips/yellow/pickup_date={day}/data.parquet", T0)
    return build_report(
        "yellow", START, END, lake, bigquery, postgres, ledger, runs=runs, now=T0 + dt.timedelta(minutes=2)
    )


class Cells(HTMLParser):
    """Collects day cells and legend keys from the DOM Chromium dumped."""

    def __init__(self) -> None:
        super().__init__()
        self.days: dict[str, dict[str, str]] = {}
        self.legend: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        if tag == "td" and "data-date" in attributes:
            self.days[attributes["data-date"]] = attributes
        if tag == "li" and "data-state" in attributes:
            self.legend[attributes["data-state"]] = attributes.get("data-count", "")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("status") / "status.html"
    path.write_text(render_html(sample_report()), encoding="utf-8")
    return path


def test_screenshot_is_saved_as_an_artifact(page):
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "status.png"
    target.unlink(missing_ok=True)
    run_chromium(page, f"--screenshot={target}", "--window-size=1100,760")
    assert target.exists() and target.stat().st_size > 10_000
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dom_has_every_date_in_its_state_with_counts_on_hover(page):
    dom = run_chromium(page, "--dump-dom").stdout
    (ARTIFACTS / "status.dom.html").parent.mkdir(exist_ok=True)
    (ARTIFACTS / "status.dom.html").write_text(dom, encoding="utf-8")
    cells = Cells()
    cells.feed(dom)
    assert len(cells.days) == 17  # 2021-01-25..2021-02-10 inclusive, nothing outside the range
    states = {day: cell["data-state"] for day, cell in cells.days.items()}
    assert states["2021-01-25"] == states["2021-02-02"] == "complete"
    assert states["2021-02-03"] == "partial"
    assert states["2021-02-04"] == "mismatch"
    assert states["2021-02-05"] == "failed"
    assert states["2021-02-06"] == "running"
    assert states["2021-02-08"] == "retrying"
    assert states["2021-02-09"] == "dead_lettered"
    assert states["2021-02-10"] == "missing"
    assert all(f"state-{states[day]}" in cell["class"] for day, cell in cells.days.items())
    hover = cells.days["2021-02-04"]["title"]
    assert "2021-02-04 yellow: mismatch" in hover
    assert "lake: 41,370 rows (12 rejected)" in hover and "Postgres: 41,365 rows" in hover
    assert "quarantined: row count fell by 80%" in cells.days["2021-02-05"]["title"]
    retrying = cells.days["2021-02-08"]["title"]
    assert "2021-02-08 yellow: retrying (attempt 3, download_failed)" in retrying
    assert "ingest retrying, attempt 3 (download_failed): HTTP 500 <from> the host" in retrying  # escaped, read back
    assert "dead_lettered (source_not_found)" in cells.days["2021-02-09"]["title"]
    assert cells.legend == {
        "complete": "10",
        "awaiting_source": "0",
        "queued": "0",
        "running": "1",
        "retrying": "1",
        "partial": "1",
        "mismatch": "1",
        "failed": "1",
        "undelivered": "0",
        "dead_lettered": "1",
        "missing": "1",
    }
    assert set(cells.legend) == set(STATES)
    # What heals each date that is not complete (issue 21, part 3), as the browser shows it.
    assert "next: the scheduled repair republishes it (attempt 1 of 5)" in cells.days["2021-02-03"]["title"]
    dead = cells.days["2021-02-09"]["title"]
    assert "next: a person must act" in dead
    assert "local: ./local_emulator.sh replay --reason source_not_found --function ingest" in dead
    assert "next: the platform is still delivering or retrying it" in retrying
