"""The local stack's push delivery: pull from the emulator, POST to the functions like Google.

    python -m local.stack.push_relay      # a stack service, started by ./local_emulator.sh up

Why: the Pub/Sub emulator's own push loop is not faithful. With a retry policy on the
subscription, once several messages fail in the same poll its expiry task dies and no
delayed message is ever redelivered or dead-lettered again (README, "The local stack";
local/stack/probe_push.py measures it). So the function subscriptions are pull
subscriptions in the emulator, with the dead-letter policy but no retry policy, and this
relay does what Google's push does:

- each message is POSTed to the route's endpoint with Google's push body, the request
  timing out after the subscription's ack deadline;
- HTTP 102, 200, 201, 203 or 204 acknowledges it;
- anything else, a connection error or a timeout is a failed attempt: the message stays
  leased for the attempt's backoff (minimum * 2^(attempt-1), capped at the maximum, as
  Google's retry policy), then is nacked, so the emulator redelivers it with
  delivery_attempt + 1, and after max_delivery_attempts forwards it to the dead-letter
  topic itself (its own count, the same field Google sends as deliveryAttempt).

The backoff waits happen on one timer thread, never in a worker, so a burst of failures
does not starve deliveries. Every delivery, failed delivery and dead-lettering is one JSON
line on stdout (.state/logs/relay.log). A stream that ends (the emulator restarted, so the
subscription is gone until `up` makes it again) is opened again after a pause.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local.stack.delayer import Delayer, json_log
from local.stack.push_protocol import ACK_STATUSES, ACKED, PUSH, Copies, Route, backoff_seconds, push_body
from shared.core.pubsub_clients import subscriber_client

RESUBSCRIBE_PAUSE_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 10.0


class PushRelay:
    """Delivers every route's messages until `stop()`; one streaming pull per route, each
    with its own worker pool, sharing one HTTP session and one timer thread."""

    def __init__(
        self, routes: list[Route], workers: int = 64, max_messages: int = 200, log: Callable[..., None] = json_log
    ) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self.routes = routes
        self.workers = workers
        self.max_messages = max_messages
        self.log = log
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=len(routes) or 1, pool_maxsize=workers)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._delayer = Delayer()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._futures: dict[str, Any] = {}
        self._local_attempts: dict[str, int] = {}  # only for subscriptions without delivery_attempt
        self._copies = Copies()  # a message handed out again while pushed or once acked: not pushed again
        self._supervisors: list[threading.Thread] = []
        self._subscriber: Any = None

    def start(self) -> PushRelay:
        # Receives messages up to Pub/Sub's 10 MB, as Google's push delivers them: the library's
        # emulator channel stops at 4 MB, and a larger message reset the stream each time it was
        # offered, which the emulator never noticed (README, "Large messages").
        self._subscriber = subscriber_client()
        for route in self.routes:
            thread = threading.Thread(
                target=self._supervise,
                args=(route,),
                daemon=True,
                name=f"relay-{route.subscription.rsplit('/', 1)[-1]}",
            )
            thread.start()
            self._supervisors.append(thread)
        return self

    def __enter__(self) -> PushRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the streams ---------------------------------------------------------------

    def _supervise(self, route: Route) -> None:
        """Keeps one streaming pull open for the route: a stream that fails (NotFound after an
        emulator restart, until `up` recreates the subscription) is reopened after a pause."""
        from google.cloud import pubsub_v1
        from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

        while not self._stopping.is_set():
            executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix=f"relay-{route.subscription.rsplit('/', 1)[-1]}"
            )
            future = self._subscriber.subscribe(
                route.subscription,
                callback=lambda message, route=route: self._deliver(route, message),
                flow_control=pubsub_v1.types.FlowControl(
                    max_messages=self.max_messages,
                    # held while queued for a worker, a full-length request and its backoff
                    max_lease_duration=max(3600.0, route.ack_deadline + route.max_backoff + 600),
                    # Each lease extension is the subscription's ack deadline, as Google gives a pushed
                    # message. The client's default (its 10-60 s ack-latency estimate) let a relay
                    # starved of CPU for under a minute lose every lease it held: the emulator
                    # redelivered them while their pushes ran, each copy pushed again, and the
                    # duplicates made more load (issue 21: chaos clean runs in a redelivery storm).
                    min_duration_per_lease_extension=int(route.ack_deadline),  # the client caps it at 600 s
                ),
                scheduler=ThreadScheduler(executor=executor),
                await_callbacks_on_shutdown=False,
            )
            with self._lock:
                self._futures[route.subscription] = future
            if self._stopping.is_set():  # stop() ran between the check and the registration
                future.cancel()
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 (any end of the stream: log, reopen)
                if not self._stopping.is_set():
                    self.log("stream_ended", subscription=route.subscription, error=repr(exc)[:300])
            finally:
                executor.shutdown(wait=False, cancel_futures=True)
            self._stopping.wait(RESUBSCRIBE_PAUSE_SECONDS)

    # ---- one delivery ----------------------------------------------------------------

    def _deliver(self, route: Route, message: Any) -> None:
        # The publish time too: a restarted emulator numbers its messages from 1 again.
        key = (route.subscription, message.message_id, str(message.publish_time))
        seen = self._copies.claim(key, message)
        if seen != PUSH:  # a copy of a message being pushed (answered with it) or acked: not pushed again
            if seen == ACKED:
                message.ack()
            self.log(f"copy_{seen}", subscription=route.subscription, message_id=message.message_id,
                     attempt=message.delivery_attempt)  # fmt: skip
            return
        try:
            self._push(route, message, key)
        except Exception:
            # Not left claimed: every later copy would join a push that no longer runs and never be
            # answered. The copies go back; the message's own lease lapses and it comes again.
            for handle in self._copies.release(key):
                handle.nack()
            raise

    def _push(self, route: Route, message: Any, key: tuple[str, str, str]) -> None:
        attempt = message.delivery_attempt or self._count_locally(message.message_id)
        status, error = self._post(route, push_body(message, route.subscription, message.delivery_attempt))
        # When it was published: a message older than the emulator's last start was pulled before
        # a restart and can no longer be nacked or redelivered (chaos/accounting.py reads it).
        published = message.publish_time.isoformat() if message.publish_time else None
        if status in ACK_STATUSES:
            for handle in (message, *self._copies.release(key, acked=True)):
                handle.ack()
            with self._lock:
                self._local_attempts.pop(message.message_id, None)
            self.log(
                "delivered",
                subscription=route.subscription,
                message_id=message.message_id,
                attempt=attempt,
                status=status,
                published_at=published,
            )
            return
        fields = {
            "subscription": route.subscription,
            "endpoint": route.endpoint,
            "message_id": message.message_id,
            "attempt": attempt,
            "status": status,
            "error": error,
            "published_at": published,
        }
        if route.max_delivery_attempts and attempt >= route.max_delivery_attempts:
            # The emulator forwards it to the dead-letter topic on this nack, as Google would.
            self.log("dead_lettered", **fields, max_delivery_attempts=route.max_delivery_attempts)
            self._nack(key, message)
            return
        delay = backoff_seconds(attempt, route.min_backoff, route.max_backoff)
        self.log("delivery_failed", **fields, retry_in_s=round(delay, 3))
        self._delayer.call_later(delay, lambda: self._nack(key, message))

    def _nack(self, key: tuple[str, str, str], message: Any) -> None:
        """The message and the copies that joined it, back to the emulator (the newest handle counts)."""
        for handle in (message, *self._copies.release(key)):
            handle.nack()

    def _post(self, route: Route, body: dict[str, Any]) -> tuple[int | None, str | None]:
        import requests

        try:
            response = self._session.post(
                route.endpoint,
                data=json.dumps(body).encode(),
                # A fresh connection per push: a pooled one races gunicorn closing it after its 2 s
                # keep-alive (seen as "Connection reset by peer", a failed delivery for nothing).
                headers={"Content-Type": "application/json", "User-Agent": "local-push-relay", "Connection": "close"},
                timeout=(min(CONNECT_TIMEOUT_SECONDS, route.ack_deadline), route.ack_deadline),
            )
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]
        if response.status_code in ACK_STATUSES:
            return response.status_code, None
        return response.status_code, response.text[:300] or None

    def _count_locally(self, message_id: str) -> int:
        with self._lock:
            self._local_attempts[message_id] = self._local_attempts.get(message_id, 0) + 1
            return self._local_attempts[message_id]

    # ---- shutdown ----------------------------------------------------------------------

    def stop(self, timeout: float = 15.0) -> None:
        """Nacks the messages waiting out a backoff (so they come back at once to the next
        relay), closes the streams, and joins every thread this relay started."""
        self._stopping.set()
        self._delayer.close(run_pending=True)
        with self._lock:
            futures = list(self._futures.values())
        for future in futures:
            future.cancel()
        deadline = time.monotonic() + timeout
        for thread in self._supervisors:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._subscriber is not None:
            self._subscriber.close()
        self._session.close()


def routes_from_resources() -> list[Route]:
    from local.stack import resources

    return [Route(**route) for route in resources.relay_routes()]


def main() -> None:
    routes = routes_from_resources()
    relay = PushRelay(routes)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    relay.start()
    json_log(
        "relay_started",
        routes=[
            {
                "subscription": r.subscription,
                "endpoint": r.endpoint,
                "backoff_s": [r.min_backoff, r.max_backoff],
                "ack_deadline_s": r.ack_deadline,
                "max_delivery_attempts": r.max_delivery_attempts,
            }
            for r in routes
        ],
    )
    stop.wait()
    relay.stop()
    json_log("relay_stopped")
    # A request still in flight (up to the ack deadline) must not hold the exit: its message
    # is not acked, so the emulator redelivers it once the lease runs out.
    os._exit(0)


if __name__ == "__main__":
    main()
