"""The ingest and backfill message contracts: every kind of valid and invalid input."""

import base64
import datetime as dt
import json

import pytest
from cloudevents.http import CloudEvent

from shared.core.errors import ValidationError
from shared.core.events import PubsubMessage, pubsub_message
from shared.core.messages import MAX_MESSAGE_BYTES, expand, message_fields, parse_backfill, parse_ingest

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def message(body=None, attributes=None, publish_time=NOW):
    data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    return PubsubMessage(data, attributes or {}, "1", publish_time)


def test_valid_body():
    request = parse_ingest(message({"date": "2021-01-15", "service": "green", "force": True}), 1, NOW)
    assert (request.service, request.date, request.force, request.date_from) == (
        "green",
        dt.date(2021, 1, 15),
        True,
        "message",
    )


def test_service_defaults_to_yellow_and_attributes_work():
    request = parse_ingest(message(attributes={"date": "2021-01-15", "force": "false"}), 1, NOW)
    assert (request.service, request.date, request.force) == ("yellow", dt.date(2021, 1, 15), False)


def test_missing_date_is_publish_date_in_new_york_minus_lag():
    # 03:00 UTC on the 10th is still the 9th in New York.
    published = dt.datetime(2021, 3, 10, 3, 0, tzinfo=dt.UTC)
    request = parse_ingest(message({"service": "yellow"}, publish_time=published), 2, NOW)
    assert request.date == dt.date(2021, 3, 7)
    assert request.date_from == "publish_time"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"date": "2021-02-30"}, "date"),
        ({"date": "2021-1-5"}, "date"),
        ({"date": 20210115}, "date"),
        ({"date": "2008-12-31"}, "date"),
        ({"date": "2013-07-31", "service": "green"}, "date"),
        ({"date": "2026-11-26"}, "date"),
        ({"date": "2021-01-15", "service": "blue"}, "service"),
        ({"date": "2021-01-15", "force": "yes"}, "force"),
        ({"date": "2021-01-15", "url": "http://169.254.169.254/"}, "url"),
        ({"date": "2021-W45-5"}, "date"),  # an ISO week date: Python 3.11's fromisoformat takes it
        ({"date": "20211112"}, "date"),  # the basic format, likewise
        ({"date": "2021-11-12T00:00"}, "date"),
    ],
)
def test_invalid_fields_are_named(body, field):
    with pytest.raises(ValidationError) as err:
        parse_ingest(message(body), 1, NOW)
    assert err.value.field == field
    assert err.value.as_dict()["value"] == body.get(field)


def test_deeply_nested_json_is_bad_input_not_a_crash():
    """json raises RecursionError (not JSONDecodeError) for it; unhandled, it was classed transient."""
    with pytest.raises(ValidationError) as err:
        parse_ingest(message(b"[" * 20_000 + b"]" * 20_000), 1, NOW)  # under MAX_MESSAGE_BYTES
    assert err.value.field == "data" and "nested too deeply" in err.value.message


def test_attributes_beside_a_body_are_refused_not_ignored():
    with pytest.raises(ValidationError) as err:
        parse_ingest(message({"date": "2021-01-15"}, attributes={"url": "http://169.254.169.254/"}), 1, NOW)
    assert err.value.field == "attributes.url" and err.value.value == "http://169.254.169.254/"
    # Google's reserved attributes (goog*) may travel with any message.
    request = parse_ingest(message({"date": "2021-01-15"}, attributes={"googclient_schemaencoding": "JSON"}), 1, NOW)
    assert request.date == dt.date(2021, 1, 15)


def test_a_huge_value_is_bounded_in_the_structured_error():
    """A 6 MB date string once made the dead letter itself exceed Pub/Sub's 10 MB limit."""
    with pytest.raises(ValidationError) as err:
        parse_ingest(message({"date": "9" * 60_000}), 1, NOW)
    shown = err.value.as_dict()
    assert shown["field"] == "date" and len(shown["value"]) < 400
    assert shown["value"].endswith("(60000 characters)")
    assert len(json.dumps(shown)) < 3_000


