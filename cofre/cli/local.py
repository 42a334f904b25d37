"""`cofre local up`: a manager and N storage nodes as child processes on 127.0.0.1.

The manager's and nodes' settings are theirs (cofre.config.ManagerConfig and NodeConfig): the
children inherit the environment, and `local up` takes the same flags (the nodes' with a
``--node-`` prefix) and passes on those given. It sets only what makes the cluster local:
addresses, ports, data dirs, the token and the static list of nodes.

The data dir keeps the token and the node ports, so the same dir is the same cluster after a
restart. The command stays in the foreground; Ctrl-C, SIGTERM or `cofre local down` stops every
child (SIGTERM, then SIGKILL after a deadline). While the cluster comes up, a child that exits
could not start: everything is stopped and the exit is non-zero. Once up, `local up` supervises:
a child that exits (a node or the manager) is restarted on the same port and data dir after a
backoff (Backoff), and the state file is rewritten with its new pid. `cofre local kill ROLE`
SIGKILLs one child on purpose, optionally keeping it down for a while (--down-for).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from cofre.cli.context import add_insecure_flag
from cofre.cli.exitcodes import ExitCode, UsageError
from cofre.cli.localstate import (
    Hold,
    LocalNode,
    LocalState,
    load_node_ports,
    load_or_create_token,
    pid_alive,
    pid_running,
    read_state,
    remove_hold,
    remove_state,
    save_node_ports,
    take_hold,
    write_hold,
    write_state,
)
from cofre.cli.localtls import CA_VALID_FOR, CERT_VALID_FOR, TLS_DIR, LocalTls
from cofre.config import (
    ClientConfig,
    ConfigError,
    ManagerConfig,
    NodeConfig,
    add_flags,
    dest_name,
    given_flags,
    leaves,
    load,
)
from cofre.errors import Unavailable
from cofre.protocol.manager_api import NodeList
from cofre.tls import client_context

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# seconds: Python services start in about a second each; two cores may be busy.
READY_TIMEOUT_S = 90.0
# seconds each child gets to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 10.0
POLL_S = 0.2
# Defaults of a local cluster where they differ from a deployed one's, as environment defaults
# so that the user's environment and flags still win. Probe every second (the default is 2):
# readiness and failures show up sooner.
LOCAL_ENV_DEFAULTS = {"COFRE_PROBE_INTERVAL_S": "1.0"}
# Settings `local up` decides itself (attribute paths of the config dataclasses): not flags.
MANAGER_FIXED = ("host", "token", "data_dir", "log_level", "discovery", "tls")
NODE_FIXED = ("host", "port", "token", "node_id", "data_dir", "log_level", "tls")
NODE_PREFIX = "node"
_PR_SET_PDEATHSIG = 1
# seconds: the delay before the first restart of a child that exited, doubled for each further
# exit in a row up to the cap; a child that stayed up RESTART_STABLE_S starts over at the first.
RESTART_FIRST_S = 1.0
RESTART_CAP_S = 30.0
RESTART_STABLE_S = 60.0
# seconds: the longest `local kill --down-for` (a day; longer is surely a typo).
MAX_DOWN_FOR_S = 86400.0
# seconds `local kill` waits for the killed child to be gone.
KILL_TIMEOUT_S = 10.0
# The shortest certificate lifetime --cert-valid-for takes: the children look at the file every
# couple of seconds, and a rotation must land well before the old certificate ends.
MIN_CERT_VALID_S = 10.0
# After a failed renewal, the next try.
RENEW_RETRY = timedelta(minutes=1)


@dataclass
class Backoff:
    """When to restart one child: ``first_s`` after its first exit, doubling for each exit in a
    row up to ``cap_s``; once it stayed up ``stable_s``, its next exit is a first one again.
    Times are the caller's clock (time.monotonic in `local up`, a fake one in tests)."""

    first_s: float = RESTART_FIRST_S
    cap_s: float = RESTART_CAP_S
    stable_s: float = RESTART_STABLE_S
    failures: int = 0
    started_at: float | None = None

    def started(self, now: float) -> None:
        self.started_at = now

    def exited(self, now: float) -> float:
        """The delay before restarting the child that exited at ``now``."""
        if self.started_at is not None and now - self.started_at >= self.stable_s:
            self.failures = 0
        # The exponent is bounded: 2.0 ** a few thousand would overflow a float.
        delay = min(self.cap_s, self.first_s * 2.0 ** min(self.failures, 64))
        self.failures += 1
        return delay


