"""Google's push contract, as the relay (local/stack/push_relay.py) reproduces it.

What a push subscription sends (the request body functions-framework turns into a
messagePublished CloudEvent), which HTTP statuses count as an acknowledgement, and how a
retry policy spaces the attempts. Pure functions and data, so they are unit-tested alone.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

ACK_STATUSES = frozenset({102, 200, 201, 203, 204})  # what Google's push counts as an ack


@dataclass(frozen=True)
class Route:
    """One subscription and where its messages go; field names as resources.relay_routes()."""

    subscription: str  # projects/P/subscriptions/S
    endpoint: str
    ack_deadline: float = 600.0
    min_backoff: float = 10.0  # Google's defaults when a subscription has a retry policy
    max_backoff: float = 600.0
    max_delivery_attempts: int | None = 5  # None: no dead-letter policy, retried forever


def backoff_seconds(attempt: int, minimum: float, maximum: float) -> float:
    """The wait after failed attempt `attempt` (1-based): minimum * 2^(attempt-1), capped."""
    if attempt < 1:
        attempt = 1
    return min(maximum, minimum * 2.0 ** min(attempt - 1, 60))


def push_body(message: Any, subscription: str, delivery_attempt: int | None) -> dict[str, Any]:
    """Google's push request body (the non-wrapped format), which functions-framework turns
    into a messagePublished CloudEvent: it needs message.data and message.messageId. Both
    spellings of the id and publish time are sent, as Google and the emulator do."""
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(message.publish_time)
    published = stamp.ToJsonString()
    body: dict[str, Any] = {
        "message": {
            "attributes": dict(message.attributes),
            "data": base64.b64encode(message.data).decode("ascii"),
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": subscription,
    }
    if message.ordering_key:
        body["message"]["orderingKey"] = message.ordering_key
    if delivery_attempt is not None:  # Google sends it only with a dead-letter policy
        body["deliveryAttempt"] = delivery_attempt
    return body
