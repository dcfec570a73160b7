"""GCS event envelopes, lake paths and settings validation."""

import base64
import dataclasses
import datetime as dt
import json

import pytest
from cloudevents.http import CloudEvent

from shared.core import paths
from shared.core.errors import ConfigError, ValidationError
from shared.core.events import object_event
from shared.core.settings import Settings, env_vars_for

RESOURCE = {
    "bucket": "lake",
    "name": "trips/yellow/pickup_date=2021-01-15/data.parquet",
    "generation": "1700000000000001",
    "metageneration": "1",
    "size": "1234",
    "metadata": {"rows_written": "42"},
}


def eventarc_finalized(resource=RESOURCE):
    """What Eventarc delivers for a direct GCS trigger."""
    return CloudEvent(
        {
            "type": "google.cloud.storage.object.v1.finalized",
            "source": "//storage.googleapis.com/projects/_/buckets/lake",
            "subject": f"objects/{resource['name']}",
            "id": "1",
        },
        resource,
    )


def pubsub_notification(resource=RESOURCE, event_type="OBJECT_FINALIZE"):
    """A GCS Pub/Sub notification (JSON_API_V1) pushed through functions-framework."""
    attributes = {
        "eventType": event_type,
        "bucketId": resource["bucket"],
        "objectId": resource["name"],
        "objectGeneration": resource["generation"],
        "payloadFormat": "JSON_API_V1",
        "notificationConfig": "projects/_/buckets/lake/notificationConfigs/1",
    }
    message = {
        "data": base64.b64encode(json.dumps(resource).encode()).decode(),
        "attributes": attributes,
        "messageId": "9",
        "publishTime": "2021-01-16T05:00:00Z",
    }
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/p/topics/lake-events",
            "id": "9",
        },
        {"message": message, "subscription": "projects/p/subscriptions/s"},
    )


@pytest.mark.parametrize("build", [eventarc_finalized, pubsub_notification])
def test_both_envelopes_give_the_same_object_event(build):
    event = object_event(build())
    assert (event.bucket, event.name, event.generation, event.size) == (
        "lake",
        "trips/yellow/pickup_date=2021-01-15/data.parquet",
        1700000000000001,
        1234,
    )
    assert event.metadata == {"rows_written": "42"}


def test_other_notification_types_are_not_finalize_events():
    assert object_event(pubsub_notification(event_type="OBJECT_DELETE")) is None


def test_finalize_without_generation_is_invalid():
    with pytest.raises(ValidationError) as err:
        object_event(eventarc_finalized({**RESOURCE, "generation": None}))
    assert err.value.field == "data.generation"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"bucket": None}, "data.bucket"),  # was reported as data.name
        ({"bucket": ["lake"]}, "data.bucket"),
        ({"name": ""}, "data.name"),
        ({"name": {"a": 1}}, "data.name"),
        ({"generation": 1.5}, "data.generation"),  # int() truncated it to 1
        ({"generation": True}, "data.generation"),
        ({"generation": "-3"}, "data.generation"),
        ({"generation": float("inf")}, "data.generation"),  # OverflowError: was a crash
        ({"metadata": ["a"]}, "data.metadata"),  # AttributeError: was a crash
        ({"metadata": "rows=3"}, "data.metadata"),
    ],
)
def test_a_malformed_object_resource_names_the_field(change, field):
    with pytest.raises(ValidationError) as err:
        object_event(eventarc_finalized({**RESOURCE, **change}))
    assert err.value.field == field


@pytest.mark.parametrize("payload", [b"[1, 2]", b"[" * 100_000 + b"]" * 100_000, b'{"name": "\xff"}', b"{not json"])
def test_a_malformed_notification_payload_is_bad_input_not_a_crash(payload):
    """A list payload raised AttributeError, deep nesting RecursionError, bad UTF-8 UnicodeDecodeError:
    all three were classed transient and retried."""
    event = pubsub_notification()
    event.data["message"]["data"] = base64.b64encode(payload).decode()
    with pytest.raises(ValidationError) as err:
        object_event(event)
    assert err.value.field == "message.data"


