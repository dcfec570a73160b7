"""Replay of dead letters from plain data: which message goes where, and what is acked or kept."""

from __future__ import annotations

import base64
import json
from concurrent.futures import Future
from types import SimpleNamespace

from shared.operate import replay
from shared.operate.replay_plan import Filters, plan

TOPICS = {"ingest": "projects/p/topics/taxi-ingest", "backfill": "projects/p/topics/taxi-backfill"}


def structured(function: str, reason: str, context: dict, data: bytes | None = None, attributes: dict | None = None):
    event = {"attributes": {"id": "7", "type": "google.cloud.pubsub.topic.v1.messagePublished"}, "data": {}}
    if data is not None:
        event["data"] = {
            "message": {"data": base64.b64encode(data).decode(), "attributes": attributes or {}, "messageId": "7"},
            "subscription": "projects/p/subscriptions/taxi-ingest-push",
        }
    body = {"function": function, "reason": reason, "error": {"reason": reason}, "context": context, "event": event}
    return json.dumps(body).encode(), {"function": function, "reason": reason}


def no_lookup(path: str) -> str:
    raise AssertionError(f"unexpected subscription lookup of {path}")


def test_ingest_dead_letter_republishes_the_original_message_to_the_ingest_topic():
    original = b'{"date":"2019-03-05","service":"green"}'
    data, attrs = structured(
        "ingest", "source_not_found", {"service": "green", "date": "2019-03-05"}, original, {"origin": "scheduler"}
    )
    got = plan(data, attrs, TOPICS, no_lookup)
    assert (got.kind, got.function, got.reason, got.service, got.date) == (
        "structured",
        "ingest",
        "source_not_found",
        "green",
        "2019-03-05",
    )
    assert (got.topic, got.data, dict(got.attributes), got.problem) == (
        TOPICS["ingest"],
        original,
        {"origin": "scheduler"},
        None,
    )


def test_ingest_dead_letter_without_context_takes_service_and_date_from_the_message():
    data, attrs = structured("ingest", "invalid_input", {}, b'{"date":"2021-01-15","service":"yellow"}')
    got = plan(data, attrs, TOPICS, no_lookup)
    assert (got.service, got.date, got.topic) == ("yellow", "2021-01-15", TOPICS["ingest"])


def test_a_deeply_nested_original_message_is_replayed_verbatim_not_a_crash():
    """The bad-input corpus leaves such dead letters; json's RecursionError stopped the whole replay run."""
    original = b"[" * 50_000 + b"]" * 50_000
    got = plan(*structured("ingest", "invalid_input", {}, original), TOPICS, no_lookup)
    assert (got.topic, got.data, got.service, got.date) == (TOPICS["ingest"], original, None, None)


def test_backfill_dead_letter_goes_back_to_the_backfill_topic():
    original = b'{"start":"2021-01-01","end":"2021-01-31"}'
    got = plan(*structured("backfill", "publish_failed", {}, original), TOPICS, no_lookup)
    assert (got.topic, got.data, got.problem) == (TOPICS["backfill"], original, None)


def test_loader_dead_letter_becomes_a_forced_ingest_of_its_date():
    data, attrs = structured(
        "load_postgres",
        "schema_mismatch",
        {"service": "yellow", "date": "2021-01-15", "object": "gs://lake/trips/...", "generation": 3},
    )
    got = plan(data, attrs, TOPICS, no_lookup)
    assert got.topic == TOPICS["ingest"] and dict(got.attributes) == {}
    assert json.loads(got.data) == {"date": "2021-01-15", "service": "yellow", "force": True}
    assert (got.function, got.service, got.date) == ("load_postgres", "yellow", "2021-01-15")


def test_what_cannot_be_replayed_says_why():
    no_context = plan(*structured("load_bigquery", "corrupt_parquet", {}), TOPICS, no_lookup)
    assert no_context.problem and no_context.topic is None
    no_message = plan(*structured("ingest", "invalid_input", {"service": "yellow"}), TOPICS, no_lookup)
    assert "event.data.message" in no_message.problem
    stranger = plan(b"not json", {}, TOPICS, no_lookup)
    assert stranger.problem and stranger.topic is None
    no_topic = plan(*structured("backfill", "x", {}, b"{}"), {"ingest": TOPICS["ingest"]}, no_lookup)
    assert no_topic.problem == "no topic given for backfill"


