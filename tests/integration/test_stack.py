"""The local stack itself (./local_emulator.sh up): each emulator answers, and is wired as the
pipeline needs it. These run against the real servers; see tests/integration/conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO

PUSH_SUBSCRIPTIONS = {  # subscription -> (topic variable, function)
    "taxi-ingest-push": ("INGEST_TOPIC", "INGEST"),
    "taxi-backfill-push": ("BACKFILL_TOPIC", "BACKFILL"),
    "taxi-lake-bigquery-push": ("LAKE_EVENTS_TOPIC", "LOAD_BIGQUERY"),
    "taxi-lake-postgres-push": ("LAKE_EVENTS_TOPIC", "LOAD_POSTGRES"),
}
RELAY_LOG = REPO / ".state" / "logs" / "relay.log"
RELAY_PID = REPO / ".state" / "pids" / "relay.pid"
FUNCTIONS = ("INGEST", "BACKFILL", "LOAD_BIGQUERY", "LOAD_POSTGRES", "STATUS", "BACKFILL_HTTP")


def test_pubsub_emulator_publish_and_pull(pubsub):
    topic = pubsub.temporary_topic()
    subscription = pubsub.pull_subscription(topic)
    body = {"probe": uuid.uuid4().hex}
    pubsub.publisher.publish(
        pubsub.publisher.topic_path(os.environ["GCP_PROJECT"], topic), json.dumps(body).encode(), origin="test_stack"
    ).result(timeout=30)
    message = pubsub.pull_until(subscription, lambda m: json.loads(m.data) == body)
    assert message.attributes["origin"] == "test_stack"


def test_gcloud_publishes_to_the_emulator_with_the_stack_env(pubsub):
    """What the README tells a person to do after eval "$(./local_emulator.sh env)"."""
    gcloud = shutil.which("gcloud")
    assert gcloud, "gcloud is not on PATH"
    topic = pubsub.temporary_topic()
    subscription = pubsub.pull_subscription(topic)
    body = json.dumps({"probe": uuid.uuid4().hex})
    subprocess.run(
        [gcloud, "pubsub", "topics", "publish", topic, f"--message={body}"],
        check=True,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert pubsub.pull_until(subscription, lambda m: m.data.decode() == body)


def test_function_subscriptions_are_pull_with_dead_letters_and_no_retry_policy(stack, pubsub):
    """Pull, for the relay; no retry policy, which breaks the emulator's redelivery; the
    dead-letter policy stays, so the emulator counts attempts and forwards after the 5th."""
    project = os.environ["GCP_PROJECT"]
    for name, (topic_var, _function) in PUSH_SUBSCRIPTIONS.items():
        subscription = pubsub.subscriber.get_subscription(
            subscription=pubsub.subscriber.subscription_path(project, name)
        )
        assert subscription.topic == f"projects/{project}/topics/{os.environ[topic_var]}"
        assert subscription.push_config.push_endpoint == ""
        assert "retry_policy" not in subscription
        assert subscription.ack_deadline_seconds == 600
        assert (
            subscription.dead_letter_policy.dead_letter_topic
            == f"projects/{project}/topics/{os.environ['DEAD_LETTER_TOPIC']}"
        )
        # The suite sets it explicitly (local_emulator.sh test); the stack's default is Terraform's 10.
        assert subscription.dead_letter_policy.max_delivery_attempts == int(os.environ["MAX_DELIVERY_ATTEMPTS"])
    keeper = pubsub.subscriber.get_subscription(
        subscription=pubsub.subscriber.subscription_path(project, "taxi-dead-letter-sub")
    )
    assert keeper.topic.endswith("/" + os.environ["DEAD_LETTER_TOPIC"])


def relay_events(since: int) -> list[dict]:
    with RELAY_LOG.open("rb") as log:
        log.seek(since)
        return [json.loads(line) for line in log.read().decode().splitlines() if line.startswith("{")]


def test_the_push_relay_runs_and_delivers_to_each_function(stack, pubsub):
    """A message on each topic reaches each function through the stack's relay and is acked:
    harmless ones (not a date: the function dead-letters it and answers 200; an object of
    another bucket: the loaders ignore it)."""
    pid = RELAY_PID.read_text().split()[0] if RELAY_PID.exists() else None
    assert pid and Path(f"/proc/{pid}/stat").exists(), "the push relay is not running (.state/pids/relay.pid)"
    since = RELAY_LOG.stat().st_size
    project = os.environ["GCP_PROJECT"]
    probe = uuid.uuid4().hex
    other_bucket = f"it-stack-{probe[:10]}"
    sent = {}
    for topic_var, data, attributes in [
        ("INGEST_TOPIC", {"probe": probe}, {}),
        ("BACKFILL_TOPIC", {"probe": probe}, {}),
        (
            "LAKE_EVENTS_TOPIC",
            {"bucket": other_bucket, "name": "probe.txt", "generation": "1"},
            {
                "eventType": "OBJECT_FINALIZE",
                "bucketId": other_bucket,
                "objectId": "probe.txt",
                "objectGeneration": "1",
                "payloadFormat": "JSON_API_V1",
            },
        ),
    ]:
        topic = pubsub.publisher.topic_path(project, os.environ[topic_var])
        sent[topic_var] = pubsub.publisher.publish(topic, json.dumps(data).encode(), **attributes).result(timeout=30)
    expected = {
        (f"projects/{project}/subscriptions/{name}", sent[topic_var])
        for name, (topic_var, _function) in PUSH_SUBSCRIPTIONS.items()
    }
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        delivered = {
            (e["subscription"], e["message_id"])
            for e in relay_events(since)
            if e["event"] == "delivered" and e["status"] == 200
        }
        if expected <= delivered:
            break
        time.sleep(0.5)
    assert expected <= delivered, f"not delivered: {expected - delivered}; relay log: {relay_events(since)}"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_listens(stack, function):
    url = os.environ[f"TAXI_FUNCTION_URL_{function}"]
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=5):
        pass


def test_fake_gcs_notifies_trips_finalizes_only_like_the_deployed_notification(pubsub):
    """fake-gcs-server publishes OBJECT_FINALIZE to the lake-events topic as the deployed GCS
    notification does (infra/terraform/pubsub.tf: object_name_prefix trips/): for trips/ objects only,
    so a runs/, raw/ or staging/ write wakes no loader, here as in Google Cloud."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    subscription = pubsub.pull_subscription(os.environ["LAKE_EVENTS_TOPIC"])
    client = storage.Client(project=os.environ["GCP_PROJECT"], credentials=AnonymousCredentials())
    bucket = client.create_bucket(f"it-stack-{uuid.uuid4().hex[:10]}")  # not the lake: loaders ignore it
    name = "trips/yellow/pickup_date=2021-01-15/data.parquet"
    try:
        for other in ("runs/yellow/pickup_date=2021-01-15/ingest/probe.json", "staging/yellow/month=2021-01/_claim"):
            bucket.blob(other).upload_from_string(b"{}", content_type="application/json")
        blob = bucket.blob(name)
        blob.metadata = {"rows_written": "3"}
        blob.upload_from_string(b"hello", content_type="application/octet-stream")
        seen: list[str] = []

        def ours(message) -> bool:
            if message.attributes.get("bucketId") != bucket.name:
                return False
            seen.append(message.attributes["objectId"])
            return message.attributes["objectId"] == name

        message = pubsub.pull_until(subscription, ours)
        seen += [
            m.attributes["objectId"] for m in pubsub.drain(subscription) if m.attributes.get("bucketId") == bucket.name
        ]
        assert seen == [name], "only the trips/ object is notified"
        assert message.attributes["eventType"] == "OBJECT_FINALIZE"
        assert message.attributes["payloadFormat"] == "JSON_API_V1"
        data = json.loads(message.data)
        assert (data["bucket"], data["name"], data["size"]) == (bucket.name, name, "5")
        assert data["metadata"] == {"rows_written": "3"}
    finally:
        for blob in client.list_blobs(bucket.name):
            blob.delete()
        bucket.delete()


