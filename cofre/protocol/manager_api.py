"""Request and response bodies of the manager's /v1 API (docs/architecture.md, Manager table).

The manager parses every request into one of these at the edge and answers with one; the CLI
and the operator read the answers through the same classes (``ManagerClient``).
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from cofre import limits
from cofre.errors import BadRequest
from cofre.models import ChunkRef, Manifest
from cofre.protocol.base import (
    Bytes,
    ChunkHashField,
    ChunkStatus,
    CopyState,
    Count,
    FileSize,
    HostName,
    Int64,
    Mode,
    Name,
    NodeIdField,
    NodeUrl,
    PathText,
    Query,
    Ratio,
    Reply,
    Request,
    Seconds,
    SnapshotIdField,
    SnapshotTag,
    TreePath,
    UnixTime,
    UploadIdField,
    Version,
    first_error,
)

# RootModels take no ``extra`` setting: the models they wrap refuse or ignore unknown fields.
ROOT_REQUEST = ConfigDict(strict=True, frozen=True, allow_inf_nan=False, hide_input_in_errors=True)
ROOT_REPLY = ROOT_REQUEST

# --- manifests ------------------------------------------------------------------------------------


class ManifestDoc(Request):
    """One version of one name as the client built it; also stored as a chunk on the nodes, in
    the canonical encoding of ``cofre.models.Manifest``."""

    # cofre.models.MANIFEST_FORMAT, spelled out: a Literal takes no variable.
    format: Literal["cofre-manifest-1"]
    name: Name
    size: FileSize
    mode: Mode
    mtime: UnixTime
    created: UnixTime
    chunks: list[tuple[ChunkHashField, Bytes]] = Field(max_length=limits.MAX_MANIFEST_CHUNKS)

    @model_validator(mode="after")
    def _lengths_add_up(self) -> ManifestDoc:
        if sum(length for _, length in self.chunks) != self.size:
            raise ValueError("the chunk lengths do not add up to the manifest's size")
        return self

    def to_manifest(self) -> Manifest:
        return Manifest(
            name=self.name,
            size=self.size,
            mode=self.mode,
            mtime=self.mtime,
            created=self.created,
            chunks=tuple(ChunkRef(h, n) for h, n in self.chunks),
        )

    @classmethod
    def of(cls, manifest: Manifest) -> ManifestDoc:
        return cls(
            format="cofre-manifest-1",
            name=manifest.name,
            size=manifest.size,
            mode=manifest.mode,
            mtime=manifest.mtime,
            created=manifest.created,
            chunks=[(c.hash, c.length) for c in manifest.chunks],
        )


def decode_manifest(raw: bytes) -> Manifest:
    """A manifest read back from a node; BadRequest if the bytes are not one."""
    try:
        return ManifestDoc.model_validate_json(raw).to_manifest()
    except ValidationError as exc:
        raise BadRequest(f"not a cofre manifest: {first_error(exc)}") from None


# --- uploads --------------------------------------------------------------------------------------


class FileDecl(Request):
    """One file an upload declares."""

    name: Name
    size: FileSize
    mode: Mode = 0o644
    mtime: UnixTime = 0.0


class BatchDecl(Request):
    """Several files in one upload: one session, one relay, one commit."""

    files: list[FileDecl] = Field(min_length=1, max_length=limits.MAX_BATCH_FILES)

    @model_validator(mode="after")
    def _names_once(self) -> BatchDecl:
        if len({f.name for f in self.files}) != len(self.files):
            raise ValueError("each name may appear once per upload")
        if sum(f.size for f in self.files) > limits.MAX_UPLOAD_BYTES:
            raise ValueError(f"the files exceed {limits.MAX_UPLOAD_BYTES} bytes together")
        return self


# The forms a two-form body may take. Parenthesised, so an error location ("body.(batch).files")
# tells them from field names, and ``cofre.protocol.api.invalid`` leaves them out.
ONE_FILE, ONE, BATCH = "(one file)", "(one)", "(batch)"


def _has(key: str, yes: str, no: str) -> Any:
    """A discriminator choosing a body's form by whether it has ``key``."""

    def pick(value: Any) -> str:
        present = key in value if isinstance(value, dict) else hasattr(value, key)
        return yes if present else no

    return Discriminator(pick)


