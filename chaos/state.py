"""The final state of a run: what the chaos run compares, read from the destinations themselves.

Why each destination with its own checksum: the question is whether the faulty run ended
exactly where the clean run did, in each place a user reads. Per (service, date) and
destination: the row count and an order-independent checksum of every row (so a row lost,
duplicated or changed shows, and the order rows were written in does not):
- the lake: each `trips/` partition read back, every row hashed with pandas, summed mod 2**64;
- BigQuery: COUNT(*), BIT_XOR and a sum of FARM_FINGERPRINT(TO_JSON_STRING(row));
- Postgres: count(*), bit_xor and a sum of md5(row::text).
Also the bookkeeping a fault could break: the month manifests conserve every source row
(days' rows read + the month's own rejects = the rows the source file has), each date's
trips and rejects objects hold what the manifest says, and nothing is left half-done:
no month claim, no split the manifest does not name, no BigQuery staging table.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from shared.core import paths
from shared.core.schemas import SERVICES

_MASK = (1 << 64) - 1


def lake_checksum(parquet: bytes) -> tuple[int, str]:
    """(rows, checksum) of one partition: pandas' row hashes summed mod 2**64 (order-free)."""
    frame = pq.read_table(io.BytesIO(parquet)).to_pandas()
    hashes = pd.util.hash_pandas_object(frame, index=False)
    return len(frame), f"{int(hashes.sum()) & _MASK:016x}"


def read_lake(bucket: Any, dates: Iterable[tuple[str, dt.date]]) -> dict[str, Any]:
    """Per `service/date`: trips rows and checksum, rows_written and rows_rejected metadata,
    rejects rows; plus the leftovers and the manifests' conservation."""
    wanted = {f"{s}/{d.isoformat()}" for s, d in dates}
    blobs = {blob.name: blob for blob in bucket.list_blobs()}
    days: dict[str, dict[str, Any]] = {}
    for key in sorted(wanted):
        service, day = key.split("/")
        date = dt.date.fromisoformat(day)
        trips = blobs.get(paths.trips_object(service, date))
        entry: dict[str, Any] = {"trips": None}
        if trips is not None:
            rows, checksum = lake_checksum(trips.download_as_bytes())
            meta = trips.metadata or {}
            entry = {
                "trips": rows,
                "checksum": checksum,
                "rows_written": int(meta.get("rows_written", -1)),
                "rows_rejected": int(meta.get("rows_rejected", 0)),
                "rows_read": int(meta.get("rows_read", -1)),
            }
            rejects = blobs.get(paths.rejects_object(service, date))
            entry["rejects"] = (
                pq.ParquetFile(io.BytesIO(rejects.download_as_bytes())).metadata.num_rows if rejects is not None else 0
            )
        days[key] = entry
    return {"days": days, "manifests": _manifests(blobs), "leftovers": _leftovers(blobs)}


