"""What a dead letter stands for, and the message that replays it (or why there is none).

Pure: from a dead letter's body and attributes to a `Replay`, with no client and no I/O (an event
kept in the lake is read through the `load_event` the caller passes), so every kind of letter
(structured, platform, malformed, hostile) is unit-tested from plain data. shared/operate/replay.py
pulls the letters and publishes what this plans.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.core import paths

INGEST, BACKFILL = "ingest", "backfill"
LOADERS = ("load_bigquery", "load_postgres")
# Reasons the same message meets again whatever was fixed elsewhere: a malformed or invalid
# message stays invalid. Replayed only when asked for by name (--reason), e.g. after the
# contract itself was widened.
SAME_INPUT_REASONS = frozenset({"invalid_input"})
# The only object a replay deletes: a month's failure record (shared/ingest/month_failure.py).
MONTH_FAILURE = re.compile(r"gs://[a-z0-9][a-z0-9._-]{1,221}/staging/[a-z]+/month=\d{4}-\d{2}/_failed\.json")
PLATFORM_PREFIX = "CloudPubSubDeadLetter"
SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"
SOURCE_PROJECT = "CloudPubSubDeadLetterSourceSubscriptionProject"


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
    clears: str | None = None  # gs:// URI of the month's failure record to delete before the republish

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
    raw_context = body.get("context")
    context: Mapping[str, Any] = raw_context if isinstance(raw_context, Mapping) else {}
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
    kept = body.get("event")
    event: Mapping[str, Any] = kept if isinstance(kept, Mapping) else {}
    if event.get("truncated"):
        return replace(base, problem="the original event was too large and only a preview was kept")
    if event.get("stored_at"):
        stored: Any
        try:
            stored = load_event(event["stored_at"]) if load_event else None
        except Exception as exc:  # noqa: BLE001 - kept for a later replay, with why
            stored = f"{type(exc).__name__}: {exc}"[:200]
        if not isinstance(stored, Mapping):
            return replace(base, problem=f"cannot read the stored event {event['stored_at']}: {stored}")
        event = stored
    raw_envelope = event.get("data")
    envelope: Mapping[str, Any] = raw_envelope if isinstance(raw_envelope, Mapping) else {}
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
    error = body.get("error")
    recorded = _text(error.get("month_failure")) if isinstance(error, Mapping) else None
    return replace(
        base,
        service=service or _text(fields.get("service")),
        date=date or _text(fields.get("date")),
        topic=topics[function],
        data=data,
        attributes=attrs,
        clears=recorded if function == INGEST and recorded and MONTH_FAILURE.fullmatch(recorded) else None,
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
