"""Where the month split's time goes: its stages, each measured on top of the ones before it.

The split streams: every batch is inflated, parsed, converted, cleaned, partitioned by date and
encoded while the next is read, on three threads, so no stage can be timed alone inside a split.
Instead one process makes six passes over the same month file, each doing one more stage than
the last, with the project's own code for every stage (shared/ingest):

    decompress   inflate the csv.gz only (month_file's inflater)
    parse        + the CSV reader with every column read as text
    convert      + the typed read (what the split runs: parse and convert in one reader)
    clean        + clean_batch and the month-level rejects, per batch
    encode       + partition by date and encode zstd parquet (split_month, files to /dev/null)
    write        + the files written (split_month into a directory: the split contender's work)
    upload       + the files streamed to fake-gcs-server instead (ingest's staging, BucketOutput)

A stage's cost is its pass minus the pass before (wall and CPU seconds of the process, every
thread). Passes run in one warm process: a split is run untimed first, so imports and
first-call costs land in no stage.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from bench.measure import Clock

STAGES = ("decompress", "parse", "convert", "clean", "encode", "write", "upload")


class _Discard:
    """A SplitOutput whose files go to /dev/null: encoding without the write."""

    def open(self, key: Any) -> Any:
        return open(os.devnull, "wb")

    def commit(self, key: Any, handle: Any) -> None:
        handle.close()

    def abort(self, key: Any, handle: Any) -> None:
        handle.close()


def _read(spec: dict[str, Any], stage: str) -> None:
    from shared.ingest import month_file
    from shared.ingest.cleaning import Rules, clean_batch

    with open(spec["source"], "rb") as handle:
        if stage == "decompress":
            stream = month_file._inflated(handle)
            while stream.read(1 << 20):
                pass
            return
        mapping, batches = month_file.open_batches(
            handle, spec["fmt"], spec["service"], as_text=stage == "parse", malformed=month_file.Malformed()
        )
        for batch in batches:
            if stage == "clean":
                clean_batch(batch, spec["service"], mapping, spec["year"], spec["month"], Rules(), {})


def _split(spec: dict[str, Any], output: Any) -> int:
    from shared.ingest.cleaning import Rules
    from shared.ingest.lake import split_month

    with open(spec["source"], "rb") as handle:
        month = split_month(handle, spec["fmt"], spec["service"], spec["year"], spec["month"], Rules(), output)
    return month.source_rows


def _bucket_output(spec: dict[str, Any]) -> Any:
    from shared.core import clients
    from shared.ingest.split_output import BucketOutput, key_label

    bucket = clients.storage().create_bucket(spec["env"]["LAKE_BUCKET"] + "-stages")
    return BucketOutput(bucket, lambda key: f"staging/stages/{key_label(key)}.parquet")


def stages(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """Every pass's wall and CPU seconds, cumulative, and each stage's share (the difference)."""
    with clock:  # imports and first-call costs (kernels, thread pools), paid before the passes
        import shared  # noqa: F401 - Arrow's allocator, as every entry point

        _split(spec, _Discard())
    out = Path(spec["out"])
    passes: dict[str, dict[str, float]] = {}
    rows = 0
    for stage in STAGES:
        if stage == "upload" and "env" not in spec:
            continue
        if (stage == "decompress" and spec["fmt"] != "csv.gz") or (stage == "parse" and spec["fmt"] == "parquet"):
            continue  # a parquet month (fhvhv) is read typed, page by page: no text parse to separate
        output = _Discard() if stage == "encode" else _bucket_output(spec) if stage == "upload" else None
        if stage == "write":
            from shared.ingest.split_output import DirectoryOutput

            output = DirectoryOutput(out)
        timer = Clock()
        with timer:
            if stage in ("encode", "write", "upload"):
                rows = _split(spec, output)
            else:
                _read(spec, stage)
        passes[stage] = {"wall": timer.wall, "cpu": timer.cpu}
        shutil.rmtree(out, ignore_errors=True)
    return {"rows_in": rows, "passes": passes}


def breakdown(passes: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Cumulative passes -> each stage's own seconds: the pass minus the pass before it. The
    upload pass replaces the write (both follow encode), so it is taken against encode."""
    out: dict[str, dict[str, float]] = {}
    previous: dict[str, float] = {"wall": 0.0, "cpu": 0.0}
    for stage in STAGES:
        if stage not in passes:
            continue
        base = passes["encode"] if stage == "upload" and "encode" in passes else previous
        out[stage] = {k: passes[stage][k] - base[k] for k in ("wall", "cpu")}
        if stage != "upload":
            previous = passes[stage]
    return out


CONTENDERS = {"stages": stages}
