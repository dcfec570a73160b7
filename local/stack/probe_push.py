"""Measure what the Pub/Sub emulator does with push deliveries that fail.

    eval "$(./local_emulator.sh env)"; .venv/bin/python -m local.stack.probe_push [--window 45]

Why this exists: the local stack once relied on the emulator's own push loop, and a failing
function then looked retried for a few seconds and afterwards silently never again (no
redelivery, no dead letter). This script reproduces that against the running emulator,
with its own temporary topics and subscriptions and its own HTTP endpoint that answers 500,
so the README's figures can be re-measured on any emulator version.

For each scenario (retry policy or none, N messages failing at once) it prints, per
message, how many pushes arrived, the seconds between them, the deliveryAttempt values the
emulator sent, and whether the message reached the dead-letter subscription.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

MAX_DELIVERY_ATTEMPTS = 5


class Server(ThreadingHTTPServer):
    request_queue_size = 512  # many pushes at once: the default backlog of 5 would refuse some


class FailingEndpoint:
    """An HTTP server that records every push and answers 500 to all of them."""

    def __init__(self) -> None:
        self.pushes: dict[str, list[tuple[float, int | None]]] = defaultdict(list)
        self.first_body: dict | None = None
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                key = base64.b64decode(body.get("message", {}).get("data", "")).decode()
                with endpoint.lock:
                    endpoint.first_body = endpoint.first_body or body
                    endpoint.pushes[key].append((time.monotonic(), body.get("deliveryAttempt")))
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run_scenario(project: str, retry: tuple[int, int] | None, count: int, window: float) -> dict:
    from google.api_core.exceptions import DeadlineExceeded
    from google.cloud import pubsub_v1
    from google.protobuf import duration_pb2

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    tag = uuid.uuid4().hex[:8]
    topic, dead_topic = (publisher.topic_path(project, f"probe-{tag}{suffix}") for suffix in ("", "-dl"))
    push, dead_sub = (subscriber.subscription_path(project, f"probe-{tag}{suffix}") for suffix in ("-push", "-dl"))
    endpoint = FailingEndpoint()
    publisher.create_topic(name=topic)
    publisher.create_topic(name=dead_topic)
    subscriber.create_subscription(name=dead_sub, topic=dead_topic)
    request = {
        "name": push,
        "topic": topic,
        "ack_deadline_seconds": 10,
        "push_config": {"push_endpoint": endpoint.url},
        "dead_letter_policy": {"dead_letter_topic": dead_topic, "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS},
    }
    if retry:
        request["retry_policy"] = {
            "minimum_backoff": duration_pb2.Duration(seconds=retry[0]),
            "maximum_backoff": duration_pb2.Duration(seconds=retry[1]),
        }
    subscriber.create_subscription(request=request)
    keys = [f"{tag}-{i}" for i in range(count)]
    started = time.monotonic()
    for future in [publisher.publish(topic, key.encode()) for key in keys]:
        future.result(timeout=30)
    time.sleep(window)
    dead: set[str] = set()
    while True:
        try:
            response = subscriber.pull(subscription=dead_sub, max_messages=100, timeout=3)
        except DeadlineExceeded:
            break
        if not response.received_messages:
            break
        subscriber.acknowledge(subscription=dead_sub, ack_ids=[m.ack_id for m in response.received_messages])
        dead |= {m.message.data.decode() for m in response.received_messages}
    endpoint.server.shutdown()
    for name in (push, dead_sub):
        subscriber.delete_subscription(subscription=name)
    for name in (topic, dead_topic):
        publisher.delete_topic(topic=name)
    subscriber.close()
    messages = []
    for key in keys:
        times = [t for t, _ in endpoint.pushes[key]]
        messages.append(
            {
                "pushes": len(times),
                "first_after_s": round(times[0] - started, 1) if times else None,
                "last_after_s": round(times[-1] - started, 1) if times else None,
                "intervals_s": [round(b - a, 1) for a, b in pairwise(times)],
                "attempts": [a for _, a in endpoint.pushes[key]],
                "dead_lettered": key in dead,
            }
        )
    return {
        "retry_policy": f"{retry[0]}s..{retry[1]}s" if retry else None,
        "messages_failing": count,
        "window_s": window,
        "first_push_body": endpoint.first_body,
        "per_message": messages,
    }


def summarize(result: dict) -> str:
    per = result["per_message"]
    pushes = [m["pushes"] for m in per]
    dead = sum(m["dead_lettered"] for m in per)
    lines = [
        f"retry_policy={result['retry_policy']} failing_at_once={result['messages_failing']} "
        f"window={result['window_s']}s: pushes per message min {min(pushes)} max {max(pushes)}, "
        f"dead-lettered {dead}/{len(per)}, stuck (not dead-lettered) {len(per) - dead}"
    ]
    for index, message in enumerate(per[:3]):
        lines.append(f"  message {index}: {message}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=45.0, help="seconds to watch each scenario")
    parser.add_argument("--counts", default="1,5", help="messages failing at once, comma-separated")
    parser.add_argument("--json", action="store_true", help="print the full results as JSON")
    args = parser.parse_args()
    if not os.environ.get("PUBSUB_EMULATOR_HOST"):
        raise SystemExit('PUBSUB_EMULATOR_HOST is not set: eval "$(./local_emulator.sh env)" first')
    project = os.environ.get("GCP_PROJECT", "local-taxi")
    scenarios = [(retry, int(n)) for retry in (None, (1, 10)) for n in args.counts.split(",")]
    results: list[dict[str, Any]] = [{} for _ in scenarios]

    def run(index: int) -> None:
        results[index] = run_scenario(project, scenarios[index][0], scenarios[index][1], args.window)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(scenarios))]
    for thread in threads:  # at once: each scenario has its own topic, subscription and endpoint
        thread.start()
    for thread in threads:
        thread.join()
    if args.json:
        print(json.dumps(results, indent=1))
    print(f"the emulator's push body (first push): {json.dumps(results[0]['first_push_body'])}")
    for result in results:
        print(summarize(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
