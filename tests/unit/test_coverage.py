"""The support matrix's decision (shared/core/coverage.py) and the era table it reads (shared/core/eras.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.core.coverage import TLC_PARQUET_TEMPLATE, UNSUPPORTED, check_served, refusal, source_kind
from shared.core.eras import ERAS, FIRST_MONTH, MIRROR, MIRROR_LAST, MIRROR_TEMPLATE, TLC, era, months
from shared.core.errors import ValidationError
from shared.core.schemas import SERVICES, columns
from shared.core.settings import Settings
from shared.ingest.cleaning import map_columns
from shared.operate import backfill
from tests.unit.test_backfill import NOW, SETTINGS, FakePublisher

LOCAL = "http://127.0.0.1:20080/{service}/{service}_tripdata_{year}-{month:02d}.csv.gz"
TLC_CSV = TLC_PARQUET_TEMPLATE.replace(".parquet", ".csv.gz")


def test_templates_are_told_apart_by_host():
    assert source_kind(MIRROR_TEMPLATE) == MIRROR
    assert source_kind(TLC_PARQUET_TEMPLATE) == TLC
    assert source_kind(LOCAL) is None
    assert source_kind("https://github.com/someone/else/{service}_{year}-{month:02d}.csv.gz") is None


@pytest.mark.parametrize(
    ("service", "month", "served"),
    [
        ("yellow", (2019, 1), True),
        ("yellow", (2021, 7), True),
        ("yellow", (2021, 8), False),
        ("yellow", (2009, 1), False),
        ("yellow", (2018, 12), False),
        ("green", (2013, 8), False),
        ("fhv", (2015, 1), False),
        ("fhv", (2020, 1), True),
        ("fhvhv", (2019, 2), True),
        ("fhvhv", (2021, 2), True),
        ("fhvhv", (2024, 1), False),
    ],
)
def test_the_mirror_serves_2019_to_2021_07_only(service, month, served):
    found = refusal(service, *month, MIRROR_TEMPLATE)
    assert (found is None) == served
    if not served:
        assert found is not None and found.serves == TLC_PARQUET_TEMPLATE


def test_tlc_parquet_serves_every_published_month_and_never_csv():
    for service in SERVICES:
        for year, month in months(service, (2025, 12)):
            assert refusal(service, year, month, TLC_PARQUET_TEMPLATE) is None, (service, year, month)
        assert refusal(service, 2022, 5, TLC_CSV) is not None


def test_a_source_of_unknown_holdings_is_never_refused_but_months_before_tlc_began_are():
    assert refusal("yellow", 2009, 1, LOCAL) is None
    assert refusal("fhvhv", 2019, 2, LOCAL) is None
    assert refusal("fhvhv", 2019, 1, LOCAL) is not None  # fhvhv split from fhv in February 2019


def test_the_refusal_names_reason_field_value_and_what_would_serve_it():
    with pytest.raises(ValidationError) as caught:
        check_served("yellow", dt.date(2009, 1, 15), MIRROR_TEMPLATE)
    error = caught.value.as_dict()
    assert (error["reason"], error["field"], error["value"]) == (UNSUPPORTED, "date", "2009-01-15")
    assert error["serves"] == TLC_PARQUET_TEMPLATE
    assert "2019-01..2021-07" in error["message"]


def test_backfill_refuses_a_range_the_mirror_cannot_serve_before_publishing_anything():
    publisher = FakePublisher()
    mirror = Settings(**{**SETTINGS.__dict__, "source_url_template": MIRROR_TEMPLATE})
    with pytest.raises(ValidationError) as caught:
        backfill.run(
            {"start": "2021-07-30", "end": "2021-08-02", "service": "yellow"}, mirror, publisher=publisher, now=NOW
        )
    assert caught.value.reason == UNSUPPORTED
    assert (caught.value.field, caught.value.value) == ("start", "yellow 2021-08-01")
    assert publisher.published == []
    plan, published = backfill.run({"start": "2021-07-30", "end": "2021-07-31"}, mirror, publisher=publisher, now=NOW)
    assert published == 2


def test_tlc_eras_cover_every_published_month_once_and_mirror_eras_stop_in_2021_07():
    for service in SERVICES:
        for source, last in ((TLC, (2030, 12)), (MIRROR, MIRROR_LAST)):
            held = [m for m in months(service, last) if era(service, source, *m) is not None]
            matching = [[e for e in ERAS if e.service == service and e.source == source and e.covers(*m)] for m in held]
            assert all(len(found) == 1 for found in matching), service
        assert era(service, TLC, *FIRST_MONTH[service]) is not None
        assert all(era(service, TLC, *m) is not None for m in months(service, (2030, 12)))


@pytest.mark.parametrize("item", ERAS, ids=lambda e: f"{e.service}-{e.source}-{e.first[0]}-{e.first[1]:02d}")
def test_every_era_header_maps_onto_the_declared_columns(item):
    """Each spelling is known, none maps twice, and every required column is there: the header of
    every era loads (map_columns raises on any of the three)."""
    mapping = map_columns(item.service, item.names)
    assert len(mapping) == len(item.names)
    declared = {c.name for c in columns(item.service)}
    assert set(mapping) <= declared
