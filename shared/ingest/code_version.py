"""The version of the code that decides what a month's split contains.

Why: a split is made once per month and reused (shared/ingest/staging.py); when the cleaning
rules, the schemas, the reading or the split change, the month must be split again, and only
then. The version is a hash of those modules as code only, so rewording a docstring or
reformatting changes nothing, while any change to what runs does.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from functools import lru_cache
from pathlib import Path

# The modules whose code decides what the split contains, relative to shared/.
DECIDING_MODULES = ("ingest/cleaning.py", "core/schemas.py", "ingest/month_file.py", "ingest/lake.py")


def code_text(source: str) -> str:
    """The source as code only: comments, docstrings and layout dropped (ast.unparse), so
    editing an explanation does not count as a change to what the output contains."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            setattr(node, "body", body[1:] or [ast.Pass()])  # noqa: B010 - any node with a body
    return ast.unparse(tree)


_CODE_VERSION_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the code that decides what the output contains: a change re-derives outputs.
    Computed under a lock: lru_cache does not stop concurrent first calls, and `ast.parse` in
    several threads at once raised SystemError (recursion depth mismatch) on Python 3.11."""
    with _CODE_VERSION_LOCK:
        digest = hashlib.sha256()
        library = Path(__file__).parents[1]  # shared/
        for name in DECIDING_MODULES:
            digest.update(code_text((library / name).read_text()).encode())
        return digest.hexdigest()[:16]
