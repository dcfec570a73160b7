"""Google Cloud clients, created lazily on first use and reused across invocations.

Creating clients at import time slows cold starts and breaks in environments
without credentials (unit tests); creating them per call wastes connections.
Emulators are honoured: STORAGE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST are read
by the client libraries themselves, BIGQUERY_EMULATOR_HOST here.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from shared.core.settings import get_settings


def _project() -> str:
    # get_settings() with no function requires only what every function has (GCP_PROJECT, ...).
    return get_settings().project


def _bq_location() -> str:
    return get_settings().bq_location


@lru_cache(maxsize=1)
def storage() -> Any:
    return storage_client(_project())


def storage_client(project: str | None) -> Any:
    """The one place Cloud Storage is switched to the emulator: the library reads the endpoint
    from STORAGE_EMULATOR_HOST itself; the emulator takes no credentials (there are none locally)."""
    from google.cloud import storage as gcs

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        client = gcs.Client(project=project or "local", credentials=AnonymousCredentials())
    else:
        client = gcs.Client(project=project)
    _no_environment_lookups(client._http)
    _no_bucket_lookups(client)
    return client


def _no_bucket_lookups(client: Any) -> None:
    """google-cloud-storage (3.17) looks the bucket up (`buckets.get`, on a background thread)
    on a client's first request, to label trace spans, and again after every 404 once it knows
    the bucket, even with tracing off. The functions' service accounts hold object roles only
    (infra/terraform/iam.tf: no storage.buckets.get), so in Google Cloud each lookup is a request
    refused with 403, one or two for every date ingest publishes (a 404 is how `get_blob` says
    "absent"), and a permission-denied entry wherever Data Access audit logs are on for Cloud
    Storage (off by default). Nothing here reads those labels. (Checked against a local server by
    tests/unit/test_clients_storage.py, which fails if the library starts looking again.)"""
    if getattr(client, "_bucket_metadata_cache", None) is not None:
        client._bucket_metadata_cache = None


def _no_environment_lookups(session: Any) -> None:
    """A requests session that trusts the environment looks up proxy variables (scanning the
    whole environment, twice), a CA bundle variable and ~/.netrc on every request; profiled on a
    month's 30 later dates through ingest, about a tenth of their CPU. A function's environment
    does not change while it runs, so it is read once here: with no proxy variable set, the
    session stops looking and keeps the CA bundle the environment names (as requests would apply
    it); with a proxy set, nothing changes. (A ~/.netrc entry would only have replaced the
    OAuth header with a password.)"""
    import urllib.request

    if urllib.request.getproxies():
        return
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    session.trust_env = False


@lru_cache(maxsize=1)
def publisher() -> Any:
    from google.cloud import pubsub_v1

    # Batching: a backfill fans out thousands of small messages; send them in bulk.
    batch = pubsub_v1.types.BatchSettings(max_messages=500, max_bytes=1_000_000, max_latency=0.05)
    return pubsub_v1.PublisherClient(batch_settings=batch)


def topic_path(topic: str, project: str | None = None) -> str:
    """Accept a bare topic id or a full `projects/p/topics/t` name."""
    return topic if topic.startswith("projects/") else f"projects/{project or _project()}/topics/{topic}"


@lru_cache(maxsize=1)
def bigquery() -> Any:
    from google.cloud import bigquery as bq

    endpoint = os.environ.get("BIGQUERY_EMULATOR_HOST")
    if endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        if not endpoint.startswith("http"):
            endpoint = f"http://{endpoint}"
        return bq.Client(
            project=_project(),
            location=_bq_location(),
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    return bq.Client(project=_project(), location=_bq_location())


def reset() -> None:
    """Forget cached clients (tests that change the environment)."""
    for factory in (storage, publisher, bigquery):
        factory.cache_clear()
    get_settings.cache_clear()
