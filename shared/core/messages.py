"""The public message contracts (ingest and backfill), parsed strictly.

A message is outside input: anything not exactly as documented in the README is a
`ValidationError` naming the field and the value, which the entry point
dead-letters. No key of a message can influence which URL is downloaded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from shared.core.eras import FIRST_MONTH
from shared.core.errors import ValidationError
from shared.core.events import PubsubMessage, json_object
from shared.core.schemas import SERVICES

NEW_YORK = ZoneInfo("America/New_York")
# First month TLC published for each service; earlier dates can only be a mistake.
FIRST_DAY = {service: dt.date(year, month, 1) for service, (year, month) in FIRST_MONTH.items()}

INGEST_KEYS = frozenset({"date", "service", "force"})
BACKFILL_KEYS = frozenset(
    {"start", "end", "last_days", "service", "services", "force", "only_missing", "repair", "dry_run", "catch_up"}
    | {"from_ledger", "schedule", "time_zone"}
)
MAX_LAST_DAYS = 366
# The largest ingest or backfill message body (and HTTP request body) accepted. The contracts'
# keys need under 200 bytes; Pub/Sub carries up to 10 MB, and Google's push delivers that much,
# so a 6 MB message reaches the function: it is refused here, before any parsing, with its size.
# 64 KiB, far above any honest request, so a modest mistake is still named by its own field.
MAX_MESSAGE_BYTES = 65_536
TOO_LARGE = "message_too_large"


@dataclass(frozen=True)
class IngestRequest:
    service: str
    date: dt.date
    force: bool = False
    date_from: str = "message"  # or "publish_time" when the scheduler sent no date

    def as_message(self) -> dict[str, Any]:
        body: dict[str, Any] = {"date": self.date.isoformat(), "service": self.service}
        if self.force:
            body["force"] = True
        return body


@dataclass(frozen=True)
class BackfillRequest:
    start: dt.date
    end: dt.date
    services: tuple[str, ...]
    force: bool = False
    only_missing: bool = False
    dry_run: bool = False
    repair: bool = False
    from_ledger: bool = False  # repair every date the run ledger touched, whatever its calendar date
    schedule: str | None = None  # the scheduler's own schedule (shared/core/schedule.py), kept by repair
    time_zone: str = "Etc/UTC"
    catch_up: bool = False  # the daily schedule: only_missing over last_days, leaving what a person must fix


def today_in_new_york(now: dt.datetime | None = None) -> dt.date:
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(NEW_YORK).date()


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # fromisoformat also takes 2021-W45-5 and 20211112


def message_fields(message: PubsubMessage) -> dict[str, Any]:
    """JSON body when there is one, else the attributes (scheduler and gcloud both work), never
    both: an attribute beside a body would otherwise be silently ignored. Attributes named goog*
    are Google's own (reserved) and are left alone. Only an empty body means "no body": a body of
    whitespace used to read as `{}`, which for ingest is a valid request for yesterday."""
    check_size(message.data, "message.data")
    if message.data:  # a blank body is a body, and not JSON: it must not fall back to the defaults
        beside = sorted(k for k in message.attributes if not k.lower().startswith("goog"))
        if beside:
            raise ValidationError(
                "give the request as a JSON body or as attributes, not both",
                field=f"attributes.{beside[0]}",
                value=message.attributes[beside[0]],
            )
        return json_object(message.data, "data")
    return dict(message.attributes)


def check_size(raw: bytes, field: str) -> None:
    """A body over MAX_MESSAGE_BYTES is refused whole (reason message_too_large), naming its size."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ValidationError(
            f"{field} is {len(raw)} bytes; a request is at most {MAX_MESSAGE_BYTES} bytes",
            reason=TOO_LARGE,
            field=field,
            value=f"{len(raw)} bytes",
        )


