"""PostgreSQL connections: Cloud SQL Python Connector in Google Cloud, direct pg8000 locally.

The connector is created lazily on first use and reused for the life of the
instance: one created at import time breaks in Cloud Functions
(cloud-sql-python-connector#830), and one per call repeats the certificate
handshake. `refresh_strategy="lazy"` because a function's CPU is throttled
between invocations, which starves the connector's background refresh.
Authentication is IAM database auth when PG_IAM_AUTH is set (the function's
service account is the database user), else PG_PASSWORD (Secret Manager in
production). With CLOUD_SQL_INSTANCE empty (local stack) a direct pg8000
connection to PG_HOST:PG_PORT is made. After connecting, the code path is one.

Idle connections are kept in a small pool so that a warm instance does not
reconnect per event; a connection that saw an error is closed, never reused, and a pooled
one is checked (SELECT 1) before it is lent again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.core.settings import Settings

POOL_SIZE = 4
_lock = threading.Lock()
_connector: Any = None
_idle: list[Any] = []


def _cloud_sql_connector() -> Any:
    global _connector
    with _lock:
        if _connector is None:
            from google.cloud.sql.connector import Connector

            _connector = Connector(refresh_strategy="lazy")
        return _connector


def connect(settings: Settings, timeout: float | None = 60) -> Any:
    """A new DB-API connection (pg8000), autocommit off. `timeout`: the direct connection's socket
    timeout, which bounds one statement's wait (None for an operator's long migration)."""
    if settings.cloud_sql_instance:
        kwargs: dict[str, Any] = {"user": settings.pg_user, "db": settings.pg_database}
        if settings.pg_iam_auth:
            kwargs["enable_iam_auth"] = True
        else:
            kwargs["password"] = settings.pg_password
        return _cloud_sql_connector().connect(settings.cloud_sql_instance, "pg8000", **kwargs)
    import pg8000.dbapi

    return pg8000.dbapi.connect(
        user=settings.pg_user,
        password=settings.pg_password or None,
        host=settings.pg_host,
        port=settings.pg_port,
        database=settings.pg_database,
        timeout=timeout,
        application_name="taxi-etl",
    )


@contextmanager
def connection(settings: Settings) -> Iterator[Any]:
    """Borrow a connection; it returns to the pool only if the block ended cleanly."""
    key = (settings.cloud_sql_instance, settings.pg_host, settings.pg_port, settings.pg_database, settings.pg_user)
    conn = None
    while conn is None:
        with _lock:
            if not _idle:
                break
            candidate_key, candidate = _idle.pop()
        if candidate_key == key and _alive(candidate):
            conn = candidate
        else:
            _close(candidate)
    if conn is None:
        conn = connect(settings)
    try:
        yield conn
    except BaseException:
        _close(conn)
        raise
    with _lock:
        if len(_idle) < POOL_SIZE:
            _idle.append((key, conn))
            return
    _close(conn)


def _alive(conn: Any) -> bool:
    """A pooled connection survives only what it saw; a server restart (or a connection killed
    by pg_terminate_backend) since then shows here, not in the caller's first statement, which
    once made `status` answer 503 right after a restart."""
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
        conn.rollback()
        return True
    except Exception:  # noqa: BLE001 - any failure means: do not reuse
        return False


def rollback_quietly(conn: Any) -> None:
    """Roll back without masking the error that got us here (the connection may be dead)."""
    try:
        conn.rollback()
    except Exception:  # the pool closes a connection that saw an error
        pass


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # already broken: nothing to release
        pass


def reset() -> None:
    """Close pooled connections (tests, or settings changed)."""
    with _lock:
        while _idle:
            _close(_idle.pop()[1])
