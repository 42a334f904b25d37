"""Configuration: grouped dataclasses, each field with its help, unit and default.

Precedence is defaults < environment < command-line flags. Every leaf field has one environment
variable and one flag derived from its path, e.g. ``placement.replication_factor`` is
``COFRE_PLACEMENT_REPLICATION_FACTOR`` and ``--placement-replication-factor``; top-level fields
drop the group (``COFRE_TOKEN``, ``--token``).

Each field is declared with :func:`setting`, whose ``help`` and ``unit`` are the one place the
field is described: ``--help`` of every service is built from them. ``name`` gives a field a
public name other than its attribute (kept for settings older than this scheme) and ``aliases``
adds further accepted names; the primary name wins when both are set.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NewType, TypeVar

from cofre.chunks import DEFAULT_CHUNK_SIZE
from cofre.limits import MAX_CHUNK_SIZE, MAX_SESSION_TTL_S

T = TypeVar("T")

# A logging level name; a type of its own so that every config loads and checks it the same way.
LogLevel = NewType("LogLevel", str)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A configuration value that cannot be used; its message names the setting."""


def setting(
    default: Any,
    help: str,
    *,
    unit: str = "",
    name: str = "",
    aliases: tuple[str, ...] = (),
    metavar: str = "",
) -> Any:
    """A config field: ``help`` says what it is and why its default; ``unit`` is what a number
    counts (seconds, bytes, ...). It returns a ``field()``, so ruff's RUF009 (a call as a
    dataclass default) does not apply where it cannot tell."""
    return field(
        default=default,
        metadata={
            "help": help,
            "unit": unit,
            "name": name,
            "aliases": aliases,
            "metavar": metavar,
        },
    )


@dataclass(frozen=True, kw_only=True)
class PlacementConfig:
    replication_factor: int = setting(
        2,
        "copies of every chunk a committed version has; 2 survives one lost node",
        unit="copies",
    )
    primary_keeps_copy: bool = setting(
        False,
        "true: the primary node keeps one of the copies; false: it relays and drops its copy",
    )
    latency_weight: float = setting(
        0.5,
        "weight of a node's probe latency in its placement score (50/50)",
        unit="fraction 0..1",
        metavar="FRACTION",
    )
    stored_bytes_weight: float = setting(
        0.5,
        "weight of the bytes a node stores in its placement score (50/50)",
        unit="fraction 0..1",
        metavar="FRACTION",
    )
    min_free_bytes: int = setting(
        64 * 1024 * 1024,
        "a node with less free space than this plus the upload gets no new chunks, keeping "
        "headroom for the filesystem and for manifests",
        unit="bytes",
    )


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    interval_s: float = setting(
        2.0,
        "time between probes of each node: a dead node stops getting data within seconds",
        unit="seconds",
    )
    timeout_s: float = setting(
        2.0,
        "time before a probe counts as failed; a healthy node on one LAN answers in milliseconds",
        unit="seconds",
    )
    smoothing: float = setting(
        0.3,
        "weight of the newest latency sample in the moving average",
        unit="fraction 0..1",
        metavar="FRACTION",
    )
    failures_before_unready: int = setting(
        2,
        "consecutive failed probes before a node is not ready; 2 rides out one lost packet",
        unit="probes",
    )


@dataclass(frozen=True, kw_only=True)
class DiscoveryConfig:
    backend: str = setting(
        "static",
        "static: the nodes of --discovery-static-nodes; kubernetes: storage pods watched "
        "through the API",
    )
    static_nodes: tuple[str, ...] = setting(
        (), "static backend: node-id=https://host:port entries, comma-separated"
    )
    namespace: str = setting("", "kubernetes backend: the namespace; empty: the pod's own")
    selector: str = setting(
        "app.kubernetes.io/component=storage-node", "kubernetes backend: the pods' label selector"
    )
    node_port: int = setting(8081, "kubernetes backend: the nodes' HTTP port", metavar="PORT")
    node_scheme: str = setting(
        "http", "kubernetes backend: http or https, the scheme of the nodes' URLs"
    )
    node_service: str = setting(
        "",
        "kubernetes backend: the nodes' headless Service; set: a node's URL names the pod "
        "(POD.SERVICE.NAMESPACE.svc, the name its certificate covers), empty: its IP",
    )


