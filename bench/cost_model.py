"""What a backfill costs and how long it takes in Google Cloud: a pure model, fed by measured figures.

`python -m bench --cost` measures one month's backfill through the local stack (bench/cost_measure.py:
requests, busy seconds and CPU seconds per function, bytes stored in the lake, BigQuery and
Postgres) and this module turns those figures into dollars and hours with Google's published
prices (PRICES, each with the page it comes from) at the Terraform defaults (SIZING, from
infra/terraform/functions.tf and variables.tf). Nothing here does I/O: tests/unit/test_cost_model.py.

Assumptions (the README repeats them):
- Cloud Run functions (2nd gen) bill request-based: allocated vCPU and GiB for the time a request
  is handled, rounded up to 100 ms, plus a fee per request. A request's billed time is its service
  time measured through the local stack (an upper bound: this shared 2-core machine and the
  emulators are slower than Google), never less than its measured CPU time on a 1-vCPU instance.
- Free tiers are ignored (they are per billing account, and shared with everything else in it).
- Costs scale with a service's rows per month (per-row work) and its dates (per-request work),
  from the yellow month the bench measures.
- Wall time at the defaults: concurrency 1, `max_instances` instances per function; a month's
  first date splits the month while the dates after it wait for the split; the loaders follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

GIB = 1024**3
TIB = 1024**4
MONTH_HOURS = 730  # Google's pricing pages bill a month as 730 hours


@dataclass(frozen=True)
class Price:
    value: float
    unit: str
    url: str
    confirmed: bool  # read on Google's own page (stored text), not only on a third-party page


PRICES: dict[str, Price] = {
    "run_vcpu_second": Price(
        0.000024, "USD / vCPU-second, request-based, Tier 1", "https://cloud.google.com/run/pricing", True
    ),
    "run_gib_second": Price(
        0.0000025,
        "USD / GiB-second, request-based, Tier 1",
        "https://cloud.google.com/run/pricing (Google's excerpt cut before the memory column; "
        "the figure from https://cloudchipr.com/blog/cloud-run-pricing)",
        False,
    ),
    "run_million_requests": Price(
        0.40,
        "USD / million requests",
        "https://cloud.google.com/run/pricing (third-party: https://cloudwebschool.com/tools/cloud-run-cost-calculator/)",
        False,
    ),
    "gcs_gb_month": Price(
        0.020, "USD / GB-month, Standard, us-east1 example", "https://cloud.google.com/storage/pricing-examples", True
    ),
    "gcs_class_a_1000": Price(
        0.005, "USD / 1,000 Class A operations", "https://cloud.google.com/storage/pricing-examples", True
    ),
    "gcs_class_b_1000": Price(
        0.0004, "USD / 1,000 Class B operations", "https://cloud.google.com/storage/pricing-examples", True
    ),
    "bq_tib_scanned": Price(
        6.25,
        "USD / TiB scanned, on-demand",
        "https://cloud.google.com/bigquery/pricing (per TiB; the figure from "
        "https://adriennevermorel.com/notes/bigquery-on-demand-billing-mechanics/)",
        False,
    ),
    "bq_gib_month": Price(
        0.02,
        "USD / GiB-month, active logical storage",
        "https://gist.github.com/bindiego/d84d5b4824d3a84055fd368c8cc8445f (US price used in a public script)",
        False,
    ),
    "sql_f1_micro_hour": Price(
        0.0105,
        "USD / hour, db-f1-micro (shared core)",
        "https://cloud.google.com/sql/pricing (not found in the stored text: unconfirmed)",
        False,
    ),
    "sql_ssd_gb_month": Price(
        0.17, "USD / GB-month, SSD", "https://cloud.google.com/sql/pricing (not found in the stored text)", False
    ),
}
BQ_MIN_BYTES_PER_QUERY = 10 * 1024**2  # on-demand bills at least 10 MB per query (adriennevermorel.com, above)
PRICES_READ_ON = "2026-12-06"  # when the stored page text was read through the search tool


@dataclass(frozen=True)
class Sizing:
    """A function's Terraform default (infra/terraform/functions.tf)."""

    vcpu: float
    memory_gib: float
    max_instances: int


