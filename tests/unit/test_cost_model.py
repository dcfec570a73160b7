"""The cost model's arithmetic (bench/cost_model.py): prices times measured use, scaling, wall time."""

from __future__ import annotations

import pytest

from bench import cost_model as cm
from bench import report_cost


def use(**over) -> cm.MonthUse:
    base = dict(
        rows=1_000_000,
        dates=31,
        functions={
            "ingest": cm.FunctionUse(31, busy_seconds=40.0, cpu_seconds=10.0, first_seconds=10.0, later_seconds=1.0),
            "load_bigquery": cm.FunctionUse(31, busy_seconds=31.0, cpu_seconds=3.0),
            "load_postgres": cm.FunctionUse(31, busy_seconds=62.0, cpu_seconds=6.0),
            "backfill": cm.FunctionUse(1, busy_seconds=0.5, cpu_seconds=0.2),
        },
        lake_bytes=50_000_000,
        bq_bytes=200 * 1024**2,
        pg_bytes=300_000_000,
        status_bytes=8_000_000,
        gcs_class_a=400,
        gcs_class_b=600,
    )
    return cm.MonthUse(**{**base, **over})


def test_cloud_run_bills_allocated_vcpu_and_memory_for_the_busy_time_and_each_request():
    month = use(functions={"ingest": cm.FunctionUse(10, busy_seconds=100.0, cpu_seconds=20.0)})
    seconds = 100.0 + 0.05 * 10  # rounding to 100 ms: half a step a request
    expected = seconds * (1 * 0.000024 + 1 * 0.0000025) + 10 / 1e6 * 0.40
    assert cm.cloud_run_cost(month) == pytest.approx(expected)


def test_a_request_is_billed_at_least_its_cpu_time():
    assert cm.FunctionUse(1, busy_seconds=1.0, cpu_seconds=3.0).billed_seconds() == pytest.approx(3.05)


def test_bigquery_bills_storage_and_at_least_10_mb_a_query():
    tiny = cm.bigquery_cost(0, 1, queries=1000, bytes_per_query=1)
    assert tiny == pytest.approx(1000 * 10 * 1024**2 / 1024**4 * 6.25)
    stored = cm.bigquery_cost(1024**3, 2, queries=0, bytes_per_query=0)
    assert stored == pytest.approx(2 * 0.02)


def test_cloud_sql_pays_the_instance_all_month_and_the_disk_it_needs():
    assert cm.cloud_sql_cost(1, 1) == pytest.approx(0.0105 * 730 + 10 * 0.17)  # the 10 GB default disk
    assert cm.cloud_sql_cost(25_500_000_000, 1) == pytest.approx(0.0105 * 730 + 26 * 0.17)


def test_scaling_follows_rows_for_work_and_dates_for_requests():
    month = use().scaled(rows=2_000_000, dates=28)
    assert month.functions["ingest"].busy_seconds == pytest.approx(80.0)
    assert month.functions["ingest"].requests == 28
    assert month.functions["backfill"].requests == 1  # one message a backfill, whatever its size
    assert month.lake_bytes == 100_000_000 and month.gcs_class_a == round(400 * 28 / 31)


def test_month_wall_is_the_split_then_the_slowest_stage_at_max_instances():
    month = use()
    # ingest: 10 s split, then 30 dates 3 at a time at 1 s = 20 s; Postgres: 2 s a date, 31 dates
    # 3 at a time = 22 s after the split -> 32 s; it also cannot end before ingest's end + one load.
    assert cm.month_wall_seconds(month) == pytest.approx(max(10 + 10 * 1.0, 10 + 11 * 2.0, 20 + 2.0))
    one = report_cost.local_sizing(1)
    assert cm.month_wall_seconds(month, one) == pytest.approx(max(10 + 30, 10 + 31 * 2.0, 40 + 2.0))


