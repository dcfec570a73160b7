"""Where the local stack sees a function's calls: the client boundary, inside the calling process.

Locally every function uses anonymous credentials, so no request says who makes it; the caller is
known only where the call starts. Two places see every call the functions make to Google APIs:
- HTTP (Cloud Storage, BigQuery): google-cloud-storage and google-cloud-bigquery send every request,
  uploads and downloads included, through google-auth's `AuthorizedSession.request`. The hook maps the
  request to its API method and resource (iam_requests.py), decides (iam_enforce.py), and on a denial
  answers with Google's 403 without sending it: the client library raises `Forbidden` as in Google Cloud.
- Pub/Sub (gRPC): `PublisherClient.publish` is the one Pub/Sub call the functions make
  (shared/core/runtime.py dead letters, shared/operate/backfill.py). A denied publish returns a future
  failed with `PermissionDenied` ("User not authorized to perform this action."), as Google's does.

Who calls: a served function's process is that function (`python -m local.stack.iam_hooks NAME --
functions-framework args`, as local/stack/services.sh starts them). The test process runs several
functions' handlers in-process, so `install_for_tests` wraps each entry point of `functions/` to set
the function in a context variable, which follows the work into threads the handler starts
(`threading.Thread.start` and `ThreadPoolExecutor.submit` carry the context). A call made outside any
function (the tests' own setup and assertions, the push relay, gcloud) is nobody's and is not checked.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import dataclasses
import functools
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from local.stack import iam_enforce
from local.stack.iam_requests import Call, call_for

_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("taxi_iam_function", default=None)
_process_function: str | None = None
_installed = False

# functions/ module -> entry point -> the deployed function (and service account) it runs as.
ENTRY_POINTS = {
    "functions.ingest": {"handle": "ingest"},
    "functions.load_bigquery": {"handle": "load_bigquery"},
    "functions.load_postgres": {"handle": "load_postgres"},
    "functions.backfill": {"handle": "backfill", "handle_http": "backfill_http"},
    "functions.status": {"handle_http": "status"},
}


def current_function() -> str | None:
    return _function.get() or _process_function


def _object_exists(bucket: str, name: str) -> bool:
    """Straight to the emulator (no hook): whether an upload would replace an object."""
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").rstrip("/")
    if not host:
        return False
    url = f"{host}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=10):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


METADATA_CACHE = (
    "google-cloud-storage's bucket metadata cache fetches the bucket in a background thread and, on 403, "
    "caches a fallback for good (google/cloud/storage/_bucket_metadata_cache.py): Google refuses it too, "
    "and nothing depends on it"
)


def _from_metadata_cache() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.endswith("_bucket_metadata_cache.py"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _forbidden(method: str, url: str, decision: iam_enforce.Decision) -> Any:
    import requests

    response = requests.Response()
    response.status_code = 403
    response.reason = "Forbidden"
    response._content = json.dumps(iam_enforce.error_body(decision)).encode()
    response.headers["Content-Type"] = "application/json; charset=UTF-8"
    response.url = url
    response.encoding = "utf-8"
    response.request = requests.Request(method, url).prepare()
    return response


def _hook_http() -> None:
    from google.auth.transport.requests import AuthorizedSession

    original = AuthorizedSession.request

    @functools.wraps(original)
    def request(self: Any, method: str, url: str, data: Any = None, *args: Any, **kwargs: Any) -> Any:
        function = current_function()
        if function is not None and iam_enforce.mode() != "off":
            call = call_for(method, url, data if data is not None else kwargs.get("json"), _object_exists)
            if call is not None and call.method == "storage.buckets.get" and _from_metadata_cache():
                call = dataclasses.replace(call, tolerated=METADATA_CACHE)
            if call is not None and (denied := iam_enforce.check(function, call)):
                return _forbidden(method, url, denied)
        return original(self, method, url, data, *args, **kwargs)

    AuthorizedSession.request = request  # type: ignore[method-assign]


def _hook_publish() -> None:
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.publisher import futures

    original = pubsub_v1.PublisherClient.publish

    @functools.wraps(original)
    def publish(self: Any, topic: str, data: bytes, *args: Any, **kwargs: Any) -> Any:
        function = current_function()
        if function is not None and iam_enforce.mode() != "off":
            call = Call("pubsub.projects.topics.publish", topic, (("pubsub.topics.publish", topic),))
            if denied := iam_enforce.check(function, call):
                future = futures.Future()
                future.set_exception(
                    gexc.PermissionDenied(f"User not authorized to perform this action. {denied.explain()}")
                )
                return future
        return original(self, topic, data, *args, **kwargs)

    pubsub_v1.PublisherClient.publish = publish  # type: ignore[method-assign]


def install(function: str | None = None) -> None:
    """Hook the clients in this process; `function`: the process runs only that function."""
    global _installed, _process_function
    if function is not None:
        _process_function = function
    if _installed:
        return
    iam_enforce.mode()  # a wrong TAXI_IAM fails at start, naming the variable
    _hook_http()
    _hook_publish()
    _installed = True


def _carry_context() -> None:
    """Threads started and pool tasks submitted inside a handler run as its function."""
    start, submit = threading.Thread.start, concurrent.futures.ThreadPoolExecutor.submit

    def thread_start(self: threading.Thread) -> None:
        if _function.get() is not None:
            run, context = self.run, contextvars.copy_context()
            self.run = lambda: context.run(run)  # type: ignore[method-assign]
        start(self)

    def pool_submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if _function.get() is not None:
            return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)
        return submit(self, fn, *args, **kwargs)

    threading.Thread.start = thread_start  # type: ignore[method-assign]
    concurrent.futures.ThreadPoolExecutor.submit = pool_submit  # type: ignore[method-assign]


def as_function(function: str, entry: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(entry)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = _function.set(function)
        try:
            return entry(*args, **kwargs)
        finally:
            _function.reset(token)

    run.__wrapped_function__ = function  # type: ignore[attr-defined]
    return run


def install_for_tests() -> None:
    """The test process: each entry point of functions/ runs as its deployed function."""
    import importlib

    install()
    if getattr(install_for_tests, "done", False):
        return
    _carry_context()
    for module_name, entries in ENTRY_POINTS.items():
        module = importlib.import_module(module_name)
        for attribute, function in entries.items():
            setattr(module, attribute, as_function(function, getattr(module, attribute)))
    install_for_tests.done = True  # type: ignore[attr-defined]


def main(argv: list[str]) -> None:
    """`python -m local.stack.iam_hooks FUNCTION -- functions-framework arguments`."""
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit("usage: python -m local.stack.iam_hooks FUNCTION -- FUNCTIONS-FRAMEWORK-ARGS")
    install(argv[0])
    from functions_framework._cli import _cli

    _cli.main(args=argv[2:], prog_name="functions-framework")


if __name__ == "__main__":
    main(sys.argv[1:])
