"""Replaying dead letters against the real stack, as a person does after fixing the cause.

1. A date whose month the TLC host does not have yet (404: the stack's TLC server withholds a
   month while `.unpublished/{service}/{file}` exists under its data directory) is dead-lettered
   by ingest (`source_not_found`); status says `dead_lettered`.
2. `./local_emulator.sh replay --dry-run` shows it and acknowledges nothing (a second dry run
   sees it again), and the date stays dead-lettered.
3. The month appears; `./local_emulator.sh replay --reason source_not_found --date D` republishes
   the original message, prints its new message id, and the date ends `complete` in the lake,
   BigQuery and Postgres. A further replay finds nothing for that date: it was acknowledged.
Plus Pub/Sub's own dead letter (max delivery attempts), on temporary topics: back to the topic
of its source subscription without the attributes Pub/Sub added.
2017-06 is a month no other test uses.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from google.api_core.exceptions import DeadlineExceeded

from shared.core import clients
from shared.operate import replay
from tests.integration import stack_http
from tests.integration.months import forget, stack_tlc_dir

SERVICE, DATE = "yellow", "2017-06-14"
MONTH_FILE = "yellow_tripdata_2017-06.csv.gz"
REPO = Path(__file__).resolve().parents[2]


def local_emulator(*args: str) -> str:
    result = subprocess.run(
        [str(REPO / "local_emulator.sh"), *args], capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )
    assert result.returncode == 0, f"local_emulator.sh {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def lines_for(output: str, verb: str) -> list[str]:
    return [
        line for line in output.splitlines() if line.startswith(f"{verb} ingest source_not_found {SERVICE} {DATE} ")
    ]


@pytest.fixture
def withheld_month(stack):
    """The stack's TLC server answers 404 for 2017-06 until the marker is removed; the lake forgets the month."""
    data_dir = stack_tlc_dir()
    forget(
        clients.storage().bucket(os.environ["LAKE_BUCKET"]),
        f"raw/{SERVICE}/{MONTH_FILE}",
        f"staging/{SERVICE}/month=2017-06/",
        f"trips/{SERVICE}/pickup_date={DATE}/",
        f"runs/{SERVICE}/pickup_date={DATE}/",
    )
    marker = data_dir / ".unpublished" / SERVICE / MONTH_FILE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("withheld by tests/integration/test_replay.py\n")
    yield marker
    marker.unlink(missing_ok=True)


def test_a_date_dead_lettered_for_a_404_is_replayed_once_the_month_appears(withheld_month, urls, gcloud):
    old = stack_http.by_date(stack_http.status(urls, SERVICE, [DATE]))[DATE]["lake_generation"]
    gcloud(os.environ["INGEST_TOPIC"], {"date": DATE, "service": SERVICE})
    days = stack_http.wait_for(
        urls, SERVICE, [DATE], lambda d: d[DATE]["state"] == "dead_lettered", "dead-lettered", timeout=120
    )
    assert days[DATE]["run"]["reason"] == "source_not_found"

    for _ in range(2):  # a dry run acknowledges nothing: the second one sees the same dead letter
        dry = local_emulator("replay", "--dry-run", "--date", DATE, "--service", SERVICE)
        assert lines_for(dry, "would replay"), dry
        assert not lines_for(dry, "replayed")
    assert stack_http.by_date(stack_http.status(urls, SERVICE, [DATE]))[DATE]["state"] == "dead_lettered"

    withheld_month.unlink()  # the month is published now
    done = local_emulator("replay", "--reason", "source_not_found", "--function", "ingest", "--date", DATE)
    replayed = lines_for(done, "replayed")
    assert replayed and all(" -> taxi-ingest message " in line for line in replayed), done
    stack_http.wait_for(
        urls,
        SERVICE,
        [DATE],
        lambda d: stack_http.reloaded(d, {DATE: old}, [DATE]),
        "complete after the replay",
        timeout=300,
    )
    runs = local_emulator("runs", DATE, SERVICE)
    assert "dead_lettered" in runs and "succeeded" in runs, runs

    again = local_emulator("replay", "--dry-run", "--date", DATE, "--service", SERVICE)
    assert not lines_for(again, "would replay"), "the replayed dead letter was acknowledged"


def test_a_message_pubsub_dead_lettered_goes_back_to_its_source_topic(pubsub):
    """Pub/Sub forwards the message itself after max delivery attempts; replay sends it back."""
    source_topic, dead_topic = pubsub.temporary_topic(), pubsub.temporary_topic()
    source = pubsub.pull_subscription(
        source_topic,
        ack_deadline_seconds=10,
        dead_letter_policy={
            "dead_letter_topic": pubsub.publisher.topic_path(pubsub.project, dead_topic),
            "max_delivery_attempts": 5,
        },
    )
    dead = pubsub.pull_subscription(dead_topic)
    pubsub.publisher.publish(
        pubsub.publisher.topic_path(pubsub.project, source_topic),
        b'{"date":"2021-01-15","service":"green"}',
        origin="test",
    ).result(timeout=30)
    for _ in range(5):  # five failed deliveries: nack each
        response = pubsub.subscriber.pull(subscription=source, max_messages=1, timeout=10)
        assert response.received_messages
        pubsub.subscriber.modify_ack_deadline(
            subscription=source, ack_deadline_seconds=0, ack_ids=[m.ack_id for m in response.received_messages]
        )

    lines: list[str] = []
    summary = None
    for _ in range(10):  # the emulator forwards it when the source subscription is pulled next
        try:
            assert not pubsub.subscriber.pull(subscription=source, max_messages=1, timeout=2).received_messages
        except DeadlineExceeded:
            pass
        summary = replay.run(pubsub.subscriber, pubsub.publisher, dead, {}, out=lines.append, pull_timeout=3)
        if summary.replayed:
            break
    assert summary and summary.replayed == 1 and summary.failed == 0, lines
    assert lines[0].startswith(
        f"replayed {source.rsplit('/', 1)[-1]} max_delivery_attempts green 2021-01-15 -> {source_topic} message "
    )
    back = pubsub.pull_until(source, lambda m: m.data == b'{"date":"2021-01-15","service":"green"}')
    assert dict(back.attributes) == {"origin": "test"}
