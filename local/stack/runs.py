"""`./local_emulator.sh runs DATE [SERVICE]`: one date's attempts from the run ledger, for people.

Why: status says what a date's state is; when it is `retrying` or `dead_lettered` the next
question is what each attempt did. The records are read through shared/core/ledger.py (`read_date`),
from the stack's lake bucket; each record is one (function, event) with its earlier attempts.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from shared.core import clients, ledger_read
from shared.core.settings import get_settings

COLUMNS = ("function", "event_id", "attempt", "outcome", "reason", "rows", "started_at", "finished_at")


def rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each record's earlier attempts (from its history), then its latest, as table rows."""
    table = []
    for record in records:
        for earlier in record.get("history") or []:
            table.append({**{k: record.get(k) for k in ("function", "event_id")}, **earlier, "earlier": True})
        table.append(record)
    return table


def render(service: str, day: dt.date, records: list[dict[str, Any]]) -> str:
    if not records:
        return f"no run records for {service} {day} (nothing asked for it, or runs/ expired)\n"
    table = rows(records)
    cells = [[_cell(row.get(column), column) for column in COLUMNS] for row in table]
    widths = [max(len(column), *(len(c[i]) for c in cells)) for i, column in enumerate(COLUMNS)]
    lines = [
        f"run ledger of {service} {day}: {len(records)} event(s), {len(table)} attempt(s) (newest last)",
        "  ".join(column.ljust(width) for column, width in zip(COLUMNS, widths, strict=True)).rstrip(),
    ]
    for row, line in zip(table, cells, strict=True):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if row.get("error"):
            lines.append(f"    error: {row['error']}")
    return "\n".join(lines) + "\n"


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text[:19].replace("T", " ") if column.endswith("_at") else text


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m local.stack.runs YYYY-MM-DD [SERVICE]", file=sys.stderr)
        return 2
    day, service = dt.date.fromisoformat(argv[1]), argv[2] if len(argv) == 3 else "yellow"
    bucket = clients.storage().bucket(get_settings().lake_bucket)
    sys.stdout.write(render(service, day, ledger_read.read_date(bucket, service, day)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
