"""The operator's own settings, loaded like every cofre component's (defaults < env < flags)."""

from __future__ import annotations

from dataclasses import dataclass

from cofre.config import LogLevel, setting


@dataclass(frozen=True, kw_only=True)
class OperatorConfig:
    image: str = setting(
        "localhost/cofre:dev",
        "image the children run when a BackupCluster names none; the chart sets its own image",
    )
    namespaces: tuple[str, ...] = setting(
        (), "namespaces to watch, comma-separated; empty: every namespace"
    )
    liveness: str = setting(
        "http://0.0.0.0:8080/healthz", "kopf's liveness endpoint (the Deployment's probe asks it)"
    )
    log_level: LogLevel = setting(  # noqa: RUF009
        LogLevel("INFO"), "least severe log level written to stderr (--verbose: DEBUG)"
    )
    metrics_port: int = setting(
        8081,
        "port of the operator's GET /metrics for Prometheus (kopf's liveness endpoint has its "
        "own); 0: not served",
        metavar="PORT",
    )
    metrics_host: str = setting("0.0.0.0", "address /metrics listens on", metavar="ADDRESS")
