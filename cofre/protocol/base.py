"""The base of every wire model, and the constrained field types they share.

pydantic v2 in strict mode: a field of type ``int`` takes a JSON integer and nothing else, a
``float`` takes a finite JSON number, a string is valid Unicode. Every integer is bounded to 64
bits, every list and string has a maximum (``cofre.limits``), and the OpenAPI schemas are
generated from these same declarations, so what the schema promises is what the service checks.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    ValidationError,
)

from cofre import limits
from cofre.models import ChunkHash, NodeId, SnapshotId, UploadId, name_problem, tree_path_problem

# Headers every service reads; here, not in server.py, so that a client loads no server code.
AUTH_HEADER = "Authorization"  # "Bearer <cluster token>"
TICKET_HEADER = "X-Cofre-Ticket"


class Request(BaseModel):
    """A request body: exact types, unknown fields refused (a typo is an error, not a no-op)."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True
    )


class Query(BaseModel):
    """Query or path parameters: text converted to the declared types; others ignored."""

    model_config = ConfigDict(
        strict=False, extra="ignore", frozen=True, allow_inf_nan=False, hide_input_in_errors=True
    )


class Reply(BaseModel):
    """A response body. Clients ignore fields they do not know, so a newer service can add
    fields without breaking an older client."""

    model_config = ConfigDict(
        strict=True, extra="ignore", frozen=True, allow_inf_nan=False, hide_input_in_errors=True
    )


def error_location(loc: tuple[int | str, ...]) -> str:
    """``files.0.mtime``: a pydantic error location without the names of a body's forms
    (tags in parentheses, see ``manager_api``), which are no fields."""
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p.startswith("(")))


def first_error(exc: ValidationError) -> str:
    """The first thing wrong, as ``field.path: message`` (or just the message)."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    where = error_location(first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _valid_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _valid_tree_path(value: str) -> str:
    problem = tree_path_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _valid_text(value: str) -> str:
    """Any text without NUL or lone surrogates (source paths, symlink targets)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    if len(encoded) > limits.MAX_PATH_BYTES:
        raise ValueError(f"must be at most {limits.MAX_PATH_BYTES} bytes of UTF-8")
    return value


def _no_trailing_slash(value: str) -> str:
    return value.rstrip("/")


Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=limits.MAX_NAME_BYTES,
        # The schema says it; the validator below says it with a clearer message.
        json_schema_extra={"pattern": r"^[^\x00]+$"},
        description=f"A backup name: any text without NUL, at most {limits.MAX_NAME_BYTES} "
        "bytes of UTF-8. Data, never a path.",
    ),
    AfterValidator(_valid_name),
]
ChunkHashField = Annotated[
    ChunkHash,
    StringConstraints(pattern=r"^[0-9a-f]{64}$"),
    Field(description="Lower-case hex sha256 of a chunk's bytes."),
]
NodeIdField = Annotated[
    NodeId,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=limits.MAX_NODE_ID_CHARS),
    Field(description="A storage node's stable name."),
]
UploadIdField = Annotated[
    UploadId,
    StringConstraints(
        pattern=r"^[A-Za-z0-9._~-]+$", min_length=1, max_length=limits.MAX_UPLOAD_ID_CHARS
    ),
]
NodeUrl = Annotated[
    str,
    # Printable ASCII without spaces: node URLs are built from pod DNS names and addresses.
    StringConstraints(pattern=r"^https?://[!-~]+$", max_length=limits.MAX_URL_CHARS),
    AfterValidator(_no_trailing_slash),
    Field(description="A node's base URL."),
]
# base64url(payload) "." base64url(mac), as cofre.tickets signs them.
Ticket = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+$", max_length=limits.MAX_TICKET_CHARS
    ),
]
TreePath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=limits.MAX_PATH_BYTES,
        json_schema_extra={"pattern": r"^(?!/)[^\x00]+$"},
        description="A path inside a snapshot's tree: relative and normalised (no leading /, "
        "no empty, '.' or '..' component, no trailing /), no NUL, at most "
        f"{limits.MAX_PATH_BYTES} bytes of UTF-8.",
    ),
    AfterValidator(_valid_tree_path),
]
# What `cofre put` was given (often absolute), or a symlink's target: text, never joined by
# the manager.
PathText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=limits.MAX_PATH_BYTES,
        json_schema_extra={"pattern": r"^[^\x00]+$"},
    ),
    AfterValidator(_valid_text),
]
SnapshotIdField = Annotated[
    SnapshotId,
    StringConstraints(pattern=r"^[0-9a-f]{32}$"),
    Field(description="A snapshot's id: 32 lower-case hex digits (the first 8 are its short id)."),
]
HostName = Annotated[
    str,
    StringConstraints(
        pattern=r"^[^\x00-\x1f\x7f]+$", min_length=1, max_length=limits.MAX_HOST_CHARS
    ),
    AfterValidator(_valid_text),
    Field(description="The host a snapshot was taken on (no control characters)."),
]
SnapshotTag = Annotated[
    str,
    # No spaces, commas or control characters: a tag list is written "a,b" on command lines.
    StringConstraints(pattern=r"^[^\x00-\x20,\x7f]+$", max_length=limits.MAX_TAG_CHARS),
    AfterValidator(_valid_text),
]
Int64 = Annotated[int, Field(ge=-limits.MAX_INT - 1, le=limits.MAX_INT)]
Count = Annotated[int, Field(ge=0, le=limits.MAX_INT)]
Bytes = Annotated[int, Field(ge=0, le=limits.MAX_INT, description="A size in bytes.")]
FileSize = Annotated[int, Field(ge=0, le=limits.MAX_UPLOAD_BYTES, description="Bytes.")]
Version = Annotated[int, Field(ge=1, le=limits.MAX_INT, description="A version number, from 1.")]
# st_mode: permission bits and the file type bits (0o100644 for a regular file).
Mode = Annotated[int, Field(ge=0, le=2**32 - 1, description="The file's st_mode.")]
UnixTime = Annotated[float, Field(description="Seconds since the epoch (finite).")]
Seconds = Annotated[float, Field(ge=0, le=limits.MAX_INT, description="Seconds.")]
Ratio = Annotated[float, Field(ge=0, le=1, description="A share, 0..1.")]

ChunkStatus = Literal["ok", "under_replicated", "missing", "corrupt"]
CopyState = Literal["ok", "corrupt", "missing", "unreachable"]


class Health(Reply):
    """GET /healthz and /readyz."""

    ok: bool
    detail: str | None = None


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document (free-form JSON by nature)."""
