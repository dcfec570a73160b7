"""Bad input, in bulk (issue 12 §2): the whole corpus of tests/integration/bad_inputs.py against the
running stack, with one load of a real date in place so that there is something to damage.

Everything is sent at once (messages published, requests and events POSTed in parallel, objects
written), then the dead letters are collected from a subscription of our own and matched to the
cases by the original message or event id (or, for a written object, its name). Each case must
end as a structured error naming its field and value: a dead letter for the topics and the
loaders, a 400 with a JSON error for the HTTP functions. No case may crash (an HTTP 5xx, a push
the relay had to retry) or change anything: the lake's trips/ objects and generations and the
per-date counts in BigQuery and Postgres are fingerprinted before and after.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent

from shared.core import clients
from shared.core.pg import connection
from shared.core.schemas import SERVICES
from shared.core.settings import STATUS, get_settings
from tests.integration import bad_inputs, stack_http
from tests.integration.bad_inputs import EVENTS, MESSAGES, REAL, Event, Message

TOPICS = {"ingest": "INGEST_TOPIC", "backfill": "BACKFILL_TOPIC"}
LOADERS = ("load_bigquery", "load_postgres")
COLLECT_SECONDS = 45.0


# ---- what could be damaged -----------------------------------------------------------------------


def fingerprint(lake: str) -> dict[str, Any]:
    """trips/ objects with their generations; per-(service, date) counts in BigQuery and Postgres."""
    settings = get_settings(STATUS)
    trips = {b.name: b.generation for b in clients.storage().list_blobs(lake, prefix="trips/")}
    bigquery, postgres = {}, {}
    for service in SERVICES:
        table = f"{settings.project}.{settings.bq_dataset}.{service}_trips"
        try:
            rows = clients.bigquery().query(f"SELECT pickup_date, COUNT(*) AS n FROM `{table}` GROUP BY 1").result()
            bigquery.update({(service, str(r["pickup_date"])): r["n"] for r in rows})
        except Exception:  # noqa: BLE001 - a table not created yet holds no rows
            pass
    with connection(settings) as conn:
        cursor = conn.cursor()
        for service in SERVICES:
            cursor.execute("SELECT to_regclass(%s)", (f"{settings.pg_schema}.{service}_trips",))
            if cursor.fetchone()[0] is not None:
                cursor.execute(f"SELECT pickup_date, count(*) FROM {settings.pg_schema}.{service}_trips GROUP BY 1")
                postgres.update({(service, str(day)): n for day, n in cursor.fetchall()})
    return {"trips": trips, "bigquery": bigquery, "postgres": postgres}


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    for part in before:
        for key in sorted(set(before[part]) | set(after[part]), key=str):
            if before[part].get(key) != after[part].get(key):
                out.append(f"{part} {key}: {before[part].get(key)} -> {after[part].get(key)}")
    return out


# ---- sending -------------------------------------------------------------------------------------


def fill(value: Any, lake: str, run: str) -> Any:
    """The corpus's `{lake}` and `{run}` placeholders, anywhere in a value."""
    if isinstance(value, str):
        return value.replace("{lake}", lake).replace("{run}", run)
    if isinstance(value, dict):
        return {fill(k, lake, run): fill(v, lake, run) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, lake, run) for v in value]
    return value


def cloud_event(case: Event, lake: str, event_id: str) -> CloudEvent:
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    if case.kind == "finalize":
        kind, data = "google.cloud.storage.object.v1.finalized", fill(case.resource, lake, "")
    elif case.kind == "notification":
        kind = "google.cloud.pubsub.topic.v1.messagePublished"
        data = {
            "message": {
                "data": base64.b64encode(case.payload.replace(b"{lake}", lake.encode())).decode(),
                "attributes": fill(case.attributes, lake, ""),
                "messageId": event_id,
                "publishTime": now,
            },
            "subscription": "projects/p/subscriptions/corpus",
        }
    else:
        kind, data = case.event_type, case.data
    return CloudEvent(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "//corpus",
            "type": kind,
            "time": now,
            "datacontenttype": "application/json",
        },
        data,
    )


def post_event(url: str, event: CloudEvent) -> requests.Response:
    headers, body = to_structured(event)
    return requests.post(url, data=body, headers=headers, timeout=60)


def http_request(url: str, case: Message) -> requests.Response:
    if case.body is None:
        return requests.get(url, params=case.params, timeout=60)
    return requests.post(
        url,
        data=case.body,
        params=bad_inputs.BODY_AND_PARAMS.get(case.name),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )


