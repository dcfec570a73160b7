"""The status report for people: a self-contained HTML calendar, and a plain-text table.

The HTML page has no script, font or stylesheet to fetch (it is served by a
function behind an identity token and may be saved to a file), so everything is
inline. Each date is a cell coloured by state, carrying `data-date` and
`data-state` (what tests and scripts read) and a `title` with the counts and each
function's latest attempt from the run ledger (what a person sees on hover). Every
value is escaped: notes and error messages can quote data.
"""

from __future__ import annotations

import calendar
import datetime as dt
from html import escape
from typing import Any

from shared.operate.status import STATE_MEANING, STATES, DayStatus, StatusReport

COLOURS = {  # background, text: readable, and distinguishable without relying on red/green alone
    "complete": ("#2e7d32", "#ffffff"),
    "awaiting_source": ("#e0f2f1", "#004d40"),
    "queued": ("#90caf9", "#000000"),
    "running": ("#1565c0", "#ffffff"),
    "retrying": ("#ef6c00", "#000000"),
    "partial": ("#f9a825", "#000000"),
    "mismatch": ("#6a1b9a", "#ffffff"),
    "failed": ("#c62828", "#ffffff"),
    "undelivered": ("#795548", "#ffffff"),
    "dead_lettered": ("#4e342e", "#ffffff"),
    "missing": ("#bdbdbd", "#000000"),
}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#212121;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#616161;font-size:13px;margin:0 0 16px}
.legend{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 20px;padding:0;list-style:none}
.legend li{padding:4px 10px;border-radius:4px;font-size:13px}
.calendar{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}
table.month{border-collapse:separate;border-spacing:3px;background:#fff;padding:6px;
  border:1px solid #e0e0e0;border-radius:6px}
table.month caption{font-weight:600;text-align:left;padding:2px 4px 6px}
table.month th{font-size:11px;color:#757575;font-weight:500}
td.day{width:44px;height:40px;vertical-align:top;border-radius:4px;font-size:12px;padding:3px;cursor:default}
td.day .num{font-weight:600;display:block}
td.day .rows{font-size:10px;opacity:.9}
td.outside{background:transparent;color:#bdbdbd}
table.attention{border-collapse:collapse;margin-top:24px;font-size:13px;background:#fff}
table.attention th,table.attention td{border:1px solid #e0e0e0;padding:4px 8px;text-align:left}
table.attention td.n{text-align:right;font-variant-numeric:tabular-nums}
"""


def _state_css() -> str:
    return "".join(f".state-{state}{{background:{bg};color:{fg}}}" for state, (bg, fg) in COLOURS.items())


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def hover_text(day: DayStatus) -> str:
    """The counts a person sees when hovering over a date."""
    lines = [
        f"{day.date.isoformat()} {day.service}: {day.label}",
        f"lake: {_n(day.lake_rows)} rows ({_n(day.rejected_rows)} rejected)",
        f"BigQuery: {_n(day.bigquery_rows)} rows",
        f"Postgres: {_n(day.postgres_rows)} rows",
    ]
    if day.postgres_loaded is not None and day.postgres_loaded.loaded_at is not None:
        lines.append(f"Postgres loaded at {day.postgres_loaded.loaded_at:%Y-%m-%d %H:%M:%S}")
    lines.extend(day.notes)
    lines.extend(explanation_lines(day))
    for run in day.runs:  # each function's latest attempt: what the run ledger says
        when = f" at {run.updated_at:%Y-%m-%d %H:%M:%S}" if run.updated_at else ""
        lines.append(f"{run.describe()}{when}")
    return "\n".join(lines)


def explanation_lines(day: DayStatus) -> list[str]:
    """What heals a date that is not complete, for people (shared/operate/heal.py decides it)."""
    told = day.explanation
    if not told:
        return []
    lines = [f"next: {told['remedy']}"]
    for where, command in (told.get("commands") or {}).items():
        lines.append(f"{where}: {command}")
    return lines


def _months(start: dt.date, end: dt.date) -> list[tuple[int, int]]:
    months, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _month_table(year: int, month: int, by_date: dict[dt.date, DayStatus]) -> str:
    rows = []
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        if not any(day.month == month and day in by_date for day in week):
            continue  # a range starting late in a month shows only the weeks it covers
        cells = []
        for day in week:
            status = by_date.get(day) if day.month == month else None
            if status is None:
                label = str(day.day) if day.month == month else ""
                cells.append(f'<td class="day outside">{label}</td>')
                continue
            rows_label = _n(
                status.lake_rows
                if status.lake_rows is not None
                else max(status.bigquery_rows, status.postgres_rows) or None
            )
            cells.append(
                f'<td class="day state-{status.state}" data-date="{day.isoformat()}" '
                f'data-state="{status.state}" title="{escape(hover_text(status))}">'
                f'<span class="num">{day.day}</span><span class="rows">{rows_label}</span></td>'
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{d}</th>" for d in WEEKDAYS)
    return (
        f'<table class="month" data-month="{year:04d}-{month:02d}">'
        f"<caption>{calendar.month_name[month]} {year}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def render_html(report: StatusReport) -> str:
    """One self-contained page: header, legend with counts, a calendar per month, dates needing attention."""
    by_date = {day.date: day for day in report.days}
    summary = report.summary()
    title = f"{report.service} trips: {report.start.isoformat()} to {report.end.isoformat()}"
    legend = "".join(
        f'<li class="key state-{state}" data-state="{state}" data-count="{summary[state]}" '
        f'title="{escape(STATE_MEANING[state])}">{state}: {summary[state]}</li>'
        for state in STATES
    )
    months = "".join(_month_table(y, m, by_date) for y, m in _months(report.start, report.end))
    attention = _attention_table(report.not_complete())
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}{_state_css()}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="meta">generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC '
        f"from the lake, BigQuery, Postgres and the run ledger; hover over a date for its counts and attempts</p>"
        f'<ul class="legend" aria-label="legend">{legend}</ul>'
        f'<div class="calendar" data-service="{escape(report.service)}" data-start="{report.start.isoformat()}" '
        f'data-end="{report.end.isoformat()}">{months}</div>{attention}</body></html>'
    )


def _attention_table(days: list[DayStatus]) -> str:
    if not days:
        return ""
    shown = days[:500]
    rows = "".join(
        f'<tr data-date="{d.date.isoformat()}"><td>{d.date.isoformat()}</td>'
        f'<td class="state-{d.state}">{escape(d.label)}</td><td class="n">{_n(d.lake_rows)}</td>'
        f'<td class="n">{_n(d.bigquery_rows)}</td><td class="n">{_n(d.postgres_rows)}</td>'
        f'<td>{escape("; ".join(d.notes))}</td><td class="heal" data-action="{escape(_action(d))}">'
        f"{_heal_cell(d)}</td></tr>"
        for d in shown
    )
    more = f"<p>and {len(days) - len(shown)} more</p>" if len(days) > len(shown) else ""
    return (
        '<table class="attention"><caption>Dates that are not complete</caption>'
        "<thead><tr><th>date</th><th>state</th><th>lake</th><th>BigQuery</th><th>Postgres</th>"
        f"<th>notes</th><th>what heals it</th></tr></thead><tbody>{rows}</tbody></table>{more}"
    )


def _action(day: DayStatus) -> str:
    return str((day.explanation or {}).get("action") or "")


def _heal_cell(day: DayStatus) -> str:
    told = day.explanation or {}
    commands = "".join(
        f"<br>{escape(where)}: <code>{escape(command)}</code>"
        for where, command in (told.get("commands") or {}).items()
    )
    return escape(str(told.get("remedy") or "")) + commands


TEXT_COLUMNS = ("date", "state", "lake", "rejected", "bigquery", "postgres", "notes")


def render_text(report: StatusReport) -> str:
    """A fixed-width table for terminals (`./local_emulator.sh status START END`)."""
    rows: list[tuple[Any, ...]] = [TEXT_COLUMNS]
    for day in report.days:
        rows.append(
            (
                day.date.isoformat(),
                day.label,
                _n(day.lake_rows),
                _n(day.rejected_rows),
                _n(day.bigquery_rows),
                _n(day.postgres_rows),
                "; ".join(day.notes),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(TEXT_COLUMNS) - 1)]
    lines = []
    for row in rows:
        cells = [
            str(v).ljust(w) if i < 2 or row is rows[0] else str(v).rjust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=False))  # a short row pads nothing
        ]
        lines.append("  ".join(cells + [str(row[-1])]).rstrip())
    summary = ", ".join(f"{state} {count}" for state, count in report.summary().items() if count)
    header = f"{report.service} {report.start.isoformat()}..{report.end.isoformat()}: {summary}"
    healing = [f"{day.date.isoformat()} {line}" for day in report.days for line in explanation_lines(day)]
    if healing:
        when = report.next_repair.isoformat() if report.next_repair else "unknown (it has not run yet)"
        healing.insert(0, f"what heals the dates that are not complete (next scheduled repair: {when}):")
    return "\n".join([header, *lines, *healing]) + "\n"
