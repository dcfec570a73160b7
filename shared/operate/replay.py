"""Replay dead letters: after a person fixed the cause, put each given-up message back where it came from.

Why here and not in a function: a replay is an operator's decision (the setting is fixed, the
month is published now), taken from a shell with the operator's own credentials, and it must be
the same code locally (`./local_emulator.sh replay`) and in Google Cloud (`python -m shared.operate.replay_cli`
with application-default credentials and the names from `terraform output`). It only uses
deployed resources: the dead-letter subscription and the topics.

Two kinds of dead letter share the dead-letter topic (README, "The message contracts"):
- structured, published by a function (shared/core/runtime.py): JSON `{"function", "reason",
  "error", "context", "event"}` (shared/operate/replay_plan.py plans their replays). For
  `ingest` and `backfill` the original Pub/Sub message is the push envelope's
  `event.data.message` (base64 `data`, `attributes`): republished verbatim to that function's
  topic. For the loaders the original event is a GCS finalize notification, whose generation
  may be stale by now and which only one loader's subscription would redeliver: the replay is an
  ingest message `{"date", "service", "force": true}` for the context's (service, date), which
  rewrites the partition and so re-triggers both loaders.
- platform, forwarded by Pub/Sub itself after the subscription's max delivery attempts: the
  original message with attributes `CloudPubSubDeadLetterSource*` added (the emulator sets the
  same). Republished, without those attributes, to the topic of the source subscription
  (`get_subscription`).

A letter too large to replay or to receive never stops a run: one whose message is over what
the ingest and backfill contracts take (MAX_MESSAGE_BYTES) is skipped with its size, as its
replay could only be dead-lettered again; and a pull the client cannot receive (its channel's
size limit: `ResourceExhausted ... larger than max`) is counted, after which the run waits for
the letters that pull leased to come back and pulls one letter at a time, so only the letter
that is too large stays behind.

Nothing is lost when a replay stops half way: a dead letter is acknowledged only after its
republish is confirmed (the publish future's result); everything else (not matching the
filters, not replayable, failed, `--dry-run`) is held under a modest lease and nacked at the
end, so it stays for the next replay.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.core import clients
from shared.core.messages import MAX_MESSAGE_BYTES, TOO_LARGE
from shared.operate.replay_plan import BACKFILL, INGEST, SAME_INPUT_REASONS, Filters, plan

LEASE_SECONDS = 60  # a held dead letter comes back to the next replay at most this long after a crash
PUBLISH_TIMEOUT_SECONDS = 60
BATCH = 100
MAX_UNRECEIVED = 100  # pulls that failed for size before a run gives up pulling (each leaves its letter)


@dataclass
class Summary:
    """What one run did with each dead letter it pulled; every letter not replayed is `left`."""

    replayed: int = 0
    would_replay: int = 0
    not_matching: int = 0
    not_replayable: int = 0
    failed: int = 0
    skipped_same_input: int = 0  # a reason that the same input meets again (invalid_input), not asked for
    repeated: int = 0  # its replay was already published by this run and failed again
    too_large: int = 0  # its message is over the contract's MAX_MESSAGE_BYTES: it would be refused again
    unreceived: int = 0  # pulls this client could not receive (a letter over its channel's size limit)
    left: int = 0

    def line(self, subscription: str) -> str:
        return (
            f"replay: {self.replayed} replayed, {self.would_replay} would be replayed (dry run), "
            f"{self.skipped_same_input} skipped (the same input fails the same way: name the reason to "
            f"replay it), {self.too_large} skipped ({TOO_LARGE}: over {MAX_MESSAGE_BYTES} bytes), "
            f"{self.unreceived} pulls too large to receive, "
            f"{self.repeated} already replayed in this run, {self.not_matching} not matching, "
            f"{self.not_replayable} not replayable, {self.failed} failed; {self.left} left in {subscription}"
        )

    @property
    def ok(self) -> bool:
        return self.failed == 0


def read_stored_event(uri: str) -> Any:
    """An event kept in the lake (`gs://bucket/quarantine/events/...json`), with the caller's credentials."""
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    client = clients.storage_client(os.environ.get("GCP_PROJECT"))
    return json.loads(client.bucket(bucket).blob(name).download_as_bytes(timeout=60))