def test_an_event_kept_in_the_lake_is_read_back_and_a_truncated_one_is_kept():
    original = b'{"date":"2021-01-15","service":"yellow"}'
    data, attrs = structured("ingest", "invalid_input", {}, original, {"a": "b"})
    body = json.loads(data)
    stored = body["event"]
    body["event"] = {"attributes": stored["attributes"], "stored_at": "gs://lake/quarantine/events/ingest/x.json"}
    asked = []

    def load(uri):
        asked.append(uri)
        return stored

    got = plan(json.dumps(body).encode(), attrs, TOPICS, no_lookup, load)
    assert asked == ["gs://lake/quarantine/events/ingest/x.json"]
    assert (got.topic, got.data, dict(got.attributes), got.problem) == (TOPICS["ingest"], original, {"a": "b"}, None)

    def unreadable(uri):
        raise PermissionError("403 storage.objects.get")

    assert (
        "cannot read the stored event" in plan(json.dumps(body).encode(), attrs, TOPICS, no_lookup, unreadable).problem
    )
    body["event"] = {"attributes": {}, "truncated": True, "data_preview": "{...}"}
    assert "too large" in plan(json.dumps(body).encode(), attrs, TOPICS, no_lookup).problem


def test_platform_dead_letter_goes_to_its_source_subscriptions_topic_without_the_added_attributes():
    attrs = {
        "k": "v",
        "CloudPubSubDeadLetterSourceSubscription": "taxi-ingest-push",
        "CloudPubSubDeadLetterSourceSubscriptionProject": "p",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "CloudPubSubDeadLetterSourceTopicPublishTime": "2026-12-02T14:59:41.332Z",
    }
    looked_up = []

    def topic_of(path: str) -> str:
        looked_up.append(path)
        return TOPICS["ingest"]

    got = plan(b'{"date":"2021-01-15"}', attrs, TOPICS, topic_of)
    assert looked_up == ["projects/p/subscriptions/taxi-ingest-push"]
    assert (got.kind, got.function, got.reason, got.service, got.date) == (
        "platform",
        "ingest",
        "max_delivery_attempts",
        "yellow",
        "2021-01-15",
    )
    assert (got.topic, got.data, dict(got.attributes)) == (TOPICS["ingest"], b'{"date":"2021-01-15"}', {"k": "v"})


def test_platform_dead_letter_of_a_lake_notification_names_the_partitions_date():
    attrs = {
        "eventType": "OBJECT_FINALIZE",
        "objectId": "trips/green/pickup_date=2021-02-03/data.parquet",
        "CloudPubSubDeadLetterSourceSubscription": "taxi-lake-postgres-push",
        "CloudPubSubDeadLetterSourceSubscriptionProject": "p",
    }
    got = plan(b"{}", attrs, TOPICS, lambda path: "projects/p/topics/taxi-lake-events")
    assert (got.function, got.service, got.date, got.topic) == (
        "taxi-lake-postgres-push",
        "green",
        "2021-02-03",
        "projects/p/topics/taxi-lake-events",
    )
    assert Filters(function="taxi-lake-postgres-push").match(got)

    def gone(path: str) -> str:
        raise RuntimeError("NotFound")

    assert "cannot look up" in plan(b"{}", attrs, TOPICS, gone).problem


def test_filters():
    got = plan(
        *structured("ingest", "source_not_found", {"service": "yellow", "date": "2019-03-05"}, b"{}"), TOPICS, no_lookup
    )
    assert Filters().match(got)
    assert Filters("source_not_found", "ingest", "yellow", "2019-03-05").match(got)
    assert not Filters(reason="invalid_input").match(got)
    assert not Filters(function="load_postgres").match(got)
    assert not Filters(service="green").match(got) and not Filters(date="2019-03-06").match(got)


# --- the run: acknowledged only after a confirmed republish -------------------------------------------


class FakeSubscriber:
    def __init__(self, messages):
        self.queue = list(messages)
        self.acked, self.nacked, self.leases = [], [], []

    def pull(self, subscription, max_messages, timeout):
        batch, self.queue = self.queue[:max_messages], self.queue[max_messages:]
        return SimpleNamespace(received_messages=batch)

    def modify_ack_deadline(self, subscription, ack_ids, ack_deadline_seconds):
        (self.nacked if ack_deadline_seconds == 0 else self.leases).extend(ack_ids)

    def acknowledge(self, subscription, ack_ids):
        self.acked.extend(ack_ids)

    def get_subscription(self, subscription):
        return SimpleNamespace(topic=TOPICS["ingest"])


class FakePublisher:
    def __init__(self, fail_for=()):
        self.published, self.fail_for = [], set(fail_for)

    def publish(self, topic, data, **attributes):
        future = Future()
        if data in self.fail_for:
            future.set_exception(RuntimeError("unavailable"))
        else:
            self.published.append((topic, data, attributes))
            future.set_result(str(100 + len(self.published)))
        return future


def received(ack_id: str, message_id: str, data: bytes, attributes: dict):
    return SimpleNamespace(
        ack_id=ack_id, message=SimpleNamespace(message_id=message_id, data=data, attributes=attributes)
    )


