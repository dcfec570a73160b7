"""load_bigquery against fake-gcs-server, the Pub/Sub emulator and the BigQuery emulator.

The local stack runs the path that runs in Google Cloud: one load job into the partition
decorator `table$YYYYMMDD` with WRITE_TRUNCATE. The emulator has no decorators; the stack's
BigQuery bridge (local/stack/bq_bridge.py, bq_partition.py) gives such a job Google's semantics:
the day replaced atomically, rows of another day refused, a job id used twice a 409. Each test
has its own bucket and dataset, created the way Terraform creates the deployed one.
"""

from __future__ import annotations

import csv
import datetime as dt
import uuid

import pyarrow as pa
import pytest

from functions import load_bigquery
from shared.core import clients, paths
from shared.ingest.lake_write import upload_parquet
from shared.load import bigquery as bigquery_load
from tests.gcs_events import deliver_concurrently, gcs_finalized_event, pubsub_notification_event

DAY = dt.date(2021, 1, 1)
NAME = paths.trips_object("yellow", DAY)
ENVELOPES = (pubsub_notification_event, gcs_finalized_event)


@pytest.fixture
def dataset(fresh_bucket, settings_env):
    name = f"it_{uuid.uuid4().hex[:10]}"
    settings_env(BQ_DATASET=name, BQ_PARTITION_EXPIRATION_DAYS="0")
    clients.bigquery().create_dataset(name)  # Terraform's job (bigquery.tf): the loader may not create datasets
    bigquery_load._ensured.clear()
    yield name
    clients.bigquery().delete_dataset(name, delete_contents=True, not_found_ok=True)


def rows(dataset: str, where: str = f"pickup_date = DATE '{DAY}'") -> list[dict]:
    sql = f"SELECT * FROM `{dataset}.yellow_trips` WHERE {where} ORDER BY pickup_datetime, pu_location_id"
    return [dict(r) for r in clients.bigquery().query(sql).result()]


def day_count(dataset: str) -> int:
    sql = f"SELECT count(*) AS n FROM `{dataset}.yellow_trips` WHERE pickup_date = DATE '{DAY}'"
    return list(clients.bigquery().query(sql).result())[0]["n"]


def staging_tables(dataset: str) -> list[str]:
    """Tables the bridge stages a decorated load in: never left behind."""
    return [t.table_id for t in clients.bigquery().list_tables(dataset) if t.table_id.startswith("_staging")]


def upload(bucket, table: pa.Table):
    return upload_parquet(bucket, NAME, table, {"service": "yellow"})


def deliver(blob, envelope=pubsub_notification_event) -> None:
    load_bigquery.handle(envelope(blob.bucket.name, blob.name, blob.generation))


def test_table_is_created_partitioned_clustered_and_described(fresh_bucket, dataset, real_day):
    deliver(upload(fresh_bucket, real_day))
    table = clients.bigquery().get_table(f"{dataset}.yellow_trips")
    assert table.time_partitioning.type_ == "DAY" and table.time_partitioning.field == "pickup_date"
    assert table.clustering_fields == ["pu_location_id", "do_location_id"]
    fields = {f.name: f for f in table.schema}
    assert fields["pickup_datetime"].field_type == "DATETIME" and fields["pickup_date"].field_type == "DATE"
    assert "2 = Cash" in fields["payment_type"].description and all(f.description for f in table.schema)


def test_load_again_newer_then_older(fresh_bucket, dataset, real_day):
    first = upload(fresh_bucket, real_day)
    deliver(first, pubsub_notification_event)
    loaded = rows(dataset)
    assert len(loaded) == 96

    deliver(first, gcs_finalized_event)  # the same job id: 409, the existing job's result is reused
    assert rows(dataset) == loaded

    newer = upload(fresh_bucket, real_day.slice(0, 40))
    deliver(newer)
    assert day_count(dataset) == 40, "replaced, not added"

    deliver(first)  # the older generation, delivered late: stale in the lake, skipped
    assert day_count(dataset) == 40
    assert staging_tables(dataset) == []


def test_other_days_are_untouched(fresh_bucket, dataset, real_day):
    other_day = DAY + dt.timedelta(days=1)
    other = real_day.set_column(
        real_day.schema.get_field_index("pickup_date"),
        "pickup_date",
        pa.array([other_day] * real_day.num_rows, pa.date32()),
    )
    blob = upload_parquet(fresh_bucket, paths.trips_object("yellow", other_day), other, {})
    deliver(blob)
    deliver(upload(fresh_bucket, real_day))
    deliver(upload(fresh_bucket, real_day.slice(0, 5)))
    assert day_count(dataset) == 5 and len(rows(dataset, f"pickup_date = DATE '{other_day}'")) == 96


