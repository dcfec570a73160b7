"""Fixtures that talk to the real local stack started by `./local_emulator.sh`.

`./local_emulator.sh test` exports the stack's environment and TAXI_STACK=1.
With TAXI_STACK=1 an unreachable server fails the run (a test that silently
skips in CI proves nothing); without it, integration tests are skipped with a
pointer to the command that runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
import requests

from local.tlc_server import serve_in_thread
from shared.core import clients
from tests.integration import stack_http
from tests.integration.iam_guard import iam_guard  # noqa: F401  (autouse: the deployed IAM, local/stack/iam_hooks.py)

REQUIRED = (
    "GCP_PROJECT",
    "LAKE_BUCKET",
    "DEAD_LETTER_TOPIC",
    "STORAGE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST",
    "BIGQUERY_EMULATOR_HOST",
    "PG_HOST",
    "PG_PORT",
)


def _reachable(address: str) -> bool:
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """The stack's environment; fails (TAXI_STACK=1) or skips when it is not up."""
    strict = os.environ.get("TAXI_STACK") == "1"
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    down = [
        name
        for name in ("STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")
        if os.environ.get(name) and not _reachable(os.environ[name])
    ]
    if os.environ.get("PG_HOST") and not _reachable(f"{os.environ['PG_HOST']}:{os.environ.get('PG_PORT', '5432')}"):
        down.append("PG_HOST:PG_PORT")
    if missing or down:
        problem = f"local stack not available (unset: {missing}, unreachable: {down})"
        if strict:
            pytest.fail(problem)
        pytest.skip(problem + "; run ./local_emulator.sh test")
    return {name: os.environ[name] for name in REQUIRED}


@pytest.fixture
def pubsub(stack):
    """Publisher and subscriber clients, and temporary topics and subscriptions deleted after the test."""
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    made: list[tuple[str, str]] = []

    def pull_subscription(topic: str, **fields) -> str:
        """`fields`: more of the Subscription (dead_letter_policy, ack_deadline_seconds, ...)."""
        name = subscriber.subscription_path(os.environ["GCP_PROJECT"], f"it-stack-{uuid.uuid4().hex[:10]}")
        subscriber.create_subscription(
            request={"name": name, "topic": publisher.topic_path(os.environ["GCP_PROJECT"], topic), **fields}
        )
        made.append(("subscription", name))
        return name

    def temporary_topic() -> str:
        topic = f"it-stack-{uuid.uuid4().hex[:10]}"
        publisher.create_topic(name=publisher.topic_path(os.environ["GCP_PROJECT"], topic))
        made.append(("topic", publisher.topic_path(os.environ["GCP_PROJECT"], topic)))
        return topic

    def pull_until(subscription: str, match, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = subscriber.pull(subscription=subscription, max_messages=20, timeout=5)
            if response.received_messages:
                subscriber.acknowledge(
                    subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
                )
            for received in response.received_messages:
                if match(received.message):
                    return received.message
        pytest.fail(f"no matching message on {subscription} within {timeout}s")

    def drain(subscription: str) -> list:
        """Every message the subscription holds now (acked), until a pull comes back empty."""
        from google.api_core.exceptions import DeadlineExceeded

        messages = []
        while True:
            try:
                response = subscriber.pull(subscription=subscription, max_messages=100, timeout=3)
            except DeadlineExceeded:
                return messages
            if not response.received_messages:
                return messages
            subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages])
            messages += [m.message for m in response.received_messages]

    yield SimpleNamespace(
        publisher=publisher,
        subscriber=subscriber,
        project=os.environ["GCP_PROJECT"],
        pull_until=pull_until,
        drain=drain,
        pull_subscription=pull_subscription,
        temporary_topic=temporary_topic,
    )
    for kind, name in reversed(made):
        if kind == "subscription":
            subscriber.delete_subscription(subscription=name)
        else:
            publisher.delete_topic(topic=name)
    subscriber.close()


@pytest.fixture
def settings_env(stack, monkeypatch) -> Callable[..., None]:
    """Override settings for one test; cached settings and clients are rebuilt around it."""

    def apply(**overrides: str) -> None:
        for name, value in overrides.items():
            monkeypatch.setenv(name, value)
        clients.reset()

    yield apply
    clients.reset()


