"""Walking the directories of a tree snapshot: what `cofre put DIR` records.

Regular files, directories (empty ones too) and symlinks (kept as links, never followed, their
target recorded) become entries; fifos, sockets and devices are skipped with one warning each.
Every entry carries its mode, mtime (ns) and owner, and a file also what tells an unchanged file
from a changed one without reading it (size, mtime, ctime, inode, device: restic's rule).

Paths in a snapshot are '/'-separated and relative: a source is recorded by its absolute path
without the leading '/' (as restic records it), so every path restores under a target, and two
backups of the same directory from different working directories are the same tree.
Entries come out depth first, children in name order, each directory before its content.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from cofre.cli.exitcodes import LocalFileError
from cofre.models import name_problem

EntryKind = Literal["file", "dir", "symlink"]
Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """One thing found in a tree, as its lstat saw it."""

    path: str  # in the snapshot: relative, '/'-separated
    source: str  # where it is on this machine
    kind: EntryKind
    mode: int  # permission bits, setuid/setgid/sticky included (S_IMODE)
    mtime_ns: int
    uid: int
    gid: int
    size: int = 0  # files only
    ctime_ns: int = 0
    inode: int = 0
    device: int = 0
    target: str | None = None  # symlinks only


def snapshot_path(source: str) -> str:
    """The path a source is recorded under: its absolute path without the leading '/'
    (``/srv/data/`` -> ``srv/data``; ``photos`` in /home/u -> ``home/u/photos``)."""
    return os.path.abspath(source).lstrip("/")


def entry_of(path: str, source: str, st: os.stat_result) -> LocalEntry | None:
    """The entry of what ``st`` (an lstat) describes; None for anything that is not a regular
    file, directory or symlink."""
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        kind: EntryKind = "file"
    elif stat.S_ISDIR(st.st_mode):
        kind = "dir"
    elif stat.S_ISLNK(st.st_mode):
        kind = "symlink"
    else:
        return None
    is_file = kind == "file"
    return LocalEntry(
        path=path,
        source=source,
        kind=kind,
        mode=mode,
        mtime_ns=st.st_mtime_ns,
        uid=st.st_uid,
        gid=st.st_gid,
        size=st.st_size if is_file else 0,
        ctime_ns=st.st_ctime_ns if is_file else 0,
        inode=st.st_ino if is_file else 0,
        device=st.st_dev if is_file else 0,
        target=os.readlink(source) if kind == "symlink" else None,
    )


def _special(st: os.stat_result) -> str:
    m = st.st_mode
    if stat.S_ISFIFO(m):
        return "a fifo"
    if stat.S_ISSOCK(m):
        return "a socket"
    if stat.S_ISCHR(m):
        return "a character device"
    if stat.S_ISBLK(m):
        return "a block device"
    return "not a file, directory or symlink"


def _problem(path: str, target: str | None) -> str | None:
    """Why ``path`` (or a symlink's ``target``) cannot be recorded, or None."""
    problem = name_problem(path)
    if problem is None and target is not None:
        problem = name_problem(target)
        if problem:
            problem = f"its target: {problem}"
    return problem


def check_sources(sources: list[str]) -> None:
    """LocalFileError unless every source is a directory whose path can be recorded."""
    for source in sources:
        try:
            st = os.stat(source)  # a source named through a symlink is followed
        except OSError as exc:
            raise LocalFileError(f"cannot read {source}: {exc.strerror or exc}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise LocalFileError(f"{source} is not a directory")
        top = snapshot_path(source)
        if not top:
            raise LocalFileError(f"{source} is the root directory; name what is below it")
        problem = _problem(top, None)
        if problem:
            raise LocalFileError(f"{source} cannot be recorded: {problem}")


def walk(sources: list[str], *, warn: Warn) -> Iterator[LocalEntry]:
    """Every entry below each directory in ``sources`` (the directory itself first), depth
    first, children in name order. What cannot be recorded (special files, names that are not
    valid text, unreadable directories) is skipped with one ``warn`` line each."""
    check_sources(sources)
    tops = {snapshot_path(s) for s in sources}
    seen: set[str] = set()
    for source in sources:
        top = snapshot_path(source)
        # A source inside another one is walked with it: each path once per snapshot.
        if top in seen or any(top.startswith(f"{other}/") for other in tops):
            continue
        seen.add(top)
        try:
            st = os.stat(source)  # a source named through a symlink is followed
        except OSError as exc:
            raise LocalFileError(f"cannot read {source}: {exc.strerror or exc}") from exc
        first = entry_of(top, source, st)
        if first is None or first.kind != "dir":
            raise LocalFileError(f"{source} is not a directory")
        yield first
        yield from _below(source, top, warn=warn)


def _below(source: str, top: str, *, warn: Warn) -> Iterator[LocalEntry]:
    # An explicit stack of sorted listings: depth is not bounded by Python's recursion limit,
    # and memory holds one listing per level, not the tree.
    stack: list[tuple[str, str, Iterator[str]]] = [(source, top, iter(_listing(source, warn)))]
    while stack:
        dir_source, dir_path, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        src = os.path.join(dir_source, name)
        path = f"{dir_path}/{name}"
        try:
            st = os.lstat(src)
            entry = entry_of(path, src, st)
        except FileNotFoundError:  # gone since the listing: nothing to record
            continue
        except OSError as exc:
            warn(f"skipped {src}: {exc.strerror or exc}")
            continue
        if entry is None:
            warn(f"skipped {src}: {_special(st)}")
            continue
        problem = _problem(path, entry.target)
        if problem:
            warn(f"skipped {src!r}: {problem}")
            continue
        yield entry
        if entry.kind == "dir":
            stack.append((src, path, iter(_listing(src, warn))))


def _listing(directory: str, warn: Warn) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        warn(f"cannot list {directory}: {exc.strerror or exc}; its content is not recorded")
        return []


def unchanged(now: LocalEntry, *, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> bool:
    """Whether a file is the one an earlier snapshot recorded, by restic's rule: same size,
    mtime, ctime and inode. Any write moves mtime and ctime (a chmod or chown moves ctime), a
    replaced file has another inode; the device is not compared, since it may change across
    reboots and remounts for the same file system."""
    return (
        now.kind == "file"
        and now.size == size
        and now.mtime_ns == mtime_ns
        and now.ctime_ns == ctime_ns
        and now.inode == inode
    )
