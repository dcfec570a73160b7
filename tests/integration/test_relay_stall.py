"""A relay starved of CPU keeps the messages it is pushing: no redelivery within the ack deadline.

Google gives a pushed message its subscription's ack deadline (600 s here, as in Terraform). The
relay's client used to extend its leases by its own 10-60 s estimate, so a relay process stalled
for under a minute (a loaded machine: chaos clean runs at load 10-15) lost every lease it held; the
emulator redelivered those messages while their pushes ran, each copy was pushed again, and the
duplicates made more load (a redelivery storm, 2026-12-06). The relay runs in its own process here,
so that it can be stopped (SIGSTOP) the way a starved process stands still.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from local.stack.throwaway import REPO
from tests.integration.test_push_relay import Endpoint, wait_for

RELAY = """
import sys, time
from local.stack.push_protocol import Route
from local.stack.push_relay import PushRelay
PushRelay([Route(sys.argv[1], sys.argv[2], ack_deadline=600.0, min_backoff=1.0, max_backoff=5.0)]).start()
time.sleep(3600)
"""
HOLD_SECONDS = 40.0  # the endpoint answers the first push this late: the stall falls inside it
STALL_SECONDS = 45.0  # longer than any lease the client's own estimate gives


def test_a_stalled_relay_does_not_push_a_message_again_while_its_push_runs(pubsub):
    endpoint = Endpoint(lambda key, n: (time.sleep(HOLD_SECONDS) if n == 1 else None) or 204)
    topic = pubsub.temporary_topic()
    subscription = pubsub.pull_subscription(topic, ack_deadline_seconds=600)
    command = [sys.executable, "-c", RELAY, subscription, endpoint.url]
    relay = subprocess.Popen(command, cwd=REPO, env=dict(os.environ), start_new_session=True)
    try:
        key = f"stall-{uuid.uuid4().hex[:8]}"
        pubsub.publisher.publish(pubsub.publisher.topic_path(os.environ["GCP_PROJECT"], topic), key.encode()).result(30)
        wait_for(lambda: key in endpoint.requests, 60, "the first push")
        os.killpg(relay.pid, signal.SIGSTOP)
        time.sleep(STALL_SECONDS)
        os.killpg(relay.pid, signal.SIGCONT)
        time.sleep(HOLD_SECONDS - STALL_SECONDS + 20)  # the first push answered, and time for a copy
        assert endpoint.attempts(key) == [None], f"pushed again after the stall: {endpoint.attempts(key)}"
    finally:
        os.killpg(relay.pid, signal.SIGCONT)
        os.killpg(relay.pid, signal.SIGKILL)
        relay.wait(10)
        endpoint.close()
    assert pubsub.drain(subscription) == [], "acked: nothing left on the subscription"
