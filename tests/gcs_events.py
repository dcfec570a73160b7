"""CloudEvents built the way the platform builds them, and a real trips/ partition.

- `message_published_event`: a Pub/Sub message (a JSON body) pushed to a function, as
  functions-framework converts it; what Cloud Scheduler, a backfill or `gcloud` sends.

- `gcs_finalized_event`: Eventarc's direct trigger, `google.cloud.storage.object.v1.finalized`,
  data = the JSON API object resource.
- `pubsub_notification_event`: a GCS Pub/Sub notification (payload JSON_API_V1) pushed to a
  function and converted by functions-framework to `google.cloud.pubsub.topic.v1.messagePublished`.
Used by the tests and by the benchmark (bench/).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import uuid

import pyarrow as pa
from cloudevents.http import CloudEvent


def _resource(bucket: str, name: str, generation: int, size: int = 1234) -> dict:
    """The JSON API object resource, as both envelopes carry it (numbers as strings)."""
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    return {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "name": name,
        "bucket": bucket,
        "generation": str(generation),
        "metageneration": "1",
        "contentType": "application/vnd.apache.parquet",
        "timeCreated": now,
        "updated": now,
        "storageClass": "STANDARD",
        "size": str(size),
        "md5Hash": "bWQ1",
        "crc32c": "AAAAAA==",
        "etag": "CJ2x",
        "metadata": {"service": "yellow"},
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}/o/{name.replace('/', '%2F')}",
        "mediaLink": f"https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/x?generation={generation}",
    }


def gcs_finalized_event(bucket: str, name: str, generation: int, size: int = 1234) -> CloudEvent:
    """Eventarc direct trigger: type google.cloud.storage.object.v1.finalized, data = object resource."""
    return CloudEvent(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4().int)[:16],
            "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
            "type": "google.cloud.storage.object.v1.finalized",
            "subject": f"objects/{name}",
            "time": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
        },
        _resource(bucket, name, generation, size),
    )


def pubsub_notification_event(
    bucket: str,
    name: str,
    generation: int,
    event_type: str = "OBJECT_FINALIZE",
    project: str = "local-taxi",
    topic: str = "taxi-lake-events",
    subscription: str = "taxi-lake-postgres-push",
    size: int = 1234,
) -> CloudEvent:
    """A GCS Pub/Sub notification (JSON_API_V1) pushed and converted to a messagePublished CloudEvent."""
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    message_id = str(uuid.uuid4().int)[:16]
    message = {
        "attributes": {
            "notificationConfig": f"projects/_/buckets/{bucket}/notificationConfigs/1",
            "eventType": event_type,
            "payloadFormat": "JSON_API_V1",
            "bucketId": bucket,
            "objectId": name,
            "objectGeneration": str(generation),
            "eventTime": now,
        },
        "data": base64.b64encode(json.dumps(_resource(bucket, name, generation, size)).encode()).decode(),
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": now,
        "publish_time": now,
    }
    return CloudEvent(
        {
            "specversion": "1.0",
            "id": message_id,
            "source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "time": now,
            "datacontenttype": "application/json",
        },
        {"message": message, "subscription": f"projects/{project}/subscriptions/{subscription}"},
    )


def message_published_event(body: dict, publish_time: str | None = None) -> CloudEvent:
    """A JSON message published to a topic and pushed to a function (messagePublished)."""
    publish_time = publish_time or dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    message = {
        "data": base64.b64encode(json.dumps(body).encode()).decode(),
        "attributes": {},
        "messageId": "1",
        "publishTime": publish_time,
    }
    return CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub.googleapis.com/", "id": "1"},
        {"message": message},
    )


def real_day_partition(sample_csv, day: dt.date = dt.date(2021, 1, 1)) -> pa.Table:
    """The real sample through the ingest's own split and extraction: a genuine trips/ partition."""
    from shared.ingest.cleaning import Rules
    from shared.ingest.lake import split_month

    with open(sample_csv, "rb") as handle:
        split = split_month(handle, "csv", "yellow", day.year, day.month, Rules())
    trips, _ = split.tables(day)
    return trips


def deliver_concurrently(deliver, blob, envelopes, invocations: int, timeout: float) -> list[BaseException]:
    """The same finalize event delivered by `invocations` threads at once (alternating envelopes),
    released together by a barrier so the loads really overlap; returns what they raised."""
    barrier = threading.Barrier(invocations)
    errors: list[BaseException] = []

    def invoke(index: int) -> None:
        try:
            barrier.wait()
            deliver(blob, envelopes[index % len(envelopes)])
        except BaseException as exc:  # surfaced to the test
            errors.append(exc)

    threads = [threading.Thread(target=invoke, args=(i,)) for i in range(invocations)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return errors