@pytest.fixture
def fresh_bucket(stack, settings_env):
    """A bucket of its own in fake-gcs-server, so tests never see each other's objects."""
    name = f"it-{uuid.uuid4().hex[:12]}"
    settings_env(LAKE_BUCKET=name)
    bucket = clients.storage().create_bucket(name)
    yield bucket
    for blob in clients.storage().list_blobs(name):
        blob.delete()
    bucket.delete()


@pytest.fixture
def dead_letters(stack) -> Iterator[Callable[..., list[dict]]]:
    """A pull subscription on the dead-letter topic made for this test; `pull()` returns bodies."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    project = os.environ["GCP_PROJECT"]
    topic = f"projects/{project}/topics/{os.environ['DEAD_LETTER_TOPIC']}"
    subscription = f"projects/{project}/subscriptions/it-dl-{uuid.uuid4().hex[:12]}"
    subscriber.create_subscription(name=subscription, topic=topic)

    def pull(expected: int = 1, timeout: float = 20.0) -> list[dict]:
        bodies: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(bodies) < expected and time.monotonic() < deadline:
            response = subscriber.pull(subscription=subscription, max_messages=10, timeout=5)
            if response.received_messages:
                subscriber.acknowledge(
                    subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
                )
            bodies += [
                json.loads(m.message.data) | {"attributes": dict(m.message.attributes)}
                for m in response.received_messages
            ]
        return bodies

    yield pull
    subscriber.delete_subscription(subscription=subscription)
    subscriber.close()


@pytest.fixture
def real_day(real_yellow_sample):
    """The real TLC sample through the ingest's own split: a genuine trips/ partition (pa.Table)."""
    from tests.gcs_events import real_day_partition

    return real_day_partition(real_yellow_sample)


@pytest.fixture(scope="session")
def urls(stack) -> dict[str, str]:
    found = {name: stack_http.function_url(name) for name in stack_http.OFFSETS}
    down = []
    for name, url in found.items():
        try:
            requests.get(url, timeout=5)  # any HTTP answer (even 400/405) means it is serving
        except requests.RequestException:
            down.append(f"{name} at {url}")
    if down:
        stack_http.unavailable(f"functions not reachable: {', '.join(down)}")
    return found


@pytest.fixture(scope="session")
def gcloud(stack, tmp_path_factory) -> Callable[[str, dict], None]:
    """`gcloud pubsub topics publish TOPIC --message=JSON` against the emulator, with a throwaway config."""
    binary = shutil.which("gcloud")
    if not binary:
        stack_http.unavailable("gcloud not installed")
    config = tmp_path_factory.mktemp("gcloud")
    token = config / "token"
    token.write_text("emulator-needs-no-token\n")
    env = {
        **os.environ,
        "CLOUDSDK_CONFIG": str(config),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": f"http://{os.environ['PUBSUB_EMULATOR_HOST']}/",
    }
    if not os.environ.get("CLOUDSDK_AUTH_DISABLE_CREDENTIALS"):  # the emulator checks no token; gcloud wants one
        env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"] = str(token)

    def publish(topic: str, body: dict) -> None:
        command = [
            binary,
            "pubsub",
            "topics",
            "publish",
            topic,
            f"--project={os.environ['GCP_PROJECT']}",
            f"--message={json.dumps(body)}",
        ]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "messageIds" in result.stdout, (
            f"gcloud publish failed: {result.stdout}{result.stderr}"
        )

    return publish


TEMPLATE = "{base}/{prefix}{{service}}/{{service}}_tripdata_{{year}}-{{month:02d}}.csv.gz"


@pytest.fixture
def tlc(tmp_path: Path, settings_env):
    """A TLC-like HTTP server over a directory this test fills; returns a function to point ingest at it."""
    server, base_url = serve_in_thread(tmp_path)

    def use(prefix: str = "") -> None:
        settings_env(
            SOURCE_URL_TEMPLATE=TEMPLATE.format(base=base_url, prefix=prefix),
            DOWNLOAD_MAX_ATTEMPTS="2",
            DOWNLOAD_TIMEOUT_SECONDS="5",
        )

    use()
    yield tmp_path, use
    server.shutdown()
