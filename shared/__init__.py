"""The project's library (see README.md, "Where things are").

One process-wide setting lives here, because it must be made before pyarrow is first
imported, and every entry point imports `shared` first: Arrow's allocator. jemalloc hands
freed pages back to the system sooner than pyarrow's default (mimalloc), and the month
split frees a lot (every batch, every flushed date). Measured with `python -m bench` on a
full month: about 30 MB less peak RSS at the same speed. An ARROW_DEFAULT_MEMORY_POOL set
in the environment wins; a pyarrow without jemalloc warns and keeps its default.
"""

import os
import sys

if "pyarrow" not in sys.modules:
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
