"""The push relay's pure parts: Google's backoff, the push body and what functions-framework
makes of it, the timer thread, and the routes read from resources.py's one table."""

from __future__ import annotations

import datetime as dt
import threading
import time
from types import SimpleNamespace

import pytest

from local.stack import resources
from local.stack.delayer import Delayer
from local.stack.push_protocol import ACK_STATUSES, ACKED, JOINED, PUSH, Copies, Route, backoff_seconds, push_body


@pytest.mark.parametrize(("attempt", "expected"), [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (60, 10), (0, 1)])
def test_backoff_doubles_from_the_minimum_and_stops_at_the_maximum(attempt, expected):
    assert backoff_seconds(attempt, 1.0, 10.0) == expected


def test_backoff_with_short_test_settings():
    assert [backoff_seconds(a, 0.2, 1.0) for a in range(1, 6)] == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


def test_only_googles_success_codes_acknowledge():
    assert ACK_STATUSES == {102, 200, 201, 203, 204}
    assert 202 not in ACK_STATUSES and 500 not in ACK_STATUSES


def message(**overrides):
    fields = {
        "data": b'{"date": "2021-01-15", "service": "yellow"}',
        "attributes": {"origin": "unit"},
        "message_id": "4242",
        "ordering_key": "",
        "publish_time": dt.datetime(2021, 1, 16, 3, 4, 5, 678000, tzinfo=dt.UTC),
    }
    return SimpleNamespace(**(fields | overrides))


def test_push_body_has_googles_fields():
    body = push_body(message(), "projects/p/subscriptions/s", 3)
    assert body == {
        "message": {
            "attributes": {"origin": "unit"},
            "data": "eyJkYXRlIjogIjIwMjEtMDEtMTUiLCAic2VydmljZSI6ICJ5ZWxsb3cifQ==",
            "messageId": "4242",
            "message_id": "4242",
            "publishTime": "2021-01-16T03:04:05.678Z",
            "publish_time": "2021-01-16T03:04:05.678Z",
        },
        "subscription": "projects/p/subscriptions/s",
        "deliveryAttempt": 3,
    }
    assert "deliveryAttempt" not in push_body(message(), "projects/p/subscriptions/s", None)
    assert push_body(message(ordering_key="k"), "projects/p/subscriptions/s", 1)["message"]["orderingKey"] == "k"


def test_functions_framework_turns_the_push_body_into_the_message_the_functions_read():
    """functions-framework 3.10.2's own conversion of a raw push request, then shared.core.events."""
    import flask
    from functions_framework.event_conversion import background_event_to_cloud_event

    from shared.core.events import PUBSUB_TYPE, pubsub_message

    body = push_body(message(), "projects/p/subscriptions/taxi-ingest-push", 1)
    with flask.Flask(__name__).test_request_context("/", method="POST", json=body):
        event = background_event_to_cloud_event(flask.request)
    assert event["type"] == PUBSUB_TYPE
    parsed = pubsub_message(event)
    assert parsed.data == message().data and parsed.attributes == {"origin": "unit"}
    assert parsed.message_id == "4242" and parsed.publish_time == message().publish_time


def test_the_delayer_runs_calls_in_due_order_on_one_thread_and_pending_ones_on_close():
    delayer, ran = Delayer(), []
    threads = set()

    def note(label):
        return lambda: (ran.append(label), threads.add(threading.current_thread().name))

    delayer.call_later(0.3, note("late"))
    delayer.call_later(0.05, note("early"))
    delayer.call_later(60, note("pending"))
    time.sleep(0.6)
    assert ran == ["early", "late"] and threads == {"relay-delayer"}
    delayer.close(run_pending=True)
    assert ran == ["early", "late", "pending"]
    delayer.call_later(60, note("after close runs at once"))
    assert ran[-1] == "after close runs at once"


def test_routes_come_from_the_one_subscription_table(monkeypatch):
    monkeypatch.setenv("GCP_PROJECT", "p")
    for function in ("INGEST", "BACKFILL", "LOAD_BIGQUERY", "LOAD_POSTGRES"):
        monkeypatch.setenv(f"TAXI_FUNCTION_URL_{function}", f"http://127.0.0.1:1/{function.lower()}")
    monkeypatch.delenv(resources.BACKOFF_SETTING, raising=False)
    monkeypatch.setattr(resources, "MAX_DELIVERY_ATTEMPTS", 5)  # what the suite's env sets (Terraform: 10)
    routes = [Route(**route) for route in resources.relay_routes()]
    assert {r.subscription: r.endpoint for r in routes} == {
        f"projects/p/subscriptions/{name}": f"http://127.0.0.1:1/{function.lower()}"
        for name, (_topic, function) in resources.PUSH_SUBSCRIPTIONS.items()
    }
    # By default Terraform's push retry policy (10 s..600 s), as Google Cloud retries (issue 21, part 2).
    assert {(r.min_backoff, r.max_backoff, r.ack_deadline, r.max_delivery_attempts) for r in routes} == {
        (10.0, 600.0, 600.0, 5)
    }


