"""Cloud Functions entry points. One source tree is deployed; each function picks its entry point.

Each entry point is a thin adapter: the work lives in `functions/` (per function)
and `shared/` (the library). See README.md for the message contracts.
"""

import functions_framework

from functions import backfill as _backfill
from functions import ingest as _ingest
from functions import load_bigquery as _load_bigquery
from functions import load_postgres as _load_postgres
from functions import status as _status


@functions_framework.cloud_event
def ingest(cloud_event):
    """Pub/Sub (ingest topic): {"date": "2021-01-15", "service": "yellow"} -> trips/ partition."""
    _ingest.handle(cloud_event)


@functions_framework.cloud_event
def load_bigquery(cloud_event):
    """GCS finalize of trips/{service}/pickup_date=D/data.parquet -> replace day D in BigQuery."""
    _load_bigquery.handle(cloud_event)


@functions_framework.cloud_event
def load_postgres(cloud_event):
    """GCS finalize of trips/{service}/pickup_date=D/data.parquet -> replace day D in PostgreSQL."""
    _load_postgres.handle(cloud_event)


@functions_framework.cloud_event
def backfill(cloud_event):
    """Pub/Sub (backfill topic): {"start": ..., "end": ..., "services": [...]} -> one ingest message per date."""
    _backfill.handle(cloud_event)


@functions_framework.http
def backfill_http(request):
    """HTTP: the same backfill request as a JSON body; returns the plan as JSON."""
    return _backfill.handle_http(request)


@functions_framework.http
def status(request):
    """HTTP: per-date state of the lake, BigQuery and Postgres (JSON, HTML or text)."""
    return _status.handle_http(request)
