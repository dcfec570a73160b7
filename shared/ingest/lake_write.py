"""Finished files into the lake bucket: parquet bytes, and uploads that carry their metadata.

Why one place: every object the pipeline writes says what it holds in its custom metadata
(rows, the split and code that made it), stored as strings as GCS requires, and a write
that must not replace a newer object is conditioned on the generation it expects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.ingest.split_output import PARQUET_TYPE

COMPRESSION = "zstd"


def parquet_bytes(table: pa.Table) -> pa.Buffer:
    """zstd parquet, one row group for the whole table (a day fits comfortably)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=COMPRESSION, row_group_size=max(table.num_rows, 1))
    return sink.getvalue()


def upload_bytes(
    bucket: Any,
    name: str,
    data: bytes | pa.Buffer,
    metadata: Mapping[str, Any] | None = None,
    if_generation_match: int | None = None,
    content_type: str = PARQUET_TYPE,
) -> Any:
    """Upload finished bytes (parquet unless said); metadata values that are not strings are stored as JSON."""
    blob = bucket.blob(name)
    blob.metadata = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()} or None
    payload = data.to_pybytes() if isinstance(data, pa.Buffer) else data
    blob.upload_from_string(payload, content_type=content_type, if_generation_match=if_generation_match)
    return blob


def upload_parquet(
    bucket: Any, name: str, table: pa.Table, metadata: Mapping[str, Any], if_generation_match: int | None = None
) -> Any:
    return upload_bytes(bucket, name, parquet_bytes(table), metadata, if_generation_match)
