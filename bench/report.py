"""Ratios from the raw figures, as Markdown, and the targets the project reports against.

Why ratios per round: contenders of one round ran minutes apart on the same machine, so a
noisy neighbour slows them alike; each ratio is taken within a round, then the median and
min-max over rounds are shown. Absolute seconds stay in the JSON, for the curious.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Callable

Round = dict[str, dict[str, Any]]  # contender -> its figures in one round


@dataclass(frozen=True)
class Target:
    label: str
    value: Callable[[Round], float]
    limit: float
    unit: str  # "x" for a ratio, " MB" for memory
    needs: tuple[str, ...]


def wall(figures: dict[str, Any]) -> float:
    """Wall seconds, scaled up when the contender ran on a sample (pg_to_sql)."""
    scale = figures.get("extrapolate_to", figures.get("rows_out", 1)) / max(figures.get("rows_out", 1), 1)
    return figures["wall"] * scale


def _ratio(key: str, a: str, b: str) -> Callable[[Round], float]:
    get = wall if key == "wall" else (lambda f: f[key])
    return lambda r: get(r[a]) / get(r[b])


TARGETS = (
    Target("month split wall / DuckDB", _ratio("wall", "split", "duckdb"), 1.2, "x", ("split", "duckdb")),
    Target("month split peak RSS", lambda r: r["split"]["peak_mb"], 300, " MB", ("split",)),
    Target("31-date ingest CPU / one month split", _ratio("cpu", "ingest_31", "split"), 2.0, "x",
           ("ingest_31", "split")),
    Target("Postgres day load wall / psql \\copy", _ratio("wall", "pg_ours", "pg_copy"), 1.6, "x",
           ("pg_ours", "pg_copy")),
)


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _cell(values: list[float], unit: str = "x", digits: int = 2) -> str:
    s = spread(values)
    text = f"{s['median']:.{digits}f}{unit}"
    return text if len(values) == 1 else f"{text} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


MONTH = (("gunzip", "gunzip (the floor)"), ("tutorial", "tutorial: pandas"), ("duckdb", "DuckDB COPY"),
         ("split", "ours: whole-month split"), ("ingest_31", "ours: 31 dates through ingest"))
POSTGRES = (("pg_copy", "psql \\copy (the floor)"), ("pg_ours", "ours: load_postgres"),
            ("pg_to_sql", "pandas to_sql (tutorial)"))


def summarize(rounds: list[Round]) -> dict[str, Any]:
    """The figures the Markdown shows, as data (also written to the JSON)."""
    present = set.intersection(*(set(r) for r in rounds)) if rounds else set()
    summary: dict[str, Any] = {"contenders": {}, "targets": []}
    for name in sorted(present):
        runs = [r[name] for r in rounds]
        entry: dict[str, Any] = {"wall": spread([wall(f) for f in runs]), "cpu": spread([f["cpu"] for f in runs])}
        if all(f.get("peak_mb") is not None for f in runs):
            entry["peak_mb"] = spread([f["peak_mb"] for f in runs])
        for base in ("gunzip", "tutorial", "duckdb", "split", "pg_copy", "pg_to_sql"):
            if base in present and base != name and (base.startswith("pg_") == name.startswith("pg_")):
                entry[f"wall_x_{base}"] = spread([wall(r[name]) / wall(r[base]) for r in rounds])
        entry["rows_out"] = runs[-1].get("rows_out")
        summary["contenders"][name] = entry
    for target in TARGETS:
        if set(target.needs) <= present:
            values = [target.value(r) for r in rounds]
            median = statistics.median(values)
            summary["targets"].append({"target": target.label, "limit": target.limit, "unit": target.unit.strip(),
                                       **spread(values), "met": median <= target.limit})
    return summary


def markdown(rounds: list[Round], meta: dict[str, Any]) -> str:
    present = set.intersection(*(set(r) for r in rounds))
    lines = [f"Source: {meta['service']} {meta['month']}, {meta['rows']:,} rows ({meta['source_mb']:.1f} MB "
             f"{meta['fmt']}), seed {meta['seed']}; {len(rounds)} run(s) per contender, each in its own process; "
             "ratios are per run, median (min-max).", ""]
    if meta.get("quick"):
        lines[-1:] = ["--quick: a small month checks that every contender works; imports and start-up weigh "
                      "far more than at full size, so these ratios say nothing about the targets.", ""]
    month = [(n, label) for n, label in MONTH if n in present]
    if month:
        bases = [b for b in ("gunzip", "tutorial", "duckdb") if b in present]
        header = ["month file -> daily parquet", *(f"wall x {b}" for b in bases), "CPU x split", "peak RSS", "rows out"]
        lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for name, label in month:
            cells = [_cell([wall(r[name]) / wall(r[b]) for r in rounds]) for b in bases]
            cells.append(_cell([r[name]["cpu"] / r["split"]["cpu"] for r in rounds]) if "split" in present else "-")
            cells += [_cell([r[name]["peak_mb"] for r in rounds], " MB", 0), _rows(rounds[-1][name])]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    if "ingest_31" in present:
        dates = [r["ingest_31"]["per_date"] for r in rounds]
        later = [statistics.median(d["wall"] for d in days[1:]) for days in dates]
        text = (f"Ingest, {len(dates[0])} dates a run: the first date (it splits the month) takes "
                f"{_cell([days[0]['wall'] / m for days, m in zip(dates, later)])} a later date's median wall time")
        if "split" in present:
            text += f"; a later date takes {_cell([m / r['split']['wall'] for r, m in zip(rounds, later)])} a whole-month split"
        lines += [text + ".", ""]
    pg = [(n, label) for n, label in POSTGRES if n in present]
    if pg:
        lines += ["| one day into PostgreSQL | wall x psql \\copy | peak RSS | rows |", "|---|---|---|---|"]
        for name, label in pg:
            ratio = _cell([wall(r[name]) / wall(r["pg_copy"]) for r in rounds]) if "pg_copy" in present else "-"
            peaks = [r[name]["peak_mb"] for r in rounds]
            peak = "-" if None in peaks else _cell(peaks, " MB", 0)
            note = ""
            figures = rounds[-1][name]
            if figures.get("extrapolate_to", figures.get("rows_out")) != figures.get("rows_out"):
                note = f" (sample of {figures['rows_out']:,}, extrapolated to {figures['extrapolate_to']:,})"
            lines.append(f"| {label} | {ratio}{note} | {peak} | {_rows(figures)} |")
        if "pg_copy" in present and all("replace_wall" in r.get("pg_ours", {}) for r in rounds):
            lines.append(f"| ours, replacing a loaded day | "
                         f"{_cell([r['pg_ours']['replace_wall'] / wall(r['pg_copy']) for r in rounds])} | | |")
        lines.append("")
    targets = [t for t in TARGETS if set(t.needs) <= present]
    if targets:
        lines += ["| target | measured | limit | |", "|---|---|---|---|"]
        for target in targets:
            values = [target.value(r) for r in rounds]
            digits = 0 if target.unit == " MB" else 2
            met = "met" if statistics.median(values) <= target.limit else "**NOT met**"
            lines.append(f"| {target.label} | {_cell(values, target.unit, digits)} | {target.limit:g}{target.unit} | {met} |")
    return "\n".join(lines)


def _rows(figures: dict[str, Any]) -> str:
    if "rows_out" not in figures:
        return "-"
    text = f"{figures['rows_out']:,}"
    if figures.get("rows_rejected") is not None:
        text += f" (+{figures['rows_rejected']:,} rejected)"
    return text