@dataclass(eq=False)
class Child:
    role: str
    argv: list[str]
    log_path: Path
    url: str = ""
    data_dir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    backoff: Backoff = field(default_factory=Backoff)
    # When the child, now exited, is to be started again; None while it runs.
    restart_at: float | None = None
    restarts: int = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def current_pid(self) -> int:
        """The running process's pid, 0 while the child waits to be restarted."""
        return self.pid if self.proc is not None and self.restart_at is None else 0


class ChildDied(Exception):
    pass


def _say(text: str) -> None:
    print(f"cofre: {text}", file=sys.stderr, flush=True)


@dataclass
class Renewal:
    """Replaces the local certificate once its renewal time has come (see LocalTls)."""

    local_tls: LocalTls | None
    valid_for: timedelta
    say: Callable[[str], None] = _say
    due: datetime | None = None

    def check(self, now: datetime | None = None) -> bool:
        """True when a new certificate was written."""
        if self.local_tls is None:
            return False
        now = now if now is not None else datetime.now(UTC)
        if self.due is None:
            self.due = self.local_tls.renew_at()
        if now < self.due:
            return False
        try:
            done = self.local_tls.ensure(valid_for=self.valid_for, now=now)
            self.due = self.local_tls.renew_at()
        except (OSError, ValueError) as exc:
            self.due = now + RENEW_RETRY
            self.say(f"cannot renew the TLS certificate: {exc}; trying again in a minute")
            return False
        if done:
            self.say(f"TLS: {done}; the manager and nodes load it without a restart")
        return bool(done)


@dataclass
class Supervisor:
    """Starts the children and, once the cluster is up, restarts each one that exits."""

    children: list[Child]
    env: dict[str, str]
    data_dir: Path
    clock: Callable[[], float] = time.monotonic
    say: Callable[[str], None] = _say

    def start(self, child: Child) -> None:
        _start(child, self.env)
        child.backoff.started(self.clock())
        child.restart_at = None

    def check(self) -> bool:
        """One pass: note each child that exited and when to restart it; restart those whose
        time has come. True when a pid changed (the state file is to be rewritten)."""
        changed = False
        now = self.clock()
        for child in self.children:
            if child.restart_at is None:
                assert child.proc is not None
                code = child.proc.poll()
                if code is None:
                    continue
                hold = take_hold(self.data_dir, child.role, child.pid)
                # A kill with --down-for is no crash: its delay replaces the backoff's.
                delay = hold.down_for_s if hold is not None else child.backoff.exited(now)
                why = "; kept down by `cofre local kill --down-for`" if hold is not None else ""
                child.restart_at = now + delay
                self.say(
                    f"{_exit_text(child, code)}; restarting it in {delay:g} s{why} "
                    f"(log: {child.log_path})"
                )
                log.info(
                    "child exited role=%s pid=%s code=%s restart_in_s=%g",
                    child.role, child.pid, code, delay,
                )  # fmt: skip
                changed = True
            elif now >= child.restart_at:
                try:
                    self.start(child)
                except OSError as exc:
                    delay = child.backoff.exited(now)
                    child.restart_at = now + delay
                    self.say(f"cannot restart {child.role}: {exc}; trying again in {delay:g} s")
                    continue
                child.restarts += 1
                self.say(
                    f"{child.role} restarted (pid {child.pid}, restart {child.restarts}; "
                    f"log: {child.log_path})"
                )
                changed = True
        return changed


