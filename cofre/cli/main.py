"""The `cofre` command: argument parsing, dispatch, and errors turned into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from cofre.cli.cmd_cluster import (
    run_catalog_rebuild,
    run_fsck,
    run_gc,
    run_repair,
    run_status,
)
from cofre.cli.cmd_files import run_get, run_ls, run_put, run_rm
from cofre.cli.cmd_snapshots import (
    add_forget_flags,
    run_forget,
    run_restore,
    run_snapshots,
    snapshot_ref,
)
from cofre.cli.cmd_where import run_where
from cofre.cli.context import Context, add_insecure_flag, load_settings, resolve
from cofre.cli.exitcodes import ExitCode, describe_error, describe_exit_codes, exit_code_for
from cofre.cli.local import (
    add_kill_flags,
    add_up_flags,
    run_local_down,
    run_local_kill,
    run_local_up,
)
from cofre.cli.output import display_name
from cofre.config import ClientConfig, add_flags
from cofre.logsetup import CLI_FORMAT, setup_logging

Handler = Callable[[argparse.Namespace, Context], Coroutine[Any, Any, ExitCode]]

DESCRIPTION = """\
cofre backs files up onto storage nodes chosen by a manager.

Settings: defaults < COFRE_* environment < flags (see a command's --help). The manager and
token come from --manager/--token, else COFRE_MANAGER/COFRE_TOKEN, else the state file of a
running `cofre local up` (./.cofre-local, or --data-dir/COFRE_DATA_DIR).
Set COFRE_LOG_LEVEL=DEBUG (or -v) to log every request."""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"cofre: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    # The settings of cofre.config.ClientConfig; --parallelism only where it means something.
    conn = _Parser(add_help=False)
    add_flags(conn, ClientConfig, skip=("parallelism", "insecure"))
    add_insecure_flag(conn)
    js = _Parser(add_help=False)
    js.add_argument("--json", action="store_true", help="print JSON for scripts")
    par = _Parser(add_help=False)
    add_flags(par, ClientConfig, only=("parallelism",))

    parser = _Parser(
        prog="cofre",
        description=DESCRIPTION,
        epilog=describe_exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("put", parents=[conn, js, par], help="back up files or directories")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--name", help="name to store one file under (default: PATH as typed)")
    p.add_argument("--host", help="the host the snapshot is of (default: this machine's name)")
    p.add_argument(
        "--tag", action="append", metavar="TAG", help="tag the snapshot (repeat, or a,b)"
    )
    p.add_argument(
        "--parent",
        type=snapshot_ref,
        metavar="SNAPSHOT",
        help="compare with this snapshot (default: the latest of the same host and paths)",
    )
    p.add_argument(
        "--force-read", action="store_true", help="read every file, even those unchanged"
    )
    p.add_argument(
        "--per-file",
        action="store_true",
        help="store each file below a directory as its own name with per-name versions "
        "(no snapshot)",
    )
    p.set_defaults(handler=run_put)

    p = sub.add_parser("get", parents=[conn, js, par], help="restore a backed-up file")
    p.add_argument("name", nargs="?", metavar="NAME", help="the backed-up name to restore")
    p.add_argument(
        "-o",
        "--output",
        metavar="DEST",
        help="file or directory (default: the last part of NAME, here); - for stdout",
    )
    p.add_argument("--version", type=_positive_int, metavar="N", help="default: the latest")
    p.add_argument("--force", action="store_true", help="overwrite an existing DEST")
    p.add_argument("--prefix", help="restore every name starting with PREFIX below DEST")
    p.set_defaults(handler=run_get)

    p = sub.add_parser("snapshots", parents=[conn, js], help="list tree snapshots")
    p.add_argument("--host", help="only those of this host")
    p.add_argument("--tag", action="append", help="only those with this tag (a,b: both)")
    p.add_argument("--path", help="only those that backed up this path")
    p.set_defaults(handler=run_snapshots)

    p = sub.add_parser(
        "restore",
        parents=[conn, js, par],
        help="restore a tree snapshot, or part of it, below a directory",
        description=(
            "Restore the snapshot SNAPSHOT (an id, a unique prefix of one, or latest) below "
            "DIR: paths are recorded without their leading '/', so /srv/data comes back as "
            "DIR/srv/data. Files, directories, symlinks, modes and mtimes are restored, owners "
            "too when run as root. Existing files are kept unless --force."
        ),
    )
    p.add_argument(
        "snapshot", type=snapshot_ref, metavar="SNAPSHOT", help="an id, a unique prefix, or latest"
    )
    p.add_argument("--target", required=True, metavar="DIR", help="where to restore (made)")
    p.add_argument(
        "--path",
        action="append",
        metavar="P",
        help="restore only P and what is below it (repeat for more)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--host", help="with latest: the latest of this host")
    p.add_argument("--tag", action="append", help="with latest: the latest with this tag")
    p.set_defaults(handler=run_restore)

    p = sub.add_parser(
        "forget",
        parents=[conn, js],
        help="remove snapshots by id or by keep rules",
        description=(
            "Remove the named snapshots, or apply keep rules (restic's) to every group of "
            "snapshots of the same host and paths: a snapshot any rule keeps stays, the others "
            "go. Prints what is kept and why, and what is removed. Chunks nothing references "
            "any more are deleted by the next garbage collection, or at once with --prune."
        ),
    )
    add_forget_flags(p)
    p.set_defaults(handler=run_forget)

    p = sub.add_parser("ls", parents=[conn, js], help="list backed-up files")
    p.add_argument("--versions", action="store_true", help="every live version, not the latest")
    p.set_defaults(handler=run_ls)

    p = sub.add_parser(
        "where",
        parents=[conn, js],
        help="where each copy of a file's chunks is and why (exit 1 if one is short)",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", type=_positive_int, metavar="N", help="default: the latest")
    p.set_defaults(handler=run_where)

    p = sub.add_parser("rm", parents=[conn, js], help="delete a file's versions")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", type=_positive_int, metavar="N", help="default: every version")
    p.set_defaults(handler=run_rm)

    p = sub.add_parser("status", parents=[conn, js], help="the storage nodes and their state")
    p.set_defaults(handler=run_status)

    p = sub.add_parser("fsck", parents=[conn, js], help="check every backup (exit 1 if unhealthy)")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--verify", action="store_true", help="re-hash every copy on the nodes")
    p.set_defaults(handler=run_fsck)

    p = sub.add_parser(
        "repair",
        parents=[conn, js],
        help="copy every chunk back to its full count of good copies (exit 1 if one can't be)",
    )
    p.add_argument(
        "--verify", action="store_true", help="re-hash every copy first (finds silent rot)"
    )
    p.set_defaults(handler=run_repair)

    p = sub.add_parser("gc", parents=[conn, js], help="delete unreferenced chunks now")
    p.add_argument(
        "--grace",
        type=_non_negative_float,
        metavar="SECONDS",
        help="keep chunks written more recently than this (default: the manager's)",
    )
    p.set_defaults(handler=run_gc)

    catalog = sub.add_parser("catalog", help="the manager's catalog")
    catalog_sub = catalog.add_subparsers(
        dest="catalog_command", metavar="COMMAND", parser_class=_Parser
    )
    catalog_sub.required = True
    p = catalog_sub.add_parser(
        "rebuild",
        parents=[conn, js],
        help="recover a lost catalog from the manifests on the storage nodes",
        description=(
            "Fill an empty catalog (the manager's data was lost) from the manifests every "
            "storage node keeps: each version whose chunks are still on some node comes back, "
            "numbered 1..n per name in order of creation. Deleted versions not yet garbage "
            "collected come back too. Refused when the catalog holds any version."
        ),
    )
    p.set_defaults(handler=run_catalog_rebuild)

    p = sub.add_parser("menu", parents=[conn], help="the interactive menu")
    p.set_defaults(handler=None, menu=True)

    local = sub.add_parser("local", help="run cofre on this machine")
    local_sub = local.add_subparsers(dest="local_command", metavar="COMMAND", parser_class=_Parser)
    local_sub.required = True
    up = local_sub.add_parser(
        "up",
        help="start a manager and storage nodes here (foreground)",
        description=(
            "Start a manager and N storage nodes on 127.0.0.1 and stay in the foreground. "
            "Prints COFRE_MANAGER=... and COFRE_TOKEN=... once every node is ready; other "
            "cofre commands find the cluster by itself. The same data dir is the same cluster "
            "next time (token, nodes, backups). A node or the manager that exits is restarted "
            "(after 1 s, 2 s, 4 s ... up to 30 s). Ctrl-C or SIGTERM stops everything."
        ),
    )
    add_up_flags(up)
    up.set_defaults(handler=None, local_up=True)
    down = local_sub.add_parser(
        "down",
        help="stop the local cluster running from a data dir",
        description=(
            "Ask the `cofre local up` running from the data dir to stop (SIGTERM) and wait until "
            "every process has exited. Backups stay in the data dir. Nothing running is not an "
            "error."
        ),
    )
    add_flags(down, ClientConfig, only=("data_dir",))
    down.add_argument(
        "--timeout",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for it to stop (default 60)",
    )
    down.set_defaults(handler=None, local_down=True)
    kill = local_sub.add_parser(
        "kill",
        help="kill one process of the local cluster (to try a failure)",
        description=(
            "SIGKILL one child of the `cofre local up` running from the data dir: the manager "
            "or a storage node (node-0, node-1, ...). `local up` restarts it, after the usual "
            "backoff or after --down-for SECONDS."
        ),
    )
    add_kill_flags(kill)
    kill.set_defaults(handler=None, local_kill=True)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(env=os.environ, args=args)
        setup_logging("DEBUG" if args.verbose else settings.log_level, fmt=CLI_FORMAT)
        return int(_dispatch(args, settings))
    except KeyboardInterrupt:
        print("cofre: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: nothing more to say to it.
        _silence_stdout()
        return ExitCode.OK
    except Exception as exc:
        logging.getLogger(__name__).debug("command failed", exc_info=True)
        print(f"cofre: error: {display_name(describe_error(exc))}", file=sys.stderr)
        return exit_code_for(exc)


def _dispatch(args: argparse.Namespace, settings: ClientConfig) -> ExitCode:
    if getattr(args, "local_up", False):
        return run_local_up(args, settings)
    if getattr(args, "local_down", False):
        return run_local_down(args, settings)
    if getattr(args, "local_kill", False):
        return run_local_kill(args, settings)
    ctx = resolve(settings)
    if getattr(args, "menu", False):
        from cofre.cli.menu import run_menu

        return run_menu(ctx)
    handler: Handler = args.handler
    return asyncio.run(handler(args, ctx))


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def main() -> NoReturn:
    sys.exit(run())


if __name__ == "__main__":
    main()