def _manifests(blobs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per `service/month`: the manifest's conservation (source rows = days' rows read + month rejects)."""
    out = {}
    for name, blob in blobs.items():
        if not (name.startswith("staging/") and name.endswith("/_manifest.json")):
            continue
        manifest = json.loads(blob.download_as_bytes())
        days = manifest.get("days", {})
        read = sum(int(c["rows_read"]) for c in days.values())
        written = sum(int(c["rows_written"]) for c in days.values())
        rejected = sum(int(c["rows_rejected"]) for c in days.values())
        source_rows, month_rejected = int(manifest["source_rows"]), int(manifest.get("month_rejected_rows", 0))
        month = name.split("/month=", 1)[1].split("/", 1)[0]
        out[f"{manifest['service']}/{month}"] = {
            "source_rows": source_rows,
            "rows_read": read,
            "rows_written": written,
            "rows_rejected": rejected,
            "month_rejected_rows": month_rejected,
            "split_id": manifest.get("split_id"),
            "conserved": read + month_rejected == source_rows and written + rejected == read,
        }
    return out


def _leftovers(blobs: Mapping[str, Any]) -> dict[str, list[str]]:
    """Claims still held, and staging splits no manifest names (a split abandoned half way)."""
    claims = sorted(n for n in blobs if n.startswith("staging/") and n.endswith("/_claim"))
    named = {}
    for name in blobs:
        if name.startswith("staging/") and name.endswith("/_manifest.json"):
            named[name.rsplit("/", 1)[0]] = json.loads(blobs[name].download_as_bytes()).get("split_id")
    orphans: defaultdict[str, int] = defaultdict(int)
    for name in blobs:
        if "/split=" not in name or not name.startswith("staging/"):
            continue
        month_prefix, rest = name.split("/split=", 1)
        split_id = rest.split("/", 1)[0]
        if named.get(month_prefix) != split_id:
            orphans[f"{month_prefix}/split={split_id}"] += 1
    return {"claims": claims, "orphan_splits": sorted(orphans)}


def read_bigquery(client: Any, project: str, dataset: str, services: Iterable[str]) -> dict[str, Any]:
    """Per `service/date`: rows and checksum; and the dataset's staging tables left behind."""
    days: dict[str, dict[str, Any]] = {}
    for service in sorted(set(services)):
        sql = (
            f"SELECT CAST(pickup_date AS STRING) AS d, COUNT(*) AS n, "
            f"BIT_XOR(FARM_FINGERPRINT(TO_JSON_STRING(t))) AS x, "
            f"SUM(MOD(FARM_FINGERPRINT(TO_JSON_STRING(t)), 1000000007)) AS s "
            f"FROM `{project}.{dataset}.{service}_trips` AS t GROUP BY 1"
        )
        try:
            rows = list(client.query(sql).result())
        except Exception as exc:  # noqa: BLE001 - a service never loaded has no table: no rows
            if "not found" in str(exc).lower():
                continue
            raise
        for row in rows:
            days[f"{service}/{row['d']}"] = {"rows": int(row["n"]), "checksum": f"{row['x']}:{row['s']}"}
    staging = {
        t.table_id: t.created.isoformat() if t.created else None
        for t in client.list_tables(f"{project}.{dataset}")
        if t.table_id.startswith("_staging_")
    }
    return {"days": days, "staging_tables": dict(sorted(staging.items()))}


def read_postgres(conn: Any, schema: str, services: Iterable[str]) -> dict[str, Any]:
    """Per `service/date`: rows and checksum; and tables other than the pipeline's own."""
    days: dict[str, dict[str, Any]] = {}
    tables = {  # month partitions are the trips tables' own, not leftovers
        r[0]
        for r in conn.run(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
            s=schema,
        )
    }
    for service in sorted(set(services)):
        if f"{service}_trips" not in tables:
            continue
        rows = conn.run(
            f"SELECT pickup_date::text, count(*), bit_xor(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint), "
            f"sum(('x' || substr(md5(t::text), 17, 8))::bit(32)::bigint) FROM {schema}.{service}_trips AS t GROUP BY 1"
        )
        for day, n, x, s in rows:
            days[f"{service}/{day}"] = {"rows": int(n), "checksum": f"{x}:{s}"}
    expected = {f"{s}_trips" for s in SERVICES} | {"loads", "schema_migrations"}  # the loader makes all three
    return {"days": days, "other_tables": sorted(tables - expected)}


def snapshot(env: Mapping[str, str], dates: list[tuple[str, dt.date]]) -> dict[str, Any]:
    """Everything above for one stack (its env file), the dates of the workload."""
    from shared.core import clients
    from shared.core.settings import Settings

    settings = Settings.from_env(env)
    services = {s for s, _ in dates}
    import pg8000.native

    conn = pg8000.native.Connection(
        user=env["PG_USER"],
        password=env["PG_PASSWORD"],
        host=env["PG_HOST"],
        port=int(env["PG_PORT"]),
        database=env["PG_DATABASE"],
        timeout=120,
    )
    try:
        postgres = read_postgres(conn, settings.pg_schema, services)
    finally:
        conn.close()
    return {
        "lake": read_lake(clients.storage().bucket(settings.lake_bucket), dates),
        "bigquery": read_bigquery(clients.bigquery(), settings.project, settings.bq_dataset, services),
        "postgres": postgres,
    }