def add_up_flags(parser: argparse.ArgumentParser) -> None:
    """`local up`'s flags: its own, then the manager's and the nodes' from cofre.config."""
    parser.add_argument(
        "--nodes", type=int, default=4, metavar="N", help="storage nodes (default 4)"
    )
    add_flags(parser, ClientConfig, only=("data_dir",))
    add_insecure_flag(parser)
    parser.add_argument(
        "--cert-valid-for",
        type=_cert_valid_for,
        default=CERT_VALID_FOR.total_seconds(),
        metavar="SECONDS",
        help="lifetime of the certificate the manager and nodes present; it is replaced after "
        f"two thirds of it, without a restart (default {CERT_VALID_FOR.days} days)",
    )
    manager = parser.add_argument_group(
        "manager settings", "passed on to the manager (python -m cofre.manager)"
    )
    add_flags(manager, ManagerConfig, skip=MANAGER_FIXED)
    # Shorter spellings this command has always had; the same settings as above.
    factor = next(x for x in leaves(ManagerConfig) if x.key == "placement.replication_factor")
    keeps = next(x for x in leaves(ManagerConfig) if x.key == "placement.primary_keeps_copy")
    manager.add_argument(
        "--replication-factor",
        dest=dest_name(factor),
        metavar="COPIES",
        help="short for --placement-replication-factor",
    )
    manager.add_argument(
        "--primary-keeps-copy",
        dest=dest_name(keeps),
        action="store_const",
        const="true",
        help="short for --placement-primary-keeps-copy true",
    )
    nodes = parser.add_argument_group(
        "storage node settings",
        "passed on to every node (python -m cofre.storage_node) without the --node- prefix",
    )
    add_flags(nodes, NodeConfig, prefix=NODE_PREFIX, skip=NODE_FIXED)


def child_env(
    env: Mapping[str, str], token: str, local_tls: LocalTls | None = None
) -> dict[str, str]:
    """The children's environment: the local defaults, then ours, then the token (in the
    environment, not argv: ps shows argv to every user) and the TLS files (none: plain HTTP)."""
    fixed = local_tls.child_env() if local_tls is not None else {}
    if local_tls is None:
        env = {k: v for k, v in env.items() if not k.startswith("COFRE_TLS_")}
    return {**LOCAL_ENV_DEFAULTS, **env, "COFRE_TOKEN": token, **fixed}


def _cert_valid_for(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and MIN_CERT_VALID_S <= value <= CA_VALID_FOR.total_seconds()):
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_CERT_VALID_S:g} and {CA_VALID_FOR.total_seconds():g} "
            f"seconds: {text}"
        )
    return value


def manager_config(
    args: argparse.Namespace,
    data_dir: Path,
    *,
    env: Mapping[str, str],
    token: str,
    local_tls: LocalTls | None = None,
) -> ManagerConfig:
    """The settings the manager will run with, checked now (the nodes' too) so that a bad one
    is a usage error here rather than a child that dies."""
    env = child_env(env, token, local_tls)
    try:
        load(NodeConfig, env=env, args=args, prefix=NODE_PREFIX, overrides=_node_fixed())
        config = load(ManagerConfig, env=env, args=args, overrides=_manager_fixed(data_dir, token))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not 1 <= config.port <= 65535:
        raise UsageError("--port must be between 1 and 65535")
    return config


def _manager_fixed(data_dir: Path, token: str) -> dict[str, object]:
    return {
        "host": HOST,
        "token": token,
        "data_dir": data_dir / "manager",
        "discovery.backend": "static",
    }


def _node_fixed() -> dict[str, object]:
    return {"host": HOST, "port": 0, "data_dir": Path("unused")}


