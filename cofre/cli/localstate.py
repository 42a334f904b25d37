"""Files a local cluster keeps in its data dir: the token, the node ports, the state file.

The token and ports persist so that a second `cofre local up` on the same dir is the same cluster
(same nodes, same catalog, same token). The state file exists only while `local up` runs; other
commands read it to find the manager, and `local kill` to find a child's current pid (rewritten
at every restart). A hold file (`holds/ROLE.json`) is how `local kill --down-for` asks the
supervising `local up` to keep that child down for a while. Which dir is the CLI's
``data_dir`` setting (cofre.config.ClientConfig: --data-dir, COFRE_DATA_DIR, default
./.cofre-local).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

STATE_FILE = "state.json"
TOKEN_FILE = "token"
PORTS_FILE = "node-ports.json"
HOLDS_DIR = "holds"


def write_private(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``, readable by the owner only (0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_or_create_token(data_dir: Path) -> str:
    """The cluster token of this data dir, generated on first use."""
    path = data_dir / TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(32)
        write_private(path, token + "\n")
    return token


def load_node_ports(data_dir: Path) -> dict[str, int]:
    try:
        data = json.loads((data_dir / PORTS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def save_node_ports(data_dir: Path, ports: Mapping[str, int]) -> None:
    write_private(data_dir / PORTS_FILE, json.dumps(dict(ports), indent=2) + "\n")


class LocalNode(BaseModel):
    node_id: str
    url: str
    pid: int
    data_dir: str


class LocalState(BaseModel):
    """What a running `local up` tells the other commands (the state file). Every field has a
    default: a partial file (an older version's, or one cut short) still names its owner."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    manager_url: str = ""
    token: str = ""
    ca_file: str = Field("", description="The CA the cluster's certificates chain to.")
    insecure: bool = Field(False, description="Started with --insecure: plain HTTP.")
    pid: int = Field(0, description="The `local up` process; 0 if unknown.")
    data_dir: str = ""
    replication_factor: int = 0
    primary_keeps_copy: bool = False
    pids: dict[str, int] = Field(
        default_factory=dict,
        description="Role -> the child's current pid (it changes at each restart); 0 while down.",
    )
    restarts: dict[str, int] = Field(
        default_factory=dict, description="Role -> how often it was restarted since `local up`."
    )
    nodes: list[LocalNode] = Field(default_factory=list)


class Hold(BaseModel):
    """`local kill --down-for`: when the child with ``pid`` exits, restart it only after
    ``down_for_s`` (instead of after the backoff's delay)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pid: int
    down_for_s: float = Field(ge=0)


def write_state(data_dir: Path, state: LocalState) -> None:
    write_private(data_dir / STATE_FILE, state.model_dump_json(indent=2) + "\n")


def read_state(data_dir: Path) -> LocalState | None:
    """The running cluster's state, or None when there is none (or it is unreadable)."""
    try:
        return LocalState.model_validate_json((data_dir / STATE_FILE).read_bytes())
    except (OSError, ValidationError):
        return None


def _hold_path(data_dir: Path, role: str) -> Path:
    return data_dir / HOLDS_DIR / f"{role}.json"


def write_hold(data_dir: Path, role: str, hold: Hold) -> None:
    (data_dir / HOLDS_DIR).mkdir(exist_ok=True, mode=0o700)
    write_private(_hold_path(data_dir, role), hold.model_dump_json() + "\n")


def take_hold(data_dir: Path, role: str, pid: int) -> Hold | None:
    """The hold asked for the child ``role`` whose process ``pid`` just exited, removed as it is
    read; a hold for another pid (one that was never killed) is dropped too."""
    path = _hold_path(data_dir, role)
    try:
        hold = Hold.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        hold = None
    path.unlink(missing_ok=True)
    return hold if hold is not None and hold.pid == pid else None


def remove_hold(data_dir: Path, role: str) -> None:
    _hold_path(data_dir, role).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    if pid <= 0:  # 0 and negatives address process groups, never one process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_running(pid: int) -> bool:
    """Alive and not a zombie: an exited process stays visible until its parent reaps it."""
    if not pid_alive(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # no /proc here: alive is the best answer
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def remove_state(data_dir: Path) -> None:
    (data_dir / STATE_FILE).unlink(missing_ok=True)