@pytest.mark.parametrize("parse", [lambda m: parse_ingest(m, 1, NOW), message_fields])
def test_a_message_over_the_limit_is_refused_for_its_size_before_parsing(parse):
    """A 6 MB message (Google's push delivers up to 10 MB) is refused whole, naming its size, even
    one that pads a valid request with whitespace; one byte less than the limit is parsed."""
    body = b'{"date": "2021-01-15"}'
    with pytest.raises(ValidationError) as err:
        parse(message(body + b" " * (6_000_000 - len(body))))
    shown = err.value.as_dict()
    assert (shown["reason"], shown["field"], shown["value"]) == ("message_too_large", "message.data", "6000000 bytes")
    assert str(MAX_MESSAGE_BYTES) in shown["message"]
    assert parse(message(body + b" " * (MAX_MESSAGE_BYTES - len(body))))  # at the limit: accepted


def test_malformed_json_and_non_object():
    with pytest.raises(ValidationError) as err:
        parse_ingest(message(b"{not json"), 1, NOW)
    assert err.value.field == "data" and "{not json" in err.value.value
    with pytest.raises(ValidationError):
        parse_ingest(message(b"[1, 2]"), 1, NOW)


@pytest.mark.parametrize(
    "data, field",
    [
        (b'{"date": 1' + b"0" * 5000 + b"}", "data"),  # int() refuses > 4,300 digits: a ValueError, was a crash
        (b'{"date": "\xff"}', "data"),  # not UTF-8
        (b"   ", "data"),  # blank: used to read as {} = a valid request for yesterday
        (b"\n", "data"),
        (b'{"date": "2021-01-15", "date": "2021-01-16"}', "date"),  # json keeps the last key silently
        (b'{"service": "green", "force": true, "force": false}', "force"),
    ],
)
def test_hostile_bodies_are_bad_input_naming_the_field(data, field):
    """Found by the bad-input corpus (tests/integration/bad_inputs.py)."""
    with pytest.raises(ValidationError) as err:
        parse_ingest(message(data), 1, NOW)
    assert err.value.field == field


def test_pubsub_message_from_cloud_event_like_functions_framework_builds_it():
    body = base64.b64encode(b'{"date": "2021-01-15"}').decode()
    event = CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub.googleapis.com/", "id": "7"},
        {
            "message": {
                "data": body,
                "attributes": {},
                "messageId": "7",
                "publishTime": "2021-01-16T05:00:00.123456789Z",
            }
        },
    )
    parsed = pubsub_message(event)
    assert parsed.data == b'{"date": "2021-01-15"}'
    assert parsed.publish_time == dt.datetime(2021, 1, 16, 5, 0, 0, 123456, tzinfo=dt.UTC)


def test_backfill_range_is_inclusive_across_year_and_leap_day():
    request = parse_backfill({"start": "2019-12-30", "end": "2020-03-01", "services": ["yellow", "green"]}, 3660, NOW)
    plan = expand(request)
    days = sorted({r.date for r in plan})
    assert days[0] == dt.date(2019, 12, 30) and days[-1] == dt.date(2020, 3, 1)
    assert dt.date(2020, 2, 29) in days
    assert len(days) == 2 + 31 + 29 + 1
    assert len(plan) == 2 * len(days)


def test_backfill_eight_days_like_the_tutorial():
    assert len(expand(parse_backfill({"start": "2021-01-01", "end": "2021-01-08"}, 3660, NOW))) == 8


@pytest.mark.parametrize(
    "body, field",
    [
        ({"start": "2021-01-09", "end": "2021-01-08"}, "start"),
        ({"start": "2021-01-01"}, "end"),
        ({"start": "2021-01-01", "end": "2031-01-01"}, "end"),
        ({"start": "2010-01-01", "end": "2021-01-01"}, "end"),  # more than the maximum
        ({"start": "2021-01-01", "end": "2021-01-02", "service": "yellow", "services": ["green"]}, "services"),
        ({"start": "2021-01-01", "end": "2021-01-02", "services": []}, "services"),
        ({"start": "2021-01-01", "end": "2021-01-02", "dry": True}, "dry"),
        ({"start": "2014-12-31", "end": "2015-01-02", "services": ["fhv"]}, "start"),
    ],
)
def test_backfill_invalid(body, field):
    with pytest.raises(ValidationError) as err:
        parse_backfill(body, 3660, NOW)
    assert err.value.field == field
