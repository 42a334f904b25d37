"""Configuration: grouped dataclasses, each field with its unit and the reason for its default.

Precedence is defaults < environment < command-line flags. Every leaf field has one environment
variable and one flag derived from its path, e.g. ``placement.replication_factor`` is
``COFRE_PLACEMENT_REPLICATION_FACTOR`` and ``--placement-replication-factor``; top-level fields
drop the group (``COFRE_TOKEN``, ``--token``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cofre.chunks import DEFAULT_CHUNK_SIZE

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value that cannot be used; its message names the setting."""


@dataclass(frozen=True, kw_only=True)
class PlacementConfig:
    # Copies of every chunk a committed version has; 2 survives one lost node (the seed's topology).
    replication_factor: int = 2
    # False: the primary relays and drops its copy (the seed). True: it is one of the copies.
    primary_keeps_copy: bool = False
    # Weights of the seed's score terms (unitless, 0..1); 50/50 as the seed scored.
    latency_weight: float = 0.5
    stored_bytes_weight: float = 0.5
    # bytes: a node with less free space than this plus the upload is left out, keeping
    # headroom for the filesystem and for manifests.
    min_free_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    # seconds between probes of each node: a dead node stops getting data within a few seconds.
    interval_s: float = 2.0
    # seconds before a probe counts as failed; a healthy node on one LAN answers in milliseconds.
    timeout_s: float = 2.0
    # weight of the newest latency sample in the exponential moving average (0..1).
    smoothing: float = 0.3
    # consecutive failed probes before a node is not ready; 2 rides out one lost packet.
    failures_before_unready: int = 2


@dataclass(frozen=True, kw_only=True)
class DiscoveryConfig:
    # "static": the nodes listed below; "kubernetes": storage pods watched through the API.
    backend: str = "static"
    # static backend: "node-id=http://host:port" entries, comma-separated in env and flags.
    static_nodes: tuple[str, ...] = ()
    # kubernetes backend: namespace ("" = the pod's own), label selector, and node port.
    namespace: str = ""
    selector: str = "app.kubernetes.io/component=storage-node"
    node_port: int = 8081


@dataclass(frozen=True, kw_only=True)
class UploadConfig:
    # bytes per chunk handed to clients; see cofre.chunks for why 4 MiB.
    chunk_size: int = DEFAULT_CHUNK_SIZE
    # seconds an upload session and its tickets live; a 1 TiB file at 300 MB/s fits.
    session_ttl_s: float = 3600.0


@dataclass(frozen=True, kw_only=True)
class GCConfig:
    # seconds between garbage collection passes; deletion is rare and cheap to defer.
    interval_s: float = 300.0
    # seconds an unreferenced chunk is kept after it was last written or touched, so chunks of
    # uploads in flight (not yet in the catalog) are never collected.
    grace_s: float = 3600.0


@dataclass(frozen=True, kw_only=True)
class RepairConfig:
    # seconds between background repair passes, which ask every node about every live chunk and
    # copy back the ones a node lost; 0 turns them off. Hourly: one small request per thousand
    # chunks per node, and a lost copy is not left alone for long.
    interval_s: float = 3600.0


@dataclass(frozen=True, kw_only=True)
class ManagerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # The cluster token: every endpoint but health probes requires it.
    token: str = ""
    # The catalog (SQLite) lives here.
    data_dir: Path = Path("./manager-data")
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    gc: GCConfig = field(default_factory=GCConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    host: str = "127.0.0.1"
    port: int = 8081
    token: str = ""
    # Stable node name; in Kubernetes the pod name (a StatefulSet keeps it across restarts).
    node_id: str = "node-0"
    # Chunks live here (a PVC in Kubernetes).
    data_dir: Path = Path("./node-data")
    # bytes: writes are refused when the volume would have less free space than this.
    reserve_bytes: int = 32 * 1024 * 1024
    # seconds to wait for a replica to store one chunk before the relay fails.
    replica_timeout_s: float = 60.0


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    manager_url: str = ""
    token: str = ""
    # chunks in flight at once per transfer: keeps the pipe full while memory stays at
    # parallelism x chunk size.
    parallelism: int = 4
    # seconds for one request to the manager or a node.
    timeout_s: float = 300.0


def _leaves(cls: type[Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    hints = typing.get_type_hints(cls)
    out: list[tuple[tuple[str, ...], Any]] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out.extend(_leaves(typing.cast(type[Any], hint), (*prefix, f.name)))
        else:
            out.append(((*prefix, f.name), hint))
    return out


def env_name(path: tuple[str, ...]) -> str:
    return "COFRE_" + "_".join(path).upper()


def flag_name(path: tuple[str, ...]) -> str:
    return "--" + "-".join(path).replace("_", "-")


def _dest(path: tuple[str, ...]) -> str:
    return "cfg__" + "__".join(path)


def _coerce(raw: str, hint: Any, what: str) -> Any:
    origin = typing.get_origin(hint)
    try:
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
            return float(raw)
        if hint is Path:
            return Path(raw)
        if origin is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if hint is str or origin in (typing.Union, types.UnionType):
            return raw
    except ValueError:
        raise ConfigError(f"{what}: cannot use {raw!r}") from None
    raise ConfigError(f"{what}: unsupported setting type {hint!r}")


def add_flags(parser: argparse.ArgumentParser, cls: type[Any]) -> None:
    """Add one flag per leaf setting of ``cls`` (all optional; absent flags change nothing)."""
    for path, _hint in _leaves(cls):
        parser.add_argument(
            flag_name(path),
            dest=_dest(path),
            default=None,
            metavar="VALUE",
            help=f"(env {env_name(path)})",
        )


def load(
    cls: type[T],
    *,
    env: Mapping[str, str] | None = None,
    args: argparse.Namespace | None = None,
    **overrides: Any,
) -> T:
    """Build ``cls`` from defaults, then the environment, then flags, then keyword overrides."""
    env = os.environ if env is None else env
    values: dict[tuple[str, ...], Any] = {}
    for path, hint in _leaves(cls):
        raw = env.get(env_name(path))
        if args is not None and getattr(args, _dest(path), None) is not None:
            raw = getattr(args, _dest(path))
            what = flag_name(path)
        else:
            what = env_name(path)
        if raw is not None:
            values[path] = _coerce(raw, hint, what)
    for key, value in overrides.items():
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


def validate(config: object) -> None:
    """Reject settings no component can run with, naming the setting."""
    if isinstance(config, ManagerConfig):
        p = config.placement
        if p.replication_factor < 1:
            raise ConfigError(f"{env_name(('placement', 'replication_factor'))} must be >= 1")
        for name in ("latency_weight", "stored_bytes_weight"):
            if not 0.0 <= getattr(p, name) <= 1.0:
                raise ConfigError(f"{env_name(('placement', name))} must be within [0, 1]")
        if config.discovery.backend not in {"static", "kubernetes"}:
            raise ConfigError(f"{env_name(('discovery', 'backend'))} must be static or kubernetes")
        if not 0 < config.upload.chunk_size <= 64 * 1024 * 1024:
            raise ConfigError(f"{env_name(('upload', 'chunk_size'))} must be in 1..64 MiB")
    if isinstance(config, (ManagerConfig, NodeConfig)) and not config.token:
        raise ConfigError(f"{env_name(('token',))} is required")
    if isinstance(config, ClientConfig) and config.parallelism < 1:
        raise ConfigError(f"{env_name(('parallelism',))} must be >= 1")
