"""The parent snapshot's files by path, on disk: what a backup of a tree compares against.

A parent of millions of files does not fit in memory, and its entries come from the manager in
pages in the catalog's order, not in the order the walk finds files. So they go into a SQLite
database in a temp directory (removed on close), one row per file, and each file the walk finds
is looked up by its path.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cofre.cli.tree import LocalEntry, unchanged
from cofre.models import ChunkHash, ChunkRef


@dataclass(frozen=True, slots=True)
class ParentFile:
    """A file as the parent snapshot recorded it."""

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    chunks: tuple[ChunkRef, ...]


class ParentIndex:
    """The parent's files by path; empty when there is no parent."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="cofre-parent-")
        self._db = sqlite3.connect(Path(self._dir) / "parent.db", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE files (path TEXT PRIMARY KEY, size INT, mtime_ns INT, ctime_ns INT,"
            " inode INT, chunks TEXT) WITHOUT ROWID"
        )
        self.files = 0

    def add(self, files: Iterable[ParentFile]) -> None:
        rows = [
            (
                f.path,
                f.size,
                f.mtime_ns,
                f.ctime_ns,
                f.inode,
                json.dumps([[c.hash, c.length] for c in f.chunks], separators=(",", ":")),
            )
            for f in files
        ]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.files += len(rows)

    def knows(self, path: str) -> bool:
        """Whether the parent has a file at ``path`` (a file read now is changed, not new)."""
        if not self.files:
            return False
        row = self._db.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone()
        return row is not None

    def reusable(self, entry: LocalEntry) -> tuple[ChunkRef, ...] | None:
        """The parent's chunk list for ``entry`` if the file is unchanged since (same size,
        mtime, ctime and inode), else None: it has to be read."""
        if entry.kind != "file" or not self.files:
            return None
        row = self._db.execute(
            "SELECT size, mtime_ns, ctime_ns, inode, chunks FROM files WHERE path = ?",
            (entry.path,),
        ).fetchone()
        if row is None:
            return None
        size, mtime_ns, ctime_ns, inode, chunks = row
        if not unchanged(entry, size=size, mtime_ns=mtime_ns, ctime_ns=ctime_ns, inode=inode):
            return None
        refs = tuple(ChunkRef(ChunkHash(h), n) for h, n in json.loads(chunks))
        if sum(r.length for r in refs) != entry.size:
            return None  # a record that does not add up is not trusted
        return refs

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ParentIndex:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
