"""local/stack/gcs_fsck.py on plain files: only object files without metadata are set aside."""

from __future__ import annotations

import os
from pathlib import Path

from local.stack import gcs_fsck


def _object(path: Path, body: str = "{}", xattr: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    if xattr:
        os.setxattr(path, gcs_fsck.XATTR, b'{"ContentType":"application/json"}')
    return path


def test_an_object_written_without_its_metadata_is_set_aside_and_nothing_else(tmp_path):
    root, away = tmp_path / "gcs", tmp_path / "uncommitted"
    kept = _object(root / "lake" / "runs" / "yellow" / "a.json")
    orphan = _object(root / "lake" / "runs" / "yellow" / "b.json", "partial", xattr=False)
    file_meta = _object(root / "lake" / "trips" / "x.parquet", xattr=False)
    (file_meta.parent / "x.parquet.metadata").write_text("{}")  # the handler without extended attributes
    (root / "lake.bucketMetadata").write_text("{}")  # a bucket's own metadata, beside its directory

    assert gcs_fsck.uncommitted(root) == [orphan]
    assert gcs_fsck.set_aside(root, away) == ["lake/runs/yellow/b.json"]

    assert not orphan.exists() and (away / "lake" / "runs" / "yellow" / "b.json").read_text() == "partial"
    assert kept.exists() and file_meta.exists() and (file_meta.parent / "x.parquet.metadata").exists()
    assert (root / "lake.bucketMetadata").exists()
    assert gcs_fsck.set_aside(root, away) == []  # a second start finds nothing


def test_a_missing_root_is_nothing_to_do(tmp_path):
    assert gcs_fsck.set_aside(tmp_path / "absent", tmp_path / "away") == []