def compare(
    model: Mapping[str, Any],
    actual: Mapping[str, Any],
    dates: list[tuple[str, dt.date]],
    faults: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Each date in each destination against the model; the bookkeeping checks of `actual`.
    `faults`: the stack faults of the run, which explain some staging tables (`crash_leftovers`)."""
    differences: list[dict[str, Any]] = []
    for service, day in dates:
        key = f"{service}/{day.isoformat()}"
        pairs = {
            "lake": (_lake_view(model["lake"]["days"].get(key)), _lake_view(actual["lake"]["days"].get(key))),
            "bigquery": (model["bigquery"]["days"].get(key), actual["bigquery"]["days"].get(key)),
            "postgres": (model["postgres"]["days"].get(key), actual["postgres"]["days"].get(key)),
        }
        for where, (want, got) in pairs.items():
            if want != got:
                differences.append({"date": key, "where": where, "model": want, "actual": got})
        lake = actual["lake"]["days"].get(key) or {}
        if lake.get("trips") is not None and (
            lake["trips"] != lake["rows_written"]
            or lake["rejects"] != lake["rows_rejected"]
            or lake["rows_written"] + lake["rows_rejected"] != lake["rows_read"]
        ):
            differences.append({"date": key, "where": "lake_counts", "actual": lake})
    manifests = actual["lake"]["manifests"]
    not_conserved = sorted(k for k, m in manifests.items() if not m["conserved"])
    manifest_diff = sorted(
        k
        for k in set(model["lake"]["manifests"]) | set(manifests)
        if _rows(model["lake"]["manifests"].get(k)) != _rows(manifests.get(k))
    )
    equal_dates = len({f"{s}/{d.isoformat()}" for s, d in dates} - {d["date"] for d in differences})
    crashed, unexplained = _staging_leftovers(actual["bigquery"]["staging_tables"], faults)
    return {
        "dates": len(dates),
        "dates_equal": equal_dates,
        "differences": differences,
        "months_not_conserved": not_conserved,
        "manifests_differing": manifest_diff,
        "leftovers": {
            **actual["lake"]["leftovers"],
            "bigquery_staging_tables": unexplained,
            "postgres_other_tables": actual["postgres"]["other_tables"],
        },
        "crash_leftovers": {"bigquery_staging_tables": crashed},
    }


# A load's staging table lives for seconds; one created this long before the loader was killed or
# the emulator restarted was that load's, which never reached its `finally` to drop it.
CRASH_WINDOW = dt.timedelta(seconds=120)
# Only the emulator's death can leave a staging table: the stack's BigQuery bridge stages each
# decorated load (local/stack/bq_partition.py) and drops the table whatever happens to the caller.
KILLS_A_BIGQUERY_LOAD = ("bigquery",)


def _staging_leftovers(tables: Mapping[str, str | None], faults: Iterable[Mapping[str, Any]]) -> tuple[list, list]:
    """(crash leftovers, the rest). The BigQuery bridge cannot drop its staging table when the
    emulator dies under it (Google Cloud has no such table: the load goes into the partition).
    Any other staging table left behind is a bug."""
    kills = [dt.datetime.fromisoformat(f["at"]) for f in faults if f.get("kind") in KILLS_A_BIGQUERY_LOAD]
    crashed: list[str] = []
    rest: list[str] = []
    for name, created in tables.items():
        made = dt.datetime.fromisoformat(created) if created else None
        explained = made is not None and any(made <= kill <= made + CRASH_WINDOW for kill in kills)
        (crashed if explained else rest).append(name)
    return crashed, rest


def _lake_view(entry: Mapping[str, Any] | None) -> Any:
    return None if not entry or entry.get("trips") is None else (entry["trips"], entry["checksum"], entry["rejects"])


def _rows(manifest: Mapping[str, Any] | None) -> Any:
    return (
        None
        if manifest is None
        else {
            k: manifest[k] for k in ("source_rows", "rows_read", "rows_written", "rows_rejected", "month_rejected_rows")
        }
    )
