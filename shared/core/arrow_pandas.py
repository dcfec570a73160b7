"""pyarrow without pandas: the project converts Python values to Arrow everywhere and never uses pandas.

Why: the first time pyarrow converts a Python value (`pa.scalar(0)`, `pc.equal(x, 0)`,
`pa.array([...])`) it imports pandas, only to recognise pandas objects among its inputs. The
project never passes one, yet that import cost every ingest and loader instance about 45 MB of
RSS and 0.24 CPU-s on its first batch (the month split of a 2 M-row fhvhv month: peak 301-310 MB
with it, 262-272 MB without; measured in the commit that added this module).

pyarrow asks once and remembers the answer, so this module answers it "no pandas" before any
conversion: it refuses the import to that one probe, then steps aside. An explicit use of pandas
still works (`table.to_pandas()` imports pandas itself and pyarrow then uses it), and a process
that already imported pandas (a library that imports it eagerly) is left as it is.

Imported by shared/core/columns.py, which every module that converts values imports, so the
probe is settled first. It relies on how pyarrow's pandas shim behaves (checked with pyarrow 26):
tests/unit/test_arrow_pandas.py fails if the split or a load imports pandas again.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import pyarrow as pa


class _RefusePandas(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> Any:
        if fullname == "pandas":
            raise ModuleNotFoundError("pandas is not imported for pyarrow's probe", name=fullname)
        return None


def settle_probe() -> bool:
    """Answer pyarrow's pandas probe "absent", unless pandas is loaded already; True if answered."""
    if "pandas" in sys.modules:
        return False
    refuse = _RefusePandas()
    sys.meta_path.insert(0, refuse)
    try:
        pa.scalar(0)  # the first conversion: pyarrow probes for pandas here, and remembers
    finally:
        sys.meta_path.remove(refuse)
    return True


settle_probe()