def test_only_an_explicit_setting_shortens_the_relay_backoff(monkeypatch):
    monkeypatch.setenv("GCP_PROJECT", "p")
    for function in ("INGEST", "BACKFILL", "LOAD_BIGQUERY", "LOAD_POSTGRES"):
        monkeypatch.setenv(f"TAXI_FUNCTION_URL_{function}", f"http://127.0.0.1:1/{function.lower()}")
    monkeypatch.setenv(resources.BACKOFF_SETTING, "1,10")
    assert {(r["min_backoff"], r["max_backoff"]) for r in resources.relay_routes()} == {(1.0, 10.0)}
    for bad in ("10", "5,1", "0,10", "1,601", "a,b"):
        monkeypatch.setenv(resources.BACKOFF_SETTING, bad)
        with pytest.raises(SystemExit, match=f"{resources.BACKOFF_SETTING}='{bad}'"):
            resources.relay_routes()


def test_the_ledger_delivery_budget_is_the_relays_policy():
    """`undelivered` (shared/core/ledger_record.py) assumes Terraform's push policy, which the relay
    uses by default (tests/infra checks resources.py against pubsub.tf)."""
    from shared.core import ledger_record

    assert ledger_record.PUSH_ATTEMPTS == resources.TERRAFORM_MAX_DELIVERY_ATTEMPTS
    assert ledger_record.PUSH_MAX_BACKOFF_SECONDS == resources.MAX_BACKOFF_SECONDS
    assert ledger_record.PUSH_ACK_DEADLINE_SECONDS == resources.ACK_DEADLINE_SECONDS


def test_a_message_is_pushed_once_at_a_time_and_not_again_once_acked():
    now = [100.0]
    copies = Copies(remember_seconds=600, clock=lambda: now[0])
    key = ("projects/p/subscriptions/s", "7")
    assert copies.claim(key, "first") == PUSH
    assert copies.claim(key, "copy") == JOINED  # handed out again while its push runs
    assert copies.release(key, acked=True) == ["copy"]
    assert copies.claim(key, "late copy") == ACKED  # handed out again after the ack
    now[0] += 601
    assert copies.claim(key, "much later") == PUSH  # beyond the ack deadline: a redelivery Google makes too
    assert copies.release(key) == [] and copies.claim(key, "after a failure") == PUSH


def test_the_relay_answers_a_copy_with_its_message_and_pushes_once():
    """A real HTTP endpoint holds the first push; a copy handed out meanwhile is not pushed, and
    is acked with the message; a copy after the ack is acked without a push; a message of a
    restarted emulator with the same id is pushed."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from local.stack.push_relay import PushRelay

    pushes, release = [], threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            pushes.append(time.monotonic())
            release.wait(10)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events: list[tuple[str, dict]] = []
    relay = PushRelay([], log=lambda event, **fields: events.append((event, fields)))
    route = Route("projects/p/subscriptions/s", f"http://127.0.0.1:{server.server_port}/", ack_deadline=30)

    def handle(attempt: int, **fields) -> SimpleNamespace:
        done: list[str] = []
        return SimpleNamespace(
            **vars(message(delivery_attempt=attempt, **fields)), done=done,
            ack=lambda: done.append("ack"), nack=lambda: done.append("nack"),
        )  # fmt: skip

    try:
        first, copy, late = handle(1), handle(2), handle(3)
        pushing = threading.Thread(target=relay._deliver, args=(route, first))
        pushing.start()
        deadline = time.monotonic() + 10
        while not pushes and time.monotonic() < deadline:
            time.sleep(0.01)
        relay._deliver(route, copy)  # returns at once: joined
        assert copy.done == [] and len(pushes) == 1
        release.set()
        pushing.join(10)
        assert first.done == ["ack"] and copy.done == ["ack"]
        relay._deliver(route, late)
        assert late.done == ["ack"] and len(pushes) == 1
        # A restarted emulator numbers its messages from 1 again: the same id, another message.
        renumbered = handle(1, publish_time=dt.datetime(2021, 1, 17, tzinfo=dt.UTC))
        relay._deliver(route, renumbered)
        assert renumbered.done == ["ack"] and len(pushes) == 2
        assert [e for e, _ in events] == ["copy_joined", "delivered", "copy_acked", "delivered"]
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_push_that_raises_does_not_leave_its_message_claimed():
    """Before: an unexpected error after the claim left the key claimed for good, so every later
    copy of the message joined a push that no longer ran and was never answered."""
    from local.stack.push_relay import PushRelay

    calls = []

    def post(route, body):
        calls.append(body)
        if len(calls) == 1:
            raise RuntimeError("not a requests error")
        return 204, None

    relay = PushRelay([], log=lambda event, **fields: None)
    relay._post = post
    route = Route("projects/p/subscriptions/s", "http://127.0.0.1:9/", ack_deadline=30)
    first, copy = message(delivery_attempt=1), message(delivery_attempt=2)
    done: list[str] = []
    copy.ack, copy.nack = (lambda: done.append("ack")), (lambda: done.append("nack"))
    with pytest.raises(RuntimeError):
        relay._deliver(route, first)
    relay._deliver(route, copy)
    assert len(calls) == 2 and done == ["ack"], "the copy is pushed and acked, not joined to a dead push"
