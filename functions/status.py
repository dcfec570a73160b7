"""`status` (HTTP): per date, the rows in the lake, BigQuery and Postgres, and a state.

`GET /?service=yellow&start=2021-01-01&end=2021-01-31&format=json|html|text`
(or the same keys as a POSTed JSON body). Inputs are validated as strictly as
the message contracts and the range is bounded by BACKFILL_MAX_DATES; a bad
request is a structured 400, an unreachable destination a 503 (the truth
cannot be told without it, so no partial answer is given).
"""

from __future__ import annotations

import time
from typing import Any

from shared.core import logs
from shared.core.errors import ConfigError
from shared.core.messages import request_fields
from shared.core.runtime import http_error_response
from shared.core.settings import STATUS, get_settings
from shared.operate.status_page import render_html, render_text
from shared.operate.status_reads import report
from shared.operate.status_request import parse_status_request

CONTENT_TYPES = {"html": "text/html; charset=utf-8", "text": "text/plain; charset=utf-8"}


def handle_http(request: Any) -> Any:
    started = time.perf_counter()
    try:
        settings = get_settings(STATUS)
        logs.set_level(settings.log_level)
        wanted = parse_status_request(request_fields(request), settings.backfill_max_dates)
        result = report(wanted.service, wanted.start, wanted.end, settings)
    except Exception as exc:  # the HTTP boundary: every failure becomes a structured response
        body, status = http_error_response(STATUS, exc)
        return body, 500 if isinstance(exc, ConfigError) else status
    logs.info(
        "status read",
        function=STATUS,
        service=wanted.service,
        start=wanted.start,
        end=wanted.end,
        format=wanted.format,
        seconds=round(time.perf_counter() - started, 3),
        **result.summary(),
    )
    headers = {"Cache-Control": "no-store"}
    if wanted.format == "html":
        return render_html(result), 200, {**headers, "Content-Type": CONTENT_TYPES["html"]}
    if wanted.format == "text":
        return render_text(result), 200, {**headers, "Content-Type": CONTENT_TYPES["text"]}
    return result.as_dict(), 200, headers
