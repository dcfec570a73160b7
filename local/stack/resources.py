"""Create the local stack's resources, idempotently, against the running emulators.

    python -m local.stack.resources topics   # Pub/Sub topics (before fake-gcs-server starts)
    python -m local.stack.resources all      # topics, subscriptions, bucket, dataset, database

Reads the stack's environment (.state/env, exported by local_emulator.sh). The Pub/Sub
emulator keeps nothing across restarts, so topics and subscriptions are made on every `up`.

The function subscriptions are push subscriptions on Google Cloud (infra/). Locally they are
PULL subscriptions with the same names and dead-letter policy, but no retry policy, and
local/stack/push_relay.py pushes their messages to the functions with Google's retry rules:
the emulator's own push loop stops redelivering for good when a retry policy is set and
several messages fail together (README, "The local stack"). PUSH_SUBSCRIPTIONS and the
constants below are the one table both this module and the relay read (`relay_routes`).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

PUSH_SUBSCRIPTIONS = {
    # subscription: (topic env var, function whose URL receives the pushes)
    "taxi-ingest-push": ("INGEST_TOPIC", "INGEST"),
    "taxi-backfill-push": ("BACKFILL_TOPIC", "BACKFILL"),
    "taxi-lake-bigquery-push": ("LAKE_EVENTS_TOPIC", "LOAD_BIGQUERY"),
    "taxi-lake-postgres-push": ("LAKE_EVENTS_TOPIC", "LOAD_POSTGRES"),
}
DEAD_LETTER_SUBSCRIPTION = "taxi-dead-letter-sub"
# The dead-letter policy, from the env file (MAX_DELIVERY_ATTEMPTS), which the functions read too:
# on that attempt they dead-letter a transient failure themselves, with its reason.
# Terraform's `max_delivery_attempts` default unless the stack's env shortens it explicitly.
TERRAFORM_MAX_DELIVERY_ATTEMPTS = 10
MAX_DELIVERY_ATTEMPTS = int(os.environ.get("MAX_DELIVERY_ATTEMPTS", str(TERRAFORM_MAX_DELIVERY_ATTEMPTS)))
ACK_DEADLINE_SECONDS = 600  # a month download + split can take minutes: no redelivery meanwhile
# Terraform's push retry policy (infra/terraform/pubsub.tf `retry_policy`; tests/infra checks they
# agree): the relay backs off exactly as Google would, so a local outage meets the same budget.
MIN_BACKOFF_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 600.0
# Only an explicit setting shortens it ("MIN,MAX" seconds; the test suite's `1,10`, so a failure
# settles in seconds there): never a silent default.
BACKOFF_SETTING = "TAXI_RELAY_BACKOFF_SECONDS"
TOPIC_VARS = ("INGEST_TOPIC", "BACKFILL_TOPIC", "DEAD_LETTER_TOPIC", "LAKE_EVENTS_TOPIC")


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"resources: {name} is not set (run through ./local_emulator.sh)")
    return value


def create_topics() -> None:
    """Over the emulator's REST API: no client library to import, so it is done in a blink."""
    for var in TOPIC_VARS:
        url = f"http://{env('PUBSUB_EMULATOR_HOST')}/v1/projects/{env('GCP_PROJECT')}/topics/{env(var)}"
        request = urllib.request.Request(url, method="PUT", data=b"{}", headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except urllib.error.HTTPError as error:
            if error.code != 409:  # 409: exists already
                raise SystemExit(f"creating topic {env(var)}: {error.code} {error.read().decode()}") from error


def create_subscriptions() -> None:
    from google.cloud import pubsub_v1
    from google.protobuf import duration_pb2

    project = env("GCP_PROJECT")
    subscriber = pubsub_v1.SubscriberClient()
    dead_letter_topic = f"projects/{project}/topics/{env('DEAD_LETTER_TOPIC')}"
    with subscriber:
        _create(
            subscriber,
            {
                "name": subscriber.subscription_path(project, DEAD_LETTER_SUBSCRIPTION),
                "topic": dead_letter_topic,
                "ack_deadline_seconds": 60,
                "message_retention_duration": duration_pb2.Duration(seconds=7 * 86400),
            },
        )
        for name, (topic_var, _function) in PUSH_SUBSCRIPTIONS.items():
            request = {
                "name": subscriber.subscription_path(project, name),
                "topic": f"projects/{project}/topics/{env(topic_var)}",
                "ack_deadline_seconds": ACK_DEADLINE_SECONDS,
                # No push_config and no retry_policy: the relay delivers and backs off.
                "dead_letter_policy": {
                    "dead_letter_topic": dead_letter_topic,
                    "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS,
                },
            }
            if not _create(subscriber, request):
                _replace_if_push(subscriber, request)


def _create(subscriber, request: dict) -> bool:
    """True when created, False when it existed already."""
    from google.api_core.exceptions import AlreadyExists

    try:
        subscriber.create_subscription(request=request)
        return True
    except AlreadyExists:
        return False


def _replace_if_push(subscriber, request: dict) -> None:
    """An emulator still running from before the relay has these names as push subscriptions
    with a retry policy: the broken path. Such a subscription is deleted and made again."""
    existing = subscriber.get_subscription(subscription=request["name"])
    if existing.push_config.push_endpoint or "retry_policy" in existing:
        subscriber.delete_subscription(subscription=request["name"])
        subscriber.create_subscription(request=request)


def relay_backoff(value: str | None = None) -> tuple[float, float]:
    """(min, max) backoff: Terraform's policy, or the explicit shortening of BACKOFF_SETTING."""
    value = os.environ.get(BACKOFF_SETTING, "") if value is None else value
    if not value.strip():
        return MIN_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS
    try:
        low, high = (float(part) for part in value.split(","))
    except ValueError:
        low = high = -1.0
    if not 0 < low <= high <= MAX_BACKOFF_SECONDS:
        raise SystemExit(
            f"resources: {BACKOFF_SETTING}={value!r} must be 'MIN,MAX' seconds, "
            f"0 < MIN <= MAX <= {MAX_BACKOFF_SECONDS:g}"
        )
    return low, high


def relay_routes() -> list[dict]:
    """What local/stack/push_relay.py delivers: one route per function subscription."""
    project = env("GCP_PROJECT")
    min_backoff, max_backoff = relay_backoff()
    return [
        {
            "subscription": f"projects/{project}/subscriptions/{name}",
            "endpoint": env(f"TAXI_FUNCTION_URL_{function}"),
            "ack_deadline": float(ACK_DEADLINE_SECONDS),
            "min_backoff": min_backoff,
            "max_backoff": max_backoff,
            "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS,
        }
        for name, (_topic_var, function) in PUSH_SUBSCRIPTIONS.items()
    ]


def create_bucket() -> None:
    from google.api_core.exceptions import Conflict
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project=env("GCP_PROJECT"), credentials=AnonymousCredentials())
    if client.lookup_bucket(env("LAKE_BUCKET")) is None:
        try:
            client.create_bucket(env("LAKE_BUCKET"))
        except Conflict:
            pass


def create_dataset() -> None:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=env("GCP_PROJECT"),
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=env("BIGQUERY_EMULATOR_HOST")),
    )
    dataset = bigquery.Dataset(f"{env('GCP_PROJECT')}.{os.environ.get('BQ_DATASET', 'nyc_taxi')}")
    dataset.location = os.environ.get("BQ_LOCATION", "US")
    client.create_dataset(dataset, exists_ok=True)


def create_database() -> None:
    import pg8000.native

    connection = pg8000.native.Connection(
        user=env("PG_USER"),
        password=env("PG_PASSWORD"),
        host=env("PG_HOST"),
        port=int(env("PG_PORT")),
        database="postgres",
    )
    try:
        name = env("PG_DATABASE")
        if not connection.run("SELECT 1 FROM pg_database WHERE datname = :name", name=name):
            connection.run(f"CREATE DATABASE {pg8000.native.identifier(name)}")
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "all"
    create_topics()
    if what == "all":
        create_subscriptions()
        create_bucket()
        create_dataset()
        create_database()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