@dataclass(frozen=True, kw_only=True)
class UploadConfig:
    chunk_size: int = setting(
        DEFAULT_CHUNK_SIZE,
        "size of the chunks clients cut files into (see cofre.chunks for why 4 MiB)",
        unit="bytes",
    )
    session_ttl_s: float = setting(
        3600.0,
        "lifetime of an upload session and its tickets; a 1 TiB file at 300 MB/s fits",
        unit="seconds",
    )


@dataclass(frozen=True, kw_only=True)
class GCConfig:
    interval_s: float = setting(
        300.0,
        "time between garbage collection passes; deletion is rare and cheap to defer",
        unit="seconds",
    )
    grace_s: float = setting(
        3600.0,
        "an unreferenced chunk is kept this long after it was last written, so chunks of "
        "uploads in flight (not yet in the catalog) are never collected",
        unit="seconds",
    )


@dataclass(frozen=True, kw_only=True)
class RepairConfig:
    interval_s: float = setting(
        3600.0,
        "time between background repair passes, which ask every node about every live chunk "
        "and copy back lost ones; 0 turns them off. Hourly: one small request per thousand "
        "chunks per node",
        unit="seconds",
    )
    after_s: float = setting(
        300.0,
        "a node holding chunks may be unready or gone this long before its chunks are copied "
        "elsewhere: a pod restart or a rolling upgrade is back well within 5 minutes, so it "
        "sets off no storm of copies, while the window with one copy fewer stays short (a node "
        "that comes back empty is refilled at once, without this wait)",
        unit="seconds",
    )
    lost_scan_s: float = setting(
        60.0,
        "time between scans of the catalog for chunks whose nodes are lost (at most "
        "--repair-after-s)",
        unit="seconds",
    )
    parallel_copies: int = setting(
        4,
        "chunks drain and repair copy at once; each copy moves one chunk between two nodes",
        unit="chunks",
    )
    per_node_copies: int = setting(
        2,
        "copies drain and repair have in flight to or from one node at once, so a refill "
        "spreads over the cluster instead of queueing on one disk",
        unit="copies",
    )
    bytes_per_s: int = setting(
        64 * 1024 * 1024,
        "most bytes per second drain and repair copy, across all copies; 0: no limit. 64 MiB/s "
        "is about half a 1 Gb/s link, so backups keep the rest, and a 1 TiB node is refilled "
        "in under 5 hours",
        unit="bytes per second",
        metavar="BYTES_PER_S",
    )


@dataclass(frozen=True, kw_only=True)
class DrainConfig:
    pass_interval_s: float = setting(
        5.0,
        "time between drain passes while a node drains, and between retries after a failure",
        unit="seconds",
    )


@dataclass(frozen=True, kw_only=True)
class ScrubConfig:
    cycle_s: float = setting(
        7 * 24 * 3600.0,
        "time one scrub pass over every stored chunk takes: each copy is re-read and re-hashed "
        "this often, so rot is found and replaced while other copies are still good; 0 turns "
        "the scrub off. Weekly: a 1 TiB node reads under 2 MiB/s on average",
        unit="seconds",
    )
    bytes_per_s: int = setting(
        8 * 1024 * 1024,
        "most bytes per second the scrub reads; 0 turns the scrub off. 8 MiB/s is a few percent "
        "of one disk's sequential rate, so backups and restores keep the disk, and still covers "
        "4.8 TiB a week",
        unit="bytes per second",
        metavar="BYTES_PER_S",
    )