def test_lake_bucket_exists(stack):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project=os.environ["GCP_PROJECT"], credentials=AnonymousCredentials())
    assert client.lookup_bucket(os.environ["LAKE_BUCKET"]) is not None


def test_bigquery_emulator_answers_a_query_and_has_the_dataset(stack):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=os.environ["GCP_PROJECT"],
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=os.environ["BIGQUERY_EMULATOR_HOST"]),
    )
    assert [tuple(row) for row in client.query("SELECT 1 AS one").result()] == [(1,)]
    assert client.get_dataset(f"{os.environ['GCP_PROJECT']}.nyc_taxi").dataset_id == "nyc_taxi"


def test_postgres_accepts_the_password_and_has_the_database(stack):
    import pg8000.native

    connection = pg8000.native.Connection(
        user=os.environ["PG_USER"],
        password=os.environ["PG_PASSWORD"],
        host=os.environ["PG_HOST"],
        port=int(os.environ["PG_PORT"]),
        database=os.environ["PG_DATABASE"],
    )
    try:
        assert connection.run("SELECT current_database(), current_setting('listen_addresses')") == [
            [os.environ["PG_DATABASE"], "127.0.0.1"]
        ]
    finally:
        connection.close()
    with pytest.raises(pg8000.native.DatabaseError):
        pg8000.native.Connection(
            user=os.environ["PG_USER"],
            password="not-the-password",
            host=os.environ["PG_HOST"],
            port=int(os.environ["PG_PORT"]),
            database=os.environ["PG_DATABASE"],
        )
