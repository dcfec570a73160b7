"""The chaos run's workload: which messages are published, in which order, from a seed.

Why a fixed, seeded list: the clean run and the faulty run must do the same work, so that
the clean run's final state is the model the faulty one is compared with. The workload is
what a busy deployment sees: every date of the months asked for 1-3 times (Pub/Sub is
at-least-once and people republish), shuffled, some with `force`, and whole-month backfills
overlapping them.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

FULL_SIZE = ("yellow", 2020, 1, 1_369_765)  # the full-size month: yellow January 2020's row count


@dataclass(frozen=True)
class Month:
    service: str
    year: int
    month: int
    rows: int | None = None  # None: the generator's rows_per_day; else a file of exactly that many rows

    @property
    def dates(self) -> list[dt.date]:
        days = calendar.monthrange(self.year, self.month)[1]
        return [dt.date(self.year, self.month, d) for d in range(1, days + 1)]

    @property
    def label(self) -> str:
        return f"{self.service} {self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class Message:
    topic: str  # "ingest" or "backfill"
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        if self.topic == "backfill":
            return "backfill"
        return "ingest_force" if self.body.get("force") else "ingest"


@dataclass(frozen=True)
class Workload:
    months: tuple[Month, ...]
    messages: tuple[Message, ...]

    @property
    def dates(self) -> list[tuple[str, dt.date]]:
        return [(m.service, d) for m in self.months for d in m.dates]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for message in self.messages:
            out[message.kind] = out.get(message.kind, 0) + 1
        return out

    def fanout(self) -> int:
        """Ingest messages the backfills publish in turn (each date of each backfill's range)."""
        total = 0
        for message in self.messages:
            if message.topic == "backfill":
                start, end = (dt.date.fromisoformat(message.body[k]) for k in ("start", "end"))
                total += (end - start).days + 1
        return total


def months_for(quick: bool) -> tuple[Month, ...]:
    """Quick: one small month. Full: the full-size month and twelve small ones over three services."""
    if quick:
        return (Month("yellow", 2019, 1),)
    service, year, month, rows = FULL_SIZE
    small = tuple(Month(s, 2019, m) for s in ("yellow", "green", "fhv") for m in (1, 2, 3, 4))
    return (Month(service, year, month, rows), *small)


def build(seed: int, quick: bool, force_share: float = 0.05, backfill_share: float = 0.6) -> Workload:
    """Each date 1-3 times, `force_share` of dates once more with force, and a whole-month backfill
    over `backfill_share` of the months (always the full-size one; the others drawn by the seed),
    all shuffled by the seed."""
    rng = random.Random(f"{seed}/workload")
    months = months_for(quick)
    others = [m for m in months if m.rows is None]
    backfilled = {m for m in months if m.rows is not None} | set(
        rng.sample(others, max(1 if quick else 0, round(backfill_share * len(others))))
    )
    messages: list[Message] = []
    for month in months:
        for day in month.dates:
            body = {"date": day.isoformat(), "service": month.service}
            messages += [Message("ingest", body)] * rng.randint(1, 3)
            if rng.random() < force_share:
                messages.append(Message("ingest", {**body, "force": True}))
        if month in backfilled:
            first, last = month.dates[0], month.dates[-1]
            messages.append(
                Message("backfill", {"start": first.isoformat(), "end": last.isoformat(), "service": month.service})
            )
    rng.shuffle(messages)
    return Workload(months, tuple(messages))