def delete_stored_object(uri: str) -> None:
    """A month's failure record (`gs://bucket/staging/.../_failed.json`, shared/ingest/month_failure.py),
    deleted with the caller's credentials; already gone is fine."""
    from google.api_core.exceptions import NotFound

    bucket, _, name = uri.removeprefix("gs://").partition("/")
    try:
        clients.storage_client(os.environ.get("GCP_PROJECT")).bucket(bucket).blob(name).delete(timeout=60)
    except NotFound:
        pass


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
    sleep: Callable[[float], None] = time.sleep,
    clear_record: Callable[[str], None] = delete_stored_object,
) -> Summary:
    """Pull the dead-letter subscription until it has nothing new; replay what matches.

    Pulls in batches; a message seen before in this run (a lease that expired) is only held.
    Replayed messages are acked one by one after their publish is confirmed; all others are
    nacked in the end, also when the run is interrupted. A letter naming its month's failure
    record has the record deleted (`clear_record`) before its republish: the replay clears it.
    """
    from google.api_core.exceptions import DeadlineExceeded, ResourceExhausted

    summary, seen, held, batch = Summary(), set(), [], BATCH
    lookups: dict[str, str] = {}
    replayed: set[tuple[str, bytes, tuple[tuple[str, str], ...]]] = set()  # each replay at most once a run

    def topic_of(path: str) -> str:
        if path not in lookups:
            lookups[path] = subscriber.get_subscription(subscription=path).topic
        return lookups[path]

    try:
        while limit is None or summary.replayed + summary.would_replay < limit:
            try:
                response = subscriber.pull(subscription=subscription, max_messages=batch, timeout=pull_timeout)
            except DeadlineExceeded:
                break
            except ResourceExhausted as exc:  # over this client's receive limit: the pull's letters stay leased
                summary.unreceived += 1
                if summary.unreceived >= MAX_UNRECEIVED:
                    break
                batch = _after_unreceived(subscriber, subscription, batch, exc, out, sleep)
                continue
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
                    replayed,
                    clear_record,
                ):
                    held.append(item.ack_id)
            if not new:
                break
    finally:
        summary.left = len(held)
        _nack(subscriber, subscription, held)
    return summary


def _after_unreceived(
    subscriber: Any, subscription: str, batch: int, exc: Exception, out: Callable[[str], None], sleep: Any
) -> int:
    """A pull failed for size: the server leased its letters all the same. The first time, wait
    until those leases end, then pull one letter at a time: a single pull that fails leaves only
    the letter too large behind (leased), and the next pull takes the next one."""
    out(f"could not receive a pull of up to {batch} dead letters: {type(exc).__name__}: {str(exc)[:200]}")
    if batch == 1:
        return 1
    deadline = subscriber.get_subscription(subscription=subscription).ack_deadline_seconds or 10
    out(f"the letters of that pull come back after the ack deadline ({deadline} s): pulling one at a time")
    sleep(min(float(deadline), 600.0) + 1.0)
    return 1


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
    replayed: set[tuple[str, bytes, tuple[tuple[str, str], ...]]],
    clear_record: Callable[[str], None],
) -> bool:
    """Replay one pulled dead letter; True when it was acked (replayed), False to keep it.

    Why a run always ends: a replay that fails again comes back as a new dead letter (a new
    message id) while the run is still pulling; it plans to the same message, which this run has
    published already, so it is kept for the next run instead of being replayed again. And a
    letter whose reason the same input meets again (invalid_input) is only replayed when its
    reason is asked for by name: replaying it unchanged can only dead-letter it once more."""
    message = item.message
    replay = plan(bytes(message.data), dict(message.attributes), topics, topic_of, load_event)
    if not filters.match(replay):
        summary.not_matching += 1
        return False
    if replay.reason in SAME_INPUT_REASONS and filters.reason != replay.reason:
        summary.skipped_same_input += 1
        out(f"skipped {replay.describe()} (dead letter {message.message_id}): --reason {replay.reason} to replay it")
        return False
    if replay.function in (INGEST, BACKFILL) and len(replay.data) > MAX_MESSAGE_BYTES:
        summary.too_large += 1
        out(
            f"skipped {replay.describe()} (dead letter {message.message_id}): its message is {len(replay.data)} "
            f"bytes, over the {MAX_MESSAGE_BYTES} bytes the {replay.function} contract takes ({TOO_LARGE}): "
            "replayed, it would be dead-lettered again"
        )
        return False
    key = (replay.topic or "", replay.data, tuple(sorted(replay.attributes.items())))
    if key in replayed:
        summary.repeated += 1
        out(f"kept {replay.describe()} (dead letter {message.message_id}): already replayed by this run")
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
        if replay.clears:  # before the publish: the replayed date must not find the failure again
            clear_record(replay.clears)
        new_id = publisher.publish(replay.topic, replay.data, **replay.attributes).result(
            timeout=PUBLISH_TIMEOUT_SECONDS
        )
    except Exception as exc:  # noqa: BLE001 - kept for the next replay, reported, the run goes on
        summary.failed += 1
        out(f"failed {replay.describe()} (dead letter {message.message_id}): {type(exc).__name__}: {exc}")
        return False
    subscriber.acknowledge(subscription=subscription, ack_ids=[item.ack_id])
    replayed.add(key)
    summary.replayed += 1
    out(f"replayed {replay.describe()} message {new_id} (dead letter {message.message_id})")
    return True