class CreateUpload(
    RootModel[
        Annotated[
            Annotated[FileDecl, Tag(ONE_FILE)] | Annotated[BatchDecl, Tag(BATCH)],
            _has("files", BATCH, ONE_FILE),
        ]
    ]
):
    """POST /v1/uploads: one file ``{name, size, mode, mtime}`` or ``{files: [...]}``."""

    model_config = ROOT_REQUEST

    @property
    def files(self) -> list[FileDecl]:
        return self.root.files if isinstance(self.root, BatchDecl) else [self.root]

    @property
    def batch(self) -> bool:
        return isinstance(self.root, BatchDecl)


class UploadCreated(Reply):
    upload_id: UploadIdField
    primary_url: NodeUrl = Field(description="The only node the client talks to.")
    ticket: str = Field(description="Lets the primary accept this upload's chunks.")
    chunk_size: Bytes
    expires: UnixTime


class CommitOne(Request):
    manifest: ManifestDoc


class CommitBatch(Request):
    manifests: list[ManifestDoc] = Field(min_length=1, max_length=limits.MAX_BATCH_FILES)


class CommitUpload(
    RootModel[
        Annotated[
            Annotated[CommitOne, Tag(ONE)] | Annotated[CommitBatch, Tag(BATCH)],
            _has("manifests", BATCH, ONE),
        ]
    ]
):
    """POST /v1/uploads/{upload_id}/commit: ``{manifest}`` or ``{manifests: [...]}``."""

    model_config = ROOT_REQUEST

    @property
    def manifests(self) -> list[Manifest]:
        docs = self.root.manifests if isinstance(self.root, CommitBatch) else [self.root.manifest]
        return [d.to_manifest() for d in docs]

    @property
    def batch(self) -> bool:
        return isinstance(self.root, CommitBatch)


class Committed(Reply):
    name: Name
    version: Version
    size: FileSize
    chunks: Count


class CommittedBatch(Reply):
    versions: list[Committed]


class CommitAnswer(
    RootModel[
        Annotated[
            Annotated[Committed, Tag(ONE)] | Annotated[CommittedBatch, Tag(BATCH)],
            _has("versions", BATCH, ONE),
        ]
    ]
):
    """The committed version, or ``{versions}`` for a batch, in the order given."""

    model_config = ROOT_REPLY


class KnownQuery(Request):
    hashes: list[ChunkHashField] = Field(max_length=limits.MAX_KNOWN_HASHES)


class KnownAnswer(Reply):
    known: list[ChunkHashField] = Field(description="Stored with F copies already: not sent.")


class UploadPath(Query):
    upload_id: UploadIdField


# --- files ----------------------------------------------------------------------------------------


class VersionBase(Reply):
    name: Name
    version: Version
    size: FileSize
    mode: Mode
    mtime: UnixTime
    created: UnixTime


class VersionInfo(VersionBase):
    chunks: Count


class FileList(Reply):
    files: list[VersionInfo]


class ListQuery(Query):
    versions: bool = Field(False, description="Every live version, not only the latest.")


class NameQuery(Query):
    name: Name
    version: Version | None = Field(None, description="The latest live version if absent.")


class ChunkLocation(Reply):
    hash: ChunkHashField
    length: Bytes
    nodes: list[NodeUrl] = Field(description="Node URLs to read it from, best first.")


class ManifestView(VersionBase):
    chunks: list[ChunkLocation]


class ManifestsQuery(Request):
    names: list[Name] = Field(max_length=limits.MAX_BATCH_FILES)


class ManifestList(Reply):
    manifests: list[ManifestView] = Field(description="Names without a live version left out.")


class Deleted(Reply):
    deleted: list[Version]


class CopyWhere(Reply):
    node_id: NodeIdField
    state: CopyState
    why: str
    since: UnixTime | None


class ChunkWhere(Reply):
    hash: ChunkHashField
    length: Bytes
    status: ChunkStatus
    copies: list[CopyWhere]


class WhereReport(VersionBase):
    replication_factor: Count
    manifest: ChunkWhere
    chunks: list[ChunkWhere]