def test_same_event_to_concurrent_invocations_loads_the_day_once(fresh_bucket, dataset, real_day):
    big = pa.concat_tables([real_day] * 50)
    deliver(upload(fresh_bucket, real_day.slice(0, 1)))  # the table exists and the day has an old version
    blob = upload(fresh_bucket, big)
    assert not deliver_concurrently(deliver, blob, ENVELOPES, invocations=3, timeout=180)
    assert day_count(dataset) == big.num_rows
    assert staging_tables(dataset) == []


def test_corrupt_parquet_is_dead_lettered_and_the_day_stays_intact(fresh_bucket, dataset, real_day, dead_letters):
    deliver(upload(fresh_bucket, real_day))
    before = rows(dataset)
    blob = fresh_bucket.blob(NAME)
    blob.upload_from_string(b"PAR1 this is not parquet PAR1")
    deliver(blob, gcs_finalized_event)  # returns: a permanent error is acked, not retried

    letters = [
        b for b in dead_letters(expected=1) if b["context"].get("object", "").endswith(f"{fresh_bucket.name}/{NAME}")
    ]
    assert len(letters) == 1
    assert letters[0]["function"] == "load_bigquery" and letters[0]["reason"] == "corrupt_parquet"
    assert letters[0]["context"]["generation"] == blob.generation
    assert letters[0]["event"]["attributes"]["type"] == "google.cloud.storage.object.v1.finalized"
    assert rows(dataset) == before
    assert staging_tables(dataset) == []


def test_known_row_round_trips_exactly(fresh_bucket, dataset, real_day, real_yellow_sample):
    deliver(upload(fresh_bucket, real_day))
    with open(real_yellow_sample, newline="") as handle:
        source = next(csv.DictReader(handle))
    pickup = dt.datetime.fromisoformat(source["tpep_pickup_datetime"])
    (row,) = rows(
        dataset,
        f"pickup_datetime = DATETIME '{pickup.isoformat(sep=' ')}' AND pu_location_id = {int(source['PULocationID'])}",
    )
    assert row["pickup_datetime"] == pickup  # DATETIME: naive local time, not shifted
    assert row["dropoff_datetime"] == dt.datetime.fromisoformat(source["tpep_dropoff_datetime"])
    assert (row["pu_location_id"], row["do_location_id"]) == (int(source["PULocationID"]), int(source["DOLocationID"]))
    for name in (
        "trip_distance",
        "fare_amount",
        "extra",
        "mta_tax",
        "tip_amount",
        "tolls_amount",
        "improvement_surcharge",
        "total_amount",
        "congestion_surcharge",
    ):
        assert row[name] == float(source[name]), name
    assert (row["payment_type"], row["passenger_count"], row["store_and_fwd_flag"]) == (
        int(source["payment_type"]),
        int(source["passenger_count"]),
        source["store_and_fwd_flag"],
    )


def test_partition_expiration_follows_the_setting(fresh_bucket, dataset, settings_env, real_day):
    deliver(upload(fresh_bucket, real_day))
    assert not clients.bigquery().get_table(f"{dataset}.yellow_trips").time_partitioning.expiration_ms
    settings_env(BQ_PARTITION_EXPIRATION_DAYS="30")  # a new deployment with the setting changed
    bigquery_load._ensured.clear()
    deliver(upload(fresh_bucket, real_day.slice(0, 3)))
    table = clients.bigquery().get_table(f"{dataset}.yellow_trips")
    assert table.time_partitioning.expiration_ms == 30 * 86_400_000 and day_count(dataset) == 3


def decorated_load(dataset: str, blob, day: dt.date, job_id: str, disposition: str = "WRITE_TRUNCATE"):
    """The request shared/load/bigquery.py sends in Google Cloud, sent as it is."""
    from google.cloud import bigquery as bq

    from shared.core.settings import get_settings

    config = bq.LoadJobConfig(
        source_format=bq.SourceFormat.PARQUET,
        schema=bigquery_load.schema_fields("yellow"),
        write_disposition=disposition,
        create_disposition=bq.CreateDisposition.CREATE_NEVER,
    )
    table = f"{get_settings().project}.{dataset}.yellow_trips${day:%Y%m%d}"
    uri = f"gs://{blob.bucket.name}/{blob.name}"
    return clients.bigquery().load_table_from_uri(uri, table, job_id=job_id, job_config=config)


def test_the_day_is_replaced_by_one_load_job_into_its_partition_decorator(fresh_bucket, dataset, real_day):
    """The cloud path itself: the job the loader ran is a load into yellow_trips$20210101."""
    blob = upload(fresh_bucket, real_day)
    deliver(blob)
    job_id = bigquery_load.job_id(
        "load", bigquery_load.table_id(get_settings_for(dataset), "yellow"), DAY, blob.generation
    )
    job = clients.bigquery().get_job(job_id)
    assert job.job_type == "load" and job.state == "DONE" and job.error_result is None
    assert job.destination.table_id == f"yellow_trips${DAY:%Y%m%d}"
    assert job.write_disposition == "WRITE_TRUNCATE" and job.source_uris == [f"gs://{fresh_bucket.name}/{NAME}"]
    assert job.output_rows == 96 == day_count(dataset)
    assert staging_tables(dataset) == []


