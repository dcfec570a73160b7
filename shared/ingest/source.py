"""The TLC month file: its URL, and a streamed, verified, retried download into `raw/`.

The URL comes only from the operator's SOURCE_URL_TEMPLATE and the validated
(service, year, month): a message can never choose what is downloaded. The body
is streamed from HTTP straight into a GCS resumable upload in chunks (never held
whole in memory), its first bytes are checked against the format the URL names
(an HTML error page served with a 200 is refused before it lands in the lake),
and its length against Content-Length (a cut connection is retried, not kept).
"""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Iterator
from typing import Any

import requests

from shared.core import logs
from shared.core.errors import SourceError, TransientError

CHUNK = 1 << 20
FORMATS = {".csv.gz": "csv.gz", ".csv": "csv", ".parquet": "parquet"}
_MAGIC = {"csv.gz": b"\x1f\x8b", "parquet": b"PAR1"}
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
NOT_A_PREFIX = "not_a_"  # the reasons of a body that is not the promised format


# What identifies one version of a month file at the source, from its HTTP headers: a failed month
# is remembered until the source serves another version (shared/ingest/month_failure.py).
IDENTITY_HEADERS = {"ETag": "source_etag", "Last-Modified": "source_last_modified", "Content-Length": "source_size"}


def identity(headers: Any) -> dict[str, str]:
    """The source file's identity (ETag, Last-Modified, size) from a response's headers; absent ones left out."""
    return {key: str(headers[name]) for name, key in IDENTITY_HEADERS.items() if headers.get(name)}


def head_identity(url: str, timeout: int, session: requests.Session | None = None) -> dict[str, str] | None:
    """The source file's identity now, by one HEAD (no download): {} when it is gone (404), None
    when the source will not tell (HEAD refused: the caller keeps what it knew). A network error
    or a 5xx is transient: the date is retried rather than judged on a guess."""
    try:
        response = (session or requests.Session()).head(url, allow_redirects=True, timeout=timeout)
    except requests.RequestException as exc:
        raise TransientError(f"HEAD {url} failed: {exc}", reason="source_unavailable") from exc
    if response.status_code in _RETRY_STATUS:
        raise TransientError(f"HEAD {url} answered {response.status_code}", reason="source_unavailable")
    if response.status_code == 404:
        return {}
    return identity(response.headers) if response.status_code == 200 else None


def source_url(template: str, service: str, year: int, month: int) -> str:
    return template.format(service=service, year=year, month=month)


def source_format(url: str) -> str:
    path = url.split("?", 1)[0].lower()
    for suffix, fmt in FORMATS.items():
        if path.endswith(suffix):
            return fmt
    raise SourceError(
        "source URL must end in .csv.gz, .csv or .parquet",
        reason="bad_source_url",
        field="SOURCE_URL_TEMPLATE",
        value=url,
    )


def check_magic(fmt: str, head: bytes, url: str) -> None:
    """Refuse bodies that cannot be the promised format (HTML error pages, JSON errors)."""
    expected = _MAGIC.get(fmt)
    if expected is not None and not head.startswith(expected):
        raise SourceError(
            f"{url} is not a {fmt} file (starts with {head[:40]!r})",
            reason=NOT_A_PREFIX + fmt.replace(".", "_"),
            field="source",
            value=url,
        )
    if fmt == "csv" and head.lstrip()[:1] in (b"<", b"{"):
        raise SourceError(
            f"{url} is not a CSV file (starts with {head[:40]!r})",
            reason=NOT_A_PREFIX + "csv",
            field="source",
            value=url,
        )


class _VerifiedBody(io.RawIOBase):
    """A read-only file over an HTTP response: checks magic bytes and the final length."""

    def __init__(self, response: requests.Response, fmt: str, url: str) -> None:
        self._chunks: Iterator[bytes] = response.iter_content(CHUNK)
        self._buffer = b""
        self._fmt, self._url = fmt, url
        self._expected = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
        self.bytes_read = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """Resumable uploads ask where the stream is; it is never rewound (a retry re-downloads)."""
        return self.bytes_read

    def readinto(self, target) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                if self._expected is not None and self.bytes_read != self._expected:
                    raise TransientError(
                        f"download of {self._url} ended after {self.bytes_read} of {self._expected} bytes",
                        reason="truncated_download",
                    ) from None
                return 0
            if not self._checked:
                check_magic(self._fmt, self._buffer, self._url)
                self._checked = True
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        self.bytes_read += size
        return size


def download_to_blob(
    url: str,
    blob,
    *,
    timeout: int,
    attempts: int,
    if_generation_match: int | None = None,
    session: requests.Session | None = None,
) -> int:
    """Stream `url` into `blob` with bounded retries and exponential backoff; returns bytes.

    Retried: 408/425/429/5xx, connection errors, timeouts, a cut body, and a body that is not the
    promised format (an error page served with 200 by a CDN or a rate limiter is usually gone a
    moment later; `python -m chaos` showed one such page dead-lettering a date). Not retried: 404
    and other refusals. When every attempt got an error page, that SourceError is raised: the
    source really serves something else."""
    fmt = source_format(url)
    http = session or requests.Session()
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            with http.get(url, stream=True, timeout=(min(timeout, 10), timeout)) as response:
                if response.status_code == 404:
                    raise SourceError(
                        f"{url} does not exist (404): month not published yet?",
                        reason="source_not_found",
                        field="source",
                        value=url,
                    )
                if response.status_code in _RETRY_STATUS:
                    raise TransientError(
                        f"{url} answered {response.status_code}",
                        reason="source_unavailable",
                        status=response.status_code,
                    )
                if response.status_code != 200:
                    raise SourceError(
                        f"{url} answered {response.status_code}",
                        reason="source_refused",
                        field="source",
                        value=url,
                        status=response.status_code,
                    )
                body = _VerifiedBody(response, fmt, url)
                blob.metadata = {**(blob.metadata or {}), **identity(response.headers)}
                blob.upload_from_file(
                    io.BufferedReader(body, CHUNK),
                    content_type="application/octet-stream",
                    if_generation_match=if_generation_match,
                )
                return body.bytes_read
        except SourceError as exc:
            if not exc.reason.startswith(NOT_A_PREFIX):
                raise
            last = exc
        except (TransientError, requests.RequestException) as exc:
            last = exc
        if attempt < attempts:
            delay = min(2 ** (attempt - 1), 30)
            logs.warning(
                "download failed, retrying", url=url, attempt=attempt, retry_in_seconds=delay, error=str(last)[:300]
            )
            time.sleep(delay)
    if isinstance(last, SourceError):
        raise last
    raise TransientError(f"download of {url} failed after {attempts} attempts: {last}", reason="download_failed")


UPLOAD_CHUNK = 8 << 20  # resumable upload chunk: bounds memory while streaming the download


def download_raw(bucket: Any, name: str, url: str, timeout: int, attempts: int) -> Any:
    """The month file downloaded to its raw copy `name` (create-only: of two instances racing on
    one month, one copy is kept and reused); returns the raw copy's blob."""
    from google.api_core.exceptions import PreconditionFailed

    new = bucket.blob(name, chunk_size=UPLOAD_CHUNK)
    new.metadata = {"source_url": url, "downloaded_at": dt.datetime.now(dt.UTC).isoformat()}
    try:
        download_to_blob(url, new, timeout=timeout, attempts=attempts, if_generation_match=0)
    except PreconditionFailed:
        logs.info("raw copy written concurrently by another instance; reusing it", object=name)
    return bucket.get_blob(name)
