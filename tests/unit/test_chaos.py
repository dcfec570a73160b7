"""The chaos harness's own logic, from plain data: its workload, its schedules, its source's
faults and, above all, that its comparison sees a difference (a harness that cannot fail
proves nothing)."""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from chaos import accounting, observe, report, soak, state, workload
from chaos.accounting import superseded_queued
from chaos.run import Options, fault_schedule
from chaos.source import serve
from chaos.stack_faults import KINDS
from shared.core.ledger_read import RunRecord


def options(**overrides) -> Options:
    base = dict(
        seed=1,
        quick=False,
        rate=0.1,
        port_base=27000,
        work=Path("/nonexistent"),
        rows_per_day=10,
        publish_seconds=1,
        fault_count=len(KINDS) + 3,
        fault_gap_seconds=10,
        quiet_seconds=1,
        settle_timeout=1,
    )
    return Options(**{**base, **overrides})


def test_the_workload_is_the_same_for_a_seed_and_holds_every_date_at_least_once():
    one, again, other = workload.build(7, quick=False), workload.build(7, quick=False), workload.build(8, quick=False)
    assert one == again and one.messages != other.messages
    asked = {(m.body["service"], m.body["date"]) for m in one.messages if m.topic == "ingest"}
    assert asked == {(s, d.isoformat()) for s, d in one.dates}
    assert min(len(w.messages) + w.fanout() for w in map(lambda s: workload.build(s, False), range(50))) >= 1000, (
        "issue 12: at least 1,000 events, whatever the seed"
    )
    assert any(m.rows for m in one.months), "a full-size month"
    quick = workload.build(7, quick=True)
    assert 80 <= len(quick.messages) + quick.fanout() <= 130 and len(quick.months) == 1


def test_every_fault_kind_comes_before_any_repeats():
    schedule = fault_schedule(options())
    kinds = [k for _, k in schedule]
    assert sorted(kinds[: len(KINDS)]) == sorted(KINDS)
    assert [t for t, _ in schedule] == sorted(t for t, _ in schedule)
    assert fault_schedule(options()) == schedule != fault_schedule(options(seed=2))


def day(rows=10, checksum="a"):
    return {
        "trips": rows,
        "checksum": checksum,
        "rows_written": rows,
        "rows_rejected": 1,
        "rows_read": rows + 1,
        "rejects": 1,
    }


def final_state(**days):
    keyed = {k.replace("_", "/", 1).replace("_", "-"): v for k, v in days.items()}
    return {
        "lake": {
            "days": keyed,
            "manifests": {
                "yellow/2019-01": {
                    "source_rows": 12,
                    "rows_read": 11,
                    "rows_written": 10,
                    "rows_rejected": 1,
                    "month_rejected_rows": 1,
                    "conserved": True,
                }
            },
            "leftovers": {"claims": [], "orphan_splits": []},
        },
        "bigquery": {
            "days": {k: {"rows": v["trips"], "checksum": "b"} for k, v in keyed.items()},
            "staging_tables": {},
        },
        "postgres": {"days": {k: {"rows": v["trips"], "checksum": "p"} for k, v in keyed.items()}, "other_tables": []},
    }


def test_compare_finds_a_changed_row_a_lost_date_and_a_leftover():
    dates = [("yellow", dt.date(2019, 1, 1)), ("yellow", dt.date(2019, 1, 2))]
    model = final_state(yellow_2019_01_01=day(), yellow_2019_01_02=day())
    assert state.compare(model, copy.deepcopy(model), dates)["dates_equal"] == 2

    actual = copy.deepcopy(model)
    actual["lake"]["days"]["yellow/2019-01-01"]["checksum"] = "changed"
    del actual["postgres"]["days"]["yellow/2019-01-02"]
    actual["lake"]["leftovers"]["claims"] = ["staging/yellow/month=2019-01/_claim"]
    result = state.compare(model, actual, dates)
    assert result["dates_equal"] == 0
    assert {(d["date"], d["where"]) for d in result["differences"]} == {
        ("yellow/2019-01-01", "lake"),
        ("yellow/2019-01-02", "postgres"),
    }
    clean = {
        "name": "clean",
        "accounting": {"stuck": [], "dead_lettered_without_letter": [], "dead_letters": 0, "function_retries": 0},
        "source": {"injected": []},
    }
    problems = report.verdict(result, {**clean, "name": "faulty"}, clean)
    assert any("differ" in p for p in problems) and any("_claim" in p for p in problems)


