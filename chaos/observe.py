"""What the chaos harness sees of a running stack: its publishes, the dead letters, the run ledger.

Why the harness collects dead letters itself: the Pub/Sub emulator keeps messages in memory,
so a restart of it (one of the faults) would lose what sat in the dead-letter subscription.
The collector pulls that subscription all along, keeps every dead letter (body and
attributes) and acks it, the way an operator's sink would; a person finds them in the run's
report. Publishes are retried until the emulator takes them, as a client library would
while the service is restarting.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from shared.core import ledger_read, ledger_record

TERMINAL = frozenset({ledger_record.SUCCEEDED, ledger_record.SKIPPED, ledger_record.DEAD_LETTERED})


class Publisher:
    """Publishes to the stack's topics, retrying while the emulator is away; counts what it sent."""

    def __init__(self, env: Mapping[str, str]) -> None:
        from shared.core import clients

        self.env = env
        self.clients = clients
        self.sent: Counter[str] = Counter()

    def publish(self, topic: str, body: Mapping[str, Any], deadline_s: float = 300.0) -> str:
        name = {"ingest": "INGEST_TOPIC", "backfill": "BACKFILL_TOPIC"}[topic]
        path = self.clients.topic_path(self.env[name], self.env["GCP_PROJECT"])
        data = json.dumps(body, separators=(",", ":")).encode()
        give_up = time.monotonic() + deadline_s
        while True:
            try:
                message_id = self.clients.publisher().publish(path, data).result(timeout=15)
                self.sent[topic] += 1
                return str(message_id)
            except Exception:  # noqa: BLE001 - the emulator restarting (a fault): try again
                if time.monotonic() > give_up:
                    raise
                time.sleep(0.5)

    def publish_notification(self, blob: Any) -> None:
        """The finalize notification GCS (here fake-gcs-server) sends for `blob`, JSON_API_V1, on the
        lake-events topic: what Pub/Sub would have delivered had the emulator not lost it."""
        path = self.clients.topic_path(self.env["LAKE_EVENTS_TOPIC"], self.env["GCP_PROJECT"])
        resource = {
            "kind": "storage#object",
            "bucket": blob.bucket.name,
            "name": blob.name,
            "generation": str(blob.generation),
            "metageneration": str(blob.metageneration or 1),
            "size": str(blob.size or 0),
            "contentType": blob.content_type or "",
            "metadata": blob.metadata or {},
        }
        attributes = {
            "eventType": "OBJECT_FINALIZE",
            "payloadFormat": "JSON_API_V1",
            "bucketId": blob.bucket.name,
            "objectId": blob.name,
            "objectGeneration": str(blob.generation),
        }
        self.clients.publisher().publish(path, json.dumps(resource).encode(), **attributes).result(timeout=30)
        self.sent["lake_events"] += 1


class DeadLetters:
    """Pulls the dead-letter subscription until stopped, surviving emulator restarts."""

    def __init__(self, env: Mapping[str, str], subscription: str = "taxi-dead-letter-sub") -> None:
        from google.cloud import pubsub_v1

        self.path = pubsub_v1.SubscriberClient.subscription_path(env["GCP_PROJECT"], subscription)
        self.pubsub_v1 = pubsub_v1
        self.letters: list[dict[str, Any]] = []
        self.last_seen = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-dead-letters", daemon=True)

    def start(self) -> DeadLetters:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        from shared.core.pubsub_clients import subscriber_client

        client = subscriber_client()  # a dead letter over 4 MB must not stall the collector
        while not self._stop.is_set():
            try:
                response = client.pull(request={"subscription": self.path, "max_messages": 500}, timeout=5)
            except Exception:  # noqa: BLE001 - emulator restarting, subscription not made again yet
                self._stop.wait(1.0)
                continue
            ack_ids = []
            for received in response.received_messages:
                message = received.message
                try:
                    body = json.loads(message.data)
                except ValueError:
                    body = {"raw": message.data[:2000].decode("utf-8", "replace")}
                self.letters.append(
                    {"body": body, "attributes": dict(message.attributes), "message_id": message.message_id}
                )
                ack_ids.append(received.ack_id)
            if ack_ids:
                self.last_seen = time.monotonic()
                try:
                    client.acknowledge(request={"subscription": self.path, "ack_ids": ack_ids})
                except Exception:  # noqa: BLE001 - lost with a restart: collected already
                    pass
            elif not response.received_messages:
                self._stop.wait(0.5)

    def by_reason(self) -> dict[str, int]:
        """Dead letters by (function, reason); the emulator's own (attempts ran out) as `pubsub`."""
        out: Counter[str] = Counter()
        for letter in self.letters:
            body = letter["body"]
            if isinstance(body, dict) and "reason" in body and "function" in body:
                out[f"{body['function']}: {body['reason']}"] += 1
            else:
                source = letter["attributes"].get("CloudPubSubDeadLetterSourceSubscription", "?")
                out[f"pubsub: attempts exhausted ({source})"] += 1
        return dict(sorted(out.items()))

    def event_ids(self) -> set[tuple[str, str]]:
        """(function, event id) of every structured dead letter."""
        ids = set()
        for letter in self.letters:
            body = letter["body"]
            if isinstance(body, dict) and isinstance(body.get("event"), dict):
                attributes = body["event"].get("attributes") or {}
                if "id" in attributes:
                    ids.add((str(body.get("function")), str(attributes["id"])))
        return ids


def ledger_records(bucket: Any, months: Iterable[Any]) -> list[tuple[str, dt.date, ledger_read.RunRecord]]:
    """Every run record of the workload's months: (service, date, record)."""
    out = []
    for month in months:
        dates = month.dates
        for day, records in ledger_read.read_runs(bucket, month.service, dates[0], dates[-1]).items():
            out += [(month.service, day, r) for r in records]
    return out


def in_flight(
    records: Iterable[tuple[str, dt.date, ledger_read.RunRecord]],
) -> list[tuple[str, dt.date, ledger_read.RunRecord]]:
    """Records whose event has no outcome yet (queued, running, retrying), newest first."""
    return sorted(
        (r for r in records if r[2].outcome not in TERMINAL),
        key=lambda r: r[2].updated_at or dt.datetime.min.replace(tzinfo=dt.UTC),
        reverse=True,
    )


def claims_held(bucket: Any) -> list[str]:
    """Month claims in the lake (`staging/.../_claim`). One whose holder died is released by the
    scheduled repair (shared/ingest/stale_claims.py), so a settle waits for the repair's next run."""
    return sorted(b.name for b in bucket.list_blobs(prefix="staging/") if b.name.endswith("/_claim"))
