"""The bad-input corpus: every way a message, a request or a GCS event can be wrong, as data.

Walked by test_bad_input_corpus.py against the running stack. Each case is one record: a name,
where it goes, what is sent, and the field the structured error must name (`field`), or, for the
few events that are routine traffic rather than bad input, why the loaders ignore it (`ignored`).

Targets:
- `ingest`, `backfill`: a Pub/Sub message published to the topic (body and/or attributes), pushed
  by the relay; the answer is a dead letter naming `field`, acked on the first delivery.
- `status`, `backfill_http`: an HTTP request (`body` POSTed, or `params` in a GET); the answer is
  a 400 whose JSON names `field`.
- Events, to both loaders: `finalize` (an Eventarc CloudEvent POSTed, `resource` the object),
  `notification` (a GCS Pub/Sub notification POSTed as functions-framework receives it:
  `payload` bytes and `attributes`), `raw` (a CloudEvent with any `data`), or `write` (a real
  object written to the lake, so fake-gcs-server's finalize notification reaches the loaders
  through the relay; one outside trips/ must reach neither, `not_notified`, as the deployed
  notification covers trips/ only). None of them may change a row or a trips/ object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

FUTURE = "9999-12-31"
REAL = "2021-01-20"  # the date the test loads first, so that a bad input has something to damage


@dataclass(frozen=True)
class Message:
    """A Pub/Sub message (target `ingest`/`backfill`) or an HTTP request (`status`/`backfill_http`)."""

    name: str
    target: str
    field: str
    body: bytes | None = None  # None: no body (attributes only, or GET params)
    attributes: dict[str, str] = dataclass_field(default_factory=dict)
    params: dict[str, str] | None = None  # HTTP GET query


@dataclass(frozen=True)
class Event:
    """A GCS event for both loaders; exactly one of `field` (dead letter) and `ignored` is set."""

    name: str
    kind: str  # finalize | notification | raw | write
    field: str | None = None
    ignored: str | None = None
    resource: dict[str, Any] | None = None  # finalize
    payload: bytes = b""  # notification
    attributes: dict[str, str] = dataclass_field(default_factory=dict)  # notification
    data: Any = None  # raw
    event_type: str = "google.cloud.storage.object.v1.finalized"  # raw
    object_name: str = ""  # write
    content: bytes = b""  # write


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def _ingest(
    name: str, field: str, body: Any = None, attributes: dict[str, str] | None = None, raw: bytes | None = None
) -> Message:
    data = raw if raw is not None else (None if body is None else js(body))
    return Message(name, "ingest", field, data, attributes or {})


def _backfill_cases(target: str) -> list[Message]:
    """The same bad backfill requests, for the topic and for backfill_http (one contract)."""
    ok = {"start": "2021-01-01", "end": "2021-01-02"}
    bodies: list[tuple[str, str, bytes]] = [
        ("not json", "body" if target == "backfill_http" else "data", b"{start: 2021-01-01"),
        ("json null", "body" if target == "backfill_http" else "data", b"null"),
        ("json array", "body" if target == "backfill_http" else "data", js([ok])),
        ("json string", "body" if target == "backfill_http" else "data", js("2021-01-01..2021-01-02")),
        ("no start", "start", js({"end": "2021-01-02"})),
        ("reversed range", "start", js({"start": "2021-01-31", "end": "2021-01-01"})),
        ("range over BACKFILL_MAX_DATES", "end", js({"start": "2009-01-01", "end": "2021-12-31"})),
        ("impossible start 2021-02-30", "start", js({**ok, "start": "2021-02-30"})),
        ("end 9999-12-31", "end", js({**ok, "end": FUTURE})),
        ("ISO week date", "start", js({**ok, "start": "2021-W01-5"})),
        ("start as a number", "start", js({**ok, "start": 20210101})),
        ("unknown service in services", "services", js({**ok, "services": ["yellow", "purple"]})),
        ("services an object", "services", js({**ok, "services": {"yellow": True}})),
        ("service and services", "services", js({**ok, "service": "yellow", "services": ["green"]})),
        ("green before it existed", "start", js({"start": "2013-01-01", "end": "2013-12-31", "services": ["green"]})),
        ("last_days with start", "start", js({"last_days": 3, "start": "2021-01-01"})),
        ("last_days 0", "last_days", js({"last_days": 0})),
        ("last_days a string", "last_days", js({"last_days": "7"})),
        ("last_days true", "last_days", js({"last_days": True})),
        ("dry_run a string", "dry_run", js({**ok, "dry_run": "maybe"})),
        ("repair and only_missing", "repair", js({**ok, "repair": True, "only_missing": True})),
        ("a url key", "url", js({**ok, "url": "http://169.254.169.254/computeMetadata/v1/"})),
        ("nested object in a date", "end", js({**ok, "end": {"date": "2021-01-02"}})),
    ]
    cases = [Message(f"{target}: {label}", target, field, body) for label, field, body in bodies]
    if target == "backfill":
        cases += [
            Message("backfill: attributes only, unknown key", target, "begin", None, {"begin": "2021-01-01"}),
            Message("backfill: attribute beside a body", target, "attributes.end", js(ok), {"end": "2021-01-31"}),
            Message("backfill: whitespace body", target, "data", b" \n\t "),
            Message("backfill: ~1 MB of services", target, "message.data", js({**ok, "services": ["x" * 1_000_000]})),
        ]
    else:
        cases += [
            Message("backfill_http: body and query parameters", target, "body", js(ok)),  # params added below
            Message(
                "backfill_http: GET with an unknown parameter",
                target,
                "url",
                None,
                params={"start": "2021-01-01", "end": "2021-01-02", "url": "file:///etc/passwd"},
            ),
            Message("backfill_http: ~1 MB body", target, "body", b"[" + b" " * 1_000_000 + b"]"),
        ]
    return cases


INGEST: list[Message] = [
    _ingest("ingest: not json", "data", raw=b"{date: 2021-01-15}"),
    _ingest("ingest: truncated json", "data", raw=b'{"date": "2021-01-15"'),
    _ingest("ingest: json null", "data", raw=b"null"),
    _ingest("ingest: json array", "data", [{"date": "2021-01-15"}]),
    _ingest("ingest: json true", "data", raw=b"true"),
    _ingest("ingest: json number", "data", raw=b"20210115"),
    _ingest("ingest: json string", "data", "2021-01-15"),
    _ingest("ingest: whitespace body", "data", raw=b"   \n"),
    _ingest("ingest: not UTF-8", "data", raw=b'{"date": "2021-01-\xff5"}'),
    _ingest("ingest: deeply nested arrays", "data", raw=b"[" * 20_000 + b"]" * 20_000),
    _ingest("ingest: deeply nested objects", "data", raw=b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    _ingest("ingest: a 5,000-digit number", "data", raw=b'{"date": 1' + b"0" * 5000 + b"}"),
    _ingest("ingest: duplicate date key", "date", raw=b'{"date": "2021-01-15", "date": "2021-01-16"}'),
    _ingest("ingest: impossible date 2021-02-30", "date", {"date": "2021-02-30"}),
    _ingest("ingest: month 13", "date", {"date": "2021-13-01"}),
    _ingest("ingest: year 0000", "date", {"date": "0000-01-01"}),
    _ingest("ingest: 9999-12-31", "date", {"date": FUTURE}),
    _ingest("ingest: before yellow existed", "date", {"date": "2008-12-31"}),
    _ingest("ingest: before fhv existed", "date", {"date": "2014-12-31", "service": "fhv"}),
    _ingest("ingest: ISO week date", "date", {"date": "2021-W45-5"}),
    _ingest("ingest: basic format 20210115", "date", {"date": "20210115"}),
    _ingest("ingest: date with a time", "date", {"date": "2021-01-15T00:00:00"}),
    _ingest("ingest: date as a number", "date", {"date": 20210115}),
    _ingest("ingest: date as a float", "date", {"date": 2021.0115}),
    _ingest("ingest: date null", "date", {"date": None}),
    _ingest("ingest: date true", "date", {"date": True}),
    _ingest("ingest: date a list", "date", {"date": ["2021-01-15"]}),
    _ingest("ingest: date a nested object", "date", {"date": {"year": 2021, "month": 1, "day": 15}}),
    _ingest("ingest: full-width digits", "date", {"date": "２０２１-０１-１５"}),
    _ingest("ingest: emoji date", "date", {"date": "2021-01-15\U0001f695"}),
    _ingest("ingest: huge date string", "date", {"date": "2" * 60_000}),
    _ingest("ingest: ~1 MB body", "message.data", {"date": "9" * 1_000_000}),
    _ingest("ingest: unknown service", "service", {"date": "2021-01-15", "service": "purple"}),
    _ingest("ingest: service in capitals", "service", {"date": "2021-01-15", "service": "YELLOW"}),
    _ingest("ingest: service a number", "service", {"date": "2021-01-15", "service": 1}),
    _ingest("ingest: force a string", "force", {"date": "2021-01-15", "force": "yes"}),
    _ingest("ingest: force a number", "force", {"date": "2021-01-15", "force": 1}),
    _ingest("ingest: a url key", "url", {"date": "2021-01-15", "url": "http://evil.example/x.parquet"}),
    _ingest("ingest: unknown key", "dates", {"dates": ["2021-01-15"]}),
    _ingest("ingest: unicode key", "dáte", {"dáte": "2021-01-15"}),
    _ingest("ingest: empty object key", "", {"": "2021-01-15"}),
    _ingest("ingest: attributes only, bad date", "date", attributes={"date": "2021-02-30"}),
    _ingest("ingest: attributes only, url", "url", attributes={"url": "http://evil.example/x.parquet"}),
    _ingest("ingest: attributes only, bad force", "force", attributes={"date": "2021-01-15", "force": "1"}),
    _ingest("ingest: date attribute beside a body", "attributes.date", {"date": "2021-01-15"}, {"date": "2021-01-16"}),
    _ingest(
        "ingest: url attribute beside a body", "attributes.url", {"date": "2021-01-15"}, {"url": "http://evil.example/"}
    ),
]

STATUS: list[Message] = [
    Message("status: GET without start", "status", "start", params={"end": "2021-01-02"}),
    Message("status: GET impossible date", "status", "end", params={"start": "2021-02-01", "end": "2021-02-30"}),
    Message("status: GET 0000-01-01", "status", "start", params={"start": "0000-01-01", "end": "2021-01-02"}),
    Message("status: GET 9999-12-31", "status", "end", params={"start": "2021-01-01", "end": FUTURE}),
    Message(
        "status: GET before yellow existed", "status", "start", params={"start": "2008-01-01", "end": "2009-01-02"}
    ),
    Message("status: GET ISO week date", "status", "start", params={"start": "2021-W45-5", "end": "2021-12-01"}),
    Message("status: GET reversed", "status", "start", params={"start": "2021-02-01", "end": "2021-01-01"}),
    Message("status: GET too long", "status", "end", params={"start": "2009-01-01", "end": "2021-01-01"}),
    Message(
        "status: GET unknown format",
        "status",
        "format",
        params={"start": "2021-01-01", "end": "2021-01-02", "format": "xml"},
    ),
    Message(
        "status: GET unknown service",
        "status",
        "service",
        params={"service": "purple", "start": "2021-01-01", "end": "2021-01-02"},
    ),
    Message(
        "status: GET unknown key",
        "status",
        "url",
        params={"start": "2021-01-01", "end": "2021-01-02", "url": "http://x/"},
    ),
    Message("status: GET huge value", "status", "start", params={"start": "9" * 3_000, "end": "2021-01-02"}),
    Message("status: POST not json", "status", "body", b"start=2021-01-01&end=2021-01-02"),
    Message("status: POST json array", "status", "body", js(["2021-01-01", "2021-01-02"])),
    Message("status: POST nested date", "status", "start", js({"start": {"d": "2021-01-01"}, "end": "2021-01-02"})),
    Message("status: POST date as a number", "status", "end", js({"start": "2021-01-01", "end": 20210102})),
    Message("status: POST deeply nested", "status", "body", b"[" * 50_000 + b"]" * 50_000),
    Message(
        "status: POST unicode service",
        "status",
        "service",
        js({"service": "yellów", "start": "2021-01-01", "end": "2021-01-02"}),
    ),
]

MESSAGES: list[Message] = INGEST + _backfill_cases("backfill") + STATUS + _backfill_cases("backfill_http")

# Query parameters sent beside a body (`request_fields` refuses both at once).
BODY_AND_PARAMS = {"backfill_http: body and query parameters": {"dry_run": "true"}}

BAD_NAMES = {
    "month 13": "trips/yellow/pickup_date=2021-13-01/data.parquet",
    "unknown service": "trips/purple/pickup_date=2021-01-15/data.parquet",
    "another file name": "trips/yellow/pickup_date=2021-01-15/other.parquet",
}
GARBAGE_PARTITION = "trips/yellow/pickup_date=2011-03-07/data.parquet"  # a date no other test uses
ABSENT_PARTITION = "trips/yellow/pickup_date=2011-03-08/data.parquet"


def _resource(name: str = f"trips/yellow/pickup_date={REAL}/data.parquet", **change: Any) -> dict[str, Any]:
    """An object resource (JSON API, numbers as strings) with `change` applied; None removes a key.
    The bucket is filled in by the test (`{lake}`)."""
    resource = {
        "bucket": "{lake}",
        "name": name,
        "generation": "1700000000000001",
        "metageneration": "1",
        "size": "1234",
        "contentType": "application/vnd.apache.parquet",
        "metadata": {},
    }
    resource.update(change)
    return {k: v for k, v in resource.items() if v is not None}


NOTIFY = {
    "eventType": "OBJECT_FINALIZE",
    "payloadFormat": "JSON_API_V1",
    "bucketId": "{lake}",
    "objectId": f"trips/yellow/pickup_date={REAL}/data.parquet",
    "objectGeneration": "1700000000000001",
}

EVENTS: list[Event] = [
    Event(
        "write: garbage bytes as a partition",
        "write",
        "object",
        object_name=GARBAGE_PARTITION,
        content=b"PAR1 this is not parquet " * 40,
    ),
    Event(
        "write: partition named another file",
        "write",
        "name",
        object_name=BAD_NAMES["another file name"],
        content=b"PAR1",
    ),
    Event(  # the lake's notification covers trips/ only (infra/terraform/pubsub.tf; the stack's too)
        "write: an object outside trips/",
        "write",
        ignored="not_notified",
        object_name="corpus/notes-{run}.txt",
        content=b"not a partition",
    ),
    Event(  # such an event, were one sent anyway (replayed, hand-made), is routine traffic
        "finalize: an object outside trips/",
        "finalize",
        ignored="not_trips",
        resource=_resource("runs/yellow/pickup_date=2021-01-15/ingest/corpus.json"),
    ),
    Event("finalize: month 13", "finalize", "name", resource=_resource(BAD_NAMES["month 13"])),
    Event("finalize: unknown service", "finalize", "name", resource=_resource(BAD_NAMES["unknown service"])),
    Event("finalize: object that does not exist", "finalize", "name", resource=_resource(ABSENT_PARTITION)),
    Event("finalize: no generation", "finalize", "data.generation", resource=_resource(generation=None)),
    Event("finalize: generation not a number", "finalize", "data.generation", resource=_resource(generation="latest")),
    Event("finalize: generation a float", "finalize", "data.generation", resource=_resource(generation=1.5)),
    Event("finalize: generation negative", "finalize", "data.generation", resource=_resource(generation="-1")),
    Event("finalize: no name", "finalize", "data.name", resource=_resource(name=None)),
    Event("finalize: no bucket", "finalize", "data.bucket", resource=_resource(bucket=None)),
    Event("finalize: bucket a list", "finalize", "data.bucket", resource=_resource(bucket=["{lake}"])),
    Event("finalize: metadata a list", "finalize", "data.metadata", resource=_resource(metadata=["rows_written"])),
    Event(
        "finalize: another bucket",
        "finalize",
        ignored="other_bucket",
        resource=_resource(bucket="someone-elses-bucket"),
    ),
    Event("raw: finalize whose data is a string", "raw", "data", data="trips/yellow/pickup_date=2021-01-20"),
    Event(
        "raw: messagePublished without a message",
        "raw",
        "data.message",
        data={"subscription": "x"},
        event_type="google.cloud.pubsub.topic.v1.messagePublished",
    ),
    Event(
        "notification: payload not json", "notification", "message.data", payload=b"{name: trips/", attributes=NOTIFY
    ),
    Event("notification: payload a json array", "notification", "message.data", payload=js([1, 2]), attributes=NOTIFY),
    Event(
        "notification: payload deeply nested",
        "notification",
        "message.data",
        payload=b"[" * 50_000 + b"]" * 50_000,
        attributes=NOTIFY,
    ),
    Event(
        "notification: no generation anywhere",
        "notification",
        "data.generation",
        payload=js(_resource(generation=None)),
        attributes={k: v for k, v in NOTIFY.items() if k != "objectGeneration"},
    ),
    Event(
        "notification: other event type",
        "notification",
        ignored="not_finalize",
        payload=js(_resource()),
        attributes={**NOTIFY, "eventType": "OBJECT_DELETE"},
    ),
]
