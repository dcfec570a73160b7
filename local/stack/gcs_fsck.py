"""Before fake-gcs-server starts: set aside the object files of uploads it was killed in the middle of.

    python -m local.stack.gcs_fsck GCS_ROOT MOVE_TO     # run by `start_gcs` (local/stack/services.sh)

Why: fake-gcs-server's filesystem backend writes an object in two steps, the file and then its
metadata (the `user.metadata` extended attribute, or a `NAME.metadata` file where the filesystem
has no extended attributes). Killed between the two (chaos's `gcs` fault, a crash, an OOM kill),
it leaves a file with no metadata, and from then on every listing whose prefix covers that file
answers 404 for the whole bucket: the run ledger, the repair and status could never list that
prefix again (chaos seeds 4 and 5, 2026-12-06). Google never acknowledged such an upload, so the
object does not exist; the client that wrote it saw an error and retries. Setting the file aside
(moved under MOVE_TO, the relative path kept, for a person to look at) is what Google's store
would show: nothing. Nothing that has metadata is touched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

XATTR = "user.metadata"
META_SUFFIX = ".metadata"  # the file-based metadata handler's sibling file
BUCKET_META_SUFFIX = ".bucketMetadata"  # per-bucket metadata, beside the bucket's directory


def _has_metadata(path: Path) -> bool:
    try:
        if XATTR in os.listxattr(path):
            return True
    except OSError:  # a filesystem without extended attributes: the file-based handler
        pass
    return path.with_name(path.name + META_SUFFIX).is_file()


def uncommitted(root: Path) -> list[Path]:
    """Object files under each bucket directory of `root` that have no metadata (pure read)."""
    found = []
    for bucket in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for directory, _dirs, files in os.walk(bucket):
            for name in files:
                path = Path(directory) / name
                is_meta_file = name.endswith(META_SUFFIX) and path.with_name(name[: -len(META_SUFFIX)]).is_file()
                if is_meta_file or name.endswith(BUCKET_META_SUFFIX) or _has_metadata(path):
                    continue
                found.append(path)
    return found


def set_aside(root: Path, move_to: Path) -> list[str]:
    """Move every uncommitted object file of `root` under `move_to`; returns their paths under root."""
    moved = []
    for path in uncommitted(root):
        relative = path.relative_to(root)
        target = move_to / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved.append(str(relative))
    return moved


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m local.stack.gcs_fsck GCS_ROOT MOVE_TO", file=sys.stderr)
        return 2
    moved = set_aside(Path(argv[0]), Path(argv[1]))
    for name in moved:
        print(f"gcs_fsck: set aside {name} (written without metadata: an upload killed midway)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
