"""The operator's own settings, loaded like every cofre component's (defaults < env < flags)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class OperatorConfig:
    # The image children run when a BackupCluster names none; the chart sets its own image here.
    image: str = "localhost/cofre:dev"
    # Namespaces to watch, comma-separated in env and flags; empty: every namespace.
    namespaces: tuple[str, ...] = ()
    # kopf's liveness endpoint (the Deployment's liveness probe asks it).
    liveness: str = "http://0.0.0.0:8080/healthz"
