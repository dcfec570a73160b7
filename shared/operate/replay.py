"""Replay dead letters: after a person fixed the cause, put each given-up message back where it came from.

Why here and not in a function: a replay is an operator's decision (the setting is fixed, the
month is published now), taken from a shell with the operator's own credentials, and it must be
the same code locally (`./local_emulator.sh replay`) and in Google Cloud (`python -m shared.operate.replay_cli`
with application-default credentials and the names from `terraform output`). It only uses
deployed resources: the dead-letter subscription and the topics.

Two kinds of dead letter share the dead-letter topic (README, "The message contracts"):
- structured, published by a function (shared/core/runtime.py): JSON `{"function", "reason", "error",
  "context", "event"}`. For `ingest` and `backfill` the original Pub/Sub message is the push
  envelope's `event.data.message` (base64 `data`, `attributes`): republished verbatim to that
  function's topic. For the loaders the original event is a GCS finalize notification, which in
  Google Cloud (Eventarc's direct GCS trigger) is no Pub/Sub message at all, and whose generation
  may be stale by now: the replay is an ingest message `{"date", "service", "force": true}` for
  the context's (service, date), which rewrites the partition and so re-triggers both loaders.
- platform, forwarded by Pub/Sub itself after the subscription's max delivery attempts: the
  original message with attributes `CloudPubSubDeadLetterSource*` added (the emulator sets the
  same). Republished, without those attributes, to the topic of the source subscription
  (`get_subscription`).

Nothing is lost when a replay stops half way: a dead letter is acknowledged only after its
republish is confirmed (the publish future's result); everything else (not matching the
filters, not replayable, failed, `--dry-run`) is held under a modest lease and nacked at the
end, so it stays for the next replay.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.core import paths

INGEST, BACKFILL = "ingest", "backfill"
LOADERS = ("load_bigquery", "load_postgres")
PLATFORM_PREFIX = "CloudPubSubDeadLetter"
SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"
SOURCE_PROJECT = "CloudPubSubDeadLetterSourceSubscriptionProject"
LEASE_SECONDS = 60  # a held dead letter comes back to the next replay at most this long after a crash
PUBLISH_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Replay:
    """What one dead letter stands for, and the message that replays it (or why there is none)."""

    kind: str  # "structured" or "platform"
    function: str | None
    reason: str | None
    service: str | None = None
    date: str | None = None
    topic: str | None = None  # full path: projects/P/topics/T
    data: bytes = b""
    attributes: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None  # set: this dead letter cannot be replayed (it is kept)
    subscription: str | None = None  # platform kind: the source subscription's id

    def describe(self) -> str:
        return (
            f"{self.function or '?'} {self.reason or '?'} {self.service or '-'} {self.date or '-'}"
            f" -> {self.topic.rsplit('/', 1)[-1] if self.topic else '?'}"
        )


@dataclass(frozen=True)
class Filters:
    reason: str | None = None
    function: str | None = None  # a function name, or a platform dead letter's source subscription id
    service: str | None = None
    date: str | None = None

    def match(self, replay: Replay) -> bool:
        return (
            (self.reason is None or replay.reason == self.reason)
            and (self.function is None or self.function in (replay.function, replay.subscription))
            and (self.service is None or replay.service == self.service)
            and (self.date is None or replay.date == self.date)
        )


def _fields(data: bytes) -> dict[str, Any]:
    """An ingest-like JSON body's keys (service, date), or {} for anything else. A dead letter
    holds whatever was sent, deep nesting included (RecursionError, not a ValueError): one such
    letter made the whole replay run stop with a traceback."""
    try:
        body = json.loads(data) if data.strip() else {}
    except (ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def plan_structured(
    body: Mapping[str, Any],
    attributes: Mapping[str, str],
    topics: Mapping[str, str],
    load_event: Callable[[str], Any] | None = None,
) -> Replay:
    """A function's dead letter -> its replay. `topics`: function -> full topic path (ingest, backfill).

    An original event over 1 MB is not in the dead letter but in the lake (`event.stored_at`,
    shared/core/runtime.py): `load_event(gs://...)` reads it back.
    """
    function = body.get("function") or attributes.get("function")
    reason = body.get("reason") or attributes.get("reason")
    context = body.get("context") if isinstance(body.get("context"), Mapping) else {}
    service, date = context.get("service"), context.get("date")
    base = Replay("structured", function, reason, service, date)
    if function in LOADERS:
        if not service or not date or not topics.get(INGEST):
            return replace(base, problem="a loader's dead letter without (service, date) or no ingest topic")
        data = json.dumps({"date": date, "service": service, "force": True}, separators=(",", ":")).encode()
        return replace(base, topic=topics[INGEST], data=data)
    if function not in (INGEST, BACKFILL):
        return replace(base, problem=f"unknown function {function!r}")
    if not topics.get(function):
        return replace(base, problem=f"no topic given for {function}")
    event = body.get("event") if isinstance(body.get("event"), Mapping) else {}
    if event.get("truncated"):
        return replace(base, problem="the original event was too large and only a preview was kept")
    if event.get("stored_at"):
        try:
            event = load_event(event["stored_at"]) if load_event else None
        except Exception as exc:  # noqa: BLE001 - kept for a later replay, with why
            event = f"{type(exc).__name__}: {exc}"[:200]
        if not isinstance(event, Mapping):
            return replace(base, problem=f"cannot read the stored event {body['event']['stored_at']}: {event}")
    envelope = event.get("data") if isinstance(event.get("data"), Mapping) else {}
    message = envelope.get("message") if isinstance(envelope.get("message"), Mapping) else None
    if message is None:
        return replace(base, problem="the dead letter holds no original Pub/Sub message (event.data.message)")
    try:
        data = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        return replace(base, problem="the original message's data is not base64")
    original_attributes = message.get("attributes") or {}
    if not isinstance(original_attributes, Mapping):
        return replace(base, problem="the original message's attributes are not a map")
    attrs = {str(k): str(v) for k, v in original_attributes.items()}
    fields = _fields(data) or attrs
    return replace(
        base,
        service=service or _text(fields.get("service")),
        date=date or _text(fields.get("date")),
        topic=topics[function],
        data=data,
        attributes=attrs,
    )


def plan_platform(
    data: bytes, attributes: Mapping[str, str], topics: Mapping[str, str], topic_of: Callable[[str], str]
) -> Replay:
    """A message Pub/Sub forwarded after max delivery attempts -> itself, to its source topic."""
    subscription = attributes.get(SOURCE_SUBSCRIPTION, "")
    project = attributes.get(SOURCE_PROJECT, "")
    original = {k: v for k, v in attributes.items() if not k.startswith(PLATFORM_PREFIX)}
    base = Replay(
        "platform", subscription, "max_delivery_attempts", data=data, attributes=original, subscription=subscription
    )
    path = subscription if subscription.startswith("projects/") else f"projects/{project}/subscriptions/{subscription}"
    try:
        topic = topic_of(path)
    except Exception as exc:  # noqa: BLE001 - a deleted subscription: keep the dead letter, say why
        return replace(base, problem=f"cannot look up {path}: {type(exc).__name__}: {exc}"[:300])
    function = next((name for name, path_ in topics.items() if path_ == topic), subscription)
    fields = _fields(data) or original
    service, date = _text(fields.get("service")), _text(fields.get("date"))
    partition = paths.parse_partition(original.get("objectId", "")) if "objectId" in original else None
    if partition is not None:
        service, date = partition.service, partition.date.isoformat()
    elif function == INGEST and date and not service:
        service = "yellow"  # the ingest contract's default
    return replace(base, function=function, service=service, date=date, topic=topic)


def plan(
    data: bytes,
    attributes: Mapping[str, str],
    topics: Mapping[str, str],
    topic_of: Callable[[str], str],
    load_event: Callable[[str], Any] | None = None,
) -> Replay:
    """Either kind of dead letter (one pulled message's data and attributes) -> its Replay."""
    if SOURCE_SUBSCRIPTION in attributes:
        return plan_platform(data, attributes, topics, topic_of)
    body = _fields(data)
    if not body or "event" not in body:
        return Replay(
            "structured",
            attributes.get("function"),
            attributes.get("reason"),
            problem="neither a structured dead letter nor one forwarded by Pub/Sub",
        )
    return plan_structured(body, attributes, topics, load_event)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class Summary:
    replayed: int = 0
    would_replay: int = 0
    not_matching: int = 0
    not_replayable: int = 0
    failed: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0


def read_stored_event(uri: str) -> Any:
    """An event kept in the lake (`gs://bucket/quarantine/events/...json`), with the caller's credentials."""
    from google.cloud import storage

    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        client = storage.Client(project=os.environ.get("GCP_PROJECT", "local"), credentials=AnonymousCredentials())
    else:
        client = storage.Client()
    return json.loads(client.bucket(bucket).blob(name).download_as_bytes(timeout=60))


def run(
    subscriber: Any,
    publisher: Any,
    subscription: str,
    topics: Mapping[str, str],
    *,
    filters: Filters = Filters(),
    dry_run: bool = False,
    limit: int | None = None,
    out: Callable[[str], None] = print,
    pull_timeout: float = 5.0,
    load_event: Callable[[str], Any] = read_stored_event,
) -> Summary:
    """Pull the dead-letter subscription until it has nothing new; replay what matches.

    Pulls in batches; a message seen before in this run (a lease that expired) is only held.
    Replayed messages are acked one by one after their publish is confirmed; all others are
    nacked in the end, also when the run is interrupted.
    """
    from google.api_core.exceptions import DeadlineExceeded

    summary, seen, held = Summary(), set(), []
    lookups: dict[str, str] = {}

    def topic_of(path: str) -> str:
        if path not in lookups:
            lookups[path] = subscriber.get_subscription(subscription=path).topic
        return lookups[path]

    try:
        while limit is None or summary.replayed + summary.would_replay < limit:
            try:
                response = subscriber.pull(subscription=subscription, max_messages=100, timeout=pull_timeout)
            except DeadlineExceeded:
                break
            received = list(response.received_messages)
            if not received:
                break
            subscriber.modify_ack_deadline(
                subscription=subscription, ack_ids=[r.ack_id for r in received], ack_deadline_seconds=LEASE_SECONDS
            )
            new = 0
            for item in received:
                full = limit is not None and summary.replayed + summary.would_replay >= limit
                if item.message.message_id in seen or full:
                    held.append(item.ack_id)  # its lease expired and it came back, or the limit is reached
                    continue
                seen.add(item.message.message_id)
                new += 1
                if not _one(
                    item,
                    subscriber,
                    publisher,
                    subscription,
                    topics,
                    filters,
                    dry_run,
                    out,
                    summary,
                    topic_of,
                    load_event,
                ):
                    held.append(item.ack_id)
            if not new:
                break
    finally:
        _nack(subscriber, subscription, held)
    return summary


def _nack(subscriber: Any, subscription: str, ack_ids: list[str]) -> None:
    """Give the kept dead letters back now; if that fails their lease ends within LEASE_SECONDS anyway."""
    for start in range(0, len(ack_ids), 1000):
        try:
            subscriber.modify_ack_deadline(
                subscription=subscription, ack_ids=ack_ids[start : start + 1000], ack_deadline_seconds=0
            )
        except Exception as exc:  # noqa: BLE001 - an expired ack id; the message comes back regardless
            print(
                f"replay: nack failed ({type(exc).__name__}: {exc}); kept dead letters return within {LEASE_SECONDS} s",
                file=sys.stderr,
            )


def _one(
    item: Any,
    subscriber: Any,
    publisher: Any,
    subscription: str,
    topics: Mapping[str, str],
    filters: Filters,
    dry_run: bool,
    out: Callable[[str], None],
    summary: Summary,
    topic_of: Callable[[str], str],
    load_event: Callable[[str], Any],
) -> bool:
    """Replay one pulled dead letter; True when it was acked (replayed), False to keep it."""
    message = item.message
    replay = plan(bytes(message.data), dict(message.attributes), topics, topic_of, load_event)
    if not filters.match(replay):
        summary.not_matching += 1
        return False
    if replay.problem:
        summary.not_replayable += 1
        out(f"kept {replay.describe()} (dead letter {message.message_id}): cannot replay: {replay.problem}")
        return False
    if dry_run:
        summary.would_replay += 1
        out(f"would replay {replay.describe()} (dead letter {message.message_id})")
        return False
    try:
        new_id = publisher.publish(replay.topic, replay.data, **replay.attributes).result(
            timeout=PUBLISH_TIMEOUT_SECONDS
        )
    except Exception as exc:  # noqa: BLE001 - kept for the next replay, reported, the run goes on
        summary.failed += 1
        out(f"failed {replay.describe()} (dead letter {message.message_id}): {type(exc).__name__}: {exc}")
        return False
    subscriber.acknowledge(subscription=subscription, ack_ids=[item.ack_id])
    summary.replayed += 1
    out(f"replayed {replay.describe()} message {new_id} (dead letter {message.message_id})")
    return True