def dead_letters():
    lost = structured(
        "ingest",
        "source_not_found",
        {"service": "yellow", "date": "2019-03-05"},
        b'{"date":"2019-03-05","service":"yellow"}',
    )
    other = structured("ingest", "invalid_input", {}, b'{"date":"nope"}')
    broken = structured("load_bigquery", "corrupt_parquet", {"service": "yellow", "date": "2019-03-06"})
    return [received("a1", "1", *lost), received("a2", "2", *other), received("a3", "3", *broken)]


def test_run_acks_only_what_it_republished_and_keeps_the_rest():
    subscriber, publisher, lines = FakeSubscriber(dead_letters()), FakePublisher(), []
    summary = replay.run(
        subscriber,
        publisher,
        "projects/p/subscriptions/dl",
        TOPICS,
        filters=Filters(reason="source_not_found"),
        out=lines.append,
    )
    assert (summary.replayed, summary.not_matching, summary.failed) == (1, 2, 0)
    assert publisher.published == [(TOPICS["ingest"], b'{"date":"2019-03-05","service":"yellow"}', {})]
    assert subscriber.acked == ["a1"] and sorted(subscriber.nacked) == ["a2", "a3"]
    assert lines == ["replayed ingest source_not_found yellow 2019-03-05 -> taxi-ingest message 101 (dead letter 1)"]


def test_dry_run_publishes_and_acks_nothing():
    subscriber, publisher, lines = FakeSubscriber(dead_letters()), FakePublisher(), []
    summary = replay.run(subscriber, publisher, "dl", TOPICS, dry_run=True, out=lines.append)
    assert (summary.would_replay, summary.skipped_same_input, summary.replayed) == (2, 1, 0)
    assert publisher.published == [] and summary.left == 3
    assert subscriber.acked == [] and sorted(subscriber.nacked) == ["a1", "a2", "a3"]
    assert lines[0].startswith("would replay ingest source_not_found yellow 2019-03-05 -> taxi-ingest")


def test_a_failed_publish_keeps_the_dead_letter_and_fails_the_run():
    subscriber = FakeSubscriber(dead_letters())
    publisher = FakePublisher(fail_for={b'{"date":"2019-03-05","service":"yellow"}'})
    summary = replay.run(subscriber, publisher, "dl", TOPICS, out=lambda line: None)
    assert (summary.replayed, summary.failed, summary.skipped_same_input, summary.ok) == (1, 1, 1, False)
    assert subscriber.acked == ["a3"] and sorted(subscriber.nacked) == ["a1", "a2"] and summary.left == 2


def test_a_message_seen_again_ends_the_run_and_the_limit_is_honoured():
    again = dead_letters()[:1] + [received("a1-again", "1", *structured("ingest", "x", {}, b"{}"))]
    subscriber = FakeSubscriber(again)
    summary = replay.run(
        subscriber, FakePublisher(), "dl", TOPICS, filters=Filters(reason="nothing"), out=lambda line: None
    )
    assert summary.not_matching == 1 and sorted(subscriber.nacked) == ["a1", "a1-again"]
    subscriber = FakeSubscriber(dead_letters())
    summary = replay.run(subscriber, FakePublisher(), "dl", TOPICS, limit=1, out=lambda line: None)
    assert summary.replayed == 1 and subscriber.acked == ["a1"] and sorted(subscriber.nacked) == ["a2", "a3"]


class RedeadLetteringSubscriber(FakeSubscriber):
    """A dead-letter subscription whose replays all fail again: each published replay comes back
    as a new dead letter (a new message id), as Pub/Sub and a failing function would make it."""

    def __init__(self, messages, publisher):
        super().__init__(messages)
        self.publisher, self.returned, self.pulls = publisher, 0, 0
        self.originals = {m.message.data: m for m in messages}

    def pull(self, subscription, max_messages, timeout):
        self.pulls += 1
        assert self.pulls < 50, "the replay run does not end"
        while self.returned < len(self.publisher.published):
            topic, data, attributes = self.publisher.published[self.returned]
            self.returned += 1
            letter = next(m for m in self.originals.values() if plan_data(m) == data)
            self.queue.append(received(f"again-{self.returned}", f"9{self.returned}", letter.message.data, {}))
        return super().pull(subscription, max_messages, timeout)


def plan_data(item) -> bytes:
    return plan(bytes(item.message.data), dict(item.message.attributes), TOPICS, no_lookup).data


