"""A delivery's garbage is freed when the delivery ends, not whenever CPython gets round to it.

Why: the storage client says "absent" by raising NotFound and catching it (`get_blob` of an
object not written yet; the run ledger's first read of a date). The caught exception ends in a
reference cycle (its traceback holds a frame whose locals hold the exception), and a frame holds
its callers' frames, so the cycle keeps every local of the delivery alive after it returned: a
date's partition bytes, its decoded columns. CPython frees cycles only in a full collection,
which comes rarely in a process holding the ~76k objects of its imports. Measured in the process
of `python -m bench --service fhvhv --rows 20000000 --only ingest_31`, its RSS printed after each
date: the ingest instance grew by about 15 MB with every date it published, to a 433 MB peak
against its split's 334 MB; with a collection after each date it stayed at 186-230 MB between dates.

So the function boundary (shared/core/runtime.py) collects after every delivery. What the
instance imported, and what its first delivery left (clients, lazily imported modules), is frozen
(gc.freeze), so a collection walks only what later deliveries made: in an ingest instance a full
collection of everything takes about 15 ms, one after a later date 0.4 ms (30 dates: 11 ms in all).
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()  # functions-framework serves requests on threads (gunicorn gthread, 4 a CPU)
_started = False
_finished = 0


def before_delivery() -> None:
    """Before the first delivery: what the instance imported is long-lived; out of every collection."""
    global _started
    with _lock:
        if not _started:
            _started = True
            gc.collect()
            gc.freeze()


def after_delivery() -> int:
    """Free the delivery's unreachable cycles now; returns how many objects were collected.

    After the first delivery, what survived it is frozen too: the modules it imported lazily and
    the clients it created live as long as the instance (a collection after each of ingest's later
    dates took about 4 ms without this, 0.4 ms with it). Frozen objects are never collected, so this
    happens once: a frozen object that later dies inside a cycle is kept, but only those of
    the first delivery (and of one served beside it), never a growing number."""
    global _finished
    collected = gc.collect()
    with _lock:
        _finished += 1
        if _finished == 1:
            gc.freeze()
    return collected
