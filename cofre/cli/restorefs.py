"""Writing a snapshot's entries below a target directory, and nowhere else.

A snapshot is data from the catalog: an entry's path may be absolute, hold '..', or lead through
a directory that is a symlink (one the snapshot itself holds, or one already in the target). So
every path is checked (relative, '/'-separated, no empty, '.' or '..' part), and every write
goes through directory descriptors opened from the target one component at a time with
O_NOFOLLOW: a symlink on the way, made by this restore or found there, is an error for that
entry, never followed. Files are written to a temp name in their directory and renamed into
place (an existing file or symlink is replaced only with ``force``); directories are created
owner-only and given their recorded mode, owner and mtime by ``finish``, deepest first, after
their content. Owners are restored only when running as root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cofre.cli.exitcodes import LocalFileError

# A restored file never becomes setuid/setgid because a snapshot says so, unless run as root
# (who could make it anyway); the sticky bit stays for directories.
_SAFE_BITS = 0o1777
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Directory descriptors kept open: the directories files are being written to at once.
_CACHED_DIRS = 64


class HostileEntry(LocalFileError):
    """An entry whose path would write outside the target, or through a symlink."""


def entry_parts(path: str) -> tuple[str, ...]:
    """``path`` split into its parts; HostileEntry unless it is relative and stays below."""
    if not path or path.startswith("/"):
        raise HostileEntry(f"refused entry {path!r}: not a relative path")
    if "\x00" in path:
        raise HostileEntry(f"refused entry {path!r}: holds NUL")
    parts = tuple(path.split("/"))
    if any(p in ("", ".", "..") for p in parts):
        raise HostileEntry(f"refused entry {path!r}: an empty, '.' or '..' part")
    return parts


@dataclass(frozen=True, slots=True)
class Meta:
    """What is restored besides the bytes."""

    mode: int
    mtime_ns: int
    uid: int
    gid: int


class RestoreRoot:
    """The target directory of a restore; thread-safe (files are written on several threads)."""

    def __init__(self, target: Path, *, force: bool, owners: bool | None = None) -> None:
        try:
            target.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise LocalFileError(f"cannot use {target}: {exc.strerror or exc}") from exc
        self.target = target
        self.force = force
        self.owners = os.geteuid() == 0 if owners is None else owners
        self._lock = threading.Lock()
        self._dirs: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self._dir_meta: dict[tuple[str, ...], Meta] = {}

    def close(self) -> None:
        with self._lock:
            for fd in self._dirs.values():
                os.close(fd)
            self._dirs.clear()
            os.close(self._fd)

    def __enter__(self) -> RestoreRoot:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- directories ----------------------------------------------------------------------

    def _open_dir(self, parts: tuple[str, ...], *, create: bool) -> int:
        """A new descriptor of the directory at ``parts`` (the caller closes it), made on the
        way when ``create``; never through a symlink."""
        with self._lock:
            cached = self._dirs.get(parts)
            if cached is not None:
                self._dirs.move_to_end(parts)
                return os.dup(cached)
            # The deepest cached ancestor saves walking from the top for every file.
            depth = len(parts)
            while depth > 0 and parts[:depth] not in self._dirs:
                depth -= 1
            fd = os.dup(self._dirs[parts[:depth]] if depth else self._fd)
        try:
            for i in range(depth, len(parts)):
                child = self._step(fd, parts, i, create=create)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            if parts not in self._dirs:
                self._dirs[parts] = os.dup(fd)
                if len(self._dirs) > _CACHED_DIRS:
                    _, old = self._dirs.popitem(last=False)
                    os.close(old)
        return fd

    def _step(self, fd: int, parts: tuple[str, ...], i: int, *, create: bool) -> int:
        """A new descriptor of ``parts[i]`` inside ``fd``."""
        name = parts[i]
        try:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    # A parent the snapshot does not hold (the umask applies).
                    os.mkdir(name, 0o755, dir_fd=fd)
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            here = "/".join(parts[: i + 1])
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise HostileEntry(
                    f"refused {'/'.join(parts)!r}: {here!r} is not a directory (a symlink or "
                    "a file); nothing is written through it"
                ) from None
            raise LocalFileError(f"cannot open {here}: {exc.strerror or exc}") from exc
        return child

    def make_dir(self, path: str, meta: Meta) -> None:
        """Create the directory at ``path`` (an existing one is kept); ``finish`` gives it
        ``meta``."""
        parts = entry_parts(path)
        parent = self._open_dir(parts[:-1], create=True)
        try:
            with contextlib.suppress(FileExistsError):
                # Owner-only until ``finish`` gives it its recorded mode.
                os.mkdir(parts[-1], 0o700, dir_fd=parent)
        except OSError as exc:
            raise LocalFileError(f"cannot create {path}: {exc.strerror or exc}") from exc
        finally:
            os.close(parent)
        os.close(self._open_dir(parts, create=False))
        with self._lock:
            self._dir_meta[parts] = meta

    def finish(self) -> list[Exception]:
        """Give every directory made its recorded mode, owner and mtime, deepest first (after
        their content, which changed their mtimes); -> the errors, one per directory."""
        errors: list[Exception] = []
        for parts in sorted(self._dir_meta, key=len, reverse=True):
            meta = self._dir_meta[parts]
            try:
                fd = self._open_dir(parts, create=False)
                try:
                    if self.owners:
                        os.fchown(fd, meta.uid, meta.gid)
                    os.fchmod(fd, self._mode(meta.mode))
                    os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))
                finally:
                    os.close(fd)
            except OSError as exc:
                errors.append(
                    LocalFileError(f"cannot set {'/'.join(parts)}: {exc.strerror or exc}")
                )
            except LocalFileError as exc:
                errors.append(exc)
        self._dir_meta.clear()
        return errors

    def _mode(self, mode: int) -> int:
        return mode & (0o7777 if self.owners else _SAFE_BITS)

    # --- files and symlinks ---------------------------------------------------------------

    def _parent(self, path: str) -> tuple[int, str]:
        """A descriptor of the directory ``path`` goes into (made if missing), and its name."""
        parts = entry_parts(path)
        return self._open_dir(parts[:-1], create=True), parts[-1]

    @contextlib.contextmanager
    def file(self, path: str, meta: Meta, *, fsync: bool = True) -> Iterator[int]:
        """A descriptor to write the bytes of the file at ``path`` to; once the body returns it
        gets ``meta`` and is renamed into place. Nothing is left behind if anything fails."""
        dir_fd, name = self._parent(path)
        try:
            tmp = f".{name[:80]}.{secrets.token_hex(4)}.cofre-part"
            try:
                fd = os.open(
                    tmp,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                    dir_fd=dir_fd,
                )
            except OSError as exc:
                raise LocalFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
            try:
                try:
                    yield fd
                    if fsync:
                        os.fsync(fd)
                    if self.owners:
                        os.fchown(fd, meta.uid, meta.gid)
                    os.fchmod(fd, self._mode(meta.mode))
                    os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))
                finally:
                    os.close(fd)
                self._install(dir_fd, tmp, name, path)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                if isinstance(exc, OSError):
                    raise LocalFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
                raise
        finally:
            os.close(dir_fd)

    def symlink(self, path: str, target: str, meta: Meta) -> None:
        """The symlink at ``path`` pointing at ``target`` (never followed), with ``meta``'s
        owner and mtime (a symlink has no mode of its own)."""
        if not target or "\x00" in target:
            raise HostileEntry(f"refused symlink {path!r}: an empty or NUL target")
        dir_fd, name = self._parent(path)
        try:
            tmp = f".{name[:80]}.{secrets.token_hex(4)}.cofre-part"
            try:
                os.symlink(target, tmp, dir_fd=dir_fd)
                try:
                    if self.owners:
                        os.chown(tmp, meta.uid, meta.gid, dir_fd=dir_fd, follow_symlinks=False)
                    os.utime(
                        tmp,
                        ns=(meta.mtime_ns, meta.mtime_ns),
                        dir_fd=dir_fd,
                        follow_symlinks=False,
                    )
                    self._install(dir_fd, tmp, name, path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=dir_fd)
                    raise
            except OSError as exc:
                raise LocalFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
        finally:
            os.close(dir_fd)

    def _install(self, dir_fd: int, tmp: str, name: str, path: str) -> None:
        """``tmp`` renamed to ``name`` in ``dir_fd``; what is there already is replaced only
        with ``force`` (a rename replaces a symlink, never follows it) and never if it is a
        directory."""
        if self.force:
            try:
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except IsADirectoryError:
                raise LocalFileError(f"{path} exists and is a directory") from None
            return
        try:
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            raise LocalFileError(f"{path} already exists; use --force to overwrite it") from None
        os.unlink(tmp, dir_fd=dir_fd)