def run_local_up(args: argparse.Namespace, settings: ClientConfig) -> ExitCode:
    if args.nodes < 1:
        raise UsageError("--nodes must be at least 1")
    data_dir = settings.data_dir.absolute()
    _prepare_dir(data_dir)
    token = load_or_create_token(data_dir)
    local_tls = None if settings.insecure else LocalTls(data_dir / TLS_DIR)
    cert_valid_for = timedelta(seconds=args.cert_valid_for)
    config = manager_config(args, data_dir, env=os.environ, token=token, local_tls=local_tls)
    _refuse_if_running(data_dir)
    if not _port_free(config.port):
        raise UsageError(
            f"port {config.port} on {HOST} is already in use; choose another with --port"
        )
    # Only once the settings and the port are known good: a refused start makes no files.
    if local_tls is not None:
        try:
            if done := local_tls.ensure(valid_for=cert_valid_for):
                _say(f"TLS: {done} (in {local_tls.dir})")
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot make the TLS files in {local_tls.dir}: {exc}") from exc
    else:
        _say(
            "warning: --insecure: the manager and nodes serve plain HTTP; the token and the "
            "data cross the network unencrypted"
        )
    children = plan(args, data_dir, config, scheme="http" if local_tls is None else "https")
    env = child_env(os.environ, token, local_tls)
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    manager = children[-1]
    supervisor = Supervisor(children, env=env, data_dir=data_dir)
    for child in children:
        remove_hold(data_dir, child.role)  # left by an earlier run: about other processes
    try:
        for child in children:
            supervisor.start(child)
        ca_file = local_tls.ca_file if local_tls is not None else None
        ready = functools.partial(_ready_nodes, ca_file=ca_file)
        node_ids = [c.role for c in children[:-1]]
        _wait_ready(manager.url, token, node_ids, children, stopping, ready=ready)
        if stopping:
            return _stop_all(children, data_dir, ExitCode.OK)
        write_state(data_dir, _state(config, data_dir, token, children, ca_file))
        print(f"COFRE_MANAGER={manager.url}", flush=True)
        if ca_file is not None:
            print(f"COFRE_CA={ca_file}", flush=True)
        print(f"COFRE_TOKEN={token}", flush=True)
        print(
            f"cofre: local cluster up: manager {manager.url}, {args.nodes} nodes, "
            f"replication factor {config.placement.replication_factor}, data in {data_dir}; "
            "Ctrl-C or `cofre local down` stops it; a child that exits is restarted",
            file=sys.stderr,
            flush=True,
        )
        renewal = Renewal(local_tls, cert_valid_for)
        while not stopping:
            if supervisor.check() and not stopping:
                write_state(data_dir, _state(config, data_dir, token, children, ca_file))
            renewal.check()
            time.sleep(POLL_S)
        name = signal.Signals(stopping[0]).name
        print(f"cofre: {name}: stopping the local cluster", file=sys.stderr, flush=True)
        return _stop_all(children, data_dir, ExitCode.OK)
    except ChildDied as exc:
        print(f"cofre: error: {exc}", file=sys.stderr, flush=True)
        return _stop_all(children, data_dir, ExitCode.FAILURE)
    except BaseException:
        _stop_all(children, data_dir, ExitCode.FAILURE)
        raise


def run_local_down(args: argparse.Namespace, settings: ClientConfig) -> ExitCode:
    """SIGTERM the `local up` running from the data dir and wait until it has stopped."""
    data_dir = settings.data_dir.absolute()
    state = read_state(data_dir)
    pid = state.pid if state else 0
    if not pid or not pid_running(pid) or not _is_local_up(pid):
        if state is not None:
            remove_state(data_dir)  # left by a `local up` that was killed
        print(f"cofre: no local cluster runs from {data_dir}", file=sys.stderr)
        return ExitCode.OK
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while pid_running(pid) and read_state(data_dir) is not None:
        if time.monotonic() > deadline:
            print(
                f"cofre: error: the local cluster (pid {pid}) did not stop within "
                f"{args.timeout:g} s",
                file=sys.stderr,
            )
            return ExitCode.FAILURE
        time.sleep(POLL_S)
    # The state file goes last, after every child has exited; then the parent exits too.
    while pid_running(pid) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    print(f"cofre: local cluster stopped (pid {pid}, data in {data_dir})", file=sys.stderr)
    return ExitCode.OK


def add_kill_flags(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, ClientConfig, only=("data_dir",))
    parser.add_argument(
        "role", metavar="NAME", help="the child to kill: manager, node-0, node-1, ..."
    )
    parser.add_argument(
        "--down-for",
        type=_down_for,
        metavar="SECONDS",
        help="restart it only after SECONDS (default: after the usual backoff, 1 s at first)",
    )


def _down_for(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_DOWN_FOR_S):
        raise argparse.ArgumentTypeError(
            f"must be between 0 and {MAX_DOWN_FOR_S:g} seconds: {text}"
        )
    return value


