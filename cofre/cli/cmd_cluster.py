"""`cofre status`, `fsck`, `repair`, `gc`, `catalog rebuild`: the cluster's nodes, the health
of every backup and its repair, cleanup, and recovery of a lost catalog."""

from __future__ import annotations

import argparse
from typing import Any

from cofre.cli.context import Context
from cofre.cli.exitcodes import ExitCode
from cofre.cli.http import connect
from cofre.cli.output import display_name, human_size, print_json, table


async def run_status(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        view = await clients.manager.nodes()
    if args.json:
        print_json(view)
        return ExitCode.OK
    nodes: list[dict[str, Any]] = sorted(view.get("nodes", []), key=lambda n: str(n["node_id"]))
    rows = [
        [
            str(n["node_id"]),
            str(n["url"]),
            ("draining" if n.get("draining") else "yes") if n.get("ready") else "no",
            human_size(int(n.get("stored_bytes") or 0)),
            human_size(int(n.get("free_bytes") or 0)),
            "-" if n.get("latency_ms") is None else f"{float(n['latency_ms']):.1f}",
            "-" if n.get("score") is None else f"{float(n['score']):.3f}",
        ]
        for n in nodes
    ]
    headers = ["NODE", "ADDRESS", "READY", "STORED", "FREE", "LATENCY_MS", "SCORE"]
    print(table(headers, rows, right={3, 4, 5, 6}))
    ready = sum(1 for n in nodes if n.get("ready"))
    keeps = "yes" if view.get("primary_keeps_copy") else "no"
    print(
        f"{ready} of {len(nodes)} nodes ready; replication factor "
        f"{view.get('replication_factor')}; primary keeps a copy: {keeps}",
        flush=True,
    )
    return ExitCode.OK


async def run_fsck(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        report = await clients.manager.fsck(name=args.name, verify=args.verify)
    healthy = bool(report.get("healthy"))
    if args.json:
        print_json(report)
    else:
        print(fsck_text(report), flush=True)
    return ExitCode.OK if healthy else ExitCode.FAILURE


def fsck_text(report: dict[str, Any]) -> str:
    s = report.get("summary", {})
    lines = [
        f"{s.get('files', 0)} files, {s.get('versions', 0)} versions, {s.get('chunks', 0)} chunks:"
        f" {s.get('ok', 0)} ok, {s.get('under_replicated', 0)} under-replicated,"
        f" {s.get('missing', 0)} missing, {s.get('corrupt', 0)} corrupt"
    ]
    for f in report.get("files", []):
        if f.get("healthy"):
            continue
        label = f"{display_name(str(f['name']))} version {f['version']}"
        for c in f.get("chunks", []):
            if c.get("status") == "ok":
                continue
            holders = ", ".join(c.get("nodes") or []) or "none"
            corrupt = ", ".join(c.get("corrupt_on") or [])
            extra = f"; corrupt on {corrupt}" if corrupt else ""
            lines.append(
                f"  {label}: chunk {str(c['hash'])[:16]} {c['status']} (on {holders}{extra})"
            )
    if not report.get("healthy"):
        lines.append(
            "`cofre repair` copies every chunk that still has a good copy back to its full count"
        )
    lines.append("HEALTHY" if report.get("healthy") else "NOT HEALTHY")
    return "\n".join(lines)


async def run_gc(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        result = await clients.manager.gc(grace_s=args.grace)
    if args.json:
        print_json(result)
        return ExitCode.OK
    print(
        f"deleted {result.get('deleted_chunks', 0)} chunks, "
        f"freed {human_size(int(result.get('freed_bytes') or 0))}",
        flush=True,
    )
    return ExitCode.OK


async def run_repair(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        result = await clients.manager.repair(verify=args.verify)
    if args.json:
        print_json(result)
    else:
        print(repair_text(result), flush=True)
    return ExitCode.OK if result.get("healthy") else ExitCode.FAILURE


def repair_text(result: dict[str, Any]) -> str:
    lines = [
        f"checked {result.get('chunks', 0)} chunks: {result.get('lost_copies', 0)} copies lost, "
        f"{result.get('under_replicated', 0)} chunks short of copies, "
        f"{result.get('copies_made', 0)} copies made"
    ]
    if result.get("stuck"):
        lines.append(
            f"{result['stuck']} chunks found no node to copy to or from; run repair again "
            "once more nodes are ready"
        )
    if result.get("unrecoverable"):
        lines.append(f"{result['unrecoverable']} chunks have no good copy left (see cofre fsck)")
    lines.append("HEALTHY" if result.get("healthy") else "NOT HEALTHY")
    return "\n".join(lines)


async def run_catalog_rebuild(args: argparse.Namespace, ctx: Context) -> ExitCode:
    async with connect(ctx) as clients:
        result = await clients.manager.rebuild_catalog()
    if args.json:
        print_json(result)
    else:
        print(rebuild_text(result), flush=True)
    return ExitCode.OK


def rebuild_text(result: dict[str, Any]) -> str:
    lines = [
        f"recovered {result.get('versions', 0)} versions of {result.get('names', 0)} names "
        f"from {result.get('nodes_scanned', 0)} nodes"
    ]
    incomplete = int(result.get("skipped_incomplete") or 0)
    unreadable = int(result.get("skipped_unreadable") or 0)
    if incomplete:
        lines.append(f"skipped {incomplete} versions whose chunks are no longer on any node")
    if unreadable:
        lines.append(f"skipped {unreadable} manifest chunks that could not be read intact")
    return "\n".join(lines)