@dataclass(frozen=True, kw_only=True)
class PackConfig:
    max_chunk_bytes: int = setting(
        4 * 1024 * 1024,
        "chunks up to this size are appended to pack files (one sync per batch; measured "
        "faster than a file each for 4 KiB and 4 MiB chunks, see docs/architecture.md); larger "
        "ones stay a file each, so compaction never copies a chunk bigger than the default "
        "chunk size; 0 keeps every chunk a file",
        unit="bytes",
    )
    target_bytes: int = setting(
        64 * 1024 * 1024,
        "size at which a pack is sealed and the next one begun: big enough that a node holds "
        "few files, small enough that rewriting one is a short job",
        unit="bytes",
    )
    compact_garbage_fraction: float = setting(
        0.3,
        "a sealed pack is rewritten without its deleted chunks once more than this fraction of "
        "it is garbage: the space a node loses to deleted chunks stays below about this",
        unit="fraction",
    )
    compact_bytes_per_s: int = setting(
        16 * 1024 * 1024,
        "most bytes per second compaction reads and writes, so backups and restores keep the "
        "disk; 0: no limit",
        unit="bytes per second",
        metavar="BYTES_PER_S",
    )
    compact_interval_s: float = setting(
        60.0, "time between looks for packs worth compacting", unit="seconds"
    )


@dataclass(frozen=True, kw_only=True)
class MetricsConfig:
    public: bool = setting(
        False,
        "true: GET /metrics answers without the token, for Prometheus scrapers inside the "
        "cluster (metric values name nodes and sizes, never files); false: it needs the token",
    )


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    cert_file: str = setting(
        "",
        "PEM certificate (chain) this service presents; set: it serves HTTPS only. Re-read "
        "when the file changes, so a rotated certificate needs no restart",
        metavar="FILE",
    )
    key_file: str = setting(
        "", "PEM private key of --tls-cert-file (re-read with it)", metavar="FILE"
    )
    ca_file: str = setting(
        "",
        "PEM CA certificate(s) verifying the https:// services this one calls (the manager: "
        "the nodes; a node: the other nodes); empty: the system's CAs",
        metavar="FILE",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)

    @property
    def ca_path(self) -> Path | None:
        return Path(self.ca_file) if self.ca_file else None


