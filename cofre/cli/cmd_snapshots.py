"""`cofre snapshots`, `restore` and `forget`: the tree snapshots `cofre put DIR` records."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import zoneinfo
from pathlib import Path

from cofre.cli.budget import Budget
from cofre.cli.context import Context
from cofre.cli.exitcodes import ExitCode, UsageError, describe_error, exit_code_for
from cofre.cli.http import connect
from cofre.cli.output import display_name, human_size, human_time, print_json, table
from cofre.cli.progress import TransferProgress
from cofre.cli.restorefs import RestoreRoot
from cofre.cli.retention import keep_count, parse_duration
from cofre.cli.tree_put import split_tags
from cofre.cli.tree_restore import TreeRestore, restore_path
from cofre.errors import BadRequest
from cofre.protocol.manager_api import ForgetReport, ForgetRequest, SnapshotInfo


def snapshot_row(s: SnapshotInfo) -> list[str]:
    return [
        s.short_id,
        human_time(s.time),
        display_name(s.host),
        display_name(",".join(s.tags)),
        str(s.files),
        human_size(s.bytes),
        display_name(", ".join(s.paths)),
    ]


_REF = re.compile(r"^([0-9a-f]{4,32}|latest)$")


def snapshot_ref(text: str) -> str:
    """An argument naming a snapshot: an id, a unique prefix of 4 hex digits or more, or
    ``latest``."""
    if not _REF.match(text):
        raise argparse.ArgumentTypeError(
            f"not a snapshot: {text!r} (an id, 4 or more of its first hex digits, or latest)"
        )
    return text


SNAPSHOT_HEADERS = ["ID", "TIME", "HOST", "TAGS", "FILES", "SIZE", "PATHS"]


async def run_snapshots(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        snaps = await clients.manager.list_snapshots(
            host=args.host, tags=split_tags(args.tag), path=args.path
        )
    if args.json:
        print_json(snaps)
        return ExitCode.OK
    if not snaps:
        print("no snapshots", file=sys.stderr)
        return ExitCode.OK
    print(table(SNAPSHOT_HEADERS, [snapshot_row(s) for s in snaps], right={4, 5}), flush=True)
    return ExitCode.OK


async def run_restore(args: argparse.Namespace, ctx: Context) -> ExitCode:
    paths = [restore_path(p) for p in args.path or []]
    target = Path(args.target)
    budget = Budget(ctx.parallelism)
    progress = TransferProgress(verb="restore", keep_finished=False)

    def report(path: str, exc: Exception) -> None:
        progress.line.echo(
            f"cofre: error: {display_name(path)}: {describe_error(exc)}", stream=sys.stderr
        )

    async with connect(ctx) as clients:
        snapshot = await clients.manager.get_snapshot(
            args.snapshot, host=args.host, tags=split_tags(args.tag)
        )
        with RestoreRoot(target, force=args.force) as root:
            restore = TreeRestore(clients, root, budget=budget, progress=progress, on_error=report)
            async with progress.running():
                await restore.run(snapshot.snapshot_id, paths)
    counts = restore.counts
    seconds = progress.elapsed()
    if args.json:
        print_json(
            {
                "snapshot_id": snapshot.snapshot_id,
                "target": str(target),
                **dataclasses.asdict(counts),
                "seconds": round(seconds, 3),
                "errors": [{"path": p, "error": describe_error(e)} for p, e in restore.errors],
            }
        )
    else:
        text = (
            f"restored snapshot {snapshot.short_id} into {display_name(str(target))}: "
            f"{counts.files} files, {counts.dirs} dirs, {counts.symlinks} symlinks, "
            f"{human_size(counts.bytes)} in {seconds:.1f} s"
        )
        if counts.failed:
            text += f", {counts.failed} failed"
        print(text, flush=True)
    if restore.errors:
        return exit_code_for(restore.errors[0][1])
    return ExitCode.OK


def local_zone() -> str:
    """This machine's IANA time zone, whose days the keep rules count; UTC if unknown."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        link = os.readlink("/etc/localtime")
        if "zoneinfo/" in link:
            candidates.append(link.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if not name:
            continue
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return "UTC"


RULE_FLAGS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


def forget_request(args: argparse.Namespace) -> ForgetRequest | None:
    """The keep rules given, or None when none is."""
    counts = {f"keep_{r}": getattr(args, f"keep_{r}") for r in RULE_FLAGS}
    within = args.keep_within
    if not any(v is not None for v in counts.values()) and within is None:
        return None
    try:
        return ForgetRequest(
            **{k: v for k, v in counts.items() if v is not None},
            keep_within=float(within) if within is not None else None,
            host=args.host,
            tags=split_tags(args.tag),
            timezone=local_zone(),
            dry_run=args.dry_run,
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _why(reasons: list[str]) -> str:
    return ", ".join(reasons)


def print_forget(report: ForgetReport) -> None:
    for group in report.groups:
        head = []
        if group.host is not None:
            head.append(f"host {display_name(group.host)}")
        if group.paths is not None:
            head.append(f"paths {display_name(', '.join(group.paths))}")
        if group.tags:
            head.append(f"tags {display_name(','.join(group.tags))}")
        verb = "would remove" if report.dry_run else "remove"
        print(
            f"{'; '.join(head) or 'all snapshots'}: keep {len(group.keep)}, "
            f"{verb} {len(group.remove)}"
        )
        for kept in group.keep:
            s = kept.snapshot
            print(f"  keep    {s.short_id}  {human_time(s.time)}  {_why(kept.reasons)}")
        for s in group.remove:
            print(
                f"  {'remove' if not report.dry_run else 'would remove':<7} {s.short_id}  "
                f"{human_time(s.time)}  kept by no rule"
            )
    sys.stdout.flush()


async def run_forget(args: argparse.Namespace, ctx: Context) -> ExitCode:
    rules = forget_request(args)
    if rules is None and not args.snapshots:
        raise UsageError("name SNAPSHOTs to remove, or give keep rules (--keep-last N, ...)")
    if rules is not None and args.snapshots:
        raise UsageError("either SNAPSHOTs or keep rules, not both")
    async with connect(ctx) as clients:
        if rules is not None:
            report = await clients.manager.forget(rules)
            removed = list(report.removed)
            if args.json:
                doc = report.model_dump(mode="json")
            else:
                print_forget(report)
        else:
            found = [await clients.manager.get_snapshot(ref) for ref in args.snapshots]
            unique = list({s.snapshot_id: s for s in found}.values())
            removed = []
            if not args.dry_run:
                for s in unique:
                    removed += await clients.manager.delete_snapshot(s.snapshot_id)
            if args.json:
                doc = {
                    "dry_run": args.dry_run,
                    "snapshots": [s.model_dump(mode="json") for s in unique],
                    "removed": removed,
                }
            else:
                verb = "would remove" if args.dry_run else "removed"
                for s in unique:
                    print(f"{verb} snapshot {s.short_id}  {human_time(s.time)}", flush=True)
        if args.prune and removed:
            freed = await clients.manager.gc()
            if args.json:
                doc["prune"] = freed.model_dump(mode="json")
            else:
                print(
                    f"pruned {freed.deleted_chunks} chunks, {human_size(freed.freed_bytes)} freed",
                    flush=True,
                )
    if args.json:
        print_json(doc)
    return ExitCode.OK


def add_forget_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "snapshots",
        nargs="*",
        type=snapshot_ref,
        metavar="SNAPSHOT",
        help="ids (or unique prefixes)",
    )
    for rule in RULE_FLAGS:
        what = "the N newest" if rule == "last" else f"the newest of the last N {_UNIT[rule]}"
        p.add_argument(
            f"--keep-{rule}",
            type=_keep_count,
            metavar="N",
            help=f"keep {what} (N or unlimited)",
        )
    p.add_argument(
        "--keep-within",
        type=_duration,
        metavar="DURATION",
        help="keep those less than DURATION older than the newest (e.g. 7d, 2w, 1y6m, 36h)",
    )
    p.add_argument("--host", help="only snapshots of this host")
    p.add_argument("--tag", action="append", help="only snapshots with this tag (a,b: both)")
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be removed, remove nothing"
    )
    p.add_argument(
        "--prune", action="store_true", help="then delete the chunks nothing references any more"
    )


_UNIT = {
    "hourly": "hours",
    "daily": "days",
    "weekly": "weeks",
    "monthly": "months",
    "yearly": "years",
}


def _keep_count(text: str) -> int:
    try:
        return keep_count(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
