"""Messages up to Pub/Sub's 10 MB on the real stack (issue 21, findings 3 and 4).

1. One 6 MB message on the ingest topic, published before 100 ordinary ones (yellow 2012-01-01 ..
   2012-04-09, four small generated months served by the stack's TLC server): through the Pub/Sub
   emulator, the push relay and the functions, the 100 dates end complete in the lake, BigQuery and
   Postgres, and the big one is a structured dead letter (ingest, message_too_large, field
   message.data, its size), the original kept whole in the lake. Before the fix, the relay's client
   could not receive it (gRPC's 4 MB default), the emulator mishandled the reset stream, and none of
   the 100 was delivered.
2. A 6 MB letter that Pub/Sub itself dead-lettered (max delivery attempts) among ordinary ones:
   `replay_cli` replays the ordinary ones and skips the big one with its size (it stays on the
   subscription), rc 0; and a run through a client with the 4 MB limit still replays the ordinary
   ones, counting the pull it could not receive. Before the fix: `ResourceExhausted ... larger than
   max (... vs. 4194304)`, rc 1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from google.api_core.exceptions import DeadlineExceeded

from shared.core import clients
from shared.core.pubsub_clients import subscriber_client
from shared.operate import replay
from shared.operate.replay_plan import INGEST
from tests.integration import stack_http
from tests.integration.months import forget, serve_month, stack_tlc_dir

SERVICE = "yellow"
MONTHS = [(2012, 1), (2012, 2), (2012, 3), (2012, 4)]  # no other test uses 2012
DATES = [(dt.date(2012, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(100)]
REQUEST = b'{"date":"2012-02-15","service":"yellow"}'
BIG = REQUEST + b" " * (6_000_000 - len(REQUEST))  # a valid request padded to 6 MB
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_months(stack):
    """Four ~600-row months where the stack's TLC server serves them; the lake forgets the dates."""
    data_dir = stack_tlc_dir()
    bucket = clients.storage().bucket(os.environ["LAKE_BUCKET"])
    for year, month in MONTHS:
        serve_month(data_dir, year, month, rows=620)
        forget(
            bucket,
            f"raw/{SERVICE}/{SERVICE}_tripdata_{year}-{month:02d}",
            f"staging/{SERVICE}/month={year}-{month:02d}/",
            f"trips/{SERVICE}/pickup_date={year}-{month:02d}-",
            f"runs/{SERVICE}/pickup_date={year}-{month:02d}-",
        )


@pytest.fixture
def letters(stack):
    """A subscription on the dead-letter topic for this test, read by a client that receives 10 MB."""
    subscriber = subscriber_client()
    project = os.environ["GCP_PROJECT"]
    name = f"projects/{project}/subscriptions/it-big-{uuid.uuid4().hex[:10]}"
    subscriber.create_subscription(name=name, topic=f"projects/{project}/topics/{os.environ['DEAD_LETTER_TOPIC']}")
    yield subscriber, name
    subscriber.delete_subscription(subscription=name)
    subscriber.close()


def test_one_6_mb_message_among_100_ordinary_ones(small_months, letters, urls):
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(os.environ["GCP_PROJECT"], os.environ["INGEST_TOPIC"])
    big_id = publisher.publish(topic, BIG).result(timeout=60)
    futures = [publisher.publish(topic, json.dumps({"date": d, "service": SERVICE}).encode()) for d in DATES]
    assert len({f.result(timeout=60) for f in futures}) == 100

    timeout = float(os.environ.get("TAXI_BIG_TIMEOUT", "480"))
    days = stack_http.wait_for(
        urls, SERVICE, DATES, lambda d: stack_http.reloaded(d, {}, DATES), "all 100 complete", timeout=timeout
    )
    assert sum(day["state"] == "complete" for day in days.values()) == 100

    subscriber, name = letters
    found = []
    deadline = time.monotonic() + 60
    while not found and time.monotonic() < deadline:
        response = subscriber.pull(subscription=name, max_messages=100, timeout=10)
        if response.received_messages:
            subscriber.acknowledge(subscription=name, ack_ids=[m.ack_id for m in response.received_messages])
        bodies = [json.loads(m.message.data) for m in response.received_messages]
        found += [b for b in bodies if b.get("function") == INGEST and (b.get("error") or {}).get("field")]
        assert not [b for b in bodies if (b.get("context") or {}).get("date") in DATES], "an ordinary date died"
    [letter] = [b for b in found if b["error"]["field"] == "message.data"]
    assert (letter["reason"], letter["error"]["value"]) == ("message_too_large", "6000000 bytes")
    stored = replay.read_stored_event(letter["event"]["stored_at"])  # the original, whole, in the lake
    message = stored["data"]["message"]
    assert message["messageId"] == big_id and len(message["data"]) == 8_000_000  # base64 of 6,000,000 bytes


