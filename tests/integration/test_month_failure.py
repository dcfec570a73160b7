"""A month whose file fails for good is downloaded once, and its other dates fail at once (issue 18, part 6).

Through the running stack: the stack's TLC server serves a green 2016-03 file whose fares are all
`n/a` (the month fails as `bad_value`: more than 1% of a column unreadable). Five dates of the
month published together: the TLC server's log shows exactly one download of the file, and the
five dates are five structured dead letters with the same reason and field. Before the fix each
waiting date took the month's claim in turn and downloaded and split the file again (5 downloads).
Then the file is fixed and the month's dead letters replayed (`./local_emulator.sh replay`), which
deletes the recorded failure first: all five dates end complete, from one more download.
green 2016-03 is a month no other test uses.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from local.tlc_data import generate_month
from local.tlc_files import write_month
from shared.core import clients, paths
from tests.integration import stack_http
from tests.integration.months import forget, stack_tlc_dir
from tests.integration.test_replay import local_emulator

SERVICE, YEAR, MONTH = "green", 2016, 3
DATES = [f"2016-03-{day:02d}" for day in (3, 9, 15, 21, 27)]
FILE = f"{SERVICE}_tripdata_{YEAR}-{MONTH:02d}.csv.gz"


def downloads() -> int:
    """GETs of the month file the stack's TLC server logged (one line per request)."""
    log = Path(os.environ["TAXI_STATE_DIR"]) / "logs" / "tlc.log"
    return sum(1 for line in log.read_text().splitlines() if f'"GET /{SERVICE}/{FILE} ' in line)


def serve(data_dir: Path, corrupt: bool) -> pa.Table:
    month = generate_month(SERVICE, YEAR, MONTH, rows=2_000, seed=23)
    if corrupt:
        index = month.column_names.index("fare_amount")
        month = month.set_column(index, "fare_amount", pa.array(["n/a"] * month.num_rows, pa.string()))
    (data_dir / SERVICE).mkdir(exist_ok=True)
    write_month(data_dir / SERVICE / FILE, month, "csv.gz")
    return month


@pytest.fixture
def bad_month(stack):
    data_dir = stack_tlc_dir()
    bucket = clients.storage().bucket(os.environ["LAKE_BUCKET"])
    forget(
        bucket,
        f"raw/{SERVICE}/{FILE}",
        f"quarantine/raw/{SERVICE}/{FILE}",
        f"staging/{SERVICE}/month={YEAR}-{MONTH:02d}/",
        *(f"trips/{SERVICE}/pickup_date={d}/" for d in DATES),
        *(f"runs/{SERVICE}/pickup_date={d}/" for d in DATES),
    )
    serve(data_dir, corrupt=True)
    yield data_dir, bucket
    (data_dir / SERVICE / FILE).unlink(missing_ok=True)


def test_a_failed_month_is_downloaded_once_and_its_dates_fail_at_once_until_replayed(
    bad_month, urls, pubsub, dead_letters
):
    data_dir, bucket = bad_month
    before = downloads()
    topic = pubsub.publisher.topic_path(pubsub.project, os.environ["INGEST_TOPIC"])
    for date in DATES:  # as a backfill delivers them: all at once
        pubsub.publisher.publish(topic, json.dumps({"date": date, "service": SERVICE}).encode()).result(timeout=30)

    days = stack_http.wait_for(
        urls,
        SERVICE,
        DATES,
        lambda d: all(d[date]["state"] == "dead_lettered" for date in DATES),
        "dead-lettered",
        timeout=300,
    )
    assert {days[date]["run"]["reason"] for date in DATES} == {"bad_value"}, days
    assert downloads() - before == 1, "the month file is downloaded once, whatever the number of its dates"

    letters = [b for b in dead_letters(expected=len(DATES), timeout=60) if b["context"].get("date") in DATES]
    assert sorted(b["context"]["date"] for b in letters) == DATES
    assert {(b["reason"], b["error"]["reason"], b["error"]["field"]) for b in letters} == {
        ("bad_value", "bad_value", "fare_amount")
    }, letters
    record_uri = f"gs://{bucket.name}/{paths.staging_failure(SERVICE, YEAR, MONTH)}"
    assert {b["error"].get("month_failure") for b in letters} == {record_uri}, "each letter names the record"
    record = json.loads(bucket.blob(paths.staging_failure(SERVICE, YEAR, MONTH)).download_as_bytes())
    assert record["reason"] == "bad_value" and record["source"]["source_size"], record

    serve(data_dir, corrupt=False)  # the source is fixed
    fixed = downloads()
    out = local_emulator("replay", "--reason", "bad_value", "--function", "ingest", "--service", SERVICE)
    replayed = [line for line in out.splitlines() if line.startswith(f"replayed ingest bad_value {SERVICE} 2016-03-")]
    assert len(replayed) == len(DATES), out
    stack_http.wait_for(
        urls,
        SERVICE,
        DATES,
        lambda d: all(d[date]["state"] == "complete" for date in DATES),
        "complete after the replay",
        timeout=300,
    )
    assert downloads() - fixed == 1, "the fixed month is downloaded once for its five replayed dates"
    assert bucket.get_blob(paths.staging_failure(SERVICE, YEAR, MONTH)) is None


def test_a_new_version_of_the_source_file_clears_the_recorded_failure(fresh_bucket, tlc, dead_letters):
    """In process, against the test's own TLC server: the recorded failure holds for a second date
    (no new raw copy), and once the file at the source changes (another size and Last-Modified,
    seen by one HEAD) the next date prepares the month afresh and succeeds."""
    from functions import ingest as ingest_function
    from tests.gcs_events import message_published_event

    data_dir, _ = tlc
    month = generate_month("yellow", 2021, 5, rows=2_000, seed=29)
    bad = month.set_column(
        month.column_names.index("fare_amount"), "fare_amount", pa.array(["n/a"] * month.num_rows, pa.string())
    )
    (data_dir / "yellow").mkdir()
    write_month(data_dir / "yellow" / "yellow_tripdata_2021-05.csv.gz", bad, "csv.gz")
    record = paths.staging_failure("yellow", 2021, 5)
    quarantined = "quarantine/raw/yellow/yellow_tripdata_2021-05.csv.gz"

    ingest_function.handle(message_published_event({"date": "2021-05-03", "service": "yellow"}))
    first = fresh_bucket.get_blob(record)
    copy = fresh_bucket.get_blob(quarantined)
    assert first is not None and copy is not None
    ingest_function.handle(message_published_event({"date": "2021-05-04", "service": "yellow"}))
    assert fresh_bucket.get_blob(quarantined).generation == copy.generation, "no second download and split"
    letters = dead_letters(expected=2)
    got = sorted((b["context"]["date"], b["reason"]) for b in letters)
    assert got == [("2021-05-03", "bad_value"), ("2021-05-04", "bad_value")]
    assert fresh_bucket.get_blob(record).generation == first.generation

    write_month(data_dir / "yellow" / "yellow_tripdata_2021-05.csv.gz", month, "csv.gz")  # TLC reissues the file
    ingest_function.handle(message_published_event({"date": "2021-05-05", "service": "yellow"}))
    assert fresh_bucket.get_blob(paths.trips_object("yellow", dt.date(2021, 5, 5))) is not None
    assert fresh_bucket.get_blob(record) is None, "the record of the old file is deleted"