# --- tree snapshots -------------------------------------------------------------------------------
#
# A snapshot is opened (POST /v1/snapshots), filled (its files' chunks committed from ordinary
# uploads with POST /v1/snapshots/{id}/chunks, its tree entries sent in batches with
# POST /v1/snapshots/{id}/entries) and committed (POST /v1/snapshots/{id}/commit) in one catalog
# transaction: until then it is invisible, and an open snapshot that is left expires.

EntryKind = Literal["file", "dir", "symlink"]
SNAPSHOT_TIME_MAX = 32_503_680_000.0  # 3000-01-01T00:00:00Z
SnapshotRef = Annotated[
    str,
    Field(
        pattern=r"^([0-9a-f]{4,32}|latest)$",
        description="A snapshot id, a unique prefix of one (4 hex digits at least), or "
        "`latest` (the newest committed snapshot matching the filters).",
    ),
]
UidGid = Annotated[int, Field(ge=0, le=2**32 - 1)]
ChunkList = Annotated[
    list[tuple[ChunkHashField, Bytes]],
    Field(
        max_length=limits.MAX_MANIFEST_CHUNKS,
        description="The file's chunks in order: [hash, length].",
    ),
]


class EntryFields(BaseModel):
    """The fields of a tree entry; sent as ``TreeEntry``, read back as ``EntryView``."""

    path: TreePath
    kind: EntryKind
    mode: Mode
    mtime_ns: Int64
    size: FileSize = 0
    uid: UidGid | None = Field(None, description="Owner; restored only when run as root.")
    gid: UidGid | None = None
    target: PathText | None = Field(None, description="A symlink's target (symlinks only).")
    chunks: ChunkList = []
    # Kept so the next backup of the same paths can tell an unchanged file without reading it.
    ctime_ns: Int64 | None = None
    inode: Annotated[int, Field(ge=0, le=2**64 - 1)] | None = None
    device: Annotated[int, Field(ge=0, le=2**64 - 1)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind == "symlink" and self.target is None:
            raise ValueError("a symlink needs its target")
        if self.kind != "symlink" and self.target is not None:
            raise ValueError(f"a {self.kind} has no target")
        if self.kind != "file" and self.chunks:
            raise ValueError(f"a {self.kind} has no chunks")
        if self.kind == "file" and sum(n for _, n in self.chunks) != self.size:
            raise ValueError("the chunk lengths do not add up to the file's size")
        return self


class TreeEntry(Request, EntryFields):
    """One path of a snapshot's tree: a file, a directory or a symlink."""


class EntryView(Reply, EntryFields):
    """A tree entry as the manager answers it: unknown fields ignored (a newer manager may add
    some)."""

    def to_entry(self) -> TreeEntry:
        return TreeEntry.model_validate(self.model_dump())


class SnapshotCreate(Request):
    """POST /v1/snapshots: open a snapshot (invisible until committed)."""

    # Bounded so every calendar in every time zone can place it (retention's periods).
    time: float = Field(
        ge=0,
        le=SNAPSHOT_TIME_MAX,
        description="When the backup began, by the client's clock (seconds since the epoch, "
        "before the year 3000).",
    )
    host: HostName
    tags: list[SnapshotTag] = Field(default_factory=list, max_length=limits.MAX_SNAPSHOT_TAGS)
    paths: list[PathText] = Field(
        min_length=1,
        max_length=limits.MAX_SNAPSHOT_PATHS,
        description="What was backed up, as given (often absolute).",
    )
    parent: SnapshotIdField | None = Field(
        None, description="The snapshot of the same paths this one was compared against."
    )


class SnapshotOpened(Reply):
    snapshot_id: SnapshotIdField
    expires: UnixTime = Field(description="Renewed by every request that adds to it.")


class SnapshotChunks(Request):
    """POST /v1/snapshots/{id}/chunks: the chunks an upload stored, committed into the open
    snapshot (checked on the upload's nodes like a file commit, then recorded). The upload is
    closed; its chunks stay referenced by the snapshot."""

    upload_id: UploadIdField
    chunks: ChunkList


class ChunksCommitted(Reply):
    snapshot_id: SnapshotIdField
    chunks: Count = Field(description="Distinct chunks recorded for the snapshot.")


class SnapshotEntries(Request):
    """POST /v1/snapshots/{id}/entries: a batch of tree entries, each path once per snapshot."""

    entries: list[TreeEntry] = Field(min_length=1, max_length=limits.MAX_ENTRY_BATCH)

    @model_validator(mode="after")
    def _paths_once(self) -> SnapshotEntries:
        if len({e.path for e in self.entries}) != len(self.entries):
            raise ValueError("each path may appear once per snapshot")
        return self


class EntriesAdded(Reply):
    snapshot_id: SnapshotIdField
    entries: Count = Field(description="Entries the snapshot holds so far.")
    expires: UnixTime


class SnapshotCommit(Request):
    """POST /v1/snapshots/{id}/commit: ``entries`` is what the client sent in total, so a batch
    lost on the way fails the commit instead of leaving a tree with holes."""

    entries: Count


class SnapshotInfo(Reply):
    snapshot_id: SnapshotIdField
    short_id: str = Field(description="The id's first 8 hex digits.")
    time: UnixTime
    host: str
    tags: list[str]
    paths: list[str]
    parent: SnapshotIdField | None
    committed: UnixTime = Field(description="When the manager committed it.")
    entries: Count
    files: Count
    bytes: Bytes = Field(description="The files' sizes added up.")


class SnapshotList(Reply):
    snapshots: list[SnapshotInfo] = Field(description="Oldest first.")


class SnapshotFilter(Query):
    host: HostName | None = None
    tag: str | None = Field(
        None,
        max_length=8 * (limits.MAX_TAG_CHARS + 1),
        description="Comma-separated tags a snapshot must all carry (8 at most).",
    )
    path: PathText | None = Field(None, description="A source path the snapshot must hold.")

    @property
    def tags(self) -> list[str]:
        return [t for t in (self.tag or "").split(",") if t]


class SnapshotPath(Query):
    snapshot: SnapshotRef


class EntriesQuery(Query):
    path: TreePath | None = Field(
        None, description="Only this path and what is below it (a restore of part of a tree)."
    )
    after: TreePath | None = Field(None, description="Entries after this path: the next page.")
    limit: int = Field(limits.MAX_ENTRY_BATCH, ge=1, le=limits.MAX_ENTRY_BATCH)


class EntryPage(Reply):
    snapshot_id: SnapshotIdField
    entries: list[EntryView] = Field(description="In path order (bytes of UTF-8).")
    next_after: str | None = Field(description="Pass as `after` for the next page; None: done.")


class SnapshotsRemoved(Reply):
    removed: list[SnapshotIdField]


class LocateQuery(Request):
    """POST /v1/chunks/locate: where to read chunks (a snapshot's, for a restore)."""

    hashes: list[ChunkHashField] = Field(max_length=limits.MAX_KNOWN_HASHES)


class ChunkLocations(Reply):
    chunks: list[ChunkLocation] = Field(
        description="In the order asked; chunks the catalog does not know are left out."
    )


class EntryWhereQuery(Query):
    path: TreePath


class EntryWhere(Reply):
    """Where every copy of a snapshot file's chunks is, in what state, and why."""

    snapshot_id: SnapshotIdField
    path: str
    size: FileSize
    replication_factor: Count
    chunks: list[ChunkWhere]


KeepCount = Annotated[int, Field(ge=-1, le=limits.MAX_INT, description="-1: unlimited.")]
GroupKey = Literal["host", "paths", "tags"]


def _by_host_and_paths() -> list[GroupKey]:
    return ["host", "paths"]


class ForgetRequest(Request):
    """POST /v1/snapshots/forget: the keep rules of restic's `forget`, applied per group of
    snapshots (by host and paths unless ``group_by`` says otherwise), newest first."""

    keep_last: KeepCount = 0
    keep_hourly: KeepCount = 0
    keep_daily: KeepCount = 0
    keep_weekly: KeepCount = 0
    keep_monthly: KeepCount = 0
    keep_yearly: KeepCount = 0
    keep_within: Seconds | None = Field(
        None, description="Keep snapshots this close to the group's newest one."
    )
    keep_tags: list[SnapshotTag] = Field(default_factory=list, max_length=limits.MAX_SNAPSHOT_TAGS)
    host: HostName | None = Field(None, description="Only snapshots of this host.")
    tags: list[SnapshotTag] = Field(
        default_factory=list,
        max_length=limits.MAX_SNAPSHOT_TAGS,
        description="Only snapshots with all these.",
    )
    paths: list[PathText] = Field(
        default_factory=list,
        max_length=limits.MAX_SNAPSHOT_PATHS,
        description="Only snapshots with all these.",
    )
    group_by: list[GroupKey] = Field(default_factory=_by_host_and_paths, max_length=3)
    timezone: str = Field(
        "UTC",
        max_length=64,
        pattern=r"^[A-Za-z0-9_+/-]+$",
        description="IANA zone whose hours, days, weeks, months and years the rules count.",
    )
    dry_run: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _a_rule(self) -> ForgetRequest:
        counts = (
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        )
        if not any(counts) and self.keep_within is None and not self.keep_tags:
            raise ValueError("no keep rule given: every snapshot would be removed")
        return self


class KeptSnapshot(Reply):
    snapshot: SnapshotInfo
    reasons: list[str] = Field(description="Each rule that keeps it, e.g. 'daily snapshot'.")


class ForgetGroup(Reply):
    host: str | None
    paths: list[str] | None
    tags: list[str] | None
    keep: list[KeptSnapshot] = Field(description="Newest first.")
    remove: list[SnapshotInfo] = Field(description="Newest first.")


class ForgetReport(Reply):
    dry_run: bool
    groups: list[ForgetGroup]
    removed: list[SnapshotIdField] = Field(description="Empty on a dry run.")


# --- cluster --------------------------------------------------------------------------------------


class NodeStatus(Reply):
    """The manager's view of a node: discovery, probes and placement score."""

    node_id: NodeIdField
    url: NodeUrl
    ready: bool
    draining: bool
    stored_bytes: Bytes
    free_bytes: Bytes
    in_flight_bytes: Bytes
    latency_ms: float | None
    score: float | None
    chunk_count: Count = 0
    scrub_enabled: bool | None = Field(None, description="None: the node did not say.")
    scrub_cycle_bytes: Bytes = Field(0, description="Bytes the node's scrub read this cycle.")
    scrub_cycle_chunks: Count = Field(0, description="Chunks the node's scrub read this cycle.")
    scrub_cycle_progress: Ratio | None = Field(
        None, description="Share of the cycle's bytes the node's scrub read; 1 once it finished."
    )
    scrub_cycle_s: Seconds | None = Field(None, description="The node's scrub cycle length.")
    scrub_cycle_started_at: UnixTime | None = None
    scrub_last_full_pass_at: UnixTime | None = Field(
        None, description="When the node's scrub last read every chunk."
    )
    scrub_findings: Count = Field(0, description="Corrupt copies the scrub found since start.")
    latency_term: float | None = Field(
        None,
        description="min candidate latency / this node's latency, in (0, 1]; None if the "
        "node is not a candidate.",
    )
    stored_term: float | None = Field(
        None,
        description="min candidate bytes stored (with reservations) / this node's, in (0, 1]; "
        "None if the node is not a candidate.",
    )


class NodeList(Reply):
    nodes: list[NodeStatus]
    replication_factor: Count
    primary_keeps_copy: bool


class ChunkHealth(Reply):
    hash: ChunkHashField
    length: Bytes
    nodes: list[NodeIdField] = Field(description="Nodes with a good copy.")
    corrupt_on: list[NodeIdField]
    status: ChunkStatus


class FileHealth(Reply):
    name: Name
    version: Version
    healthy: bool
    manifest: ChunkHealth
    chunks: list[ChunkHealth]


class SnapshotHealth(Reply):
    snapshot_id: SnapshotIdField
    healthy: bool
    chunks: Count = Field(description="Distinct chunks its files reference.")
    unhealthy: list[ChunkHealth] = Field(description="Its chunks that are not ok.")


class FsckSummary(Reply):
    files: Count
    versions: Count
    snapshots: Count = 0
    chunks: Count
    ok: Count
    under_replicated: Count
    missing: Count
    corrupt: Count


class FsckReport(Reply):
    healthy: bool
    summary: FsckSummary
    files: list[FileHealth]
    snapshots: list[SnapshotHealth] = Field(
        default_factory=list, description="Every committed snapshot (a whole-catalog fsck only)."
    )


class FsckQuery(Query):
    name: Name | None = None
    verify: bool = Field(False, description="Re-hash every copy (reads every byte).")


class GcRequest(Request):
    grace_s: Seconds | None = Field(
        None, description="Keep chunks written this recently; the configured grace if absent."
    )


class GcResult(Reply):
    deleted_chunks: Count
    freed_bytes: Bytes


class RepairRequest(Request):
    verify: bool = Field(False, description="Re-hash every copy; corrupt copies are replaced.")


class RepairReport(Reply):
    chunks: Count
    lost_copies: Count
    under_replicated: Count
    copies_made: Count
    stuck: Count
    unrecoverable: Count
    healthy: bool


class RebuildRequest(Request):
    """An empty object: the rebuild takes no options."""


class RebuildReport(Reply):
    versions: Count
    names: Count
    skipped_incomplete: Count
    skipped_unreadable: Count
    skipped_uncommitted: Count = Field(
        0, description="Manifests of uploads the catalog recorded as never committed."
    )
    nodes_scanned: Count


class ClusterStats(Reply):
    nodes_ready: Count
    nodes_total: Count
    used_bytes: Bytes
    capacity_bytes: Bytes
    files: Count
    versions: Count
    under_replicated_chunks: Count
    missing_chunks: Count = Field(
        0, description="Live chunks no ready node holds (also counted as under-replicated)."
    )


class DrainRequest(Request):
    nodes: list[NodeIdField] = Field(max_length=limits.MAX_DRAIN_NODES)


class NodeDrain(Reply):
    done: bool
    chunks_left: Count
    bytes_left: Bytes


class DrainStatus(Reply):
    done: bool
    chunks_left: Count
    bytes_left: Bytes
    nodes: dict[str, NodeDrain] = Field(description="Per draining node id.")


# --- overview (the status page) -------------------------------------------------------------------


class CapacityForecast(Reply):
    """Used and total bytes on the ready nodes, and when they fill at the recent growth rate."""

    used_bytes: Bytes
    capacity_bytes: Bytes
    growth_bytes_per_s: float | None = Field(
        description="Least-squares slope of the used bytes over the recent samples; None until "
        "there are enough samples."
    )
    full_at: UnixTime | None = Field(
        description="When the used bytes reach the capacity at that rate; None if not growing."
    )
    samples: Count
    window_s: Seconds = Field(description="The time the samples span.")


class FsckRun(Reply):
    """The latest whole-catalog fsck this manager ran (since it started)."""

    at: UnixTime
    verify: bool
    healthy: bool
    summary: FsckSummary


class ReplicationWindow(Reply):
    """How long live chunks had fewer than F good copies, since the manager started."""

    open_since: UnixTime | None = Field(description="Start of the window open now, if any.")
    open_s: Seconds | None = Field(description="How long the open window has lasted.")
    last_began: UnixTime | None
    last_ended: UnixTime | None
    last_s: Seconds | None = Field(description="The last closed window's length.")
    longest_s: Seconds = Field(description="The longest window (the open one included).")
    episodes: Count = Field(description="Windows begun since the manager started.")


class RepairRun(Reply):
    """The latest repair pass this manager ran (since it started), by hand or in the background."""

    at: UnixTime
    verify: bool
    report: RepairReport
    reason: Literal["full", "scrub", "refill"] = Field(
        "full",
        description="full: every live chunk; scrub: copies a node's scrub found corrupt; "
        "refill: the chunks of a node that came back empty.",
    )
    window: ReplicationWindow | None = Field(
        None, description="The window with fewer than F copies, as of this pass."
    )


class ClusterOverview(Reply):
    """What the status page shows besides the nodes, files and drain: totals, the capacity
    forecast, placement's weights, and the latest fsck and repair."""

    stats: ClusterStats
    capacity: CapacityForecast
    latency_weight: float
    stored_bytes_weight: float
    replication_factor: Count
    primary_keeps_copy: bool
    last_fsck: FsckRun | None
    last_repair: RepairRun | None
