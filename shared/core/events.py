"""CloudEvents in, typed events out: the only place that knows the platform's envelopes.

Two envelopes reach the functions:
- `google.cloud.pubsub.topic.v1.messagePublished`: Eventarc's Pub/Sub trigger, or
  functions-framework's conversion of a raw Pub/Sub push body (local stack). The
  message is in `data["message"]` with base64 `data`, `attributes`, and the
  publish time as `publishTime` (or `publish_time`).
- `google.cloud.storage.object.v1.finalized`: Eventarc's direct GCS trigger, data
  is the object resource.
A GCS Pub/Sub notification is the first envelope carrying the second's payload;
`object_event` accepts both and returns one `ObjectEvent`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core.errors import ValidationError

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
GCS_FINALIZED_TYPE = "google.cloud.storage.object.v1.finalized"


@dataclass(frozen=True)
class PubsubMessage:
    data: bytes
    attributes: Mapping[str, str]
    message_id: str
    publish_time: dt.datetime | None

    def as_dead_letter(self) -> dict[str, Any]:
        """The original message, kept verbatim for a person to replay."""
        return {
            "data": self.data.decode("utf-8", errors="replace"),
            "attributes": dict(self.attributes),
            "message_id": self.message_id,
            "publish_time": self.publish_time.isoformat() if self.publish_time else None,
        }


@dataclass(frozen=True)
class ObjectEvent:
    bucket: str
    name: str
    generation: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    size: int | None = None


def _event_type(cloud_event: Any) -> str:
    return cloud_event["type"] if "type" in _attrs(cloud_event) else ""


def _attrs(cloud_event: Any) -> Mapping[str, Any]:
    get = getattr(cloud_event, "get_attributes", None)
    return get() if get else {}


def _event_time(cloud_event: Any) -> dt.datetime | None:
    value = _attrs(cloud_event).get("time")
    return parse_timestamp(value) if isinstance(value, str) else None


def parse_timestamp(value: str | None) -> dt.datetime | None:
    """RFC 3339 with any precision and `Z` -> aware datetime (None when absent/bad)."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # Python < 3.11 parsers and nanosecond precision: trim to microseconds
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def pubsub_message(cloud_event: Any) -> PubsubMessage:
    """Extract the Pub/Sub message of a messagePublished CloudEvent."""
    data = cloud_event.data if isinstance(cloud_event.data, Mapping) else None
    message = data.get("message") if data else None
    if not isinstance(message, Mapping):
        raise ValidationError(
            "event carries no Pub/Sub message", field="data.message", value=type(cloud_event.data).__name__
        )
    raw = message.get("data") or ""
    try:
        payload = base64.b64decode(raw, validate=True) if raw else b""
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValidationError("message data is not base64", field="message.data", value=str(raw)[:80]) from exc
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise ValidationError(
            "message attributes are not a map", field="message.attributes", value=str(attributes)[:80]
        )
    publish_time = parse_timestamp(message.get("publishTime") or message.get("publish_time")) or _event_time(
        cloud_event
    )
    message_id = str(message.get("messageId") or message.get("message_id") or _attrs(cloud_event).get("id", ""))
    return PubsubMessage(payload, {str(k): str(v) for k, v in attributes.items()}, message_id, publish_time)


def event_time(cloud_event: Any) -> dt.datetime | None:
    """When the event was first produced: publish time for Pub/Sub, `time` otherwise."""
    if _event_type(cloud_event) == PUBSUB_TYPE:
        try:
            return pubsub_message(cloud_event).publish_time
        except ValidationError:
            return _event_time(cloud_event)
    return _event_time(cloud_event)


def json_object(raw: bytes, field: str, what: str = "message body") -> dict[str, Any]:
    """A JSON object from outside, or a ValidationError naming `field`.

    Everything json can raise on hostile input is bad input, not a crash: malformed JSON and
    bad UTF-8 (ValueError), an integer of over 4,300 digits (ValueError from int()), deep
    nesting (RecursionError). A key given twice is refused too: json keeps the last one
    silently, so `{"date": "2021-01-15", "date": "2021-01-16"}` would ingest a date that the
    sender may not have meant."""
    preview = raw[:200].decode("utf-8", "replace")
    try:
        body = json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise ValidationError(
            f"{what} gives the key {exc.key!r} more than once", field=exc.key, value=preview
        ) from None
    except ValueError as exc:
        raise ValidationError(f"{what} is not JSON: {exc}", field=field, value=preview) from exc
    except RecursionError as exc:
        raise ValidationError(f"{what} is nested too deeply", field=field, value=preview) from exc
    if not isinstance(body, dict):
        raise ValidationError(f"{what} must be a JSON object", field=field, value=preview)
    return body


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _object_from_resource(resource: Mapping[str, Any]) -> ObjectEvent:
    """The object resource, each field checked: an event is outside input like a message, and a
    field of the wrong type (a list of metadata, a float generation) must be a ValidationError
    naming it, never an AttributeError that the boundary would take for a transient failure."""
    for key in ("bucket", "name"):
        value = resource.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"object event without a {key}", field=f"data.{key}", value=value)
    generation = resource.get("generation")
    text = str(generation) if isinstance(generation, (str, int)) and not isinstance(generation, bool) else ""
    if not text.isdigit() or int(text) <= 0:  # GCS generations are positive integers (JSON API: strings)
        raise ValidationError(
            "object event without a positive whole-number generation", field="data.generation", value=generation
        )
    metadata = resource.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ValidationError("object metadata is not a map", field="data.metadata", value=metadata)
    size = str(resource.get("size") or "")
    return ObjectEvent(
        resource["bucket"],
        resource["name"],
        int(text),
        {str(k): str(v) for k, v in metadata.items()},
        int(size) if size.isdigit() else None,
    )


def object_event(cloud_event: Any) -> ObjectEvent | None:
    """Both GCS event envelopes -> ObjectEvent; None for events that are not a finalize.

    Raises ValidationError when the envelope claims to be a finalize but is malformed.
    """
    kind = _event_type(cloud_event)
    if kind == GCS_FINALIZED_TYPE:
        if not isinstance(cloud_event.data, Mapping):
            raise ValidationError(
                "finalize event data is not an object", field="data", value=str(cloud_event.data)[:80]
            )
        return _object_from_resource(cloud_event.data)
    if kind == PUBSUB_TYPE:
        message = pubsub_message(cloud_event)
        if message.attributes.get("eventType") != "OBJECT_FINALIZE":
            return None
        resource = json_object(message.data, "message.data", "notification payload") if message.data else {}
        resource.setdefault("bucket", message.attributes.get("bucketId"))
        resource.setdefault("name", message.attributes.get("objectId"))
        resource.setdefault("generation", message.attributes.get("objectGeneration"))
        return _object_from_resource(resource)
    return None


def delivery_attempt() -> int | None:
    """Pub/Sub's `deliveryAttempt` of the push being served, when the subscription has a
    dead-letter policy (Google's push body carries it, and so does the local relay's).
    functions-framework drops it when it turns a push into a CloudEvent, but the handler still
    runs inside that request, so it is read from there. Eventarc deliveries carry none: None."""
    try:
        import flask

        if not flask.has_request_context():
            return None
        body = flask.request.get_json(silent=True, cache=True)
    except Exception:  # noqa: BLE001 - no request, no body: the attempt is unknown
        return None
    value = body.get("deliveryAttempt") if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
