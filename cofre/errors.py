"""Domain errors, shared by services and clients.

Each error has a stable machine code and an HTTP status. Services turn them into RFC 9457
problem documents (application/problem+json); clients turn those documents back into the same
exception class, so a 404 from a node surfaces as ``NotFound`` in the CLI.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "https://cofre.dev/problems/"


class CofreError(Exception):
    """Base of every error cofre reports to a user or a peer."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    # A problem document carries extension members beside its fixed ones (RFC 9457): the
    # ``extra`` an error was raised with, free-form by design.
    def to_problem(self) -> dict[str, Any]:
        return {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }


class BadRequest(CofreError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class Unauthorized(CofreError):
    status = 401
    code = "unauthorized"
    title = "Missing or wrong cluster token or key"


class Forbidden(CofreError):
    status = 403
    code = "forbidden"
    title = "Ticket does not allow this"


class RoleRefused(Forbidden):
    """A key's role is below what the operation needs (a backup key asked to delete)."""

    code = "role_refused"
    title = "The key's role does not allow this"


class NotFound(CofreError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(CofreError):
    status = 409
    code = "conflict"
    title = "Conflict"


class IncompleteUpload(Conflict):
    code = "incomplete_upload"
    title = "Upload is missing chunks"


class ChunksNotStored(Conflict):
    """A snapshot names chunks the catalog does not hold with F copies (``chunks``: some of
    them, ``count``: how many); they must be uploaded again."""

    code = "chunks_not_stored"
    title = "Chunks not stored with F copies"


class PayloadTooLarge(CofreError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class IntegrityError(CofreError):
    """Bytes do not match their hash: corrupt on disk or in transit."""

    status = 422
    code = "integrity"
    title = "Content does not match its hash"


class InsufficientStorage(CofreError):
    status = 507
    code = "insufficient_storage"
    title = "Not enough free space"


class NotEnoughNodes(CofreError):
    status = 503
    code = "not_enough_nodes"
    title = "Not enough ready storage nodes"


class Unavailable(CofreError):
    """A peer could not be reached or answered badly."""

    status = 503
    code = "unavailable"
    title = "Service unavailable"


class StoreUnavailable(Unavailable):
    """A storage node's chunk store cannot be used now (its volume gone, wiped or unmounted)."""

    code = "store_unavailable"
    title = "Chunk store unavailable"


class ReplicaFailed(CofreError):
    status = 502
    code = "replica_failed"
    title = "A replica did not store the chunk"


_BY_CODE: dict[str, type[CofreError]] = {}


def _register(cls: type[CofreError]) -> None:
    _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(CofreError)

# For problems from peers that send no known code (a proxy, an older version).
_BY_STATUS: dict[int, type[CofreError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        IntegrityError,
        InsufficientStorage,
    )
}


def error_from_problem(problem: dict[str, Any], *, status: int) -> CofreError:
    """Rebuild the exception a peer raised from its problem document."""
    code = str(problem.get("code", ""))
    cls = _BY_CODE.get(code)
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    extra = {
        k: v for k, v in problem.items() if k not in {"type", "title", "status", "detail", "code"}
    }
    if cls is None:
        cls = _BY_STATUS.get(status, Unavailable if status >= 500 else BadRequest)
    return cls(detail, **extra)