@dataclass(frozen=True, kw_only=True)
class ManagerConfig:
    host: str = setting("127.0.0.1", "address to listen on", metavar="ADDRESS")
    port: int = setting(8080, "HTTP port to listen on", metavar="PORT")
    token: str = setting(
        "", "the cluster token: every endpoint but health probes requires it", metavar="TOKEN"
    )
    data_dir: Path = setting(Path("./manager-data"), "where the catalog (SQLite) lives")  # noqa: RUF009
    log_level: LogLevel = setting(LogLevel("INFO"), "least severe log level written to stderr")  # noqa: RUF009
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    gc: GCConfig = field(default_factory=GCConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)
    drain: DrainConfig = field(default_factory=DrainConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    host: str = setting("127.0.0.1", "address to listen on", metavar="ADDRESS")
    port: int = setting(8081, "HTTP port to listen on", metavar="PORT")
    token: str = setting(
        "", "the cluster token: every endpoint but health probes requires it", metavar="TOKEN"
    )
    node_id: str = setting(
        "node-0", "stable node name; in Kubernetes the pod name, which a StatefulSet keeps"
    )
    data_dir: Path = setting(Path("./node-data"), "where chunks live (a PVC in Kubernetes)")  # noqa: RUF009
    log_level: LogLevel = setting(LogLevel("INFO"), "least severe log level written to stderr")  # noqa: RUF009
    reserve_bytes: int = setting(
        32 * 1024 * 1024,
        "writes are refused when the volume would have less free space than this",
        unit="bytes",
    )
    replica_timeout_s: float = setting(
        60.0, "time a replica may take to store one chunk before the relay fails", unit="seconds"
    )
    relay_sweep_interval_s: float = setting(
        30.0,
        "time between sweeps of expired relay sessions; a stale one costs a few hundred bytes",
        unit="seconds",
    )
    scrub: ScrubConfig = field(default_factory=ScrubConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """The `cofre` command's settings (the manager and token may also come from the state file
    of a running `cofre local up` in ``data_dir``; see cofre.cli.context)."""

    manager_url: str = setting(
        "",
        "manager URL, e.g. https://127.0.0.1:8080; empty: the one of the `cofre local up` "
        "running from --data-dir",
        name="manager",
        aliases=("manager_url",),
        metavar="URL",
    )
    token: str = setting(
        "", "cluster token; empty: the one of the running `cofre local up`", metavar="TOKEN"
    )
    ca: str = setting(
        "",
        "PEM CA certificate the manager's and nodes' certificates must chain to; empty: the "
        "one of the running `cofre local up`, else the system's CAs",
        metavar="FILE",
    )
    insecure: bool = setting(
        False,
        "allow plain http:// (token and data cross the network unencrypted; a warning says "
        "so); without it an http:// manager is refused",
    )
    parallelism: int = setting(
        4,
        "chunks in flight at once per transfer: keeps the pipe full while memory stays at "
        "about parallelism x chunk size",
        unit="chunks",
    )
    timeout_s: float = setting(
        300.0,
        "time one request may wait for data before it fails; a 64 MiB chunk through a relay "
        "may take a while on a slow disk",
        unit="seconds",
    )
    connect_timeout_s: float = setting(
        10.0, "time to open a connection to the manager or a node", unit="seconds"
    )
    data_dir: Path = setting(  # noqa: RUF009
        Path(".cofre-local"),
        "data dir of `cofre local up`: it keeps everything there, and its state file names the "
        "manager and token when none is set",
    )
    log_level: LogLevel = setting(  # noqa: RUF009
        LogLevel("WARNING"), "least severe log level written to stderr; DEBUG logs every request"
    )


@dataclass(frozen=True)
class Leaf:
    """One setting: its attribute path, public name path, type and field."""

    path: tuple[str, ...]
    names: tuple[str, ...]
    hint: Any
    spec: dataclasses.Field[Any]

    @property
    def env(self) -> str:
        return env_name(self.names)

    @property
    def flag(self) -> str:
        return flag_name(self.names)

    @property
    def key(self) -> str:
        return ".".join(self.path)

    def alias_names(self) -> list[tuple[str, ...]]:
        return [(*self.names[:-1], a) for a in self.spec.metadata.get("aliases", ())]


def leaves(cls: type[Any]) -> list[Leaf]:
    """Every setting of ``cls``, groups flattened, in declaration order."""
    return _leaves(cls, (), ())


def _leaves(cls: type[Any], path: tuple[str, ...], names: tuple[str, ...]) -> list[Leaf]:
    hints = typing.get_type_hints(cls)
    out: list[Leaf] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        name = f.metadata.get("name") or f.name
        if dataclasses.is_dataclass(hint):
            group = typing.cast(type[Any], hint)
            out.extend(_leaves(group, (*path, f.name), (*names, name)))
        else:
            out.append(Leaf((*path, f.name), (*names, name), hint, f))
    return out


def env_name(path: tuple[str, ...]) -> str:
    return "COFRE_" + "_".join(path).upper()


def flag_name(path: tuple[str, ...], prefix: str = "") -> str:
    return "--" + "-".join((prefix, *path) if prefix else path).replace("_", "-")


def dest_name(leaf: Leaf, prefix: str = "") -> str:
    """The argparse attribute of a setting: what argparse itself derives from the flag."""
    return flag_name(leaf.names, prefix)[2:].replace("-", "_")


def _default(leaf: Leaf) -> Any:
    if leaf.spec.default is not dataclasses.MISSING:
        return leaf.spec.default
    return None


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _metavar(leaf: Leaf) -> str:
    if leaf.spec.metadata.get("metavar"):
        return str(leaf.spec.metadata["metavar"])
    unit = str(leaf.spec.metadata.get("unit", ""))
    if unit.isalpha():
        return unit.upper()
    if leaf.hint is LogLevel:
        return "LEVEL"
    if leaf.hint is bool:
        return "BOOL"
    if leaf.hint is Path:
        return "DIR"
    if typing.get_origin(leaf.hint) is tuple:
        return "LIST"
    if leaf.hint is float:
        return "NUMBER"
    return "TEXT"


def help_text(leaf: Leaf) -> str:
    """The setting's help, unit, default and environment variable(s), for --help and docs."""
    meta = leaf.spec.metadata
    parts = [f"unit: {meta['unit']}"] if meta.get("unit") else []
    if leaf.hint is LogLevel:
        parts.append("one of " + ", ".join(LOG_LEVELS))
    parts.append(f"default: {_shown(_default(leaf))}")
    parts.append("env " + " or ".join(env_name(n) for n in (leaf.names, *leaf.alias_names())))
    return f"{meta.get('help', '')} ({'; '.join(parts)})"


def _coerce(raw: str, hint: Any, what: str) -> Any:
    origin = typing.get_origin(hint)
    try:
        if hint is LogLevel:
            level = raw.strip().upper()
            if level not in LOG_LEVELS:
                raise ValueError(raw)
            return LogLevel(level)
        if hint is bool:
            low = raw.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            number = float(raw)
            if not math.isfinite(number):  # nan and inf pass every comparison check wrongly
                raise ValueError(raw)
            return number
        if hint is Path:
            return Path(raw)
        if origin is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if hint is str or origin in (typing.Union, types.UnionType):
            return raw
    except ValueError:
        expected = f" (one of {', '.join(LOG_LEVELS)})" if hint is LogLevel else ""
        raise ConfigError(f"{what}: cannot use {raw!r}{expected}") from None
    raise ConfigError(f"{what}: unsupported setting type {hint!r}")


def _selected(cls: type[Any], skip: Collection[str], only: Collection[str] | None) -> list[Leaf]:
    def wanted(key: str) -> bool:
        inside = any(key == s or key.startswith(s + ".") for s in skip)
        return not inside and (only is None or key in only)

    return [leaf for leaf in leaves(cls) if wanted(leaf.key)]


def add_flags(
    parser: argparse._ActionsContainer,
    cls: type[Any],
    *,
    prefix: str = "",
    skip: Collection[str] = (),
    only: Collection[str] | None = None,
) -> None:
    """Add one flag per leaf setting of ``cls`` (all optional; absent flags change nothing).

    ``skip``/``only`` name settings by attribute path ("placement" skips the whole group);
    ``prefix`` puts a word before each flag (``--node-reserve-bytes``) for a parser that takes
    the settings of two components.
    """
    for leaf in _selected(cls, skip, only):
        flags = [flag_name(n, prefix) for n in (leaf.names, *leaf.alias_names())]
        parser.add_argument(
            *flags,
            dest=dest_name(leaf, prefix),
            default=None,
            metavar=_metavar(leaf),
            help=help_text(leaf).replace("%", "%%"),
        )


def given_flags(
    args: argparse.Namespace,
    cls: type[Any],
    *,
    prefix: str = "",
    skip: Collection[str] = (),
) -> list[str]:
    """The flags of ``cls`` set on this command line, as argv for a child of that component
    (without ``prefix``): what a wrapper such as `cofre local up` passes on."""
    out: list[str] = []
    for leaf in _selected(cls, skip, None):
        value = getattr(args, dest_name(leaf, prefix), None)
        if value is not None:
            out.extend([leaf.flag, str(value)])
    return out


def load(
    cls: type[T],
    *,
    env: Mapping[str, str] | None = None,
    args: argparse.Namespace | None = None,
    prefix: str = "",
    overrides: Mapping[str, Any] | None = None,
    **kw_overrides: Any,
) -> T:
    """Build ``cls`` from defaults, then the environment, then flags, then overrides (keyed by
    attribute path, e.g. ``"placement.replication_factor"``)."""
    env = os.environ if env is None else env
    values: dict[tuple[str, ...], Any] = {}
    for leaf in leaves(cls):
        flag = getattr(args, dest_name(leaf, prefix), None) if args is not None else None
        if flag is not None:
            values[leaf.path] = _coerce(str(flag), leaf.hint, flag_name(leaf.names, prefix))
            continue
        for names in (leaf.names, *leaf.alias_names()):
            raw = env.get(env_name(names))
            # An empty variable (as templates often leave one) is unset, not a value.
            if raw is not None and (raw.strip() or leaf.hint is str):
                values[leaf.path] = _coerce(raw, leaf.hint, env_name(names))
                break
    for key, value in {**(overrides or {}), **kw_overrides}.items():
        values[tuple(key.split("."))] = value
    config = _build(cls, values, ())
    validate(config)
    return config


def _build(cls: type[T], values: dict[tuple[str, ...], Any], prefix: tuple[str, ...]) -> T:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint = hints[f.name]
        path = (*prefix, f.name)
        if dataclasses.is_dataclass(hint):
            kwargs[f.name] = _build(typing.cast(type[Any], hint), values, path)
        elif path in values:
            kwargs[f.name] = values[path]
    return cls(**kwargs)


def _named(*path: str) -> str:
    return f"{env_name(path)} (--{'-'.join(path).replace('_', '-')})"


def _positive(config: object, *paths: str) -> None:
    for dotted in paths:
        value: Any = config
        for part in dotted.split("."):
            value = getattr(value, part)
        if not value > 0:
            raise ConfigError(f"{_named(*dotted.split('.'))} must be more than 0, not {value}")


def validate(config: object) -> None:
    """Reject settings no component can run with, naming the setting."""
    if isinstance(config, ManagerConfig):
        p = config.placement
        if p.replication_factor < 1:
            raise ConfigError(f"{_named('placement', 'replication_factor')} must be >= 1")
        for name in ("latency_weight", "stored_bytes_weight"):
            if not 0.0 <= getattr(p, name) <= 1.0:
                raise ConfigError(f"{_named('placement', name)} must be within [0, 1]")
        if config.discovery.backend not in {"static", "kubernetes"}:
            raise ConfigError(f"{_named('discovery', 'backend')} must be static or kubernetes")
        if not 0 < config.upload.session_ttl_s <= MAX_SESSION_TTL_S:
            raise ConfigError(
                f"{_named('upload', 'session_ttl_s')} must be in (0, {MAX_SESSION_TTL_S}] seconds"
            )
        if not 0 < config.upload.chunk_size <= MAX_CHUNK_SIZE:
            raise ConfigError(f"{_named('upload', 'chunk_size')} must be in 1..64 MiB")
        _positive(
            config,
            "probe.interval_s",
            "probe.timeout_s",
            "gc.interval_s",
            "repair.lost_scan_s",
            "repair.parallel_copies",
            "repair.per_node_copies",
            "drain.pass_interval_s",
        )
        for name in ("interval_s", "after_s", "bytes_per_s"):
            if getattr(config.repair, name) < 0:
                raise ConfigError(f"{_named('repair', name)} must not be negative")
    if isinstance(config, NodeConfig):
        _positive(config, "replica_timeout_s", "relay_sweep_interval_s")
        for name in ("cycle_s", "bytes_per_s"):
            if getattr(config.scrub, name) < 0:
                raise ConfigError(f"{_named('scrub', name)} must not be negative")
        for name in ("max_chunk_bytes", "compact_bytes_per_s"):
            if getattr(config.pack, name) < 0:
                raise ConfigError(f"{_named('pack', name)} must not be negative")
        if config.pack.target_bytes <= 0 or config.pack.compact_interval_s <= 0:
            raise ConfigError(
                f"{_named('pack', 'target_bytes')} and "
                f"{_named('pack', 'compact_interval_s')} must be positive"
            )
        if not 0 < config.pack.compact_garbage_fraction < 1:
            raise ConfigError(f"{_named('pack', 'compact_garbage_fraction')} must be in (0, 1)")
    if isinstance(config, (ManagerConfig, NodeConfig)):
        if not config.token:
            raise ConfigError(f"{_named('token')} is required")
        if bool(config.tls.cert_file) != bool(config.tls.key_file):
            raise ConfigError(
                f"{_named('tls', 'cert_file')} and {_named('tls', 'key_file')} go together"
            )
    if isinstance(config, ClientConfig):
        if not 1 <= config.parallelism <= 64:
            raise ConfigError(f"{_named('parallelism')} must be between 1 and 64")
        _positive(config, "timeout_s", "connect_timeout_s")