# ---- reading what came back ----------------------------------------------------------------------


def dead_letter_keys(letter: dict[str, Any]) -> list[tuple[str, str]]:
    """(function, original event id), and (function, object name) for a GCS notification: the
    message id of fake-gcs-server's notification of a written object is not known to the test."""
    event = letter.get("event") or {}
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    attributes = message.get("attributes") if isinstance(message.get("attributes"), dict) else {}
    keys = [(letter.get("function"), (event.get("attributes") or {}).get("id"))]
    if attributes.get("objectId"):
        keys.append((letter.get("function"), attributes["objectId"]))
    return keys


def relay_lines(since: float) -> list[dict[str, Any]]:
    path = Path(os.environ["TAXI_STATE_DIR"]) / "logs" / "relay.log"
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            line = json.loads(text)
            stamp = dt.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
            if stamp >= since - 1:
                lines.append(line)
    return lines


def function_log(function: str) -> list[dict[str, Any]]:
    path = Path(os.environ["TAXI_STATE_DIR"]) / "logs" / f"fn-{function}.log"
    return [json.loads(t) for t in path.read_text(errors="replace").splitlines() if t.startswith("{")]


def structured(error: Any, field: str) -> str | None:
    """Why `error` is not a structured error naming `field` and a value, or None when it is."""
    if not isinstance(error, dict):
        return f"not a JSON object: {str(error)[:300]}"
    if error.get("field") != field or "value" not in error or not error.get("reason"):
        return (
            f"names field {error.get('field')!r} (value {str(error.get('value'))[:80]!r}), not {field!r}: "
            f"{json.dumps(error)[:400]}"
        )
    return None


# ---- the test ------------------------------------------------------------------------------------


@pytest.fixture
def real_day_loaded(urls):
    """One real date complete in the lake, BigQuery and Postgres before the corpus is sent."""
    days = stack_http.by_date(stack_http.status(urls, "yellow", [REAL]))
    if days[REAL]["state"] != "complete":
        clients.publisher().publish(
            clients.topic_path(os.environ.get("INGEST_TOPIC", "taxi-ingest")),
            json.dumps({"date": REAL, "service": "yellow"}).encode(),
        ).result(timeout=30)
        stack_http.wait_for(urls, "yellow", [REAL], lambda d: d[REAL]["state"] == "complete", "loaded", 300)
    return REAL


