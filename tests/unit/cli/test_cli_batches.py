"""Grouping files into batches, for backup and for restore."""

from __future__ import annotations

from pathlib import Path

from cofre.cli import batch_download, batch_upload
from cofre.cli.batch_upload import SmallFile


def test_upload_batches_respect_file_and_byte_limits() -> None:
    many = [SmallFile(Path(f"f{i}"), f"f{i}", 10) for i in range(batch_upload.BATCH_FILES * 2 + 1)]
    sizes = [len(b) for b in batch_upload.plan_batches(many)]
    assert sizes == [batch_upload.BATCH_FILES, batch_upload.BATCH_FILES, 1]
    half = batch_upload.BATCH_BYTES // 2
    big = [SmallFile(Path(f"b{i}"), f"b{i}", half) for i in range(5)]
    assert [len(b) for b in batch_upload.plan_batches(big)] == [2, 2, 1]
    assert batch_upload.plan_batches([]) == []
    # Every file lands in exactly one batch, in order.
    flat = [f for b in batch_upload.plan_batches(many + big) for f in b]
    assert flat == many + big


def test_restore_batches_respect_file_and_byte_limits() -> None:
    files = [(f"n{i}", 1) for i in range(batch_download.BATCH_FILES + 3)]
    assert [len(b) for b in batch_download.plan_batches(files)] == [batch_download.BATCH_FILES, 3]
    third = batch_download.BATCH_BYTES // 3
    assert [len(b) for b in batch_download.plan_batches([("a", third)] * 4)] == [3, 1]