def test_a_decorated_load_with_rows_of_another_day_fails_and_changes_nothing(fresh_bucket, dataset, real_day):
    """Google refuses rows outside the decorator's partition; so does the stack."""
    from google.api_core import exceptions as gexc

    deliver(upload(fresh_bucket, real_day))
    before = rows(dataset)
    other_day = DAY + dt.timedelta(days=1)
    mixed = real_day.set_column(
        real_day.schema.get_field_index("pickup_date"),
        "pickup_date",
        pa.array([DAY] * (real_day.num_rows - 1) + [other_day], pa.date32()),
    )
    blob = upload_parquet(fresh_bucket, "probe/mixed.parquet", mixed, {})
    job = decorated_load(dataset, blob, DAY, f"it_mixed_{uuid.uuid4().hex}")
    with pytest.raises(gexc.BadRequest, match="rows belong to different partitions"):
        job.result(timeout=120)
    assert rows(dataset) == before and rows(dataset, f"pickup_date = DATE '{other_day}'") == []
    assert staging_tables(dataset) == []


def test_a_job_id_used_before_is_a_409_as_in_google_cloud(fresh_bucket, dataset, real_day):
    from google.api_core import exceptions as gexc

    deliver(upload(fresh_bucket, real_day.slice(0, 3)))  # the loader creates the table
    blob = upload(fresh_bucket, real_day)
    job_id = f"it_twice_{uuid.uuid4().hex}"
    assert decorated_load(dataset, blob, DAY, job_id).result(timeout=120).output_rows == 96
    with pytest.raises(gexc.Conflict):
        decorated_load(dataset, blob, DAY, job_id)
    assert day_count(dataset) == 96


def get_settings_for(dataset: str):
    from shared.core.settings import get_settings

    settings = get_settings()
    assert settings.bq_dataset == dataset
    return settings


def test_a_staging_table_left_by_a_load_the_emulator_died_under_is_dropped_by_the_next_load(
    fresh_bucket, dataset, real_day
):
    """Issue 21 §7: the bridge drops a load's staging table in a `finally` that cannot reach an emulator
    that is gone, so a table is left behind; the next load of the same table drops it (chaos found one)."""
    from google.cloud import bigquery

    deliver(upload(fresh_bucket, real_day.slice(0, 3)))  # the loader creates the table
    client = clients.bigquery()
    schema = client.get_table(f"{dataset}.yellow_trips").schema
    leftover = f"_staging_bridge_yellow_trips_{DAY:%Y%m%d}_0123abcd"
    other_table = "_staging_bridge_yellow_trips_extra_20210101_0123abcd"  # another table's name: kept
    for name in (leftover, other_table):
        client.create_table(bigquery.Table(f"{client.project}.{dataset}.{name}", schema=schema))
    assert set(staging_tables(dataset)) == {leftover, other_table}
    deliver(upload(fresh_bucket, real_day))
    assert day_count(dataset) == 96
    assert staging_tables(dataset) == [other_table]


COORDINATES = ("pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude")


def test_a_table_of_an_older_release_gets_the_columns_declared_since_and_loads(fresh_bucket, dataset, real_day):
    """Upgrade: yellow_trips as the release before issue 18 made it (no 2009-2010 coordinates, with a
    day loaded). The new loader appends the declared columns it lacks (NULLABLE, described, at the
    end) and loads a day into it; the old day keeps its rows, its new columns null."""
    settings = get_settings_for(dataset)
    old = bigquery_load.table_definition(settings, "yellow")
    old.schema = [f for f in old.schema if f.name not in COORDINATES]
    client = clients.bigquery()
    client.create_table(old)
    names = [f.name for f in old.schema]
    earlier = real_day.select(names).set_column(
        names.index("pickup_date"), "pickup_date", pa.array([DAY - dt.timedelta(days=1)] * len(real_day))
    )
    earlier_rows = [dict(r) for r in earlier.to_pylist()]
    client.insert_rows(client.get_table(old.reference), earlier_rows)  # the old release's day
    deliver(upload(fresh_bucket, real_day))
    table = client.get_table(f"{dataset}.yellow_trips")
    fields = [f.name for f in table.schema]
    assert fields == [*names, *COORDINATES], fields
    assert all(f.description and f.mode == "NULLABLE" for f in table.schema if f.name in COORDINATES)
    assert day_count(dataset) == len(real_day) == 96
    earlier_day = rows(dataset, f"pickup_date = DATE '{DAY - dt.timedelta(days=1)}'")
    assert len(earlier_day) == 96 and all(r["pickup_longitude"] is None for r in earlier_day)
