"""The month split's stage breakdown (bench/contenders_stages.py), as Markdown.

Each stage's seconds are the difference of two cumulative passes in one round; the table
gives the median over rounds, in CPU seconds (what a 1-vCPU function pays) and as a share
of the whole split's CPU (the `write` pass: the split contender's work).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.contenders_stages import STAGES, breakdown

WHAT = {
    "decompress": "inflate the csv.gz (ISA-L)",
    "parse": "CSV reader, every column as text",
    "convert": "typed read instead (numbers, timestamps)",
    "clean": "clean_batch: names, casts, pickup_date, reject reasons",
    "encode": "partition by date + zstd parquet (to /dev/null)",
    "write": "the daily files written to disk",
    "upload": "instead of write: streamed to fake-gcs-server (ingest's staging)",
}


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median seconds per stage over rounds; shares of the whole split's CPU (the write pass)."""
    per_round = [breakdown(r["passes"]) for r in rounds]
    splits = [r["passes"]["write"]["cpu"] for r in rounds]
    out: dict[str, Any] = {"split_cpu": statistics.median(splits), "stages": {}}
    for stage in STAGES:
        if all(stage in b for b in per_round):
            out["stages"][stage] = {
                "cpu": statistics.median(b[stage]["cpu"] for b in per_round),
                "wall": statistics.median(b[stage]["wall"] for b in per_round),
                "cpu_share": statistics.median(b[stage]["cpu"] / s for b, s in zip(per_round, splits, strict=True)),
            }
    return out


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "Where the month split's time goes (each stage: one more pass over the month than the "
        f"stage before; the split's whole CPU: {summary['split_cpu']:.2f} s, median):",
        "",
        "| stage | what | CPU s | share of the split's CPU | wall s |",
        "|---|---|---|---|---|",
    ]
    for stage, figures in summary["stages"].items():
        lines.append(
            f"| {stage} | {WHAT[stage]} | {figures['cpu']:.2f} | {figures['cpu_share']:.0%} | {figures['wall']:.2f} |"
        )
    return "\n".join(lines)