def test_the_whole_bad_input_corpus_is_answered_with_structured_errors_and_changes_nothing(
    stack, urls, real_day_loaded, dead_letters
):
    lake, run = os.environ["LAKE_BUCKET"], uuid.uuid4().hex[:8]
    bucket = clients.storage().bucket(lake)
    written = {case.name: fill(case.object_name, lake, run) for case in EVENTS if case.kind == "write"}
    for name in written.values():  # a run that stopped half way may have left one
        if bucket.get_blob(name) is not None:
            bucket.blob(name).delete()
    before = fingerprint(lake)
    started, wall = time.time(), time.monotonic()

    # Send everything at once.
    publisher = clients.publisher()
    topic_cases = [c for c in MESSAGES if c.target in TOPICS]
    futures = [
        (
            c,
            publisher.publish(
                clients.topic_path(os.environ.get(TOPICS[c.target], f"taxi-{c.target}")), c.body or b"", **c.attributes
            ),
        )
        for c in topic_cases
    ]
    http_cases = [c for c in MESSAGES if c.target not in TOPICS]
    posted = [(c, f"corpus-{run}-{i}") for i, c in enumerate(EVENTS) if c.kind != "write"]
    with ThreadPoolExecutor(8) as pool:
        http_answers = list(pool.map(lambda c: http_request(urls[c.target], c), http_cases))
        event_answers = {
            (f, event_id): answer
            for (f, event_id), answer in zip(
                [(f, event_id) for _, event_id in posted for f in LOADERS],
                pool.map(
                    lambda job: post_event(urls[job[0]], job[1]),
                    [(f, cloud_event(c, lake, event_id)) for c, event_id in posted for f in LOADERS],
                ),
                strict=True,
            )
        }
    for case in EVENTS:
        if case.kind == "write":
            bucket.blob(written[case.name]).upload_from_string(case.content)
    message_ids = {c.name: f.result(timeout=60) for c, f in futures}

    # What should come back as a dead letter, keyed like dead_letter_keys.
    expected: dict[tuple[str, str], str] = {(c.target, message_ids[c.name]): c.name for c in topic_cases}
    expected.update({(f, event_id): c.name for c, event_id in posted if c.field for f in LOADERS})
    expected.update({(f, written[c.name]): c.name for c in EVENTS if c.kind == "write" and c.field for f in LOADERS})
    letters: dict[tuple[str, str], dict[str, Any]] = {}
    deadline = time.monotonic() + COLLECT_SECONDS
    while set(expected) - set(letters) and time.monotonic() < deadline:
        for letter in dead_letters(expected=1, timeout=3):
            for key in dead_letter_keys(letter):
                letters.setdefault(key, letter)
    time.sleep(2)  # a retry the relay schedules comes 1 s after a failed push: let it show in the log
    for name in written.values():
        bucket.blob(name).delete()
    after = fingerprint(lake)

    failures: list[str] = []
    for key, case_name in expected.items():
        letter = letters.get(key)
        case = next(c for c in [*MESSAGES, *EVENTS] if c.name == case_name)
        if letter is None:
            failures.append(f"{case_name} -> {key[0]}: no dead letter within {COLLECT_SECONDS:.0f} s")
        elif (why := structured(letter.get("error"), case.field)) is not None:
            failures.append(f"{case_name} -> {key[0]}: dead letter {why}")
    unexpected = [k for k in letters if k[1] in {eid for _, eid in posted} and k not in expected]
    failures += [
        f"{k[0]} dead-lettered an event it should ignore: {json.dumps(letters[k]['error'])}" for k in unexpected
    ]
    for case, answer in zip(http_cases, http_answers, strict=True):
        body = answer.json() if answer.headers.get("Content-Type", "").startswith("application/json") else answer.text
        if answer.status_code != 400 or (why := structured(body, case.field)) is not None:
            failures.append(f"{case.name}: HTTP {answer.status_code} {why or ''} {str(body)[:300]}")
    ignored_logs = {f: function_log(f) for f in LOADERS}
    for case, event_id in posted:
        for function in LOADERS:
            answer = event_answers[(function, event_id)]
            if answer.status_code >= 300:
                failures.append(f"{case.name} -> {function}: HTTP {answer.status_code} {answer.text[:300]}")
            if case.ignored and not any(
                line.get("event_id") == event_id and line.get("ignored") == case.ignored
                for line in ignored_logs[function]
            ):
                failures.append(f"{case.name} -> {function}: no log line saying it was ignored ({case.ignored})")
    for case in EVENTS:
        if case.kind == "write" and case.ignored:
            uri = f"gs://{lake}/{written[case.name]}"
            for function in LOADERS:
                seen = [line for line in ignored_logs[function] if line.get("object") == uri]
                if case.ignored == "not_notified" and seen:  # no notification: the loader never ran
                    failures.append(f"{case.name} -> {function}: woken by a write outside trips/: {seen[0]}")
                elif case.ignored != "not_notified" and not any(line.get("ignored") == case.ignored for line in seen):
                    failures.append(f"{case.name} -> {function}: no log line saying it was ignored ({case.ignored})")

    # No push was answered with anything but success on its first delivery.
    ours = {message_ids[c.name] for c in topic_cases} | {
        (letter.get("event") or {}).get("attributes", {}).get("id")
        for key, letter in letters.items()
        if key[1] in written.values()
    }
    retried = [
        line
        for line in relay_lines(started)
        if line.get("message_id") in ours and (line["event"] != "delivered" or line.get("attempt") != 1)
    ]
    failures += [f"push relay: {json.dumps(line)[:400]}" for line in retried]
    crashes = sum(a.status_code >= 500 for a in [*http_answers, *event_answers.values()]) + len(retried)
    damage = changes(before, after)
    failures += [f"changed: {change}" for change in damage]

    events = sum(1 for c in EVENTS)
    print(
        f"\nbad-input corpus: messages {len(MESSAGES)} ({', '.join(f'{t} {n}' for t, n in counts(MESSAGES))}), "
        f"events {events} ({len(posted) * len(LOADERS)} POSTed + {len(written)} objects written, to both loaders), "
        f"structured dead letters {sum(1 for k in expected if k in letters)}/{len(expected)}, "
        f"400s {sum(a.status_code == 400 for a in http_answers)}/{len(http_cases)}, crashes {crashes}, "
        f"rows changed {len(damage)}, {time.monotonic() - wall:.1f} s"
    )
    assert not failures, f"{len(failures)} of the corpus failed:\n" + "\n".join(failures)


def counts(cases: list[Message]) -> list[tuple[str, int]]:
    targets: dict[str, int] = {}
    for case in cases:
        targets[case.target] = targets.get(case.target, 0) + 1
    return list(targets.items())