def test_a_year_is_eleven_months_of_ingest_then_a_last_month_unless_a_loader_is_slower():
    month = use()
    # ingest: 11 x (10 + 10 x 1) + the last month (32 s) = 252 s; Postgres: 10 + ceil(372 / 3) x 2 = 258 s
    assert cm.year_wall_seconds(month) == pytest.approx(258.0)
    fast = use(functions={**month.functions, "load_postgres": cm.FunctionUse(31, busy_seconds=31.0, cpu_seconds=1.0)})
    assert cm.year_wall_seconds(fast) == pytest.approx(11 * 20.0 + cm.month_wall_seconds(fast))


def test_estimates_cover_every_service_for_a_month_and_a_year_and_a_year_costs_more():
    estimates = cm.table(use(), {"yellow": 1_000_000, "green": 100_000})
    assert [e.label for e in estimates] == [
        "yellow, one month",
        "yellow, one year",
        "green, one month",
        "green, one year",
    ]
    month, year = estimates[0], estimates[1]
    assert year.cloud_run == pytest.approx(12 * month.cloud_run)
    assert year.total > month.total and year.wall_seconds > month.wall_seconds
    assert estimates[2].cloud_run < month.cloud_run  # fewer rows, less work
    text = report_cost.estimates_markdown(estimates)
    assert "| yellow, one year |" in text and "$" in text


def test_the_check_compares_the_prediction_with_the_measured_wall_and_each_function():
    timeline = {"ingest": {"first": 9.0, "last": 35.0}, "load_postgres": {"first": 12.0, "last": 80.0}}
    checked = report_cost.check(use(), timeline, measured_wall=84.0, parallel=1)
    assert checked["predicted"] == pytest.approx(72.0) and checked["ratio"] == pytest.approx(72.0 / 84.0)
    assert checked["functions"] == {
        "ingest": {"predicted": pytest.approx(40.0), "measured": 35.0},
        "load_postgres": {"predicted": pytest.approx(72.0), "measured": 80.0},
    }


def test_every_price_names_its_page_and_unconfirmed_ones_say_so():
    assert all(p.url.startswith("https://") for p in cm.PRICES.values())
    text = report_cost.prices_markdown()
    assert text.count("(unconfirmed)") == sum(not p.confirmed for p in cm.PRICES.values()) > 0


def test_ingest_is_billed_for_the_split_the_dates_that_wait_for_it_and_the_later_dates():
    ingest = cm.FunctionUse(31, busy_seconds=0.0, cpu_seconds=1.0, first_seconds=10.0, later_seconds=1.0)
    assert ingest.billed_seconds(3) == pytest.approx(10 + 2 * 10 + 30 * 1 + 0.05 * 31)
    assert ingest.billed_seconds(1) == pytest.approx(10 + 30 * 1 + 0.05 * 31)


def test_a_loaders_service_time_leaves_out_queueing_when_its_requests_waited_for_each_other():
    inputs = {
        "functions": {
            "load_bigquery": {"requests": 31, "busy_seconds": 620.0, "cpu_seconds": 1.0},
            "load_postgres": {"requests": 31, "busy_seconds": 31.0, "cpu_seconds": 1.0},
        },
        **dict.fromkeys(("lake_bytes", "bq_bytes", "pg_bytes", "status_bytes", "gcs_class_a", "gcs_class_b"), 0),
    }
    for f in inputs["functions"].values():
        f.update(first_seconds=0.0, later_seconds=0.0)
    timeline = {"load_bigquery": {"first": 10.0, "last": 100.0}, "load_postgres": {"first": 10.0, "last": 100.0}}
    month = report_cost.month_use(inputs, 1000, 31, timeline)
    parallel = report_cost.os.cpu_count() or 1
    # BigQuery: 20 s a request as measured, but the dates came out every 3 s: queueing, not work.
    assert month.functions["load_bigquery"].per_request() == pytest.approx(min(20.0, 3.0 * parallel))
    # Postgres: 1 s a request, shorter than its pace allows: as measured.
    assert month.functions["load_postgres"].per_request() == pytest.approx(min(1.0, 3.0 * parallel))