def test_partition_names_round_trip():
    day = dt.date(2021, 1, 15)
    name = paths.trips_object("green", day)
    assert name == "trips/green/pickup_date=2021-01-15/data.parquet"
    parsed = paths.parse_partition(name)
    assert (parsed.kind, parsed.service, parsed.date) == ("trips", "green", day)
    for bad in [
        "trips/blue/pickup_date=2021-01-15/data.parquet",
        "trips/yellow/pickup_date=2021-02-30/data.parquet",
        "raw/yellow/yellow_tripdata_2021-01.csv.gz",
        "trips/yellow/pickup_date=2021-01-15/other.parquet",
    ]:
        assert paths.parse_partition(bad) is None
    assert (
        paths.raw_object("yellow", "https://x/y/yellow_tripdata_2021-01.parquet?sig=1")
        == "raw/yellow/yellow_tripdata_2021-01.parquet"
    )


BASE = {"GCP_PROJECT": "p", "LAKE_BUCKET": "b", "DEAD_LETTER_TOPIC": "d"}


def test_settings_defaults_and_types():
    settings = Settings.from_env({**BASE, "INGEST_LAG_DAYS": "3", "KEEP_EMPTY_PASSENGER_COUNT": "true"}, "ingest")
    assert settings.ingest_lag_days == 3 and settings.keep_empty_passenger_count is True
    assert settings.schema_contract == "evolve"  # the default: a public archive that keeps adding fee columns
    assert Settings.from_env({**BASE, "SCHEMA_CONTRACT": "freeze"}, "ingest").schema_contract == "freeze"
    assert settings.bq_dataset == "nyc_taxi" and settings.pg_schema == "ny_taxi"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lake_bucket = "other"  # frozen


@pytest.mark.parametrize(
    "env, field",
    [
        ({"INGEST_LAG_DAYS": "-1"}, "INGEST_LAG_DAYS"),
        ({"BQ_PARTITION_EXPIRATION_DAYS": "-1"}, "BQ_PARTITION_EXPIRATION_DAYS"),
        ({"SOURCE_URL_TEMPLATE": "https://x/{service}/{date}.csv"}, "SOURCE_URL_TEMPLATE"),
        ({"SOURCE_URL_TEMPLATE": "file:///etc/{service}.csv"}, "SOURCE_URL_TEMPLATE"),
        ({"KEEP_EMPTY_PASSENGER_COUNT": "maybe"}, "KEEP_EMPTY_PASSENGER_COUNT"),
        ({"SCHEMA_CONTRACT": "EVOLVE"}, "SCHEMA_CONTRACT"),
        ({"SCHEMA_CONTRACT": "discard"}, "SCHEMA_CONTRACT"),
    ],
)
def test_invalid_settings_name_the_variable(env, field):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, **env}, "ingest")
    assert err.value.field == field


def test_required_only_where_used_and_password_never_shown():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE}, "backfill")
    assert err.value.field == "INGEST_TOPIC"
    settings = Settings.from_env({**BASE, "PG_PASSWORD": "s3cret"}, "load_postgres")
    assert "s3cret" not in repr(settings)
    assert "INGEST_TOPIC" in env_vars_for("backfill") and "INGEST_TOPIC" not in env_vars_for("ingest")


def test_no_function_named_requires_only_what_every_function_has():
    """Shared code (the client factories) parses settings without a function: a loader deployed
    without INGEST_TOPIC must still get its clients."""
    settings = Settings.from_env({**BASE})
    assert settings.project == "p" and settings.ingest_topic is None
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"LAKE_BUCKET": "b", "DEAD_LETTER_TOPIC": "d"})
    assert err.value.field == "GCP_PROJECT"
