"""The archive walk: every (service, month) TLC has published, as its era's file, through the month split.

For each source (TLC's parquet, DataTalksClub's CSV mirror) and every month from the service's
first to 2025-12 (568 months), either the source serves the month and a small era-faithful file
(local/tlc_eras.py, from the era table shared/core/eras.py: header, column order, types, worded
codes, untyped columns) splits with every row landing in its day with the era's columns filled,
or the month is refused at the message with `unsupported_month` (shared/core/coverage.py), before
any download. Pure: no stack, no network.
"""

from __future__ import annotations

import io

import pyarrow.compute as pc
import pytest

from local.tlc_eras import era_table, file_bytes
from shared.core.coverage import TLC_PARQUET_TEMPLATE, UNSUPPORTED, check_served
from shared.core.eras import MIRROR, MIRROR_TEMPLATE, TLC, era, months
from shared.core.errors import ValidationError
from shared.core.schemas import SERVICES, source_columns
from shared.ingest.cleaning import Rules
from shared.ingest.lake import split_month

LAST = (2025, 12)
ROWS = 12
TEMPLATES = {TLC: TLC_PARQUET_TEMPLATE, MIRROR: MIRROR_TEMPLATE}


def _walk(service: str, source: str) -> dict[str, int]:
    outcome = {"loaded": 0, "refused": 0}
    for year, month in months(service, LAST):
        found = era(service, source, year, month)
        day = __import__("datetime").date(year, month, 1)
        if found is None:
            with pytest.raises(ValidationError) as refused:
                check_served(service, day, TEMPLATES[source])
            assert refused.value.reason == UNSUPPORTED and refused.value.details["serves"] == TLC_PARQUET_TEMPLATE
            outcome["refused"] += 1
            continue
        check_served(service, day, TEMPLATES[source])  # served: not refused
        table = era_table(found, year, month, ROWS)
        split = split_month(io.BytesIO(file_bytes(found, table)), found.fmt, service, year, month, Rules())
        label = f"{service} {source} {year}-{month:02d}"
        assert split.source_rows == ROWS and split.month_rejected_rows == 0, label
        assert sum(d.rows_written for d in split.days.values()) == ROWS, (label, split.bad_values)
        trips = [split.tables(d)[0] for d, counts in split.days.items() if counts.rows_written]
        _assert_columns(found, trips, label)
        outcome["loaded"] += 1
    return outcome


def _assert_columns(found, trips, label: str) -> None:
    """Every column the era's header has is filled (unless TLC stored it empty), the others null."""
    known = source_columns(found.service)
    filled = {known[name.lower()].name for name, kind in found.columns if kind != "null"}
    for table in trips:
        for name in table.column_names:
            if name in ("pickup_date",):
                continue
            nulls = table[name].null_count
            if name in filled and name not in (
                "pickup_longitude",
                "pickup_latitude",
                "dropoff_longitude",
                "dropoff_latitude",
            ):
                assert nulls == 0, (label, name)
            elif name not in filled:
                assert nulls == table.num_rows, (label, name)
        if found.first[0] <= 2010 and found.service == "yellow":
            assert pc.all(pc.is_in(table["vendor_id"], value_set=__import__("pyarrow").array([1, 2, 3]))).as_py(), label


@pytest.mark.parametrize("service", SERVICES)
def test_every_published_month_loads_from_tlc_parquet(service):
    outcome = _walk(service, TLC)
    assert outcome["refused"] == 0 and outcome["loaded"] == len(months(service, LAST))


@pytest.mark.parametrize("service", SERVICES)
def test_the_mirror_loads_2019_to_2021_07_and_refuses_every_other_month_at_the_message(service):
    outcome = _walk(service, MIRROR)
    assert outcome["loaded"] == (30 if service == "fhvhv" else 31)
    assert outcome["loaded"] + outcome["refused"] == len(months(service, LAST))


def test_the_walk_covers_about_560_months():
    assert sum(len(months(service, LAST)) for service in SERVICES) == 568


def test_the_local_tlc_server_draws_fhvhv_months_from_tlc_s_era_and_leaves_the_others_to_tlc_data(tmp_path):
    import pyarrow.parquet as pq

    from local.tlc_eras import write_era_month

    path = tmp_path / "fhvhv" / "fhvhv_tripdata_2021-02.parquet"
    assert write_era_month(path, "fhvhv", 2021, 2, 50, "parquet")
    table = pq.read_table(path)
    assert (table.num_rows, table.num_columns) == (50, 24) and table.column_names[0] == "hvfhs_license_num"
    assert not write_era_month(tmp_path / "y.csv.gz", "yellow", 2021, 2, 50, "csv.gz")
