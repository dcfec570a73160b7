"""A Pub/Sub subscriber that receives messages up to Pub/Sub's 10 MB limit, also from the emulator.

Why: google-cloud-pubsub's default gRPC channel sets `grpc.max_receive_message_length` to -1
(unlimited), so in Google Cloud a pull or streaming pull receives any message Pub/Sub holds
(up to 10 MB). With PUBSUB_EMULATOR_HOST set, the library (2.44.0) builds its channel with a bare
`grpc.insecure_channel(target=emulator_host)` instead, and gRPC's default receive limit of
4194304 bytes applies: a 6 MB message makes every pull fail with `ResourceExhausted: 429
Received message larger than max (6000351 vs. 4194304)`, and a streaming pull reset its stream
each time the message is offered. The emulator itself accepts publishes up to 11,000,000 bytes
and sends what it holds (README, "The local stack"), so the limit was only ever this client's.

Against the emulator this builds the channel with the same options as the library's default
channel; in Google Cloud it changes nothing.
"""

from __future__ import annotations

import os
from typing import Any

# The options google.pubsub_v1's transports give their default channel (no size limit either way).
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
)


def subscriber_client(**kwargs: Any) -> Any:
    """A `pubsub_v1.SubscriberClient` that receives messages of any size Pub/Sub (or its emulator) holds."""
    from google.cloud import pubsub_v1

    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if host and "transport" not in kwargs:
        import grpc
        from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

        channel = grpc.insecure_channel(host, options=list(CHANNEL_OPTIONS))
        kwargs["transport"] = SubscriberGrpcTransport(channel=channel)
    return pubsub_v1.SubscriberClient(**kwargs)
