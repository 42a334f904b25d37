"""Exit codes of the `cofre` command, and which error maps to which.

One place, so that scripts can rely on them and `cofre --help` can list them.
"""

from __future__ import annotations

from enum import IntEnum

from cofre.errors import (
    BadRequest,
    CofreError,
    InsufficientStorage,
    IntegrityError,
    NotEnoughNodes,
    NotFound,
    ReplicaFailed,
    RoleRefused,
    Unauthorized,
    Unavailable,
)


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    UNAVAILABLE = 3
    NOT_FOUND = 4
    NOT_ENOUGH_NODES = 5
    UNAUTHORIZED = 6
    INTEGRITY = 7
    LOCAL_FILE = 8
    NO_SPACE = 9
    OUTCOME_UNKNOWN = 10
    REFUSED = 11
    INTERRUPTED = 130


_MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "failure (fsck, where, repair: not every copy is there; other errors)",
    ExitCode.USAGE: "usage error: bad arguments, no manager configured, invalid request",
    ExitCode.UNAVAILABLE: "the manager or a storage node cannot be reached",
    ExitCode.NOT_FOUND: "unknown name or version",
    ExitCode.NOT_ENOUGH_NODES: "not enough ready storage nodes for the replication factor",
    ExitCode.UNAUTHORIZED: "missing or wrong cluster token or key",
    ExitCode.INTEGRITY: "content does not match its hash (corrupt or changed)",
    ExitCode.LOCAL_FILE: "a local file cannot be read or written",
    ExitCode.NO_SPACE: "the storage nodes are out of space",
    ExitCode.OUTCOME_UNKNOWN: "a commit was sent but its answer lost: check with `cofre ls`",
    ExitCode.REFUSED: "the key's role does not allow this (a backup key cannot delete)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


class UsageError(Exception):
    """The command line asks for something that cannot be done as asked."""


class LocalFileError(Exception):
    """A local file cannot be read, written, or changed while it was read."""


class CommitOutcomeUnknown(Exception):
    """A commit reached the manager (or may have) and its answer was lost: the backup may or
    may not be stored, and only the catalog can tell."""


def exit_code_for(exc: BaseException) -> ExitCode:
    # Order matters: NotEnoughNodes and Unavailable share HTTP 503, the class tells them apart.
    if isinstance(exc, UsageError | BadRequest):
        return ExitCode.USAGE
    if isinstance(exc, LocalFileError):
        return ExitCode.LOCAL_FILE
    if isinstance(exc, CommitOutcomeUnknown):
        return ExitCode.OUTCOME_UNKNOWN
    if isinstance(exc, NotEnoughNodes):
        return ExitCode.NOT_ENOUGH_NODES
    if isinstance(exc, Unavailable | ReplicaFailed):
        return ExitCode.UNAVAILABLE
    if isinstance(exc, NotFound):
        return ExitCode.NOT_FOUND
    if isinstance(exc, RoleRefused):
        return ExitCode.REFUSED
    if isinstance(exc, Unauthorized):
        return ExitCode.UNAUTHORIZED
    if isinstance(exc, IntegrityError):
        return ExitCode.INTEGRITY
    if isinstance(exc, InsufficientStorage):
        return ExitCode.NO_SPACE
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, CofreError):
        return ExitCode.FAILURE
    return ExitCode.FAILURE


def describe_error(exc: BaseException) -> str:
    """The message a user sees: a peer's problem detail, else the exception's text."""
    detail = getattr(exc, "detail", None)
    return str(detail if detail is not None else exc) or type(exc).__name__


def describe_exit_codes() -> str:
    lines = ["exit codes:"]
    lines += [f"  {int(code):<4} {meaning}" for code, meaning in _MEANING.items()]
    return "\n".join(lines)
