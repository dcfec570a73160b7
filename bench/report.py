"""Ratios from the raw figures, as Markdown, and the targets the project reports against.

Why ratios per round: contenders of one round ran minutes apart on the same machine, so a
noisy neighbour slows them alike; each ratio is taken within a round, then the median and
min-max over rounds are shown. Absolute seconds stay in the JSON, for the curious.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

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
    Target("month split wall / DuckDB", _ratio("wall", "split", "duckdb"), 0.5, "x", ("split", "duckdb")),  # issue 19
    Target("month split peak RSS", lambda r: r["split"]["peak_mb"], 300, " MB", ("split",)),
    Target(
        "31-date ingest CPU / one month split", _ratio("cpu", "ingest_31", "split"), 1.2, "x", ("ingest_31", "split")
    ),
    Target(
        "Postgres day load wall / psql \\copy", _ratio("wall", "pg_ours", "pg_copy"), 1.1, "x", ("pg_ours", "pg_copy")
    ),
    Target(  # issue 19: the thousandth day loads like the first
        "Postgres new day into the big table / into an empty one",
        _ratio("wall", "pg_big", "pg_ours"),
        1.2,
        "x",
        ("pg_big", "pg_ours"),
    ),
    Target(
        "Postgres day replace in the big table / in an empty one",
        _ratio("replace_wall", "pg_big", "pg_ours"),
        1.2,
        "x",
        ("pg_big", "pg_ours"),
    ),
)


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _cell(figure: dict[str, float] | None, runs: int, unit: str = "x", digits: int = 2) -> str:
    if figure is None:
        return "-"
    text = f"{figure['median']:.{digits}f}{unit}"
    return text if runs == 1 else f"{text} ({figure['min']:.{digits}f}-{figure['max']:.{digits}f})"


MONTH = (
    ("gunzip", "gunzip (the floor)"),
    ("tutorial", "tutorial: pandas"),
    ("duckdb", "DuckDB COPY"),
    ("split", "ours: whole-month split"),
    ("ingest_31", "ours: 31 dates through ingest"),
)
POSTGRES = (
    ("pg_copy", "psql \\copy (the floor)"),
    ("pg_ours", "ours: load_postgres"),
    ("pg_to_sql", "pandas to_sql (tutorial)"),
    ("pg_big", "ours: a new day into the big table (pg_big)"),
)
MONTH_BASES = ("gunzip", "tutorial", "duckdb")


def _contender(name: str, rounds: list[Round], present: set[str]) -> dict[str, Any]:
    """One contender's figures over the runs; every ratio is taken within a run first."""
    runs = [r[name] for r in rounds]

    def per_run(fn: Callable[[Round], float]) -> dict[str, float]:
        return spread([fn(r) for r in rounds])

    entry: dict[str, Any] = {"wall": spread([wall(f) for f in runs]), "cpu": spread([f["cpu"] for f in runs])}
    if all(f.get("peak_mb") is not None for f in runs):
        entry["peak_mb"] = spread([f["peak_mb"] for f in runs])
    bases = ("pg_copy", "pg_to_sql") if name.startswith("pg_") else (*MONTH_BASES, "split")
    for base in (b for b in bases if b in present):
        entry[f"wall_x_{base}"] = per_run(partial(lambda r, b: wall(r[name]) / wall(r[b]), b=base))
    if "split" in present and not name.startswith("pg_"):
        entry["cpu_x_split"] = per_run(lambda r: r[name]["cpu"] / r["split"]["cpu"])
    if name == "ingest_31":
        later = [statistics.median(d["wall"] for d in f["per_date"][1:]) for f in runs]  # per run
        entry["dates"] = len(runs[0]["per_date"])
        entry["first_date_x_later"] = spread([f["per_date"][0]["wall"] / m for f, m in zip(runs, later, strict=True)])
        if "split" in present:
            entry["later_date_x_split"] = spread([m / r["split"]["wall"] for r, m in zip(rounds, later, strict=True)])
    if name == "bq_big":
        entry["big_x_empty"] = spread([f["wall"] / f["empty_wall"] for f in runs])
        entry["partitions"] = runs[-1]["partitions"]
    if name in ("pg_ours", "pg_big") and "pg_copy" in present and all("replace_wall" in f for f in runs):
        entry["replace_x_pg_copy"] = per_run(lambda r: r[name]["replace_wall"] / wall(r["pg_copy"]))
    entry.update(
        {k: runs[-1][k] for k in ("rows_out", "rows_rejected", "extrapolate_to", "table_rows") if k in runs[-1]}
    )
    return entry


