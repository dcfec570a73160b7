"""Status: state classification from plain data, the readers against fakes, request validation, rendering."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.core import messages
from shared.core.errors import ValidationError
from shared.operate import status_reads, status_request
from shared.operate.status import (
    AWAITING_SOURCE,
    COMPLETE,
    DEAD_LETTERED,
    FAILED,
    MISMATCH,
    MISSING,
    PARTIAL,
    QUEUED,
    RETRYING,
    RUNNING,
    LakeDay,
    LedgerEntry,
    build_report,
    classify,
)
from shared.operate.status_page import render_html, render_text
from shared.operate.status_reads import read_lake, read_postgres
from shared.operate.status_request import parse_status_request

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
D1, D2, D3 = dt.date(2021, 1, 1), dt.date(2021, 1, 2), dt.date(2021, 1, 3)
T0 = dt.datetime(2021, 2, 1, 10, 0, tzinfo=dt.UTC)


# --- classification ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lake, bq, pg, kwargs, state",
    [
        (100, 100, 100, {}, COMPLETE),
        (0, 0, 0, {}, COMPLETE),  # an empty day: nothing to load, nothing missing
        (None, 0, 0, {}, MISSING),
        (None, None, None, {}, MISSING),
        (100, 0, 0, {}, PARTIAL),  # in the lake only: the loaders have not run
        (100, 100, 0, {}, PARTIAL),  # deleted from Postgres
        (100, 0, 100, {}, PARTIAL),
        (None, 100, 100, {}, PARTIAL),  # loaded, but the lake lost it
        (0, 5, 0, {}, PARTIAL),  # the lake says empty, BigQuery holds stale rows
        (100, 100, 90, {}, MISMATCH),
        (100, 110, 100, {}, MISMATCH),
        (100, 100, 100, {"stale": True}, MISMATCH),  # Postgres loaded an older generation
        (100, 100, 100, {"failed": True}, FAILED),
        (None, 0, 0, {"failed": True}, FAILED),
    ],
)
def test_classify(lake, bq, pg, kwargs, state):
    assert classify(lake, bq, pg, **kwargs) == state


def test_failed_means_quarantined_after_the_current_trips_object():
    assert LakeDay(rows=5, written_at=T0, quarantined_at=T0 + dt.timedelta(minutes=1)).failed
    assert not LakeDay(rows=5, written_at=T0 + dt.timedelta(minutes=1), quarantined_at=T0).failed  # fixed since
    assert LakeDay(quarantined_at=T0).failed  # never written at all
    assert not LakeDay(rows=5, written_at=T0).failed


def test_build_report_from_plain_data():
    lake = {
        D1: LakeDay(10, 1, 111, T0),
        D2: LakeDay(20, 0, 222, T0),
        D3: LakeDay(30, 2, 333, T0, T0 + dt.timedelta(seconds=1), "row count fell"),
    }
    ledger = {
        D1: LedgerEntry("111", 10, "trips/yellow/pickup_date=2021-01-01/data.parquet", T0),
        D2: LedgerEntry("200", 20, None, T0),
    }
    report = build_report(
        "yellow",
        D1,
        dt.date(2021, 1, 4),
        lake,
        {D1: 10, D2: 20},
        {D1: 10, D2: 20},
        ledger,
        "https://example.test/{service}_{year}-{month:02d}.csv.gz",
    )
    assert [d.state for d in report.days] == [COMPLETE, MISMATCH, FAILED, MISSING]
    assert "postgres holds generation 200, the lake 222" in report.days[1].notes
    assert "quarantined: row count fell" in report.days[2].notes
    assert report.summary() == {
        COMPLETE: 1,
        AWAITING_SOURCE: 0,
        QUEUED: 0,
        RUNNING: 0,
        RETRYING: 0,
        PARTIAL: 0,
        MISMATCH: 1,
        FAILED: 1,
        "undelivered": 0,
        DEAD_LETTERED: 0,
        MISSING: 1,
    }
    body = report.as_dict()
    assert body["source_urls"] == {"2021-01": "https://example.test/yellow_2021-01.csv.gz"}
    assert body["dates"][0] == {
        "date": "2021-01-01",
        "service": "yellow",
        "state": COMPLETE,
        "lake_rows": 10,
        "rejected_rows": 1,
        "bigquery_rows": 10,
        "postgres_rows": 10,
        "lake_generation": 111,
        "lake_written_at": T0.isoformat(),
        "postgres_loaded": {
            "generation": "111",
            "rows": 10,
            "object": "trips/yellow/pickup_date=2021-01-01/data.parquet",
            "loaded_at": T0.isoformat(),
        },
        "notes": [],
        "run": None,
        "runs": [],
        "explanation": None,
    }
    json.dumps(body)  # serialisable as is


def test_partial_notes_say_where_it_is_missing():
    report = build_report("yellow", D1, D1, {D1: LakeDay(10, 0, 1, T0)}, {D1: 10}, {}, {})
    assert report.days[0].state == PARTIAL and report.days[0].notes == ["not in postgres"]


# --- readers against fakes ----------------------------------------------------------------------------


def blob(name, metadata=None, generation=1, created=T0):
    return SimpleNamespace(name=name, metadata=metadata, generation=generation, time_created=created)


class FakeBucket:
    def __init__(self, blobs):
        self.blobs, self.prefixes = blobs, []

    def list_blobs(self, prefix):
        self.prefixes.append(prefix)
        return [b for b in self.blobs if b.name.startswith(prefix)]


def test_read_lake_counts_rejects_quarantine_and_lists_narrowly():
    bucket = FakeBucket(
        [
            blob("trips/yellow/pickup_date=2021-01-01/data.parquet", {"rows_written": "10"}, 5),
            blob("rejects/yellow/pickup_date=2021-01-01/data.parquet", {"rows_rejected": "3"}),
            blob("trips/yellow/pickup_date=2021-01-02/data.parquet", {"rows_written": "20"}, 6),
            blob(
                "quarantine/yellow/pickup_date=2021-01-02/data.parquet",
                {"failed_check": "bad"},
                created=T0 + dt.timedelta(hours=1),
            ),
            blob("quarantine/yellow/pickup_date=2021-01-03/data.parquet", {}),
            blob("trips/yellow/pickup_date=2021-01-09/data.parquet", {"rows_written": "9"}),  # outside the range
            blob("trips/green/pickup_date=2021-01-01/data.parquet", {"rows_written": "1"}),  # another service
            blob("rejects/yellow/source_month=2021-01/data.parquet", {"rows_rejected": "7"}),  # month rejects
        ]
    )
    days = read_lake(bucket, "yellow", D1, dt.date(2021, 1, 5))
    assert bucket.prefixes == [
        "trips/yellow/pickup_date=2021-01-0",
        "rejects/yellow/pickup_date=2021-01-0",
        "quarantine/yellow/pickup_date=2021-01-0",
    ]
    assert days[D1] == LakeDay(10, 3, 5, T0)
    assert (days[D2].rows, days[D2].rejected, days[D2].failed, days[D2].quarantine_reason) == (20, 0, True, "bad")
    assert days[D3].rows is None and days[D3].failed
    assert set(days) == {D1, D2, D3}


def test_listing_prefix_across_a_year_is_the_service():
    bucket = FakeBucket([])
    read_lake(bucket, "green", dt.date(2020, 12, 31), dt.date(2021, 1, 1))
    assert bucket.prefixes[0] == "trips/green/pickup_date=202"


class FakeCursor:
    def __init__(self, existing, results):
        self.existing, self.results, self.queries, self._last = existing, results, [], None

    def execute(self, sql, params=()):
        self.queries.append((sql, params))
        if "to_regclass" in sql:
            self._last = [(params[0] in self.existing,)]
        else:
            self._last = self.results.pop(0)

    def fetchone(self):
        return self._last[0]

    def fetchall(self):
        return self._last


class FakeConnection:
    def __init__(self, cursor):
        self._cursor, self.rolled_back = cursor, False

    def cursor(self):
        return self._cursor

    def rollback(self):
        self.rolled_back = True


def test_read_postgres_counts_and_ledger():
    cursor = FakeCursor(
        {'"ny_taxi"."yellow_trips"', '"ny_taxi"."loads"'}, [[(D1, 10), (D2, 5)], [(D1, 111, 10, "trips/...", T0)]]
    )
    connection = FakeConnection(cursor)
    counts, ledger = read_postgres(connection, "ny_taxi", "yellow", D1, D3)
    assert counts == {D1: 10, D2: 5}
    assert ledger == {D1: LedgerEntry(111, 10, "trips/...", T0)}
    assert connection.rolled_back
    count_sql, params = cursor.queries[1]
    assert "GROUP BY pickup_date" in count_sql and params == (D1, D3)


def test_read_postgres_tables_not_created_yet_hold_nothing():
    cursor = FakeCursor(set(), [])
    assert read_postgres(FakeConnection(cursor), "ny_taxi", "yellow", D1, D3) == ({}, {})
    assert all("to_regclass" in sql for sql, _ in cursor.queries)


def test_read_bigquery_table_not_created_yet_holds_nothing():
    from google.api_core.exceptions import NotFound

    class Client:
        def get_table(self, table):
            raise NotFound(table)

        def query(self, *args, **kwargs):  # pragma: no cover - must not be reached
            raise AssertionError("queried a missing table")

    assert status_reads.read_bigquery(Client(), "p.nyc_taxi.yellow_trips", D1, D3) == {}


def test_read_bigquery_grouped_count_with_date_parameters():
    seen = {}

    class Client:
        def get_table(self, table):
            return object()

        def query(self, sql, job_config):
            seen["sql"], seen["params"] = sql, {p.name: p.value for p in job_config.query_parameters}
            return SimpleNamespace(result=lambda timeout: [{"pickup_date": D1, "n": 10}, {"pickup_date": D2, "n": 3}])

    assert status_reads.read_bigquery(Client(), "p.nyc_taxi.yellow_trips", D1, D3) == {D1: 10, D2: 3}
    assert "`p.nyc_taxi.yellow_trips`" in seen["sql"] and seen["params"] == {"start": D1, "end": D3}


# --- request validation ------------------------------------------------------------------------------

VALID = {"service": "yellow", "start": "2021-01-01", "end": "2021-01-07"}


def test_valid_request_and_defaults():
    assert parse_status_request(VALID, 3660, NOW) == status_request.StatusRequest(
        "yellow", D1, dt.date(2021, 1, 7), "json"
    )
    wanted = parse_status_request({"start": "2021-01-01", "end": "2021-01-01", "format": "html"}, 3660, NOW)
    assert (wanted.service, wanted.format) == ("yellow", "html")


@pytest.mark.parametrize(
    "change, field",
    [
        ({"service": "blue"}, "service"),
        ({"start": "2021-01-08"}, "start"),  # after end
        ({"start": "2021-02-29"}, "start"),
        ({"start": "2008-12-31"}, "start"),
        ({"end": "2026-11-26"}, "end"),
        ({"end": "20210107"}, "end"),
        ({"format": "xml"}, "format"),
        ({"services": "yellow"}, "services"),  # unknown key
        ({"service": "green", "start": "2013-07-31"}, "start"),
    ],
)
def test_invalid_requests_name_the_field(change, field):
    with pytest.raises(ValidationError) as err:
        parse_status_request({**VALID, **change}, 3660, NOW)
    assert err.value.field == field


@pytest.mark.parametrize("missing", ["start", "end"])
def test_dates_are_required(missing):
    fields = {k: v for k, v in VALID.items() if k != missing}
    with pytest.raises(ValidationError) as err:
        parse_status_request(fields, 3660, NOW)
    assert err.value.field == missing


def test_range_is_bounded_inclusively():
    parse_status_request(VALID, 7, NOW)
    with pytest.raises(ValidationError) as err:
        parse_status_request(VALID, 6, NOW)
    assert err.value.field == "end"


def request(method="GET", query=None, body=None):
    data = body if isinstance(body, (str, type(None))) else json.dumps(body)
    return Request(
        EnvironBuilder(method=method, query_string=query, data=data, content_type="application/json").get_environ()
    )


def test_request_fields_from_query_or_body_never_both():
    assert messages.request_fields(request(query=VALID)) == VALID
    assert messages.request_fields(request("POST", body=VALID)) == VALID
    with pytest.raises(ValidationError):
        messages.request_fields(request("POST", query={"format": "html"}, body=VALID))
    with pytest.raises(ValidationError) as err:
        messages.request_fields(request(query="start=2021-01-01&start=2021-01-02"))
    assert err.value.field == "start"
    with pytest.raises(ValidationError):
        messages.request_fields(request("POST", body="[1, 2]"))


# --- rendering ----------------------------------------------------------------------------------------


def sample_report():
    lake = {D1: LakeDay(10, 1, 1, T0), D2: LakeDay(20, 0, 2, T0), D3: LakeDay(5, 0, 3, T0)}
    return build_report("yellow", dt.date(2020, 12, 31), D3, lake, {D1: 10, D2: 20, D3: 5}, {D1: 10, D3: 4}, {})


def test_html_has_one_cell_per_date_with_state_and_counts_on_hover():
    page = render_html(sample_report())
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert page.count('class="day state-') == 4
    assert 'data-date="2020-12-31" data-state="missing"' in page
    assert 'data-date="2021-01-01" data-state="complete"' in page
    assert 'data-date="2021-01-02" data-state="partial"' in page
    assert 'data-date="2021-01-03" data-state="mismatch"' in page
    assert 'title="2021-01-01 yellow: complete&#10;' in page or "2021-01-01 yellow: complete\nlake: 10 rows" in page
    assert "Postgres: 4 rows" in page
    assert 'data-state="complete" data-count="1"' in page  # legend
    assert "December 2020" in page and "January 2021" in page


def test_html_escapes_notes():
    report = build_report(
        "yellow", D1, D1, {D1: LakeDay(1, 0, 1, T0, T0 + dt.timedelta(1), '<img src=x onerror="a">')}, {}, {}, {}
    )
    page = render_html(report)
    assert "<img" not in page and "&lt;img" in page


def test_text_table():
    text = render_text(sample_report())
    lines = text.splitlines()
    assert lines[0] == "yellow 2020-12-31..2021-01-03: complete 1, partial 1, mismatch 1, missing 1"
    assert lines[1].split() == ["date", "state", "lake", "rejected", "bigquery", "postgres", "notes"]
    assert lines[2].split()[:6] == ["2020-12-31", "missing", "-", "-", "0", "0"]
    assert lines[3].split() == ["2021-01-01", "complete", "10", "1", "10", "10"]
    assert lines[4].startswith("2021-01-02  partial") and lines[4].endswith("not in postgres")


# --- the HTTP entry point -----------------------------------------------------------------------------


@pytest.fixture
def entry(monkeypatch):
    from functions import status as status_function
    from shared.core.settings import get_settings

    for key, value in {"GCP_PROJECT": "p", "LAKE_BUCKET": "lake", "DEAD_LETTER_TOPIC": "dead"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    monkeypatch.setattr(status_function, "report", lambda service, start, end, settings: sample_report())
    yield status_function.handle_http
    get_settings.cache_clear()


@pytest.mark.parametrize("fmt, content_type", [("html", "text/html"), ("text", "text/plain")])
def test_entry_point_formats(entry, fmt, content_type):
    body, code, headers = entry(request(query={**VALID, "format": fmt}))
    assert code == 200 and headers["Content-Type"].startswith(content_type) and "2021-01-01" in body


def test_entry_point_json(entry):
    body, code, _ = entry(request(query=VALID))
    assert code == 200 and body["summary"][COMPLETE] == 1 and len(body["dates"]) == 4


def test_entry_point_structured_error(entry):
    body, code = entry(request(query={**VALID, "end": "2021-13-01"}))
    assert code == 400 and body["field"] == "end" and body["reason"] == "invalid_input"
