"""`cofre status`, `fsck`, `repair`, `gc`, `catalog rebuild`: the cluster's nodes, the health
of every backup and its repair, cleanup, and recovery of a lost catalog.

The long ones are each one request the manager may take minutes to answer; meanwhile a person
at a terminal sees a spinner and the time spent (cofre.cli.progress.waiting)."""

from __future__ import annotations

import argparse
import time
from collections import Counter

from cofre.cli.context import Context
from cofre.cli.exitcodes import ExitCode
from cofre.cli.http import connect
from cofre.cli.output import display_name, human_size, print_json, table
from cofre.cli.progress import waiting
from cofre.protocol.manager_api import FsckReport, NodeStatus, RebuildReport, RepairReport


async def run_status(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        view = await clients.manager.nodes()
    if args.json:
        print_json(view)
        return ExitCode.OK
    nodes = sorted(view.nodes, key=lambda n: n.node_id)
    rows = [
        [
            n.node_id,
            n.url,
            ("draining" if n.draining else "yes") if n.ready else "no",
            human_size(n.stored_bytes),
            human_size(n.free_bytes),
            "-" if n.latency_ms is None else f"{n.latency_ms:.1f}",
            "-" if n.score is None else f"{n.score:.3f}",
            _scrub(n),
        ]
        for n in nodes
    ]
    headers = ["NODE", "ADDRESS", "READY", "STORED", "FREE", "LATENCY_MS", "SCORE", "SCRUB"]
    print(table(headers, rows, right={3, 4, 5, 6}))
    ready = sum(1 for n in nodes if n.ready)
    keeps = "yes" if view.primary_keeps_copy else "no"
    print(
        f"{ready} of {len(nodes)} nodes ready; replication factor "
        f"{view.replication_factor}; primary keeps a copy: {keeps}",
        flush=True,
    )
    return ExitCode.OK


def _scrub(n: NodeStatus) -> str:
    """This cycle's share read, when the last full pass ended, and corrupt copies found."""
    if n.scrub_enabled is None:
        return "-"
    if not n.scrub_enabled:
        return "off"
    done = int((n.scrub_cycle_progress or 0.0) * 100)
    last = n.scrub_last_full_pass_at
    ago = "never" if last is None else f"{human_age(time.time() - last)} ago"
    bad = f", {n.scrub_findings} corrupt" if n.scrub_findings else ""
    return f"{done}% (full {ago}){bad}"


def human_age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


async def run_fsck(args: argparse.Namespace, ctx: Context) -> ExitCode:
    what = "fsck: the manager is re-hashing every copy" if args.verify else "fsck: checking"
    async with connect(ctx) as clients, waiting(what):
        report = await clients.manager.fsck(name=args.name, verify=args.verify)
    healthy = report.healthy
    if args.json:
        print_json(report)
    else:
        print(fsck_text(report), flush=True)
    return ExitCode.OK if healthy else ExitCode.FAILURE


def fsck_text(report: FsckReport) -> str:
    s = report.summary
    snapshots = f"{s.snapshots} snapshots, " if s.snapshots else ""
    lines = [
        f"{s.files} files, {s.versions} versions, {snapshots}{s.chunks} chunks:"
        f" {s.ok} ok, {s.under_replicated} under-replicated,"
        f" {s.missing} missing, {s.corrupt} corrupt"
    ]
    # The summary counts data chunks; a manifest that is not ok is said on a line of its own.
    bad_manifests = Counter(f.manifest.status for f in report.files if f.manifest.status != "ok")
    if bad_manifests:
        lines.append(
            "manifests: "
            + ", ".join(f"{n} {k.replace('_', '-')}" for k, n in bad_manifests.items())
        )
    for f in report.files:
        if f.healthy:
            continue
        label = f"{display_name(f.name)} version {f.version}"
        for what, c in [*(("chunk", c) for c in f.chunks), ("manifest", f.manifest)]:
            if c.status == "ok":
                continue
            holders = ", ".join(c.nodes) or "none"
            corrupt = ", ".join(c.corrupt_on)
            extra = f"; corrupt on {corrupt}" if corrupt else ""
            lines.append(f"  {label}: {what} {c.hash[:16]} {c.status} (on {holders}{extra})")
    for snap in report.snapshots:
        for c in snap.unhealthy:
            holders = ", ".join(c.nodes) or "none"
            lines.append(
                f"  snapshot {snap.snapshot_id[:8]}: chunk {c.hash[:16]} {c.status} (on {holders})"
            )
    if not report.healthy:
        lines.append(
            "`cofre repair` copies every chunk that still has a good copy back to its full count"
        )
    lines.append("HEALTHY" if report.healthy else "NOT HEALTHY")
    return "\n".join(lines)


async def run_gc(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients, waiting("gc: the manager is deleting unreferenced chunks"):
        result = await clients.manager.gc(grace_s=args.grace)
    if args.json:
        print_json(result)
        return ExitCode.OK
    print(
        f"deleted {result.deleted_chunks} chunks, freed {human_size(result.freed_bytes)}",
        flush=True,
    )
    return ExitCode.OK


async def run_repair(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients, waiting("repair: the manager is copying chunks back"):
        result = await clients.manager.repair(verify=args.verify)
    if args.json:
        print_json(result)
    else:
        print(repair_text(result), flush=True)
    return ExitCode.OK if result.healthy else ExitCode.FAILURE


def repair_text(result: RepairReport) -> str:
    lines = [
        f"checked {result.chunks} chunks: {result.lost_copies} copies lost, "
        f"{result.under_replicated} chunks short of copies, "
        f"{result.copies_made} copies made"
    ]
    if result.stuck:
        lines.append(
            f"{result.stuck} chunks found no node to copy to or from; run repair again "
            "once more nodes are ready"
        )
    if result.unrecoverable:
        lines.append(f"{result.unrecoverable} chunks have no good copy left (see cofre fsck)")
    lines.append("HEALTHY" if result.healthy else "NOT HEALTHY")
    return "\n".join(lines)


async def run_catalog_rebuild(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients, waiting("catalog rebuild: reading every node's manifests"):
        result = await clients.manager.rebuild_catalog()
    if args.json:
        print_json(result)
    else:
        print(rebuild_text(result), flush=True)
    return ExitCode.OK


def rebuild_text(result: RebuildReport) -> str:
    lines = [
        f"recovered {result.versions} versions of {result.names} names "
        f"from {result.nodes_scanned} nodes"
    ]
    incomplete = result.skipped_incomplete
    unreadable = result.skipped_unreadable
    if incomplete:
        lines.append(f"skipped {incomplete} versions whose chunks are no longer on any node")
    if unreadable:
        lines.append(f"skipped {unreadable} manifest chunks that could not be read intact")
    return "\n".join(lines)