def summarize(rounds: list[Round]) -> dict[str, Any]:
    """Every figure the report shows, as data (the Markdown renders it; the JSON keeps it)."""
    present = set.intersection(*(set(r) for r in rounds)) if rounds else set()
    summary: dict[str, Any] = {
        "runs": len(rounds),
        "targets": [],
        "contenders": {name: _contender(name, rounds, present) for name in sorted(present)},
    }
    for target in TARGETS:
        if set(target.needs) <= present:
            figure = spread([target.value(r) for r in rounds])
            summary["targets"].append(
                {
                    "target": target.label,
                    "limit": target.limit,
                    "unit": target.unit,
                    **figure,
                    "met": figure["median"] <= target.limit,
                }
            )
    return summary


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    runs, contenders = summary["runs"], summary["contenders"]
    lines = [
        f"Source: {meta['service']} {meta['month']}, {meta['rows']:,} rows ({meta['source_mb']:.1f} MB "
        f"{meta['fmt']}), seed {meta['seed']}; {runs} run(s) per contender, each in its own process; "
        "ratios are per run, median (min-max).",
        "",
    ]
    if meta.get("quick"):
        lines[-1:] = [
            "--quick: a small month checks that every contender works; imports and start-up weigh "
            "far more than at full size, so these ratios say nothing about the targets.",
            "",
        ]
    month = [(n, label) for n, label in MONTH if n in contenders]
    if month:
        bases = [b for b in MONTH_BASES if b in contenders]
        header = ["month file -> daily parquet", *(f"wall x {b}" for b in bases), "CPU x split", "peak RSS", "rows out"]
        lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for name, label in month:
            entry = contenders[name]
            cells = [_cell(entry[f"wall_x_{b}"], runs) for b in bases]
            cells += [_cell(entry.get("cpu_x_split"), runs), _cell(entry["peak_mb"], runs, " MB", 0), _rows(entry)]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    if "ingest_31" in contenders:
        entry = contenders["ingest_31"]
        text = (
            f"Ingest, {entry['dates']} dates a run: the first date (it splits the month) takes "
            f"{_cell(entry['first_date_x_later'], runs)} a later date's median wall time"
        )
        if "later_date_x_split" in entry:
            text += f"; a later date takes {_cell(entry['later_date_x_split'], runs)} a whole-month split"
        lines += [text + ".", ""]
    pg = [(n, label) for n, label in POSTGRES if n in contenders]
    if pg or {"pg_migrate", "bq_big"} & set(contenders):
        lines += ["| one day into PostgreSQL | wall x psql \\copy | peak RSS | rows |", "|---|---|---|---|"]
        for name, label in pg:
            entry = contenders[name]
            note = ""
            if entry.get("extrapolate_to", entry.get("rows_out")) != entry.get("rows_out"):
                note = f" (sample of {entry['rows_out']:,}, extrapolated to {entry['extrapolate_to']:,})"
            lines.append(
                f"| {label} | {_cell(entry.get('wall_x_pg_copy'), runs)}{note} | "
                f"{_cell(entry.get('peak_mb'), runs, ' MB', 0)} | {_rows(entry)} |"
            )
        for name, label in (
            ("pg_ours", "ours, replacing a loaded day"),
            ("pg_big", "ours, replacing it in the big table"),
        ):
            if "replace_x_pg_copy" in contenders.get(name, {}):
                lines.append(f"| {label} | {_cell(contenders[name]['replace_x_pg_copy'], runs)} | | |")
        if "pg_big" in contenders:
            lines.append(f"| (the big table held {contenders['pg_big']['table_rows']:,} rows) | | | |")
        if "bq_big" in contenders:
            entry = contenders["bq_big"]
            lines.append(
                f"| BigQuery (emulator + bridge): the day into a table of {entry['partitions'] - 1} other days "
                f"({entry['table_rows']:,} rows) / into an empty table | {_cell(entry['big_x_empty'], runs)} | | |"
            )
        if "pg_migrate" in contenders:
            entry = contenders["pg_migrate"]
            per_m = {k: v / (entry["rows_out"] / 1e6) for k, v in entry["wall"].items()}
            lines.append(
                f"| migration 0004 of an unpartitioned table of {entry['rows_out']:,} rows | "
                f"{_cell(per_m, runs, ' s', 1)} per M rows | | |"
            )
        lines.append("")
    if summary["targets"]:
        lines += ["| target | measured | limit | |", "|---|---|---|---|", *_target_rows(summary)]
    return "\n".join(lines)