def run_local_kill(args: argparse.Namespace, settings: ClientConfig) -> ExitCode:
    """SIGKILL one child of the `local up` running from the data dir, found by its role in the
    state file; with --down-for, ask `local up` to restart it only after that long."""
    data_dir = settings.data_dir.absolute()
    state = read_state(data_dir)
    if state is None or not pid_running(state.pid) or not _is_local_up(state.pid):
        raise Unavailable(f"no local cluster runs from {data_dir}")
    role: str = args.role
    if role not in state.pids:
        raise UsageError(
            f"no {role!r} in the local cluster of {data_dir}: one of "
            + ", ".join(sorted(state.pids, key=lambda r: (r != "manager", r)))
        )
    pid = state.pids[role]
    if not pid or not pid_running(pid) or not _is_child_of(pid, state.pid):
        raise Unavailable(f"{role} is not running now: `cofre local up` is restarting it")
    if args.down_for is not None:
        # Written before the kill: `local up` reads it when it sees the process gone.
        write_hold(data_dir, role, Hold(pid=pid, down_for_s=args.down_for))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        remove_hold(data_dir, role)
        raise Unavailable(f"{role} (pid {pid}) exited before it could be killed") from None
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while pid_running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    when = "after the usual backoff" if args.down_for is None else f"in {args.down_for:g} s"
    print(f"cofre: killed {role} (pid {pid}); `cofre local up` restarts it {when}", file=sys.stderr)
    return ExitCode.OK


def _is_child_of(pid: int, parent: int) -> bool:
    """Whether ``pid`` is a child of ``parent``: a pid the state file names may have been reused
    by another process since."""
    if not Path("/proc/self").exists():
        return True  # no /proc here: trust the state file
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return len(fields) > 1 and fields[1] == str(parent)