def _check_keys(fields: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValidationError(
            f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
            field=unknown[0],
            value=fields[unknown[0]],
        )


def parse_service(value: Any, field: str = "service") -> str:
    if not isinstance(value, str) or value not in SERVICES:
        raise ValidationError(f"unknown service; expected one of {', '.join(SERVICES)}", field=field, value=value)
    return value


def parse_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValidationError("must be true or false", field=field, value=value)


def parse_date(value: Any, field: str, service: str, today: dt.date) -> dt.date:
    """ISO date within the range TLC publishes for `service`, not in the future."""
    if not isinstance(value, str):
        raise ValidationError("must be an ISO date string YYYY-MM-DD", field=field, value=value)
    if not _ISO_DATE.fullmatch(value):
        raise ValidationError("must be written YYYY-MM-DD", field=field, value=value)
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(f"not a valid date: {exc}", field=field, value=value) from exc
    first = FIRST_DAY[service]
    if day < first:
        raise ValidationError(f"before the first {service} data ({first.isoformat()})", field=field, value=value)
    if day > today:
        raise ValidationError(f"in the future (today in New York is {today.isoformat()})", field=field, value=value)
    return day


def parse_ingest(message: PubsubMessage, lag_days: int, now: dt.datetime | None = None) -> IngestRequest:
    """Ingest message -> IngestRequest. A missing date is the publish date minus the lag."""
    fields = message_fields(message)
    _check_keys(fields, INGEST_KEYS)
    today = today_in_new_york(now)
    service = parse_service(fields.get("service", "yellow"))
    force = parse_bool(fields.get("force", False), "force")
    if "date" in fields:
        return IngestRequest(service, parse_date(fields["date"], "date", service, today), force)
    if message.publish_time is None:
        raise ValidationError("no date and no publish time to derive it from", field="date", value=None)
    derived = today_in_new_york(message.publish_time) - dt.timedelta(days=lag_days)
    return IngestRequest(service, parse_date(derived.isoformat(), "date", service, today), force, "publish_time")


def parse_backfill(fields: Mapping[str, Any], max_dates: int, now: dt.datetime | None = None) -> BackfillRequest:
    """Backfill request (message body or HTTP JSON) -> BackfillRequest, bounded in size."""
    if not isinstance(fields, Mapping):
        raise ValidationError("request must be a JSON object", field="body", value=str(fields)[:200])
    _check_keys(fields, BACKFILL_KEYS)
    if "service" in fields and "services" in fields:
        raise ValidationError("give service or services, not both", field="services", value=fields["services"])
    services_key = "services" if "services" in fields else "service"  # errors name the key the caller used
    raw_services = fields.get("services", [fields.get("service", "yellow")])
    if isinstance(raw_services, str):
        raw_services = [s.strip() for s in raw_services.split(",")]
    if not isinstance(raw_services, list) or not raw_services:
        raise ValidationError("must be a non-empty list of services", field=services_key, value=raw_services)
    services = tuple(dict.fromkeys(parse_service(s, services_key) for s in raw_services))
    today = today_in_new_york(now)
    oldest_service = min(services, key=FIRST_DAY.__getitem__)
    from_ledger = parse_bool(fields.get("from_ledger", False), "from_ledger")
    if from_ledger:
        return _ledger_repair(fields, services, today, oldest_service)
    for key in ("schedule", "time_zone"):
        if key in fields:
            raise ValidationError("only a from_ledger repair carries its schedule", field=key, value=fields[key])
    if "last_days" in fields:
        start, end = _last_days(fields, today, oldest_service)
    else:
        for key in ("start", "end"):
            if key not in fields:
                raise ValidationError(f"missing {key} date (or give last_days)", field=key, value=None)
        start = parse_date(fields["start"], "start", oldest_service, today)
        end = parse_date(fields["end"], "end", oldest_service, today)
    if start > end:
        raise ValidationError(f"start is after end ({fields['end']})", field="start", value=fields["start"])
    for service in services:
        if start < FIRST_DAY[service]:
            raise ValidationError(
                f"before the first {service} data ({FIRST_DAY[service]})", field="start", value=fields["start"]
            )
    count = ((end - start).days + 1) * len(services)
    if count > max_dates:
        raise ValidationError(
            f"{count} (service, date) pairs exceed the maximum of {max_dates}", field="end", value=fields["end"]
        )
    request = BackfillRequest(
        start,
        end,
        services,
        force=parse_bool(fields.get("force", False), "force"),
        only_missing=parse_bool(fields.get("only_missing", False), "only_missing"),
        dry_run=parse_bool(fields.get("dry_run", False), "dry_run"),
        repair=parse_bool(fields.get("repair", False), "repair"),
    )
    if request.repair and request.only_missing:
        raise ValidationError("give only_missing or repair, not both", field="repair", value=fields["repair"])
    if parse_bool(fields.get("catch_up", False), "catch_up"):
        if "last_days" not in fields or request.repair or request.force:
            raise ValidationError(
                "catch_up goes with last_days, without repair or force", field="catch_up", value=fields["catch_up"]
            )
        request = dataclasses.replace(request, only_missing=True, catch_up=True)
    return request


def _ledger_repair(
    fields: Mapping[str, Any], services: tuple[str, ...], today: dt.date, oldest_service: str
) -> BackfillRequest:
    """`{"repair": true, "from_ledger": true}`: the dates come from the run ledger, not a range."""
    from shared.core.schedule import parse_schedule

    for key in ("start", "end", "last_days", "only_missing", "force"):
        if key in fields:
            raise ValidationError(f"a from_ledger repair takes no {key}", field=key, value=fields[key])
    if parse_bool(fields.get("repair", False), "repair") is not True:
        raise ValidationError("from_ledger needs repair: true", field="from_ledger", value=fields["from_ledger"])
    schedule = None
    if "schedule" in fields:
        schedule = parse_schedule(fields["schedule"], fields.get("time_zone", "Etc/UTC"))
    elif "time_zone" in fields:
        raise ValidationError("time_zone goes with schedule", field="time_zone", value=fields["time_zone"])
    return BackfillRequest(
        FIRST_DAY[oldest_service],
        today,
        services,
        dry_run=parse_bool(fields.get("dry_run", False), "dry_run"),
        repair=True,
        from_ledger=True,
        schedule=schedule.text if schedule else None,
        time_zone=schedule.time_zone if schedule else "Etc/UTC",
    )


def _last_days(fields: Mapping[str, Any], today: dt.date, service: str) -> tuple[dt.date, dt.date]:
    """`last_days: N`: the N days before today in New York, for a fixed scheduled message."""
    for key in ("start", "end"):
        if key in fields:
            raise ValidationError("give last_days or start and end, not both", field=key, value=fields[key])
    days = fields["last_days"]
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_LAST_DAYS:
        raise ValidationError(
            f"must be a whole number of days from 1 to {MAX_LAST_DAYS}", field="last_days", value=days
        )
    end = today - dt.timedelta(days=1)
    return max(end - dt.timedelta(days=days - 1), FIRST_DAY[service]), end


def expand(request: BackfillRequest) -> list[IngestRequest]:
    """Every (service, date) of the inclusive range, in date order then service order."""
    days = (request.end - request.start).days + 1
    return [
        IngestRequest(service, request.start + dt.timedelta(days=i), request.force)
        for i in range(days)
        for service in request.services
    ]


def request_fields(request: Any) -> dict[str, Any]:
    """A JSON object body, or the query parameters, never both: one source of input, each key once."""
    raw = request.get_data(cache=True) or b""
    check_size(raw, "body")
    if raw.strip():
        if request.args:
            raise ValidationError(
                "give the request as a JSON body or as query parameters, not both",
                field="body",
                value=raw[:200].decode("utf-8", "replace"),
            )
        return json_object(raw, "body", what="body")
    fields: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise ValidationError("given more than once", field=key, value=values)
        fields[key] = values[0]
    return fields
