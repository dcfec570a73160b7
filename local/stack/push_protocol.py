"""Google's push contract, as the relay (local/stack/push_relay.py) reproduces it.

What a push subscription sends (the request body functions-framework turns into a
messagePublished CloudEvent), which HTTP statuses count as an acknowledgement, and how a
retry policy spaces the attempts, and that a message is pushed once at a time (`Copies`).
No I/O here, so each is unit-tested alone.
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


PUSH, JOINED, ACKED = "push", "joined", "acked"


class Copies:
    """The relay's handles of each message, so that a message is pushed once at a time and not
    again once acknowledged.

    Why: on a loaded machine the emulator hands a message out again while the relay is still
    pushing it, or after the relay acknowledged it (the ack lost), with delivery_attempt + 1. Chaos
    seed 4's clean run at 2f5f1ad had 158 such copies of 3,462 deliveries, 30-120 s after the
    first push, none of them after a failed push. Google's push does not redeliver a message within
    its ack deadline while the push runs. Each copy pushed again was one more request for the
    functions and an inflated attempt count, with which a function gives up early (it dead-letters
    a transient failure at the last attempt). So a copy that arrives while its message is being
    pushed (or waits out a backoff) joins it and is answered with it; a copy of a message acked
    less than `remember_seconds` ago is acked at once.
    """

    def __init__(self, remember_seconds: float = 600.0, clock: Any = None) -> None:
        import threading
        import time

        self._remember = remember_seconds
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._pushing: dict[tuple[str, ...], list[Any]] = {}
        self._acked: dict[tuple[str, ...], float] = {}

    def claim(self, key: tuple[str, ...], handle: Any) -> str:
        """PUSH (the caller pushes it), JOINED (held with the push under way) or ACKED."""
        with self._lock:
            now = self._clock()
            if len(self._acked) > 10_000:  # forget what is older than remember_seconds
                self._acked = {k: t for k, t in self._acked.items() if now - t < self._remember}
            if now - self._acked.get(key, -self._remember - 1) < self._remember:
                return ACKED
            if key in self._pushing:
                self._pushing[key].append(handle)
                return JOINED
            self._pushing[key] = []
            return PUSH

    def release(self, key: tuple[str, ...], acked: bool = False) -> list[Any]:
        """The copies that joined the push of `key`; `acked`: remember the message as acked."""
        with self._lock:
            if acked:
                self._acked[key] = self._clock()
            return self._pushing.pop(key, [])
