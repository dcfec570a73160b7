"""Cloud Functions entry points. One source tree is deployed; each function picks its entry point.

Each entry point is a thin adapter: the work lives in `functions/` (per function)
and `shared/` (the library). See README.md for the message contracts.

Each deployed function imports only its own module. functions-framework sets FUNCTION_TARGET
before it imports this file, so the served function's module is imported here, at the instance's
start, and the others never are. Importing every module made each instance pay for all of them
(google-cloud-bigquery, which the BigQuery loader alone uses, imports pandas): `import main` took
0.67-0.71 CPU-s and 151 MB RSS in every function; now ingest 0.54 s / 103 MB, load_postgres
0.41 s / 96 MB, backfill 0.47 s / 76 MB, load_bigquery 0.70 s / 149 MB (`FUNCTION_TARGET=ingest
python -c "import main"`, measured in the commit that made this change, with shared/core/arrow_pandas.py).
"""

import importlib
import os
import types

import functions_framework

import shared  # noqa: F401 - first: Arrow's allocator is chosen before pyarrow loads

_MODULES = {
    "ingest": "functions.ingest",
    "load_bigquery": "functions.load_bigquery",
    "load_postgres": "functions.load_postgres",
    "backfill": "functions.backfill",
    "backfill_http": "functions.backfill",
    "status": "functions.status",
}


def _function(entry_point: str) -> types.ModuleType:
    """The module behind an entry point, imported on first use (then a dictionary lookup)."""
    return importlib.import_module(_MODULES[entry_point])


if os.environ.get("FUNCTION_TARGET") in _MODULES:
    _function(os.environ["FUNCTION_TARGET"])


@functions_framework.cloud_event
def ingest(cloud_event):
    """Pub/Sub (ingest topic): {"date": "2021-01-15", "service": "yellow"} -> trips/ partition."""
    _function("ingest").handle(cloud_event)


@functions_framework.cloud_event
def load_bigquery(cloud_event):
    """GCS finalize of trips/{service}/pickup_date=D/data.parquet -> replace day D in BigQuery."""
    _function("load_bigquery").handle(cloud_event)


@functions_framework.cloud_event
def load_postgres(cloud_event):
    """GCS finalize of trips/{service}/pickup_date=D/data.parquet -> replace day D in PostgreSQL."""
    _function("load_postgres").handle(cloud_event)


@functions_framework.cloud_event
def backfill(cloud_event):
    """Pub/Sub (backfill topic): {"start": ..., "end": ..., "services": [...]} -> one ingest message per date."""
    _function("backfill").handle(cloud_event)


@functions_framework.http
def backfill_http(request):
    """HTTP: the same backfill request as a JSON body; returns the plan as JSON."""
    return _function("backfill_http").handle_http(request)


@functions_framework.http
def status(request):
    """HTTP: per-date state of the lake, BigQuery and Postgres (JSON, HTML or text)."""
    return _function("status").handle_http(request)