def test_a_staging_table_is_excused_only_by_a_kill_of_the_emulator_under_it():
    dates = [("yellow", dt.date(2019, 1, 1))]
    model = final_state(yellow_2019_01_01=day())
    actual = copy.deepcopy(model)
    actual["bigquery"]["staging_tables"] = {
        "_staging_a": "2026-01-01T10:00:00+00:00",
        "_staging_b": "2026-01-01T10:05:00+00:00",
    }
    faults = [
        {"kind": "bigquery", "at": "2026-01-01T10:00:30+00:00"},
        {"kind": "pg_fast", "at": "2026-01-01T10:05:10+00:00"},
        {"kind": "kill_load_bigquery", "at": "2026-01-01T10:05:20+00:00"},  # the bridge drops its table
    ]
    result = state.compare(model, actual, dates, faults)
    assert result["crash_leftovers"]["bigquery_staging_tables"] == ["_staging_a"]
    assert result["leftovers"]["bigquery_staging_tables"] == ["_staging_b"], (
        "a Postgres restart or a killed loader leaves no table"
    )


def test_lake_rows_that_disagree_with_their_manifest_counts_are_a_difference():
    dates = [("yellow", dt.date(2019, 1, 1))]
    model = final_state(yellow_2019_01_01=day())
    actual = copy.deepcopy(model)
    actual["lake"]["days"]["yellow/2019-01-01"]["rows_written"] = 9
    assert [d["where"] for d in state.compare(model, actual, dates)["differences"]] == ["lake_counts"]