def _is_local_up(pid: int) -> bool:
    """Whether ``pid`` still runs `cofre local up`, not some process that reused its number."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc here: trust the state file
    return b"local" in argv and b"up" in argv


def _prepare_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for sub in ("manager", "nodes", "logs"):
            (data_dir / sub).mkdir(exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UsageError(f"cannot use data dir {data_dir}: {exc.strerror or exc}") from exc


def _refuse_if_running(data_dir: Path) -> None:
    state = read_state(data_dir)
    pid = state.pid if state else 0
    if pid and pid != os.getpid() and pid_alive(pid):
        raise UsageError(f"a local cluster already runs from {data_dir} (pid {pid})")


def _port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now; connections of a cluster that just
    stopped (TIME_WAIT) do not count, as the servers themselves bind with SO_REUSEADDR."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def plan(
    args: argparse.Namespace, data_dir: Path, config: ManagerConfig, *, scheme: str = "https"
) -> list[Child]:
    """The nodes (same ids, dirs and, when still free, ports as last time), then the manager
    (``config``: see manager_config). Flags given for them are passed on."""
    saved = load_node_ports(data_dir)
    ports: dict[str, int] = {}
    children: list[Child] = []
    node_flags = given_flags(args, NodeConfig, prefix=NODE_PREFIX, skip=NODE_FIXED)
    for i in range(args.nodes):
        node_id = f"node-{i}"
        port = saved.get(node_id, 0)
        if not port or port == config.port or port in ports.values() or not _port_free(port):
            port = _free_port()
            while port == config.port or port in ports.values():
                port = _free_port()
        ports[node_id] = port
        node_dir = data_dir / "nodes" / node_id
        children.append(
            Child(
                role=node_id,
                url=f"{scheme}://{HOST}:{port}",
                data_dir=node_dir,
                log_path=data_dir / "logs" / f"{node_id}.log",
                argv=[
                    sys.executable, "-m", "cofre.storage_node",
                    "--host", HOST, "--port", str(port),
                    "--node-id", node_id, "--data-dir", str(node_dir),
                    *node_flags,
                ],
            )
        )  # fmt: skip
    save_node_ports(data_dir, {**saved, **ports})
    static = ",".join(f"{c.role}={c.url}" for c in children)
    manager_dir = data_dir / "manager"
    children.append(
        Child(
            role="manager",
            url=f"{scheme}://{HOST}:{config.port}",
            data_dir=manager_dir,
            log_path=data_dir / "logs" / "manager.log",
            argv=[
                sys.executable, "-m", "cofre.manager",
                "--host", HOST, "--port", str(config.port),
                "--data-dir", str(manager_dir),
                "--discovery-backend", "static",
                "--discovery-static-nodes", static,
                *given_flags(args, ManagerConfig, skip=(*MANAGER_FIXED, "port")),
            ],
        )
    )  # fmt: skip
    return children


def _die_with_parent() -> None:
    """Runs in the child before exec: if `local up` is killed outright, its children follow."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(child: Child, env: dict[str, str]) -> None:
    child.log_path.parent.mkdir(parents=True, exist_ok=True)
    with child.log_path.open("ab") as out:
        # Own session: Ctrl-C reaches only `local up`, which then stops children in order.
        child.proc = subprocess.Popen(
            child.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    log.debug("started role=%s pid=%s url=%s", child.role, child.pid, child.url)


def _exit_text(child: Child, code: int) -> str:
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
    return f"{child.role} (pid {child.pid}) exited with {how}"


def _check_alive(children: list[Child]) -> None:
    """While starting: any child that exits stops the cluster (it could not start)."""
    for child in children:
        assert child.proc is not None
        code = child.proc.poll()
        if code is not None:
            raise ChildDied(
                f"{_exit_text(child, code)}; stopping the local cluster "
                f"(log: {child.log_path}){_tail(child.log_path)}"
            )


def _tail(path: Path, lines: int = 5) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    last = [line for line in text.splitlines() if line.strip()][-lines:]
    return "".join(f"\n  {line}" for line in last)


def _wait_ready(
    manager_url: str,
    token: str,
    node_ids: list[str],
    children: list[Child],
    stopping: list[int],
    *,
    ready: Callable[[str, str], set[str] | None],
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = set(node_ids)
    while not stopping:
        _check_alive(children)
        ready_ids = ready(manager_url, token)
        if ready_ids is not None:
            waiting = set(node_ids) - ready_ids
            if not waiting:
                return
        if time.monotonic() > deadline:
            what = "the manager" if ready_ids is None else "nodes " + ", ".join(sorted(waiting))
            raise ChildDied(
                f"{what} not ready after {READY_TIMEOUT_S:.0f}s; stopping the local cluster "
                f"(logs in {children[-1].log_path.parent})"
            )
        time.sleep(POLL_S)


def _ready_nodes(manager_url: str, token: str, *, ca_file: Path | None) -> set[str] | None:
    """Ids of the nodes the manager reports ready, or None while it does not answer."""
    req = urllib.request.Request(
        manager_url + "/v1/nodes", headers={"Authorization": f"Bearer {token}"}
    )
    context = client_context(ca_file=ca_file) if ca_file is not None else None
    try:
        with urllib.request.urlopen(req, timeout=2.0, context=context) as resp:
            listed = NodeList.model_validate_json(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return {n.node_id for n in listed.nodes if n.ready}


def _state(
    config: ManagerConfig,
    data_dir: Path,
    token: str,
    children: list[Child],
    ca_file: Path | None,
) -> LocalState:
    return LocalState(
        manager_url=children[-1].url,
        token=token,
        ca_file=str(ca_file) if ca_file is not None else "",
        insecure=ca_file is None,
        pid=os.getpid(),
        data_dir=str(data_dir),
        replication_factor=config.placement.replication_factor,
        primary_keeps_copy=config.placement.primary_keeps_copy,
        pids={c.role: c.current_pid for c in children},
        restarts={c.role: c.restarts for c in children},
        nodes=[
            LocalNode(node_id=c.role, url=c.url, pid=c.current_pid, data_dir=str(c.data_dir))
            for c in children[:-1]
        ],
    )


def _stop_all(children: list[Child], data_dir: Path, code: ExitCode) -> ExitCode:
    """SIGTERM every child still running, wait, SIGKILL the stragglers; remove the state file."""
    # A child waiting to be restarted has exited already: nothing to stop, and no restart now.
    running = [c for c in children if c.proc is not None and c.proc.poll() is None]
    for child in running:
        _signal(child, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in running:
        assert child.proc is not None
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(
                f"cofre: {child.role} (pid {child.pid}) did not stop; killing it", file=sys.stderr
            )
            _signal(child, signal.SIGKILL)
            child.proc.wait()
    state = read_state(data_dir)
    if state is not None and state.pid == os.getpid():
        remove_state(data_dir)
    return code


def _signal(child: Child, sig: int) -> None:
    assert child.proc is not None
    with contextlib.suppress(ProcessLookupError):
        child.proc.send_signal(sig)