def _target_rows(summary: dict[str, Any]) -> list[str]:
    rows = []
    for target in summary["targets"]:
        digits = 0 if target["unit"] == " MB" else 2
        met = "met" if target["met"] else "**NOT met**"
        cell = _cell(target, summary["runs"], target["unit"], digits)
        rows.append(f"| {target['target']} | {cell} | {target['limit']:g}{target['unit']} | {met} |")
    return rows


def _rows(entry: dict[str, Any]) -> str:
    if "rows_out" not in entry:
        return "-"
    text = f"{entry['rows_out']:,}"
    if entry.get("rows_rejected") is not None:
        text += f" (+{entry['rows_rejected']:,} rejected)"
    return text


def stack_markdown(result: dict[str, Any], meta: dict[str, Any]) -> str:
    """The `--stack` report: the backfill through the local stack against its in-process floor."""
    floor, backfill, again = result["floor"], result["backfill"], result["again"]
    lines = [
        f"Through the local stack ({meta['service']} 2021-01, {meta['rows']:,} rows, seed {meta['seed']}): "
        "one backfill message, until every date is in BigQuery and Postgres.",
        "",
        "| | wall x floor | |",
        "|---|---|---|",
        f"| floor: split + `psql \\copy` + BigQuery load of the month | 1.00x | split "
        f"{floor['split']['wall'] / floor['wall']:.0%}, copy {floor['pg_copy']['wall'] / floor['wall']:.0%}, "
        f"load {floor['bq_load']['wall'] / floor['wall']:.0%} |",
        f"| the 31-date backfill through the stack | {backfill['wall'] / floor['wall']:.2f}x | "
        f"{backfill['dates']} dates, {backfill['rows']:,} rows; function retries {backfill['function_retries']}, "
        f"failed deliveries {backfill['failed_pushes']}, dead letters {backfill['dead_letters']} |",
        "| where the time went | | "
        + ", ".join(f"{fn} {t['first']:.0f}-{t['last']:.0f} s" for fn, t in backfill["timeline"].items())
        + " |",
        f"| the same backfill again | - | rewritten: {len(again['rewritten'])}; function retries "
        f"{again['function_retries']}, failed deliveries {again['failed_pushes']} (cumulative) |",
    ]
    if "year" in result:
        year = result["year"]
        lines.append(
            f"| a year ({year['year']}, default-size months) | {year['wall'] / floor['wall']:.2f}x | "
            f"{year['dates']} dates, {year['rows']:,} rows, every date equal in the lake, BigQuery "
            f"and Postgres; function retries {year['function_retries']} (cumulative) |"
        )
    target = backfill["wall"] / floor["wall"]
    lines += [
        "",
        "| target (issue #11) | measured | limit | |",
        "|---|---|---|---|",
        f"| 31-date backfill wall / floor | {target:.2f}x | 3x | {'met' if target <= 3 else 'NOT met'} |",
    ]
    return "\n".join(lines)


def all_targets_markdown(summary: dict[str, Any], stack: dict[str, Any]) -> str:
    """`--all`: every target of this one run, the contenders' (median of the rounds) and the stack's."""
    ratio = stack["backfill"]["wall"] / stack["floor"]["wall"]
    met = "met" if ratio <= 3 else "**NOT met**"
    return "\n".join(
        [
            "Every target, this run (`python -m bench --all`):",
            "",
            "| target | measured | limit | |",
            "|---|---|---|---|",
            *_target_rows(summary),
            f"| 31-date backfill through the stack / floor | {ratio:.2f}x | 3x | {met} |",
        ]
    )