def test_a_run_ends_when_every_replay_fails_again_each_replayed_once():
    """Issue 21: with no filter, 2 letters were replayed 3,943 times in 240 s. Now each replay is
    published once a run; the letters it brings back are kept for the next run."""
    publisher = FakePublisher()
    letters = [dead_letters()[0], dead_letters()[2]]  # an ingest letter and a loader's
    subscriber = RedeadLetteringSubscriber(letters, publisher)
    summary = replay.run(subscriber, publisher, "dl", TOPICS, out=lambda line: None)
    assert (summary.replayed, summary.repeated, summary.left) == (2, 2, 2)
    assert len(publisher.published) == 2 and sorted(subscriber.nacked) == ["again-1", "again-2"]


def test_invalid_input_is_replayed_only_when_asked_for_by_name():
    summary = replay.run(FakeSubscriber(dead_letters()), FakePublisher(), "dl", TOPICS, out=lambda line: None)
    assert (summary.replayed, summary.skipped_same_input) == (2, 1)
    publisher = FakePublisher()
    summary = replay.run(
        FakeSubscriber(dead_letters()),
        publisher,
        "dl",
        TOPICS,
        filters=Filters(reason="invalid_input"),
        out=lambda line: None,
    )
    assert summary.replayed == 1 and publisher.published == [(TOPICS["ingest"], b'{"date":"nope"}', {})]
    assert (summary.skipped_same_input, summary.not_matching) == (0, 2)


# --- letters too large: to replay (over the contract) or to receive (over the client's channel) ----------

BIG = b'{"date":"2019-03-07","service":"yellow"}' + b" " * 6_000_000


def platform_letter(ack_id: str, message_id: str, data: bytes):
    attributes = {"CloudPubSubDeadLetterSourceSubscription": "taxi-ingest-push"}
    attributes["CloudPubSubDeadLetterSourceSubscriptionProject"] = "p"
    return received(ack_id, message_id, data, attributes)


def test_a_letter_over_the_contract_is_skipped_with_its_size_and_kept():
    """Replayed, a 6 MB ingest message could only be dead-lettered again (message_too_large)."""
    letters = [platform_letter("big", "8", BIG), *dead_letters()]
    subscriber, publisher, lines = FakeSubscriber(letters), FakePublisher(), []
    summary = replay.run(subscriber, publisher, "dl", TOPICS, out=lines.append)
    assert (summary.too_large, summary.replayed, summary.skipped_same_input, summary.ok) == (1, 2, 1, True)
    assert all(len(data) < 1000 for _, data, _ in publisher.published)
    assert "big" in subscriber.nacked and "big" not in subscriber.acked
    assert lines[0].startswith("skipped ingest max_delivery_attempts yellow 2019-03-07 -> taxi-ingest (dead letter 8)")
    assert "its message is 6000040 bytes, over the 65536 bytes the ingest contract takes" in lines[0]
    assert "1 skipped (message_too_large" in summary.line("dl")


class LimitedSubscriber(FakeSubscriber):
    """Pub/Sub behind a client with gRPC's default 4 MB receive limit (the emulator's channel before
    the fix): a pull whose response is larger fails with ResourceExhausted, yet the server has leased
    its letters, which come back only once their ack deadline has passed (`sleep`)."""

    def __init__(self, messages, limit=4_194_304):
        super().__init__(messages)
        self.limit, self.leased, self.slept = limit, [], []

    def pull(self, subscription, max_messages, timeout):
        from google.api_core.exceptions import ResourceExhausted

        response = super().pull(subscription, max_messages, timeout)
        size = sum(len(m.message.data) for m in response.received_messages)
        if size > self.limit:
            self.leased += response.received_messages
            raise ResourceExhausted(f"Received message larger than max ({size} vs. {self.limit})")
        return response

    def get_subscription(self, subscription):
        return SimpleNamespace(topic=TOPICS["ingest"], ack_deadline_seconds=60)

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.queue, self.leased = self.leased + self.queue, []


def test_a_pull_too_large_to_receive_is_counted_and_the_run_goes_on_one_letter_at_a_time():
    """Issue 21: `ResourceExhausted: 429 ... Received message larger than max (6000351 vs. 4194304)`
    ended every replay run with rc 1. Now the letters behind the big one are still replayed."""
    letters = [dead_letters()[0], platform_letter("big", "8", BIG), dead_letters()[2]]
    subscriber, publisher, lines = LimitedSubscriber(letters), FakePublisher(), []
    summary = replay.run(subscriber, publisher, "dl", TOPICS, out=lines.append, sleep=subscriber.sleep)
    assert (summary.replayed, summary.unreceived, summary.ok) == (2, 2, True)  # the batch, then the big one alone
    assert sorted(subscriber.acked) == ["a1", "a3"] and [m.ack_id for m in subscriber.leased] == ["big"]
    assert subscriber.slept == [61.0]
    assert lines[0].startswith("could not receive a pull of up to 100 dead letters: ResourceExhausted")