def test_a_queued_record_is_superseded_only_by_an_ingest_record_after_it():
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    d = dt.date(2019, 1, 1)
    queued = RunRecord("backfill", "7", "queued", 1, updated_at=t0)
    earlier = RunRecord("ingest", "3", "succeeded", 1, updated_at=t0 - dt.timedelta(seconds=5))
    later = RunRecord("ingest", "9", "succeeded", 1, updated_at=t0 + dt.timedelta(seconds=5))
    assert superseded_queued([("yellow", d, queued), ("yellow", d, earlier)]) == set()
    assert superseded_queued([("yellow", d, queued), ("yellow", d, later)]) == {("yellow", d, "7")}


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("kind", ["500", "503", "html", "truncated", "changed"])
def test_the_source_fails_the_first_request_of_a_month_then_at_its_rate(tmp_path, kind):
    source = serve(tmp_path, seed=1, rate=0.0, hang_seconds=1, rows_per_day=20)
    source.kinds = (kind,)
    url = f"http://127.0.0.1:{source.server_address[1]}/yellow/yellow_tripdata_2019-01.csv.gz"
    try:
        assert get(url)[0] == 200 and not source.injected, "faults are off until enabled"
        whole = (tmp_path / "yellow" / "yellow_tripdata_2019-01.csv.gz").read_bytes()
        source.enabled = True
        status, body = get(url)
        assert source.injected[0]["kind"] == kind and len(source.injected) == 1
        if kind in ("500", "503"):
            assert status == int(kind)
        elif kind == "html":
            assert status == 200 and body.startswith(b"<!DOCTYPE html>")
        elif kind == "truncated":
            assert status == 200 and body == whole[: len(whole) // 2]
        else:  # changed: other bytes, the same rows
            assert status == 200 and body != whole and gzip.decompress(body) == gzip.decompress(whole)
        assert get(url) == (200, whole) and len(source.injected) == 1, "rate 0: the second request is served"
    finally:
        source.shutdown()


def test_the_soak_stops_each_service_for_the_whole_outage_overlapping_and_backfills_one_full_month():
    plan = soak.outage_plan(600, 30)
    assert {o.service for o in plan} == {"postgres", "bigquery", "gcs"}
    assert all(o.up_at - o.stop_at >= 600 for o in plan), "each down at least the outage"
    assert max(o.stop_at for o in plan) < min(o.up_at for o in plan), "overlapping"
    assert [o.kind for o in plan if o.service == "bigquery"] == ["bigquery"], "explains a load's staging table"
    work = soak.workload()
    assert [m.topic for m in work.messages] == ["backfill"] and work.fanout() == 31
    assert work.months[0].rows and work.months[0].rows >= 1_300_000, "a full-size month"
    assert soak.SETTINGS["TAXI_RELAY_BACKOFF_SECONDS"] == "", "the relay runs with Terraform's push policy"


def test_the_soak_fails_on_a_manual_step_an_unequal_date_or_an_outage_cut_short():
    outages = [{"service": s, "down_s": 610.0} for s in ("postgres", "bigquery", "gcs")]
    good = {
        "faulty": {"manual_steps": 0, "stack_faults": outages},
        "clean": {"manual_steps": 0},
        "comparison": {"dates": 31, "dates_equal": 31},
    }
    assert soak.problems(good) == []
    assert "manual steps" in soak.problems({**good, "faulty": {**good["faulty"], "manual_steps": 2}})[0]
    assert "30 of 31" in soak.problems({**good, "comparison": {"dates": 31, "dates_equal": 30}})[0]
    short = [*outages[:2], {"service": "gcs", "down_s": 12.0}]
    assert soak.problems({**good, "faulty": {**good["faulty"], "stack_faults": short}})


def test_the_scheduled_repair_runs_are_read_from_the_backfill_functions_outcome_lines(tmp_path):
    lines = [
        '{"severity":"INFO","message":"backfill published 3 ingest messages","published":3,"planned":3,'
        '"waiting":1,"left_to_person":0,"from_ledger":true}',
        '{"severity":"INFO","message":"backfill published 31 ingest messages","published":31,"from_ledger":false}',
        "not json {",
        '{"severity":"INFO","message":"backfill published 0 ingest messages","published":0,"planned":0,'
        '"waiting":0,"left_to_person":2,"from_ledger":true}',
    ]
    (tmp_path / "fn-backfill.log").write_text("\n".join(lines))
    assert accounting.repair_runs(tmp_path) == [
        {"published": 3, "planned": 3, "waiting": 1, "left_to_person": 0},
        {"published": 0, "planned": 0, "waiting": 0, "left_to_person": 2},
    ]
    assert accounting.repair_runs(tmp_path / "missing") == []


def test_a_running_record_whose_outcome_met_a_dead_ledger_store_is_counted_apart_not_stuck():
    """Quick seed 2: fake-gcs-server (the ledger's store) was killed just after 7 loads wrote `running`;
    their outcome writes failed (logged, the work acked), so the records stay `running`. Not stuck:
    status reads them as `no_outcome` when old. A `running` record after the kill still is stuck."""
    kill = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    d = dt.date(2019, 1, 1)
    before = RunRecord("load_bigquery", "50", "running", 1, updated_at=kill - dt.timedelta(seconds=5))
    after = RunRecord("load_bigquery", "51", "running", 1, updated_at=kill + dt.timedelta(seconds=60))
    long_before = RunRecord("load_postgres", "52", "running", 1, updated_at=kill - dt.timedelta(seconds=600))
    records = [("yellow", d, before), ("yellow", d, after), ("yellow", d, long_before)]
    dead = observe.DeadLetters({"GCP_PROJECT": "p"})
    result = accounting.accounting([], records, dead, {}, [kill])
    assert [r["event_id"] for r in result["outcome_lost_with_the_ledger_store"]] == ["50"]
    assert sorted(r["event_id"] for r in result["stuck"]) == ["51", "52"]
    assert len(accounting.accounting([], records, dead, {})["stuck"]) == 3, "no kill, no excuse"


def test_a_record_whose_message_the_relay_held_across_a_pubsub_restart_is_counted_apart(tmp_path):
    """Seed 2's rerun: the relay pulled 8 notifications before a Pub/Sub restart, pushed them after it
    (attempt 3), the loader was killed; the new emulator never knew them. Not stuck: lost with Pub/Sub.
    A message published after the restart, or another attempt's record, is still stuck."""
    restart = dt.datetime(2026, 12, 6, 11, 26, 27, tzinfo=dt.UTC)
    d = dt.date(2019, 1, 6)
    lines = [
        {"subscription": "projects/p/subscriptions/taxi-lake-bigquery-push", "message_id": "667", "attempt": 3,
         "published_at": (restart - dt.timedelta(seconds=20)).isoformat(), "event": "delivery_failed"},
        {"subscription": "projects/p/subscriptions/taxi-lake-bigquery-push", "message_id": "12", "attempt": 1,
         "published_at": (restart + dt.timedelta(seconds=2)).isoformat(), "event": "delivery_failed"},
    ]  # fmt: skip
    (tmp_path / "relay.log").write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    published = accounting.relay_publish_times(tmp_path)
    assert published[("load_bigquery", "667", 3)] == restart - dt.timedelta(seconds=20)
    after = restart + dt.timedelta(seconds=9)
    held = RunRecord("load_bigquery", "667", "running", 3, updated_at=after)
    new = RunRecord("load_bigquery", "12", "running", 1, updated_at=after)
    other_attempt = RunRecord("load_bigquery", "667", "running", 4, updated_at=after)
    records = [("yellow", d, held), ("yellow", d, new), ("yellow", d, other_attempt)]
    dead = observe.DeadLetters({"GCP_PROJECT": "p"})
    result = accounting.accounting([restart], records, dead, {}, [], published)
    assert result["in_flight_held_across_a_pubsub_restart"] == 1
    assert sorted((r["event_id"], r["attempt"]) for r in result["stuck"]) == [("12", 1), ("667", 4)]
    assert len(accounting.accounting([restart], records, dead, {})["stuck"]) == 3, "no relay log, no excuse"