SIZING: dict[str, Sizing] = {  # concurrency is 1 for every function (max_instance_request_concurrency)
    "ingest": Sizing(1, 1, 3),
    "load_bigquery": Sizing(1, 1, 3),
    "load_postgres": Sizing(1, 1, 3),
    "backfill": Sizing(0.167, 0.25, 1),  # cpu = null: Cloud Run functions give 256 MiB 0.167 vCPU
}
SQL_DISK_GB = 10  # variables.tf sql_disk_size_gb (grows automatically)
REPAIRS_PER_MONTH = 24 * 30  # variables.tf repair_cron "17 * * * *": hourly


@dataclass(frozen=True)
class FunctionUse:
    """What one function did for one month of data: requests, summed busy and CPU seconds; for
    ingest the first request (it splits the month) and the median later one; for a loader its
    service time a request (`service_seconds`: busy time without the queueing behind other
    requests, see bench/report_cost.py)."""

    requests: int
    busy_seconds: float
    cpu_seconds: float
    first_seconds: float = 0.0
    later_seconds: float = 0.0
    service_seconds: float = 0.0

    def per_request(self) -> float:
        return self.service_seconds or self.busy_seconds / max(self.requests, 1)

    def billed_seconds(self, instances: int = 1) -> float:
        """Instance time Cloud Run bills, at least the CPU time, plus half a 100 ms rounding step a
        request. Ingest: the first date's split, during which `instances - 1` other dates wait
        (billed, their request is open), and the later dates; others: requests x service time."""
        if self.first_seconds and self.later_seconds:
            waiting = min(instances - 1, self.requests - 1) * self.first_seconds
            seconds = self.first_seconds + waiting + (self.requests - 1) * self.later_seconds
        else:
            seconds = self.requests * self.per_request()
        return max(seconds, self.cpu_seconds) + 0.05 * self.requests


@dataclass(frozen=True)
class MonthUse:
    """One month of one service, as measured (rows, dates) or scaled (`scaled`)."""

    rows: int
    dates: int
    functions: dict[str, FunctionUse]
    lake_bytes: int  # what stays in the bucket (raw, trips, rejects; not staging, which expires)
    bq_bytes: int  # logical bytes of the month in BigQuery
    pg_bytes: int  # the month's table + index bytes in Postgres
    status_bytes: int  # one status query over the month (bytes BigQuery would scan)
    gcs_class_a: int = 0
    gcs_class_b: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def scaled(self, rows: int, dates: int) -> MonthUse:
        """Another month: per-row figures scale with rows, per-request ones with dates."""
        r, d = rows / self.rows, dates / self.dates
        functions = {
            name: FunctionUse(
                requests=max(1, round(f.requests * d)) if name != "backfill" else f.requests,
                busy_seconds=f.busy_seconds * r,
                cpu_seconds=f.cpu_seconds * r,
                first_seconds=f.first_seconds * r,
                later_seconds=f.later_seconds * r,
                service_seconds=f.service_seconds * r,
            )
            for name, f in self.functions.items()
        }
        return MonthUse(
            rows,
            dates,
            functions,
            round(self.lake_bytes * r),
            round(self.bq_bytes * r),
            round(self.pg_bytes * r),
            round(self.status_bytes * r),
            round(self.gcs_class_a * d),
            round(self.gcs_class_b * d),
        )


def cloud_run_cost(use: MonthUse, sizing: dict[str, Sizing] = SIZING) -> float:
    total = 0.0
    for name, f in use.functions.items():
        size = sizing[name]
        seconds = f.billed_seconds(size.max_instances)
        total += seconds * size.vcpu * PRICES["run_vcpu_second"].value
        total += seconds * size.memory_gib * PRICES["run_gib_second"].value
        total += f.requests / 1e6 * PRICES["run_million_requests"].value
    return total


def storage_cost(use: MonthUse, months_stored: float) -> float:
    """The lake's bytes kept `months_stored` months, plus the operations of loading them once."""
    stored = use.lake_bytes / 1e9 * PRICES["gcs_gb_month"].value * months_stored
    ops = use.gcs_class_a / 1000 * PRICES["gcs_class_a_1000"].value
    return stored + ops + use.gcs_class_b / 1000 * PRICES["gcs_class_b_1000"].value


def bigquery_cost(bq_bytes: int, months_stored: float, queries: int, bytes_per_query: int) -> float:
    """Storage of the rows plus the status/repair queries that read them (load jobs are free)."""
    storage = bq_bytes / GIB * PRICES["bq_gib_month"].value * months_stored
    scanned = max(bytes_per_query, BQ_MIN_BYTES_PER_QUERY) * queries
    return storage + scanned / TIB * PRICES["bq_tib_scanned"].value


