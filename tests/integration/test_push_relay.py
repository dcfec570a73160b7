"""The push relay (local/stack/push_relay.py) against the real Pub/Sub emulator.

Each test has its own topic, dead-letter topic and pull subscription (dead-letter policy,
5 attempts, no retry policy: as resources.py makes the stack's), its own HTTP endpoint
answering as the test says, and a relay started in this process with short backoffs
(0.2 s .. 1 s). Teardown stops the relay and checks that none of its threads are left.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from types import SimpleNamespace

import pytest

from local.stack.push_protocol import Route
from local.stack.push_relay import PushRelay

MIN_BACKOFF, MAX_BACKOFF, MAX_ATTEMPTS = 0.2, 1.0, 5


class Server(ThreadingHTTPServer):
    request_queue_size = 512  # 200 pushes at once: the default backlog of 5 refuses some


class Endpoint:
    """A real HTTP endpoint; `answer(key, n)` gives the status of the n-th (1-based) request
    for the message whose data is `key`. Every request is recorded with its body and time."""

    def __init__(self, answer) -> None:
        self.requests: dict[str, list[SimpleNamespace]] = defaultdict(list)
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = base64.b64decode(body["message"]["data"]).decode()
                with endpoint.lock:
                    endpoint.requests[key].append(SimpleNamespace(body=body, at=time.monotonic()))
                    status = answer(key, len(endpoint.requests[key]))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/push"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def attempts(self, key: str) -> list[int]:
        with self.lock:
            return [r.body.get("deliveryAttempt") for r in self.requests[key]]

    def total(self) -> int:
        with self.lock:
            return sum(len(r) for r in self.requests.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def relayed(pubsub):
    """`relayed(answer)` -> a namespace: publish(key) and publish_many(keys), endpoint,
    dead_lettered() (keys drained from the dead-letter subscription so far), events (the
    relay's log), subscription, stop() (stops the relay; teardown does it otherwise)."""
    started: list[tuple[PushRelay, Endpoint]] = []
    before = set(threading.enumerate())

    def make(answer) -> SimpleNamespace:
        endpoint = Endpoint(answer)
        topic, dead_topic = pubsub.temporary_topic(), pubsub.temporary_topic()
        dead_subscription = pubsub.pull_subscription(dead_topic)
        subscription = pubsub.pull_subscription(
            topic,
            ack_deadline_seconds=10,
            dead_letter_policy={
                "dead_letter_topic": pubsub.publisher.topic_path(pubsub.project, dead_topic),
                "max_delivery_attempts": MAX_ATTEMPTS,
            },
        )
        events: list[tuple[str, dict]] = []
        relay = PushRelay(
            [
                Route(
                    subscription,
                    endpoint.url,
                    ack_deadline=10,
                    min_backoff=MIN_BACKOFF,
                    max_backoff=MAX_BACKOFF,
                    max_delivery_attempts=MAX_ATTEMPTS,
                )
            ],
            log=lambda event, **fields: events.append((event, fields)),
        ).start()
        started.append((relay, endpoint))
        dead: dict[str, dict] = {}
        topic_path = pubsub.publisher.topic_path(pubsub.project, topic)

        def publish_many(keys: list[str]) -> list[str]:
            futures = [pubsub.publisher.publish(topic_path, key.encode(), origin="test_push_relay") for key in keys]
            return [future.result(timeout=30) for future in futures]

        def dead_lettered() -> dict[str, dict]:
            for message in pubsub.drain(dead_subscription):
                dead[message.data.decode()] = dict(message.attributes)
            return dead

        return SimpleNamespace(
            publish=lambda key: publish_many([key])[0],
            publish_many=publish_many,
            endpoint=endpoint,
            dead_lettered=dead_lettered,
            events=events,
            subscription=subscription,
            stop=relay.stop,
        )

    yield make
    for relay, endpoint in started:
        relay.stop()
        endpoint.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(threading.enumerate()) - before:
        time.sleep(0.1)
    assert not sorted(t.name for t in set(threading.enumerate()) - before), "the relay left threads running"


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def assert_backoff_between(requests: list[SimpleNamespace]) -> None:
    """Each retry came no sooner than Google's backoff for the attempt before it."""
    for attempt, (earlier, later) in enumerate(pairwise(requests), start=1):
        expected = min(MAX_BACKOFF, MIN_BACKOFF * 2 ** (attempt - 1))
        assert later.at - earlier.at >= expected - 0.05, (attempt, later.at - earlier.at)


def test_a_failing_endpoint_gets_the_message_again_until_it_succeeds(relayed, pubsub):
    run = relayed(lambda key, n: 500 if n <= 2 else 204)
    key = f"twice-{uuid.uuid4().hex[:8]}"
    message_id = run.publish(key)
    wait_for(lambda: len(run.endpoint.requests[key]) >= 3, 30, "three requests")
    time.sleep(3 * MAX_BACKOFF)  # long enough for any redelivery to show
    assert run.endpoint.attempts(key) == [1, 2, 3]
    assert_backoff_between(run.endpoint.requests[key])
    assert run.dead_lettered() == {}
    assert [(event, fields["attempt"]) for event, fields in run.events] == [
        ("delivery_failed", 1),
        ("delivery_failed", 2),
        ("delivered", 3),
    ]
    assert all(fields["message_id"] == message_id for _, fields in run.events)
    published = {fields["published_at"] for _, fields in run.events}  # what chaos/accounting.py reads
    assert len(published) == 1 and dt.datetime.fromisoformat(published.pop()) <= dt.datetime.now(dt.UTC)
    run.stop()
    assert pubsub.drain(run.subscription) == [], "acked: nothing left on the subscription"


def test_an_always_failing_endpoint_sends_the_message_to_the_dead_letter_topic_after_5_attempts(relayed, pubsub):
    run = relayed(lambda key, n: 503)
    key = f"always-{uuid.uuid4().hex[:8]}"
    message_id = run.publish(key)
    wait_for(lambda: key in run.dead_lettered(), 30, "the dead letter")
    time.sleep(3 * MAX_BACKOFF)
    assert run.endpoint.attempts(key) == [1, 2, 3, 4, 5]
    assert_backoff_between(run.endpoint.requests[key])
    assert run.dead_lettered()[key]["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert run.dead_lettered()[key]["origin"] == "test_push_relay"
    dead = [fields for event, fields in run.events if event == "dead_lettered"]
    assert [(f["message_id"], f["attempt"], f["status"]) for f in dead] == [(message_id, 5, 503)]
    run.stop()
    assert pubsub.drain(run.subscription) == []


def test_200_messages_failing_at_once_each_end_acked_or_dead_lettered(relayed, pubsub):
    keys = [f"{'always' if i % 3 == 0 else 'twice'}-{i}-{uuid.uuid4().hex[:6]}" for i in range(200)]
    run = relayed(lambda key, n: 500 if key.startswith("always") or n <= 2 else 200)
    ids = dict(zip(keys, run.publish_many(keys), strict=True))
    always = {key for key in keys if key.startswith("always")}
    twice = set(keys) - always

    def settled() -> bool:
        return set(run.dead_lettered()) >= always and all(len(run.endpoint.requests[k]) >= 3 for k in twice)

    wait_for(settled, 120, "every message acked or dead-lettered")
    time.sleep(3 * MAX_BACKOFF)
    assert set(run.dead_lettered()) == always  # no message that succeeded is dead-lettered

    def story(key: str) -> list:  # what the relay logged about it, for a failure's message
        return [
            (event, fields["attempt"], fields["status"], fields.get("error"))
            for event, fields in run.events
            if fields.get("message_id") == ids[key]
        ]

    for key in always:
        assert run.endpoint.attempts(key) == [1, 2, 3, 4, 5], story(key)
    for key in twice:
        assert run.endpoint.attempts(key) == [1, 2, 3], story(key)
    assert len(run.dead_lettered()) + len(twice) == 200
    assert run.endpoint.total() == 5 * len(always) + 3 * len(twice)
    run.stop()
    assert pubsub.drain(run.subscription) == [], "none stuck"


def test_the_push_body_is_googles(relayed, pubsub):
    run = relayed(lambda key, n: 200)
    key = f"body-{uuid.uuid4().hex[:8]}"
    message_id = run.publish(key)
    wait_for(lambda: run.endpoint.requests[key], 30, "the push")
    body = run.endpoint.requests[key][0].body
    assert set(body) == {"message", "subscription", "deliveryAttempt"}
    assert body["subscription"] == run.subscription and body["deliveryAttempt"] == 1
    message = body["message"]
    assert set(message) == {"attributes", "data", "messageId", "message_id", "publishTime", "publish_time"}
    assert message["messageId"] == message["message_id"] == message_id
    assert message["attributes"] == {"origin": "test_push_relay"}
    assert message["publishTime"] == message["publish_time"] and message["publishTime"].endswith("Z")


def test_a_connection_refused_is_a_failed_attempt(pubsub, relayed):
    run = relayed(lambda key, n: 200)
    run.endpoint.close()  # nothing listens on its port any more
    key = f"refused-{uuid.uuid4().hex[:8]}"
    run.publish(key)
    wait_for(lambda: key in run.dead_lettered(), 30, "the dead letter")
    failures = [fields for event, fields in run.events if event in ("delivery_failed", "dead_lettered")]
    assert [f["attempt"] for f in failures] == [1, 2, 3, 4, 5]
    assert all(f["status"] is None and "ConnectionError" in f["error"] for f in failures)