@pytest.fixture
def oversized_letter(pubsub):
    """Pub/Sub's own dead letters, made by the emulator: a 6 MB message and two ordinary ones, each
    nacked 5 times on a subscription with a dead-letter policy, then forwarded to a dead-letter topic."""
    receiver = subscriber_client()
    source_topic, dead_topic = pubsub.temporary_topic(), pubsub.temporary_topic()
    source = pubsub.pull_subscription(
        source_topic,
        ack_deadline_seconds=10,
        dead_letter_policy={
            "dead_letter_topic": pubsub.publisher.topic_path(pubsub.project, dead_topic),
            "max_delivery_attempts": 5,
        },
    )
    dead = pubsub.pull_subscription(dead_topic, ack_deadline_seconds=10)
    topic_path = pubsub.publisher.topic_path(pubsub.project, source_topic)
    small = [b'{"date":"2021-01-15","service":"green"}', b'{"date":"2021-01-16","service":"green"}']
    for data in (small[0], BIG, small[1]):
        pubsub.publisher.publish(topic_path, data).result(timeout=60)
    deadline = time.monotonic() + 120
    while len(waiting(dead)) < 3:  # five failed deliveries each; the emulator forwards on a later pull
        assert time.monotonic() < deadline, "the emulator did not dead-letter the three messages"
        try:
            response = receiver.pull(subscription=source, max_messages=10, timeout=5, retry=None)
        except DeadlineExceeded:
            continue
        ack_ids = [m.ack_id for m in response.received_messages]
        if ack_ids:
            receiver.modify_ack_deadline(subscription=source, ack_ids=ack_ids, ack_deadline_seconds=0)
    assert sorted(waiting(dead)) == sorted([*small, BIG])
    yield source_topic, topic_path, dead, small
    receiver.close()


def waiting(subscription: str) -> list[bytes]:
    """What the subscription holds (read with a 10 MB client, each nacked straight back)."""
    receiver, held = subscriber_client(), []
    with receiver:
        while True:
            try:
                response = receiver.pull(subscription=subscription, max_messages=10, timeout=3, retry=None)
            except DeadlineExceeded:
                break
            if not response.received_messages:
                break
            held += response.received_messages
        if held:
            receiver.modify_ack_deadline(
                subscription=subscription, ack_ids=[m.ack_id for m in held], ack_deadline_seconds=0
            )
    return [m.message.data for m in held]


def test_replay_skips_a_6_mb_letter_with_its_size_and_replays_the_others(oversized_letter, pubsub):
    source_topic, topic_path, dead, small = oversized_letter
    command = [sys.executable, "-m", "shared.operate.replay_cli", "--subscription", dead, "--ingest-topic", topic_path]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sorted(line.split(" message ")[0] for line in lines if line.startswith("replayed ")) == [
        f"replayed ingest max_delivery_attempts green 2021-01-15 -> {source_topic}",
        f"replayed ingest max_delivery_attempts green 2021-01-16 -> {source_topic}",
    ], result.stdout
    [skipped] = [line for line in lines if line.startswith("skipped ")]
    assert "its message is 6000000 bytes, over the 65536 bytes the ingest contract takes" in skipped
    assert "2 replayed" in result.stderr and "1 skipped (message_too_large" in result.stderr, result.stderr
    assert waiting(dead) == [BIG]  # kept, whole, for a person to look at


def test_replay_through_a_4_mb_client_goes_on_past_the_letter_it_cannot_receive(oversized_letter, pubsub):
    """The library's emulator channel (4 MB, before shared/core/pubsub_clients.py): the pull that holds
    the big letter fails; the run waits for that pull's leases, then pulls one letter at a time."""
    from google.cloud import pubsub_v1

    source_topic, topic_path, dead, small = oversized_letter
    limited, lines = pubsub_v1.SubscriberClient(), []
    with limited:
        summary = replay.run(limited, pubsub.publisher, dead, {INGEST: topic_path}, out=lines.append, pull_timeout=5)
    assert (summary.replayed, summary.failed, summary.ok) == (2, 0, True), lines
    assert summary.unreceived >= 1 and lines[0].startswith("could not receive a pull of up to 100 dead letters")
    assert "larger than max" in lines[0]
    time.sleep(11)  # the big letter's lease from the failed pull ends
    assert waiting(dead) == [BIG]