def cloud_sql_cost(pg_bytes: int, months: float) -> float:
    """The default instance for `months`, and its disk: the default size or what the rows need."""
    disk_gb = max(SQL_DISK_GB, math.ceil(pg_bytes / 1e9))
    instance = PRICES["sql_f1_micro_hour"].value * MONTH_HOURS
    return (instance + disk_gb * PRICES["sql_ssd_gb_month"].value) * months


def finish_seconds(use: MonthUse, sizing: dict[str, Sizing] = SIZING) -> dict[str, float]:
    """When each function is done with one month's backfill, published at once: the first date
    splits the month; the other dates, `max_instances` at a time, publish from the split; each
    loader takes the dates as they come out, `max_instances` at a time, at its mean request time."""
    ingest = use.functions["ingest"]
    later = use.dates - 1
    ingest_done = ingest.first_seconds + math.ceil(later / sizing["ingest"].max_instances) * ingest.later_seconds
    done = {"ingest": ingest_done}
    for name in ("load_bigquery", "load_postgres"):
        load = use.functions.get(name)
        if load is not None:
            per_date = load.per_request()
            pace = math.ceil(use.dates / sizing[name].max_instances) * per_date
            done[name] = max(ingest.first_seconds + pace, ingest_done + per_date)
    return done


def month_wall_seconds(use: MonthUse, sizing: dict[str, Sizing] = SIZING) -> float:
    """One month's backfill: until the slowest function is done."""
    return max(finish_seconds(use, sizing).values())


def year_wall_seconds(use: MonthUse, sizing: dict[str, Sizing] = SIZING) -> float:
    """Twelve such months: a month's dates hold the ingest instances while its first date splits,
    so months follow one another; a loader goes no faster than its `max_instances` at a time
    over the year's dates."""
    ingest = use.functions["ingest"]
    later = math.ceil((use.dates - 1) / sizing["ingest"].max_instances) * ingest.later_seconds
    done = 11 * (ingest.first_seconds + later) + month_wall_seconds(use, sizing)
    for name in ("load_bigquery", "load_postgres"):
        load = use.functions.get(name)
        if load is not None:
            pace = math.ceil(12 * use.dates / sizing[name].max_instances) * load.per_request()
            done = max(done, ingest.first_seconds + pace)
    return done


@dataclass(frozen=True)
class Estimate:
    label: str
    cloud_run: float
    cloud_storage: float
    bigquery: float
    cloud_sql: float
    wall_seconds: float

    @property
    def total(self) -> float:
        return self.cloud_run + self.cloud_storage + self.bigquery + self.cloud_sql


def estimate(label: str, month: MonthUse, months: int) -> Estimate:
    """The backfill of `months` months of one service, then a month of keeping them: compute once;
    the lake, BigQuery and Cloud SQL storage for one month; the hourly repair's status query over
    all of it for that month (an upper bound: the repair reads only dates its ledger saw lately)
    and one status per month backfilled; the default Cloud SQL instance for that month."""
    queries = REPAIRS_PER_MONTH + months
    return Estimate(
        label,
        cloud_run=cloud_run_cost(month) * months,
        cloud_storage=storage_cost(month, 1) * months,
        bigquery=bigquery_cost(month.bq_bytes * months, 1, queries, month.status_bytes * months),
        cloud_sql=cloud_sql_cost(month.pg_bytes * months, 1),
        wall_seconds=month_wall_seconds(month) if months == 1 else year_wall_seconds(month),
    )


# Rows of a typical month per service, from TLC's published 2021-01 files (yellow: the bench's
# own month, measured; the others as recalled, not re-verified here: pass --cost-rows to change).
SERVICE_ROWS = {"yellow": 1_369_765, "green": 76_518, "fhv": 1_154_112, "fhvhv": 11_908_468}


def table(measured: MonthUse, service_rows: dict[str, int] = SERVICE_ROWS, dates: int = 31) -> list[Estimate]:
    out = []
    for service, rows in service_rows.items():
        month = measured.scaled(rows, dates)
        out += [estimate(f"{service}, one month", month, 1), estimate(f"{service}, one year", month, 12)]
    return out
